package cache

import "errors"

var (
	// ErrNotFound is what a loader returns, alone or wrapped, to say that the key has no value.
	// The cache remembers that answer for Options.NegativeTTL and hands the loader's error back
	// to later lookups of the key until then.
	ErrNotFound = errors.New("cache: not found")

	// ErrClosed is returned by Lookup and GetOrLoad on a miss after Close: a closed cache starts
	// no load.
	ErrClosed = errors.New("cache: closed")

	// errLoadPanicked wraps the value of a loader's panic, which is turned into an error because
	// the load runs on a goroutine of its own, where a panic would end the program.
	errLoadPanicked = errors.New("cache: load panicked")
)
