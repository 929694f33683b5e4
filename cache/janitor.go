package cache

import (
	"sync/atomic"
	"time"
)

// clock reads the time as nanoseconds since the cache was created. Reading time.Now costs more
// than a whole cache hit, so unless a clock is injected, reads take a coarse value that the
// janitor advances.
type clock struct {
	start  time.Time
	now    func() time.Time // injected; nil means the coarse clock
	coarse atomic.Int64
}

func (c *clock) nanos() int64 {
	if c.now != nil {
		return int64(c.now().Sub(c.start))
	}
	return c.coarse.Load()
}

// janitor advances the coarse clock every step and drops expired entries every sweepEvery,
// until Close.
func (c *Cache[K, V]) janitor(step, sweepEvery time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(step)
	defer t.Stop()
	nextSweep := int64(sweepEvery)
	for {
		select {
		case <-c.closing.Done():
			return
		case <-t.C:
		}
		if c.clock.now == nil {
			c.clock.coarse.Store(int64(time.Since(c.clock.start)))
		}
		if now := c.clock.nanos(); sweepEvery > 0 && now >= nextSweep {
			c.sweep()
			nextSweep = now + int64(sweepEvery)
		}
	}
}

// sweepBatch bounds how long a sweep holds one shard's lock.
const sweepBatch = 256

// sweep drops every expired entry, a shard and a batch at a time.
func (c *Cache[K, V]) sweep() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.sync(c)
		keys, epoch := s.lru.keys(), s.epoch
		s.mu.Unlock()
		for len(keys) > 0 {
			batch := keys[:min(sweepBatch, len(keys))]
			keys = keys[len(batch):]
			if !c.sweepBatch(s, epoch, batch) {
				break
			}
		}
	}
}

// sweepBatch drops the expired entries among keys, reporting false if the shard was purged
// since keys were listed.
func (c *Cache[K, V]) sweepBatch(s *shard[K, V], epoch uint64, keys []K) bool {
	type dropped struct {
		key K
		e   entry[V]
	}
	var gone []dropped
	now := c.clock.nanos()
	s.mu.Lock()
	s.sync(c)
	if s.epoch != epoch {
		s.mu.Unlock()
		return false
	}
	for _, k := range keys {
		if e, ok := s.lru.peek(k); ok && e.expires != never && now >= e.expires {
			s.lru.remove(k)
			s.n.expirations++
			gone = append(gone, dropped{k, e})
		}
	}
	s.mu.Unlock()
	for _, d := range gone {
		c.evicted(d.key, d.e)
	}
	return true
}
