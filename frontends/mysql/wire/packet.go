package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// ErrPacketTooLarge reports a logical packet longer than the reader's
// limit (max_allowed_packet).
var ErrPacketTooLarge = errors.New("mysql: packet bigger than max_allowed_packet")

// ErrMalformed reports a packet whose contents do not parse.
var ErrMalformed = errors.New("mysql: malformed packet")

// Header reads a physical packet's 4-byte header: payload length and
// sequence id.
func Header(br *bufio.Reader) (n int, seq uint8, err error) {
	h, err := br.Peek(4)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	n = int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	seq = h[3]
	_, _ = br.Discard(4)
	return n, seq, nil
}

// ReadPacket reads one logical packet (physical packets of the maximum
// length continue into the next) into buf's storage, refusing one longer
// than max bytes without reading it whole. It returns the payload and the
// sequence id of the last physical packet.
func ReadPacket(br *bufio.Reader, max int, buf []byte) (payload []byte, seq uint8, err error) {
	payload = buf[:0]
	for {
		n, s, err := Header(br)
		if err != nil {
			return nil, 0, err
		}
		seq = s
		if len(payload)+n > max {
			return nil, seq, ErrPacketTooLarge
		}
		start := len(payload)
		payload = grow(payload, n)
		if _, err := io.ReadFull(br, payload[start:start+n]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, seq, err
		}
		if n < MaxPacketLength {
			return payload, seq, nil
		}
	}
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// WritePacket writes payload as one logical packet starting at sequence
// id seq, split into physical packets as the protocol requires, and
// returns the next sequence id.
func WritePacket(bw *bufio.Writer, seq uint8, payload []byte) (uint8, error) {
	for {
		n := len(payload)
		if n > MaxPacketLength {
			n = MaxPacketLength
		}
		if err := writeHeader(bw, n, seq); err != nil {
			return seq, err
		}
		seq++
		if _, err := bw.Write(payload[:n]); err != nil {
			return seq, err
		}
		payload = payload[n:]
		if n < MaxPacketLength {
			return seq, nil
		}
	}
}

func writeHeader(bw *bufio.Writer, n int, seq uint8) error {
	var h [4]byte
	h[0], h[1], h[2], h[3] = byte(n), byte(n>>8), byte(n>>16), seq
	_, err := bw.Write(h[:])
	return err
}

// CopyPacket copies one physical packet whose header Header has just read
// (n bytes of payload, sequence id seq) from br to bw unchanged, without
// holding it whole. Whenever br has nothing buffered, bw is flushed before
// reading on, so that the receiver is not kept waiting on a slow sender.
func CopyPacket(bw *bufio.Writer, br *bufio.Reader, n int, seq uint8) error {
	if err := writeHeader(bw, n, seq); err != nil {
		return err
	}
	for n > 0 {
		if br.Buffered() == 0 && bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		b, err := br.Peek(min(n, max(br.Buffered(), 1)))
		if len(b) == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
		_, _ = br.Discard(len(b))
		n -= len(b)
	}
	return nil
}

// LenEnc decodes a length-encoded integer at the start of b, returning
// the value and its encoded size; ok is false if b is too short or starts
// with a byte that is not an integer prefix (0xfb NULL, 0xff).
func LenEnc(b []byte) (v uint64, size int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1, true
	case c == 0xfc:
		if len(b) < 3 {
			return 0, 0, false
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3, true
	case c == 0xfd:
		if len(b) < 4 {
			return 0, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case c == 0xfe:
		if len(b) < 9 {
			return 0, 0, false
		}
		return binary.LittleEndian.Uint64(b[1:]), 9, true
	}
	return 0, 0, false
}

// AppendLenEnc appends v as a length-encoded integer.
func AppendLenEnc(b []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(b, byte(v))
	case v <= 0xffff:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v <= 0xffffff:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xfe), v)
}

// AppendLenEncString appends s prefixed by its length-encoded length.
func AppendLenEncString(b []byte, s []byte) []byte {
	return append(AppendLenEnc(b, uint64(len(s))), s...)
}

// LenEncString decodes a length-encoded string at the start of b.
func LenEncString(b []byte) (s []byte, size int, ok bool) {
	n, k, ok := LenEnc(b)
	if !ok || uint64(len(b)-k) < n {
		return nil, 0, false
	}
	return b[k : k+int(n)], k + int(n), true
}

// NulString decodes a NUL-terminated string at the start of b.
func NulString(b []byte) (s []byte, size int, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], i + 1, true
		}
	}
	return nil, 0, false
}
