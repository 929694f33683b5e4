package reshard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// copySignature starts every COPY stream in binary format.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// splitter is the io.Writer that a binary COPY TO writes into: it cuts
// the stream into rows and writes each row, unchanged, to the outputs
// that route chooses, each output getting the stream's header first and
// the trailer from finish. It is not safe for concurrent use.
type splitter struct {
	outs   []io.Writer
	keyCol int // the field route is given; -1: route gets nil
	route  func(key []byte) ([]int, error)
	rows   []int64 // per output
	buf    []byte
	header bool
	ended  bool
}

func (s *splitter) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	used, err := s.parse()
	s.buf = append(s.buf[:0], s.buf[used:]...)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// parse consumes every complete piece of s.buf and says how much it used.
func (s *splitter) parse() (int, error) {
	b, used := s.buf, 0
	if !s.header {
		if len(b) < 19 {
			return 0, nil
		}
		if !bytes.Equal(b[:11], copySignature) {
			return 0, errors.New("copy: not a binary COPY stream")
		}
		n := 19 + int(binary.BigEndian.Uint32(b[15:19]))
		if len(b) < n {
			return 0, nil
		}
		for _, o := range s.outs {
			if _, err := o.Write(b[:n]); err != nil {
				return 0, err
			}
		}
		s.header, used = true, n
	}
	for !s.ended {
		rest := b[used:]
		if len(rest) < 2 {
			break
		}
		fields := int(int16(binary.BigEndian.Uint16(rest)))
		if fields == -1 {
			s.ended = true
			used += 2
			break
		}
		off, complete := 2, true
		var key []byte
		for i := 0; i < fields; i++ {
			if len(rest) < off+4 {
				complete = false
				break
			}
			l := int(int32(binary.BigEndian.Uint32(rest[off:])))
			off += 4
			if l < 0 {
				continue // NULL
			}
			if len(rest) < off+l {
				complete = false
				break
			}
			if i == s.keyCol {
				key = rest[off : off+l]
			}
			off += l
		}
		if !complete {
			break
		}
		if s.keyCol >= 0 && key == nil {
			return used, fmt.Errorf("copy: a row whose key (field %d) is NULL", s.keyCol)
		}
		to, err := s.route(key)
		if err != nil {
			return used, err
		}
		for _, i := range to {
			if _, err := s.outs[i].Write(rest[:off]); err != nil {
				return used, err
			}
			s.rows[i]++
		}
		used += off
	}
	return used, nil
}

// finish writes the trailer to every output; it fails if the stream was
// cut short.
func (s *splitter) finish() error {
	if !s.header || !s.ended || len(s.buf) > 0 {
		return errors.New("copy: the stream ended in the middle")
	}
	for _, o := range s.outs {
		if _, err := o.Write([]byte{0xff, 0xff}); err != nil {
			return err
		}
	}
	return nil
}
