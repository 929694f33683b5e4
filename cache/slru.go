package cache

import "github.com/hashicorp/golang-lru/v2/simplelru"

// slru is a segmented LRU with second chances, built from two simplelru lists; it is not safe
// for concurrent use.
//
// A new key enters the probation segment; its first hit there moves it to the protected
// segment. In protected, a hit marks the entry hot and moves it to the front, once: later hits
// change nothing, so readers of a hot key write no memory but the shard's lock. Room is made at
// the cold end of probation, after protected has been brought back to its share by demoting
// its cold end to probation; a hot entry met there gets a second chance at the front instead,
// marked cold again. A key read twice thus outlives a scan of keys read once, and the hit ratio
// on skewed streams beats a plain LRU's (see TestZipfHitRatioAtLeastLRU).
type slru[K comparable, V any] struct {
	probation *simplelru.LRU[K, entry[V]]
	protected *simplelru.LRU[K, entry[V]]
	capacity  int
	protCap   int
}

// protectedShare of a shard's capacity goes to keys read at least twice.
const protectedShare = 0.8

func newSLRU[K comparable, V any](capacity int) slru[K, V] {
	// Each list may hold the whole capacity; add bounds the total, so simplelru never evicts
	// on its own.
	probation, _ := simplelru.NewLRU[K, entry[V]](capacity, nil)
	protected, _ := simplelru.NewLRU[K, entry[V]](capacity, nil)
	return slru[K, V]{
		probation: probation,
		protected: protected,
		capacity:  capacity,
		protCap:   max(int(float64(capacity)*protectedShare), 1),
	}
}

// get returns key's entry and records the hit.
func (l *slru[K, V]) get(key K) (entry[V], bool) {
	if e, ok := l.protected.Peek(key); ok {
		if !e.hot {
			e.hot = true
			l.protected.Add(key, e) // to the front
		}
		return e, true
	}
	e, ok := l.probation.Peek(key)
	if ok {
		l.probation.Remove(key)
		l.protected.Add(key, e)
	}
	return e, ok
}

// peek returns key's entry without recording a hit.
func (l *slru[K, V]) peek(key K) (entry[V], bool) {
	if e, ok := l.protected.Peek(key); ok {
		return e, true
	}
	return l.probation.Peek(key)
}

// add stores e under key, reporting the entry it evicted to make room, if any.
func (l *slru[K, V]) add(key K, e entry[V]) (oldKey K, old entry[V], evicted bool) {
	if l.protected.Contains(key) {
		l.protected.Add(key, e)
		return oldKey, old, false
	}
	if l.probation.Contains(key) {
		l.probation.Add(key, e)
		return oldKey, old, false
	}
	if l.len() >= l.capacity {
		oldKey, old, evicted = l.makeRoom()
	}
	l.probation.Add(key, e)
	return oldKey, old, evicted
}

// makeRoom evicts one entry. Each pass clears a hot mark or demotes a cold entry, so the work
// is bounded by the hits since the last call.
func (l *slru[K, V]) makeRoom() (K, entry[V], bool) {
	for {
		over := l.protected.Len() > l.protCap
		if !over && l.probation.Len() > 0 {
			return l.probation.RemoveOldest()
		}
		k, e, ok := l.protected.GetOldest()
		switch {
		case !ok:
			return k, e, false
		case e.hot:
			e.hot = false
			l.protected.Add(k, e) // second chance, at the front
		case over:
			l.protected.Remove(k)
			l.probation.Add(k, e)
		default: // probation is empty: only when protected's share is the whole capacity
			l.protected.Remove(k)
			return k, e, true
		}
	}
}

func (l *slru[K, V]) remove(key K) bool {
	return l.protected.Remove(key) || l.probation.Remove(key)
}

func (l *slru[K, V]) len() int {
	return l.probation.Len() + l.protected.Len()
}

// keys returns every key, coldest first.
func (l *slru[K, V]) keys() []K {
	return append(l.probation.Keys(), l.protected.Keys()...)
}
