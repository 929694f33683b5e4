package shard_test

import (
	"testing"

	"github.com/pgshard/pgshard/shard"
)

// The hash decides where every row lives: these outputs must never change.
// The string cases are xxhash64's published reference values.
func TestHashGolden(t *testing.T) {
	strs := []struct {
		in   string
		want shard.ID
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
		{"user:42", 0xdc1fea7da8d2d1c2},
		{"hello, world", 0xb33a384e6d1b1242},
	}
	for _, tc := range strs {
		if got := shard.HashString(tc.in); got != tc.want {
			t.Errorf("HashString(%q) = %#016x, want %#016x", tc.in, uint64(got), uint64(tc.want))
		}
		if got := shard.HashBytes([]byte(tc.in)); got != tc.want {
			t.Errorf("HashBytes(%q) = %#016x, want %#016x", tc.in, uint64(got), uint64(tc.want))
		}
	}
	ints := []struct {
		name string
		in   int64
		want shard.ID
	}{
		{"zero", 0, 0x34c96acdcadb1bbb},
		{"one", 1, 0x9f1ffc793b8a47da},
		{"minus one", -1, 0x85d136adb773c6c9},
		{"42", 42, 0xa2c396223f8bdbdf},
		{"2^53", 1 << 53, 0x92c09d4dde0cbb4a},
		{"max int64", 9223372036854775807, 0x043de1bbaf341994},
		{"min int64", -9223372036854775808, 0xa7299a58d03a1d0c},
	}
	for _, tc := range ints {
		if got := shard.HashInt64(tc.in); got != tc.want {
			t.Errorf("%s: HashInt64(%d) = %#016x, want %#016x", tc.name, tc.in, uint64(got), uint64(tc.want))
		}
	}
}

// HashInt64 hashes the big-endian bytes, so it must agree with HashBytes.
func TestHashInt64IsBigEndianBytes(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, -2, 1 << 40} {
		b := []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		if got, want := shard.HashInt64(v), shard.HashBytes(b); got != want {
			t.Errorf("HashInt64(%d) = %#x, HashBytes(big-endian) = %#x", v, uint64(got), uint64(want))
		}
	}
}
