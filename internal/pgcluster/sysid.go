package pgcluster

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// giveSystemIdentifier gives the data folder dir, a copy of the template, a system
// identifier of its own: without it every shard of a cluster, and every cluster made
// from the same template, would share one, and a replica could not be told to follow
// one shard's primary rather than another's. PostgreSQL 15's pg_resetwal cannot set it,
// so it is written into global/pg_control, whose CRC is computed anew; then pg_resetwal
// writes the WAL anew, since the first page of each WAL segment names the system too
// and the server refuses WAL of another system. It takes a few milliseconds, where an
// initdb per shard takes seconds.
func (b *localBackend) giveSystemIdentifier(ctx context.Context, dir string) error {
	path := filepath.Join(dir, "global", "pg_control")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := setSystemIdentifier(data, newSystemIdentifier(time.Now())); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	_, err = b.run(b.tool(ctx, "pg_resetwal", "-f", dir))
	return err
}

// newSystemIdentifier makes an identifier as initdb does, the time in seconds in the
// high 32 bits, with random low bits where initdb has microseconds and its PID.
func newSystemIdentifier(now time.Time) uint64 {
	var low [4]byte
	_, _ = crand.Read(low[:])
	return uint64(now.Unix())<<32 | uint64(binary.LittleEndian.Uint32(low[:]))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// setSystemIdentifier writes id into pg_control's contents, ControlFileData: a uint64
// system_identifier at offset 0 and, as its last field, a CRC-32C of every byte before
// it, in the machine's byte order. The CRC's offset differs between major versions, so
// it is found, not assumed: the one 4-byte aligned offset whose stored CRC matches.
func setSystemIdentifier(control []byte, id uint64) error {
	off := controlCRCOffset(control)
	if off < 0 {
		return errors.New("pg_control: no valid CRC-32C found: not a pg_control file, or corrupt")
	}
	binary.NativeEndian.PutUint64(control, id)
	binary.NativeEndian.PutUint32(control[off:], crc32.Checksum(control[:off], castagnoli))
	return nil
}

// controlCRCOffset returns the offset of pg_control's CRC, or -1.
func controlCRCOffset(control []byte) int {
	// ControlFileData is a few hundred bytes long in every version; the file is 8 KiB.
	for off := 16; off+4 <= len(control) && off <= 2048; off += 4 {
		if binary.NativeEndian.Uint32(control[off:]) == crc32.Checksum(control[:off], castagnoli) {
			return off
		}
	}
	return -1
}

// systemIdentifier returns the system identifier in pg_control's contents.
func systemIdentifier(control []byte) uint64 {
	if len(control) < 8 {
		return 0
	}
	return binary.NativeEndian.Uint64(control)
}
