package pgcluster

import (
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeControl is an 8 KiB pg_control whose CRC-32C of the bytes before crcAt is at crcAt.
func fakeControl(crcAt int) []byte {
	b := make([]byte, 8192)
	for i := range crcAt {
		b[i] = byte(i*7 + 3)
	}
	binary.NativeEndian.PutUint32(b[crcAt:], crc32.Checksum(b[:crcAt], castagnoli))
	return b
}

func TestSetSystemIdentifier(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  []byte
		crcAt int // -1: want an error
	}{
		{"CRC after 296 bytes", fakeControl(296), 296},
		{"CRC after 256 bytes", fakeControl(256), 256},
		{"CRC at the first offset looked at", fakeControl(16), 16},
		{"CRC past where it is looked for", fakeControl(4000), -1},
		{"no CRC", make([]byte, 8192), -1},
		{"too short", []byte{1, 2, 3}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const id = uint64(7451219934867593234)
			err := setSystemIdentifier(tc.data, id)
			if tc.crcAt < 0 {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, id, systemIdentifier(tc.data))
			assert.Equal(t, tc.crcAt, controlCRCOffset(tc.data), "CRC offset after the change")
			assert.Equal(t, crc32.Checksum(tc.data[:tc.crcAt], castagnoli), binary.NativeEndian.Uint32(tc.data[tc.crcAt:]))
		})
	}
}
