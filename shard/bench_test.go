package shard_test

import (
	"fmt"
	"testing"

	"github.com/pgshard/pgshard/shard"
)

var sinkID shard.ID
var sinkName string

func BenchmarkHashInt64(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkID = shard.HashInt64(int64(i))
	}
}

func BenchmarkHashString(b *testing.B) {
	for _, n := range []int{8, 32, 128} {
		s := string(make([]byte, n))
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkID = shard.HashString(s)
			}
		})
	}
}

// BenchmarkLookup measures what routing one user costs: hash plus search.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{2, 16, 256} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("s%d", i)
		}
		m, err := shard.Uniform(names...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				sinkName = m.Lookup(shard.HashInt64(int64(i)))
			}
		})
	}
}
