package shard

import "errors"

var (
	// ErrInvalidRange is wrapped by every error about a malformed or empty key range.
	ErrInvalidRange = errors.New("shard: invalid key range")
	// ErrInvalidMap is wrapped by every error about a shard map that does not
	// assign each ID to exactly one shard.
	ErrInvalidMap = errors.New("shard: invalid shard map")
)
