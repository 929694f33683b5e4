package cache

import (
	"context"
	"errors"
	"fmt"
)

// call is one load in flight, shared by every lookup of its key that misses meanwhile.
// val and err are written once, before done is closed.
type call[V any] struct {
	done chan struct{}
	val  V
	err  error
	// keep, if set, is asked before the load's value replaces a cached one (Replace).
	keep func(cached, loaded V) bool
}

// GetOrLoad returns the value cached for key, or loads it; see Lookup.
func (c *Cache[K, V]) GetOrLoad(ctx context.Context, key K, load func(context.Context) (V, error)) (V, error) {
	v, _, err := c.Lookup(ctx, key, load)
	return v, err
}

// Lookup returns the value cached for key, with hit true; on a miss it loads the value with
// load, caches it for Options.TTL and returns it with hit false.
//
// Concurrent misses of one key share one load. The load runs on its own goroutine with ctx's
// values but not its cancellation, bounded by Options.LoadTimeout and cancelled by Close: when
// ctx ends, Lookup returns ctx.Err() at once and the load goes on for the others. A load whose
// error is, or wraps, ErrNotFound is remembered for Options.NegativeTTL, and a hit on it returns
// that error with hit true; other errors are not cached. A load that started before a Delete,
// Set or Purge of its key returns its result to the lookups that waited for it, but does not
// cache it.
//
// With Options.RefreshAfter, a hit on a value older than that returns it and starts one
// background load, with this call's ctx and load, to replace it.
func (c *Cache[K, V]) Lookup(ctx context.Context, key K, load func(context.Context) (V, error)) (value V, hit bool, err error) {
	s := c.shardFor(key)
	s.mu.Lock()
	s.sync(c)
	e, ok, expired := s.lookup(c, key)
	if ok {
		s.n.hits++
		if e.refresh != never && s.calls[key] == nil && c.clock.nanos() >= e.refresh {
			c.startLoad(ctx, s, key, load)
		}
		value, err = e.val, e.err
		s.mu.Unlock()
		return value, true, err
	}
	s.n.misses++
	cl := s.calls[key]
	if cl == nil {
		if err = ctx.Err(); err == nil {
			if cl = c.startLoad(ctx, s, key, load); cl == nil {
				err = ErrClosed
			}
		}
	}
	s.mu.Unlock()
	if expired {
		c.evicted(key, e)
	}
	if cl == nil {
		return value, false, err
	}
	select {
	case <-cl.done:
		return cl.val, false, cl.err
	case <-ctx.Done():
		return value, false, ctx.Err()
	}
}

// Replace loads key's value with load whether or not one is cached, and caches the result
// unless keep, given the value cached when the load returns and the loaded one, says to keep
// the cached value. It never removes what is cached: a caller that needs a fresher value than
// the cache holds reads past it without taking it from the others.
//
// The load takes the place of any load of key in flight (whose result is then not cached),
// lookups that miss meanwhile share it, and like every load it does not store its result if a
// Delete, Set or Purge of key happened while it ran. An ErrNotFound result replaces a cached
// value only if keep allows it, and is remembered only with Options.NegativeTTL; a cached
// "not found" is always replaced. When ctx ends, Replace returns ctx.Err() at once and the
// load goes on for the others. A nil keep always replaces.
func (c *Cache[K, V]) Replace(ctx context.Context, key K, load func(context.Context) (V, error), keep func(cached, loaded V) bool) (V, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	s := c.shardFor(key)
	s.mu.Lock()
	s.sync(c)
	cl := c.startLoad(ctx, s, key, load)
	if cl != nil {
		cl.keep = keep
	}
	s.mu.Unlock()
	if cl == nil {
		return zero, ErrClosed
	}
	select {
	case <-cl.done:
		return cl.val, cl.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// startLoad registers and starts a load of key, or returns nil if the cache is closed. The
// caller holds s.mu, and may set the call's keep before releasing it.
func (c *Cache[K, V]) startLoad(ctx context.Context, s *shard[K, V], key K, load func(context.Context) (V, error)) *call[V] {
	if c.closed.Load() {
		return nil
	}
	cl := &call[V]{done: make(chan struct{})}
	if s.calls == nil {
		s.calls = make(map[K]*call[V])
	}
	s.calls[key] = cl
	c.wg.Add(1)
	go c.run(context.WithoutCancel(ctx), s, key, cl, load)
	return cl
}

// run performs a load and stores its result, unless the key was invalidated meanwhile.
func (c *Cache[K, V]) run(ctx context.Context, s *shard[K, V], key K, cl *call[V], load func(context.Context) (V, error)) {
	defer c.wg.Done()
	v, err := c.callLoad(ctx, load)
	loaded := v
	if err != nil {
		var zero V
		v = zero
	}
	notFound := errors.Is(err, ErrNotFound)
	var e entry[V]
	if err == nil || notFound {
		e = c.newEntry(v, err)
	}

	var oldKey K
	var old entry[V]
	evicted := false
	s.mu.Lock()
	s.sync(c)
	// Delete, Set and Purge remove the call, so finding it here means no invalidation of key
	// happened since the load began.
	if s.calls[key] == cl {
		delete(s.calls, key)
		switch {
		case cl.keep != nil && s.keeps(c, key, loaded, cl.keep):
			// Replace: the cached value is at least as good as the loaded one.
		case err == nil || notFound && c.cfg.negativeTTL > 0:
			oldKey, old, evicted = s.lru.add(key, e)
		case notFound:
			s.lru.remove(key) // a refresh learnt that the key is gone
		}
	}
	s.n.loads++
	if err != nil && !notFound {
		s.n.loadErrors++
	}
	if evicted {
		s.n.evictions++
	}
	s.mu.Unlock()

	cl.val, cl.err = v, err
	close(cl.done)
	if evicted {
		c.evicted(oldKey, old)
	}
}

// keeps reports whether key's live cached value should stay rather than give way to loaded.
// A remembered "not found" always gives way. The caller holds s.mu.
func (s *shard[K, V]) keeps(c *Cache[K, V], key K, loaded V, keep func(cached, loaded V) bool) bool {
	e, ok := s.lru.peek(key)
	live := ok && (e.expires == never || c.clock.nanos() < e.expires)
	return live && e.err == nil && keep(e.val, loaded)
}

// callLoad runs load under LoadTimeout and Close, turning a panic into an error.
func (c *Cache[K, V]) callLoad(ctx context.Context, load func(context.Context) (V, error)) (v V, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.closing, cancel)()
	if c.cfg.loadTimeout > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, c.cfg.loadTimeout)
		defer cancelTimeout()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errLoadPanicked, r)
		}
	}()
	return load(ctx)
}
