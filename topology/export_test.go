package topology

import "context"

// ExecControl runs a statement on the store's control database.
func ExecControl(ctx context.Context, s *Store, sql string) error {
	_, err := s.pool.Exec(ctx, sql)
	return err
}
