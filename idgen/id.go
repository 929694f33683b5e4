package idgen

import "time"

// Layout of an ID.
const (
	NodeBits = 10
	SeqBits  = 12
	MaxNodes = 1 << NodeBits
	maxSeq   = 1<<SeqBits - 1
)

// Epoch is the instant of an ID's millisecond 0: 2025-01-01T00:00:00Z.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Time returns the creation time an ID carries, to the millisecond.
func Time(id int64) time.Time {
	return Epoch.Add(time.Duration(id>>(NodeBits+SeqBits)) * time.Millisecond)
}

// Node returns the node number an ID carries.
func Node(id int64) int { return int(id>>SeqBits) & (MaxNodes - 1) }

func millis(t time.Time) int64 { return t.Sub(Epoch).Milliseconds() }
