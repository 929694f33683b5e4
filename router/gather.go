package router

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pgshard/pgshard/replica"
)

// GatherOptions shape a Gather.
type GatherOptions[T any] struct {
	// Less orders the merged rows (k-way merge of the shards' results).
	// Nil keeps shard order: every row of the first shard, then the next.
	Less func(a, b T) bool
	// Limit caps the rows returned; 0 means all. With Less, the result is
	// the global top Limit.
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
// the SQL its own ORDER BY and LIMIT matching Less and Limit: each shard
// then returns only its top rows, and Gather merges them into the global
// top. (Each shard's rows are sorted again by Less before merging, so a
// missing ORDER BY costs time, not correctness.) The first shard failure
// cancels the others and fails the call, with an error naming every failed
// shard, unless Partial is set.
func Gather[T any](ctx context.Context, r *Router, sql string, args []any, scan pgx.RowToFunc[T], opts GatherOptions[T]) ([]T, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if opts.Primary {
		ctx = WithPrimary(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 16
	}
	results := make([][]T, len(r.current().shards))
	failed := r.onEveryShard(ctx, conc, func(i int, t Target) error {
		rows, err := Collect(ctx, t, sql, args, scan)
		if err != nil {
			if !opts.Partial {
				cancel()
			}
			return err
		}
		if opts.Less != nil {
			slices.SortStableFunc(rows, func(a, b T) int {
				switch {
				case opts.Less(a, b):
					return -1
				case opts.Less(b, a):
					return 1
				}
				return 0
			})
		}
		results[i] = rows
		return nil
	})
	if len(failed) > 0 && !opts.Partial {
		failed = realFailures(failed)
		return nil, &MultiError{Errs: failed}
	}
	merged := merge(results, opts.Less, opts.Limit)
	if len(failed) > 0 {
		return merged, &PartialError{MultiError{Errs: failed}}
	}
	return merged, nil
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

// merge concatenates (less == nil) or k-way merges sorted lists, keeping
// at most limit rows (0 = all).
func merge[T any](lists [][]T, less func(a, b T) bool, limit int) []T {
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	if limit <= 0 || limit > total {
		limit = total
	}
	out := make([]T, 0, limit)
	if less == nil {
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
	h := &mergeHeap[T]{less: less}
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
	less  func(a, b T) bool
}

func (h *mergeHeap[T]) Len() int { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	va, vb := h.lists[a.list][a.pos], h.lists[b.list][b.pos]
	if h.less(va, vb) {
		return true
	}
	if h.less(vb, va) {
		return false
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
	sem := make(chan struct{}, limit)
	shards := r.current().shards
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, st := range shards {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			errs[i] = fn(i, Target{r: r, s: st})
		})
	}
	wg.Wait()
	var failed []*ShardError
	for i, err := range errs {
		if err != nil {
			failed = append(failed, &ShardError{Shard: shards[i].name, Err: err})
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
		_, err := t.s.set.Exec(ctx, sql, args...)
		return err
	})
	if len(failed) > 0 {
		return &MultiError{Errs: failed}
	}
	return nil
}
