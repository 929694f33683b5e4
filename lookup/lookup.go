package lookup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgshard/pgshard/router"
	"github.com/pgshard/pgshard/shard"
)

var (
	// ErrDuplicate means another live owner holds the key.
	ErrDuplicate = errors.New("lookup: key already taken")
	// ErrNotFound means no live owner holds the key.
	ErrNotFound = errors.New("lookup: key not found")
	// ErrInvalidConfig is wrapped by New's errors.
	ErrInvalidConfig = errors.New("lookup: invalid config")
)

// Config describes a lookup.
type Config struct {
	// Table names the lookup table, created by Setup on every shard; the
	// claims table is Table + "_claims". Required.
	Table string
	// OwnerSQL tells whether the owner row still holds the key: run on the
	// owner's shard with $1 the owner ID and $2 the key, it returns one
	// boolean. For example:
	//	SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND email = $2)
	// Required.
	OwnerSQL string
}

// Lookup maps keys to owner IDs across shards. It is safe for concurrent
// use.
type Lookup struct {
	r      *router.Router
	cfg    Config
	table  string // quoted
	claims string // quoted
	claimC string // the claims table's primary key constraint
}

// New returns a lookup over r's shards. Call Setup once to create its
// tables.
func New(r *router.Router, cfg Config) (*Lookup, error) {
	if cfg.Table == "" || len(cfg.Table) > 40 {
		return nil, fmt.Errorf("%w: Table %q: want 1 to 40 characters", ErrInvalidConfig, cfg.Table)
	}
	if cfg.OwnerSQL == "" {
		return nil, fmt.Errorf("%w: OwnerSQL is empty", ErrInvalidConfig)
	}
	return &Lookup{r: r, cfg: cfg, table: pgx.Identifier{cfg.Table}.Sanitize(),
		claims: pgx.Identifier{cfg.Table + "_claims"}.Sanitize(), claimC: cfg.Table + "_claims_pkey"}, nil
}

// Setup creates the lookup and claims tables on every shard (Schema's
// statements).
func (l *Lookup) Setup(ctx context.Context) error {
	for _, stmt := range l.Schema() {
		if err := l.r.ExecAll(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// Schema returns the idempotent statements that create the lookup's
// tables, for a service that applies its schema itself on every shard.
func (l *Lookup) Schema() []string {
	return []string{
		"CREATE TABLE IF NOT EXISTS " + l.table + " (key text PRIMARY KEY, owner bigint NOT NULL, token text NOT NULL)",
		"CREATE TABLE IF NOT EXISTS " + l.claims + " (token text PRIMARY KEY, void boolean NOT NULL DEFAULT false)",
	}
}

func (l *Lookup) keyTarget(key string) router.Target { return l.r.Key(shard.HashString(key)) }

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create gives key to owner: it writes the lookup row (taking over one
// whose owner is gone), then runs insertOwner in a transaction on the
// owner's shard, which must write the owner row holding the key. If the
// key is held by a live owner it returns ErrDuplicate and writes nothing;
// if insertOwner fails, the lookup row is removed again and its error
// returned. Claim splits these steps for an owner written in a
// transaction of the caller's.
func (l *Lookup) Create(ctx context.Context, key string, owner int64, insertOwner func(pgx.Tx) error) error {
	c, err := l.Claim(ctx, key, owner)
	if err != nil {
		return err
	}
	err = l.r.User(owner).Tx(ctx, func(tx pgx.Tx) error {
		if err := c.Record(ctx, tx); err != nil {
			return err
		}
		return insertOwner(tx)
	})
	if err != nil {
		return c.Abandon(ctx, err)
	}
	return nil
}

// Claim is a lookup row written for an owner whose row is not written
// yet: the first of Create's two writes.
type Claim struct {
	l     *Lookup
	key   string
	owner int64
	token string
}

// Claim writes the lookup row of key for owner, taking over one whose
// owner is gone, or returns ErrDuplicate. The caller then writes the owner
// row in a transaction on the owner's shard that calls Record, and calls
// Abandon if that transaction fails.
func (l *Lookup) Claim(ctx context.Context, key string, owner int64) (*Claim, error) {
	token := newToken()
	if err := l.claim(ctx, key, owner, token); err != nil {
		return nil, err
	}
	return &Claim{l: l, key: key, owner: owner, token: token}, nil
}

// Record marks the claim as written in tx, a transaction on the owner's
// shard that writes the owner row. It fails if another writer judged the
// claim dangling and took the key meanwhile (then the transaction must not
// commit; Abandon reports ErrDuplicate).
func (c *Claim) Record(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "INSERT INTO "+c.l.claims+" (token) VALUES ($1)", c.token)
	return err
}

// Abandon removes the claim's lookup row after the owner's transaction
// failed with err, and returns the error to report: ErrDuplicate if the key
// was taken meanwhile, else err. A row it cannot remove is dangling, and
// the next writer takes it over.
func (c *Claim) Abandon(ctx context.Context, err error) error {
	var pgErr *pgconn.PgError
	lost := errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == c.l.claimC
	cctx := context.WithoutCancel(ctx)
	_, _ = c.l.keyTarget(c.key).Exec(cctx, "DELETE FROM "+c.l.table+" WHERE key = $1 AND token = $2", c.key, c.token)
	if lost {
		return fmt.Errorf("%w: %q (taken while this owner was being written)", ErrDuplicate, c.key)
	}
	return err
}

// claim writes the lookup row for key, or takes over a dangling one.
func (l *Lookup) claim(ctx context.Context, key string, owner int64, token string) error {
	t := l.keyTarget(key)
	for {
		tag, err := t.Exec(ctx, "INSERT INTO "+l.table+" (key, owner, token) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING", key, owner, token)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var held int64
		var heldToken string
		err = onPrimary(ctx, t, "SELECT owner, token FROM "+l.table+" WHERE key = $1", []any{key}, &held, &heldToken)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // deleted meanwhile: insert again
		}
		if err != nil {
			return err
		}
		live, err := l.settle(ctx, key, held, heldToken)
		if err != nil {
			return err
		}
		if live {
			return fmt.Errorf("%w: %q", ErrDuplicate, key)
		}
		tag, err = t.Exec(ctx, "UPDATE "+l.table+" SET owner = $3, token = $4 WHERE key = $1 AND token = $2", key, heldToken, owner, token)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		// Someone else changed the row meanwhile: look again.
	}
}

// settle decides, on the owner's shard, whether a lookup row is live. If
// the owner's transaction never recorded the token, it records it void,
// so that the transaction fails should it still come.
func (l *Lookup) settle(ctx context.Context, key string, owner int64, token string) (live bool, err error) {
	o := l.r.User(owner)
	tag, err := o.Exec(ctx, "INSERT INTO "+l.claims+" (token, void) VALUES ($1, true) ON CONFLICT (token) DO NOTHING", token)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 1 {
		return false, nil // voided: the owner row was never written and never will be
	}
	var void bool
	if err := onPrimary(ctx, o, "SELECT void FROM "+l.claims+" WHERE token = $1", []any{token}, &void); err != nil {
		return false, err
	}
	if void {
		return false, nil
	}
	var ok bool
	if err := onPrimary(ctx, o, l.cfg.OwnerSQL, []any{owner, key}, &ok); err != nil {
		return false, fmt.Errorf("lookup: checking owner %d of %q: %w", owner, key, err)
	}
	return ok, nil
}

// onPrimary reads one row on t's primary in a transaction, as a write
// goes: it waits out a fenced shard and follows a switchover, where a read
// sent to the primary fails while the old primary shuts down.
func onPrimary(ctx context.Context, t router.Target, sql string, args []any, dest ...any) error {
	return t.Tx(ctx, func(tx pgx.Tx) error { return tx.QueryRow(ctx, sql, args...).Scan(dest...) })
}

// holds runs OwnerSQL on the owner's shard.
func (l *Lookup) holds(ctx context.Context, key string, owner int64) (bool, error) {
	var ok bool
	if err := l.r.User(owner).QueryRow(ctx, l.cfg.OwnerSQL, owner, key).Scan(&ok); err != nil {
		return false, fmt.Errorf("lookup: checking owner %d of %q: %w", owner, key, err)
	}
	return ok, nil
}

// Get returns the live owner of key, or ErrNotFound. It reads the lookup
// row, then re-checks the owner row, so a dangling lookup row reads as not
// found. Reads go where ctx sends them (a session, WithPrimary).
func (l *Lookup) Get(ctx context.Context, key string) (int64, error) {
	var owner int64
	err := l.keyTarget(key).QueryRow(ctx, "SELECT owner FROM "+l.table+" WHERE key = $1", key).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	if err != nil {
		return 0, err
	}
	ok, err := l.holds(ctx, key, owner)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return owner, nil
}

// Change moves owner from key old to key new, either of which may be ""
// (none): it claims new (the lookup row first, as Create does), runs
// update in a transaction on the owner's shard, which must make the owner
// row hold new instead of old (and should fail if it no longer holds old),
// then removes old's lookup row (last, as Delete does). If new is held by
// a live owner it returns ErrDuplicate and changes nothing; if update
// fails, new's lookup row is removed again and update's error returned.
//
// old's lookup row is removed by the claim token it had before update
// ran: should the key be claimed again once the owner let go of it (by
// this owner or another), that claim's row stays.
func (l *Lookup) Change(ctx context.Context, old, new string, owner int64, update func(pgx.Tx) error) error {
	if old == new {
		return l.r.User(owner).Tx(ctx, update)
	}
	var oldToken string
	if old != "" {
		err := onPrimary(ctx, l.keyTarget(old), "SELECT token FROM "+l.table+" WHERE key = $1 AND owner = $2", []any{old, owner}, &oldToken)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
	}
	var c *Claim
	if new != "" {
		var err error
		if c, err = l.Claim(ctx, new, owner); err != nil {
			return err
		}
	}
	err := l.r.User(owner).Tx(ctx, func(tx pgx.Tx) error {
		if c != nil {
			if err := c.Record(ctx, tx); err != nil {
				return err
			}
		}
		return update(tx)
	})
	if err != nil {
		if c != nil {
			return c.Abandon(ctx, err)
		}
		return err
	}
	if oldToken != "" {
		// A row left behind (this fails, the process stops) is dangling:
		// it reads as not found and the next claim of old takes it over.
		_, _ = l.keyTarget(old).Exec(context.WithoutCancel(ctx), "DELETE FROM "+l.table+" WHERE key = $1 AND token = $2", old, oldToken)
	}
	return nil
}

// Delete removes owner's hold on key: it runs deleteOwner in a transaction
// on the owner's shard (which must delete the owner row, or clear its
// key), then removes the lookup row. A crash between the two leaves a
// dangling lookup row, which reads as not found and is taken over.
func (l *Lookup) Delete(ctx context.Context, key string, owner int64, deleteOwner func(pgx.Tx) error) error {
	if err := l.r.User(owner).Tx(ctx, deleteOwner); err != nil {
		return err
	}
	_, err := l.keyTarget(key).Exec(ctx, "DELETE FROM "+l.table+" WHERE key = $1 AND owner = $2", key, owner)
	return err
}
