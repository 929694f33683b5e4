// Package lookup finds a sharded row by a second unique key, such as a
// user by email when users are sharded by ID, in the manner of Vitess's
// consistent lookup vindex.
//
// A lookup row (key -> owner ID, never a shard name, so that resharding
// never rewrites it) lives on the shard that owns the key's hash. Creating
// an owner writes the lookup row first, in its own transaction, and the
// owner row second; deleting removes the owner row first and the lookup
// row last; changing an owner's key (Change) does both, in that order: the
// new key's lookup row, the owner row, the old key's lookup row. So a lookup row may outlive its owner (a crash between the two
// writes, a delete cut short), but no owner row is ever without its lookup
// row. A reader re-checks the owner row (Config.OwnerSQL), so a dangling
// lookup row reads as not found; a writer that finds one takes it over.
//
// # Races
//
// Each lookup row carries a claim token, and the owner's transaction
// records that token in a claims table on the owner's shard. A writer
// that finds the key taken decides on the owner's shard: if the token is
// recorded, the owner row was written and the key is a duplicate while
// that row still holds the key; if not, the writer records the token as
// void, which makes the first writer's owner transaction fail should it
// still come, and takes the lookup row over. Either way exactly one owner
// can hold a key, a refused duplicate leaves nothing behind, and a crashed
// writer's row is taken over by the next.
package lookup
