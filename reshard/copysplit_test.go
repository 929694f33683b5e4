package reshard

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// binaryCopy builds a binary COPY stream of rows of (key int8, body text
// or NULL).
func binaryCopy(rows [][2]any) []byte {
	var b bytes.Buffer
	b.Write(copySignature)
	b.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	for _, r := range rows {
		binary.Write(&b, binary.BigEndian, int16(2))
		binary.Write(&b, binary.BigEndian, int32(8))
		binary.Write(&b, binary.BigEndian, r[0].(int64))
		if s, ok := r[1].(string); ok {
			binary.Write(&b, binary.BigEndian, int32(len(s)))
			b.WriteString(s)
		} else {
			binary.Write(&b, binary.BigEndian, int32(-1))
		}
	}
	b.Write([]byte{0xff, 0xff})
	return b.Bytes()
}

func TestSplitter(t *testing.T) {
	rows := [][2]any{{int64(1), "one"}, {int64(2), nil}, {int64(3), "three"}, {int64(4), ""}}
	stream := binaryCopy(rows)
	for _, chunk := range []int{1, 3, 7, 19, 20, len(stream)} {
		var odd, even bytes.Buffer
		sp := &splitter{keyCol: 0, rows: make([]int64, 2)}
		sp.outs = append(sp.outs, &odd, &even)
		sp.route = func(key []byte) ([]int, error) {
			return []int{int(binary.BigEndian.Uint64(key)+1) % 2}, nil
		}
		for i := 0; i < len(stream); i += chunk {
			n, err := sp.Write(stream[i:min(i+chunk, len(stream))])
			require.NoError(t, err)
			require.Equal(t, min(chunk, len(stream)-i), n)
		}
		require.NoError(t, sp.finish(), "chunk %d", chunk)
		require.Equal(t, binaryCopy([][2]any{rows[0], rows[2]}), odd.Bytes(), "chunk %d: odd keys", chunk)
		require.Equal(t, binaryCopy([][2]any{rows[1], rows[3]}), even.Bytes(), "chunk %d: even keys", chunk)
		require.Equal(t, []int64{2, 2}, sp.rows)
	}

	t.Run("cut short", func(t *testing.T) {
		sp := &splitter{keyCol: 0, rows: make([]int64, 1), route: func([]byte) ([]int, error) { return []int{0}, nil }}
		sp.outs = append(sp.outs, &bytes.Buffer{})
		_, err := sp.Write(stream[:len(stream)-5])
		require.NoError(t, err)
		require.ErrorContains(t, sp.finish(), "ended in the middle")
	})
	t.Run("NULL key", func(t *testing.T) {
		sp := &splitter{keyCol: 1, rows: make([]int64, 1), route: func([]byte) ([]int, error) { return []int{0}, nil }}
		sp.outs = append(sp.outs, &bytes.Buffer{})
		_, err := sp.Write(stream)
		require.ErrorContains(t, err, "key (field 1) is NULL")
	})
	t.Run("not binary", func(t *testing.T) {
		sp := &splitter{keyCol: 0, rows: make([]int64, 1)}
		_, err := sp.Write([]byte("1\tone\n2\ttwo\n3\tthree\n"))
		require.ErrorContains(t, err, "not a binary COPY stream")
	})
}

// FuzzSplitter: any bytes, cut anywhere, give rows or an error, never a
// panic; what goes out is whole rows of what came in.
func FuzzSplitter(f *testing.F) {
	f.Add(binaryCopy([][2]any{{int64(1), "one"}, {int64(2), nil}}), uint8(3))
	f.Add(copySignature, uint8(1))
	f.Add([]byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\xff\xff\xff\xff\x00\x01\xff\xff\xff\xff"), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var out bytes.Buffer
		sp := &splitter{keyCol: 0, rows: make([]int64, 1), route: func(key []byte) ([]int, error) { return []int{0}, nil }}
		sp.outs = append(sp.outs, &out)
		step := int(chunk%32) + 1
		for i := 0; i < len(data); i += step {
			if _, err := sp.Write(data[i:min(i+step, len(data))]); err != nil {
				return
			}
		}
		if sp.finish() != nil {
			return
		}
		if out.Len() > len(data) {
			t.Fatalf("wrote %d bytes from %d", out.Len(), len(data))
		}
	})
}
