// Package idgen makes unique, time-ordered 64-bit IDs in the Snowflake
// layout, with node numbers leased from PostgreSQL so that no two running
// processes ever share one.
//
// An ID is 41 bits of milliseconds since 2025-01-01 UTC, 10 bits of node
// number and 12 bits of sequence, with the sign bit clear: IDs of one
// generator only grow, and IDs of generators with different node numbers
// never collide.
//
// # Leases
//
// A [Generator] takes a free node number from a lease table (a row per
// number, created on first use) and holds it for Options.TTL, renewing it
// every Options.Renew. It issues IDs only while it can prove its lease on
// its own monotonic clock: a lease is taken or renewed for TTL from the
// database's clock, so it is proven for TTL minus a margin from the moment
// the request was sent, which is earlier. A generator that cannot renew
// (the database is away, the process was paused) stops issuing with
// ErrLeaseExpired before the database lets anyone else take its number; one
// that finds its number taken stops with ErrLeaseLost.
//
// # Clocks
//
// Each lease row keeps a ceiling: the highest millisecond its holder may
// put in an ID, raised at each renewal a little past the holder's clock. A
// new holder starts above the old ceiling, so a successor whose clock is
// behind (a step backwards, another host's skew) still issues IDs above
// every ID issued under that number before. Within a generator, a clock
// that steps back is ridden out by borrowing milliseconds from the last ID.
package idgen
