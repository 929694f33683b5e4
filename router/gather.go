package router

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/replica"
	"github.com/pgshard/pgshard/shard"
)

// GatherOptions shape a Gather.
type GatherOptions[T any] struct {
	// Compare orders the merged rows, with the convention of
	// slices.SortFunc (negative when a comes first); the shards' results
	// are k-way merged. Nil keeps shard order: every row of the first
	// shard, then the next.
	Compare func(a, b T) int
	// Limit caps the rows returned; 0 means all. With Compare, the result
	// is the global top Limit. Without, which rows make the Limit is
	// unspecified: the call stops reading once it has Limit rows.
	Limit int
	// Partial returns the rows of the shards that answered, with a
	// *PartialError naming the others, instead of failing the call.
	Partial bool
	// Primary reads primaries instead of replicas.
	Primary bool
	// Concurrency caps the shards queried at once. Default 16.
	Concurrency int
}

// Gather runs one read on every shard at once and merges the rows. Give
// the SQL its own ORDER BY and LIMIT matching Compare and Limit: each
// shard then returns only its top rows, already in order, and Gather
// merges them into the global top. Gather checks each shard's order as its
// rows arrive and sorts only a shard whose rows came out of order, so a
// missing ORDER BY costs time, not correctness. The first shard failure
// cancels the others and fails the call, with an error naming every failed
// shard, unless Partial is set.
func Gather[T any](ctx context.Context, r *Router, sql string, args []any, scan pgx.RowToFunc[T], opts GatherOptions[T]) ([]T, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	for try := 0; ; try++ {
		v := r.current()
		jobs := make([]gatherJob, len(v.shards))
		for i, st := range v.shards {
			jobs[i] = gatherJob{t: Target{r: r, s: st}, sql: sql, args: args}
		}
		if gatherPlanned != nil {
			gatherPlanned()
		}
		out, err := gather(ctx, r, jobs, scan, opts)
		if try == 0 && errors.Is(err, errShardGone) && r.current() != v {
			// A shard left the map while the call ran (its range was
			// split onto others): run it once more, on the new map.
			continue
		}
		return out, err
	}
}

// gatherPlanned, set by tests, runs between planning a Gather on the
// current map and running it.
var gatherPlanned func()

// Group is the user IDs of one shard, from Router.Group.
type Group struct {
	Target Target
	IDs    []int64 // in the order given to Group
}

// Group splits user IDs by the shard that owns them, in keyspace order,
// leaving out shards that own none: a service can then read
// WHERE id = ANY($1) once per shard, or all at once with GatherGroups.
func (r *Router) Group(userIDs []int64) []Group {
	v := r.current()
	byShard := make([][]int64, len(v.shards))
	for _, id := range userIDs {
		i := v.m.Index(shard.HashInt64(id))
		byShard[i] = append(byShard[i], id)
	}
	var groups []Group
	for i, ids := range byShard {
		if len(ids) > 0 {
			groups = append(groups, Group{Target: Target{r: r, s: v.shards[i]}, IDs: ids})
		}
	}
	return groups
}

// GatherGroups runs sql on each group's shard at once, with the group's
// IDs as its one argument ($1, a bigint[]: WHERE id = ANY($1)), and merges
// the rows as Gather does: the rows of many users in one call, one query
// per shard.
func GatherGroups[T any](ctx context.Context, r *Router, groups []Group, sql string, scan pgx.RowToFunc[T], opts GatherOptions[T]) ([]T, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	jobs := make([]gatherJob, len(groups))
	for i, g := range groups {
		jobs[i] = gatherJob{t: g.Target, sql: sql, args: []any{g.IDs}}
	}
	return gather(ctx, r, jobs, scan, opts)
}

// gatherJob is one shard's read in a gather.
type gatherJob struct {
	t    Target
	sql  string
	args []any
}

func gather[T any](ctx context.Context, r *Router, jobs []gatherJob, scan pgx.RowToFunc[T], opts GatherOptions[T]) ([]T, error) {
	if opts.Primary {
		ctx = WithPrimary(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 16
	}
	// Without an order, any Limit rows will do: once the shards have read
	// that many between them, the others stop.
	var taken atomic.Int64
	var enough atomic.Bool
	results := make([][]T, len(jobs))
	targets := make([]Target, len(jobs))
	for i, j := range jobs {
		targets[i] = j.t
	}
	failed := r.onTargets(ctx, conc, targets, func(i int, t Target) error {
		var take func() bool
		if opts.Compare == nil && opts.Limit > 0 {
			take = func() bool {
				if taken.Add(1) >= int64(opts.Limit) {
					enough.Store(true)
					cancel()
					return false
				}
				return true
			}
		}
		rows, err := collectShard(ctx, t, jobs[i].sql, jobs[i].args, scan, opts.Compare, opts.Limit, take)
		if err != nil {
			if enough.Load() && errors.Is(err, context.Canceled) {
				results[i] = rows // stopped: the limit was met elsewhere
				return nil
			}
			if !opts.Partial {
				cancel()
			}
			return err
		}
		results[i] = rows
		return nil
	})
	if enough.Load() {
		// Shards stopped, or never started, because the limit was met.
		failed = slices.DeleteFunc(failed, func(f *ShardError) bool { return errors.Is(f.Err, context.Canceled) })
	}
	if len(failed) > 0 && !opts.Partial {
		failed = realFailures(failed)
		return nil, &MultiError{Errs: failed}
	}
	merged := merge(results, opts.Compare, opts.Limit)
	if len(failed) > 0 {
		return merged, &PartialError{MultiError{Errs: failed}}
	}
	return merged, nil
}

// collectShard reads one shard's rows. With cmp it checks their order as
// they arrive, stops after limit rows while they are in order (the rest
// cannot make the top), and sorts them only if one came out of order.
// take, if set, is asked after each row whether to read on. Like Collect,
// it starts over once on another node when a node fails midway.
func collectShard[T any](ctx context.Context, t Target, sql string, args []any, scan pgx.RowToFunc[T], cmp func(a, b T) int, limit int, take func() bool) ([]T, error) {
	for try := 0; ; try++ {
		out, err := readShard(ctx, t, sql, args, scan, cmp, limit, take)
		if err == nil || try == 1 || ctx.Err() != nil || !replica.ConnError(err) {
			return out, err
		}
	}
}

func readShard[T any](ctx context.Context, t Target, sql string, args []any, scan pgx.RowToFunc[T], cmp func(a, b T) int, limit int, take func() bool) ([]T, error) {
	rows, err := t.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	sorted := true
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if cmp != nil && sorted && len(out) > 0 && cmp(out[len(out)-1], v) > 0 {
			sorted = false
		}
		out = append(out, v)
		if limit > 0 && len(out) >= limit && (cmp == nil || sorted) {
			break
		}
		if take != nil && !take() {
			return out, nil
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err // the rows read so far count when the limit was met elsewhere
	}
	if !sorted {
		slices.SortStableFunc(out, cmp)
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
	}
	return out, nil
}

// realFailures drops the shards that only saw the cancellation caused by
// another's failure, unless nothing else is left.
func realFailures(failed []*ShardError) []*ShardError {
	var real []*ShardError
	for _, f := range failed {
		if !errors.Is(f.Err, context.Canceled) {
			real = append(real, f)
		}
	}
	if len(real) == 0 {
		return failed
	}
	return real
}

// merge concatenates (cmp == nil) or k-way merges sorted lists, keeping
// at most limit rows (0 = all).
func merge[T any](lists [][]T, cmp func(a, b T) int, limit int) []T {
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	if limit <= 0 || limit > total {
		limit = total
	}
	out := make([]T, 0, limit)
	if cmp == nil {
		for _, l := range lists {
			for _, v := range l {
				if len(out) == limit {
					return out
				}
				out = append(out, v)
			}
		}
		return out
	}
	h := &mergeHeap[T]{cmp: cmp}
	for i, l := range lists {
		if len(l) > 0 {
			h.items = append(h.items, cursor{list: i})
		}
	}
	h.lists = lists
	heap.Init(h)
	for len(out) < limit && h.Len() > 0 {
		c := &h.items[0]
		out = append(out, lists[c.list][c.pos])
		c.pos++
		if c.pos == len(lists[c.list]) {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return out
}

type cursor struct{ list, pos int }

type mergeHeap[T any] struct {
	items []cursor
	lists [][]T
	cmp   func(a, b T) int
}

func (h *mergeHeap[T]) Len() int { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	va, vb := h.lists[a.list][a.pos], h.lists[b.list][b.pos]
	if c := h.cmp(va, vb); c != 0 {
		return c < 0
	}
	return a.list < b.list // ties: shard order, so the merge is stable
}
func (h *mergeHeap[T]) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)    { h.items = append(h.items, x.(cursor)) }
func (h *mergeHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// Collect runs a read on t and returns every row, scanned with scan.
// Because it holds the rows itself, a read cut off by a node's failure,
// even after rows had arrived, starts over once on another node; a plain
// Query can retry only before its first row reaches the caller.
func Collect[T any](ctx context.Context, t Target, sql string, args []any, scan pgx.RowToFunc[T]) ([]T, error) {
	for try := 0; ; try++ {
		rows, err := t.Query(ctx, sql, args...)
		var out []T
		if err == nil {
			out, err = pgx.CollectRows(rows, scan)
		}
		if err == nil || try == 1 || ctx.Err() != nil || !replica.ConnError(err) {
			return out, err
		}
	}
}

// onEveryShard runs fn for every shard, at most limit at once, and
// returns the failures in shard order. A shard that gets no slot before ctx
// ends fails with ctx's error.
func (r *Router) onEveryShard(ctx context.Context, limit int, fn func(i int, t Target) error) []*ShardError {
	shards := r.current().shards
	targets := make([]Target, len(shards))
	for i, st := range shards {
		targets[i] = Target{r: r, s: st}
	}
	return r.onTargets(ctx, limit, targets, fn)
}

// onTargets is onEveryShard over the given targets.
func (r *Router) onTargets(ctx context.Context, limit int, targets []Target, fn func(i int, t Target) error) []*ShardError {
	sem := make(chan struct{}, limit)
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			errs[i] = fn(i, t)
		})
	}
	wg.Wait()
	var failed []*ShardError
	for i, err := range errs {
		if err != nil {
			failed = append(failed, &ShardError{Shard: targets[i].s.name, Err: err})
		}
	}
	return failed
}

// ExecAll runs one statement on every shard's primary at once (schema
// changes, maintenance). It waits for every shard, and the error, a
// *MultiError, names each shard that failed.
func (r *Router) ExecAll(ctx context.Context, sql string, args ...any) error {
	if r.closed.Load() {
		return ErrClosed
	}
	failed := r.onEveryShard(ctx, len(r.current().shards), func(_ int, t Target) error {
		if err := t.leaseErr(ctx); err != nil {
			return err
		}
		_, err := t.s.set.Exec(ctx, sql, args...)
		return err
	})
	if len(failed) > 0 {
		return &MultiError{Errs: failed}
	}
	return nil
}
