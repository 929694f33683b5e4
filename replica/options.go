package replica

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Fallback says what a read does when no replica is eligible.
type Fallback int

const (
	// FallbackPrimary sends the read to the primary (the default).
	FallbackPrimary Fallback = iota
	// FallbackError fails the read with ErrNoReplica, protecting the primary
	// from a read flood when every replica lags.
	FallbackError
)

// String returns "primary" or "error".
func (f Fallback) String() string {
	switch f {
	case FallbackPrimary:
		return "primary"
	case FallbackError:
		return "error"
	}
	return fmt.Sprintf("Fallback(%d)", int(f))
}

// Options tune a Set. The zero value is ready to use: every zero field takes
// the default its comment gives.
type Options struct {
	// CheckInterval is how often every node is checked. Default 250 ms;
	// at least 10 ms.
	CheckInterval time.Duration
	// CheckTimeout bounds one check of one node. A timed-out check on an
	// established session is no evidence against the node: the next one
	// runs on a fresh connection. Default: CheckInterval.
	CheckTimeout time.Duration
	// MaxLag is the oldest data a replica may serve, in time. Default 1 s.
	MaxLag time.Duration
	// MaxLagBytes is how far a replica's replay may trail the primary's WAL
	// position. Default 16 MiB.
	MaxLagBytes int64
	// EjectAfter is how many bad checks in a row take a replica out of
	// rotation. Default 1. More trades staleness for stability.
	EjectAfter int
	// AdmitAfter is how many good checks in a row bring an ejected replica
	// back. Default 2, so a lag near the bound does not flap.
	AdmitAfter int
	// Fallback says what a read does when no replica is eligible. Default
	// (zero) FallbackPrimary.
	Fallback Fallback
	// MaxFallbackRate caps the reads per second that fall back to the
	// primary; past it, reads fail with ErrNoReplica. Zero means no cap.
	MaxFallbackRate float64
	// MaxWait is how long a read that needs a minimum LSN may wait for a
	// replica to replay it before going to the primary. Zero (the default)
	// means it does not wait.
	MaxWait time.Duration
	// ConnectTimeout bounds connecting to a node, and so how long a write
	// takes to fail when the primary is down. Default 2 s.
	ConnectTimeout time.Duration
	// AttemptTimeout is how long a read waits for a node's answer before it
	// looks again: if the node has answered no check for that long either
	// (it is frozen, or cut off), the read is abandoned there and sent to
	// another eligible node or the primary; if it has, the read is merely
	// slow and keeps waiting. The set looks ten times per AttemptTimeout,
	// so a read is abandoned up to a tenth of it late. Default 4 x
	// CheckInterval, and at least CheckTimeout + 2 x CheckInterval, the
	// longest a healthy node can go between good checks while another node
	// holds a round of checks up.
	AttemptTimeout time.Duration
	// ConfigurePool, if set, is called with each node's pool configuration
	// before the pool is created: set MaxConns, tracers and the like there.
	// What it sets that concerns connecting (TLS, BeforeConnect, the
	// tracer) applies to the checker's connections and to Connect too.
	ConfigurePool func(PoolInfo, *pgxpool.Config)
	// Tracer, if set, receives every read attempt, write outcome and node
	// health change. Nil traces nothing.
	Tracer Tracer
	// Logger receives role changes and ejections, once each. Nil is silent.
	Logger *slog.Logger
}

// minCheckInterval keeps the checker from turning into a busy loop.
const minCheckInterval = 10 * time.Millisecond

func (o Options) withDefaults() (Options, error) {
	def := func(d *time.Duration, name string, v time.Duration) error {
		if *d < 0 {
			return fmt.Errorf("%w: %s is negative (%s)", ErrInvalidConfig, name, *d)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	if err := def(&o.CheckInterval, "CheckInterval", 250*time.Millisecond); err != nil {
		return o, err
	}
	if o.CheckInterval < minCheckInterval {
		return o, fmt.Errorf("%w: CheckInterval %s is below the minimum of %s", ErrInvalidConfig, o.CheckInterval, minCheckInterval)
	}
	if err := def(&o.CheckTimeout, "CheckTimeout", o.CheckInterval); err != nil {
		return o, err
	}
	if err := def(&o.AttemptTimeout, "AttemptTimeout", max(4*o.CheckInterval, o.CheckTimeout+2*o.CheckInterval)); err != nil {
		return o, err
	}
	if err := def(&o.MaxLag, "MaxLag", time.Second); err != nil {
		return o, err
	}
	if err := def(&o.ConnectTimeout, "ConnectTimeout", 2*time.Second); err != nil {
		return o, err
	}
	if o.MaxWait < 0 {
		return o, fmt.Errorf("%w: MaxWait is negative (%s)", ErrInvalidConfig, o.MaxWait)
	}
	switch {
	case o.MaxLagBytes < 0:
		return o, fmt.Errorf("%w: MaxLagBytes is negative (%d)", ErrInvalidConfig, o.MaxLagBytes)
	case o.MaxLagBytes == 0:
		o.MaxLagBytes = 16 << 20
	}
	switch {
	case o.EjectAfter < 0:
		return o, fmt.Errorf("%w: EjectAfter is negative (%d)", ErrInvalidConfig, o.EjectAfter)
	case o.EjectAfter == 0:
		o.EjectAfter = 1
	}
	switch {
	case o.AdmitAfter < 0:
		return o, fmt.Errorf("%w: AdmitAfter is negative (%d)", ErrInvalidConfig, o.AdmitAfter)
	case o.AdmitAfter == 0:
		o.AdmitAfter = 2
	}
	if o.Fallback != FallbackPrimary && o.Fallback != FallbackError {
		return o, fmt.Errorf("%w: Fallback %d is neither FallbackPrimary nor FallbackError", ErrInvalidConfig, int(o.Fallback))
	}
	if o.MaxFallbackRate < 0 {
		return o, fmt.Errorf("%w: MaxFallbackRate is negative (%g)", ErrInvalidConfig, o.MaxFallbackRate)
	}
	return o, nil
}
