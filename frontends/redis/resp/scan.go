package resp

import (
	"bytes"
	"fmt"
)

// ReplyScanner finds the boundaries of replies in a byte stream from a
// Redis server without copying or decoding them, so that replies of any
// size can be relayed in bounded memory. It is resumable: a reply split
// across reads is scanned piece by piece. It accepts RESP2 and RESP3.
type ReplyScanner struct {
	// stack holds, for each open aggregate, how many elements remain.
	stack []int64
	state uint8
	// first is the type byte of the top-level reply being scanned.
	first byte
	// header-line state
	lineType byte
	num      int64
	neg      bool
	digits   int
	sawCR    bool
	// bulk payload bytes still to skip, CRLF included
	bulk int64
}

const (
	stType   uint8 = iota // expecting a type byte
	stLine                // in a line-typed reply (+ - : _ # , ( and others), until LF
	stHeader              // in a length header ($ * etc.), until LF
	stBulk                // skipping a bulk payload
)

// maxReplyDepth bounds aggregate nesting in replies from upstream.
const maxReplyDepth = 1 << 12

// ErrReply is a malformed reply stream.
type ErrReply struct{ Msg string }

func (e *ErrReply) Error() string { return "resp: malformed reply: " + e.Msg }

// Reset prepares the scanner for a new stream.
func (s *ReplyScanner) Reset() {
	*s = ReplyScanner{stack: s.stack[:0]}
}

// Busy reports whether the scanner is inside a reply.
func (s *ReplyScanner) Busy() bool { return s.state != stType || len(s.stack) > 0 }

// Scan consumes bytes of p until one top-level reply is complete (done is
// true; n counts the bytes of p that belong to it) or p is exhausted (done
// is false; n == len(p)). Typ is the first byte of the reply, valid when
// done: '-' or '!' for an error.
func (s *ReplyScanner) Scan(p []byte) (n int, typ byte, done bool, err error) {
	if s.state == stType && len(s.stack) == 0 {
		if m, ok := scanSimple(p); ok {
			return m, p[0], true, nil
		}
	}
	i := 0
	for i < len(p) {
		switch s.state {
		case stType:
			c := p[i]
			i++
			if len(s.stack) == 0 {
				s.first = c
			}
			switch c {
			case '+', '-', ':', '_', '#', ',', '(':
				s.state = stLine
			case '$', '!', '=', '*', '~', '>', '%', '|':
				s.state = stHeader
				s.lineType = c
				s.num, s.neg, s.digits, s.sawCR = 0, false, 0, false
			default:
				return i, 0, false, &ErrReply{fmt.Sprintf("unexpected type byte %q", c)}
			}
		case stLine:
			j := indexByte(p[i:], '\n')
			if j < 0 {
				return len(p), 0, false, nil
			}
			i += j + 1
			s.state = stType
			if s.elementDone() {
				return i, s.first, true, nil
			}
		case stHeader:
			c := p[i]
			i++
			switch {
			case s.sawCR:
				if c != '\n' {
					return i, 0, false, &ErrReply{"header not ended by CRLF"}
				}
				if d, err := s.headerDone(); err != nil {
					return i, 0, false, err
				} else if d {
					return i, s.first, true, nil
				}
			case c == '\r':
				if s.digits == 0 {
					return i, 0, false, &ErrReply{"empty length"}
				}
				s.sawCR = true
			case c == '-' && s.digits == 0 && !s.neg:
				s.neg = true
			case c >= '0' && c <= '9' && s.digits < 19:
				s.num = s.num*10 + int64(c-'0')
				s.digits++
			default:
				return i, 0, false, &ErrReply{fmt.Sprintf("bad length byte %q", c)}
			}
		case stBulk:
			rem := int64(len(p) - i)
			if rem < s.bulk {
				s.bulk -= rem
				return len(p), 0, false, nil
			}
			i += int(s.bulk)
			s.bulk = 0
			s.state = stType
			if s.elementDone() {
				return i, s.first, true, nil
			}
		}
	}
	return i, 0, false, nil
}

// headerDone handles a complete length header. It reports whether the
// top-level reply is complete.
func (s *ReplyScanner) headerDone() (bool, error) {
	n := s.num
	if s.neg {
		n = -n
	}
	s.state = stType
	switch s.lineType {
	case '$', '!', '=':
		if n < 0 {
			if n != -1 {
				return false, &ErrReply{"negative bulk length"}
			}
			return s.elementDone(), nil
		}
		s.bulk = n + 2
		s.state = stBulk
		return false, nil
	default:
		if n < 0 {
			if n != -1 {
				return false, &ErrReply{"negative aggregate length"}
			}
			return s.elementDone(), nil
		}
		switch s.lineType {
		case '%':
			n *= 2
		case '|':
			// An attribute is followed by the value it describes; scan both
			// as one.
			n = n*2 + 1
		}
		if n == 0 {
			return s.elementDone(), nil
		}
		if len(s.stack) >= maxReplyDepth {
			return false, &ErrReply{"nesting too deep"}
		}
		s.stack = append(s.stack, n)
		return false, nil
	}
}

// elementDone records the end of one element and reports whether the
// top-level reply is complete.
func (s *ReplyScanner) elementDone() bool {
	for len(s.stack) > 0 {
		top := len(s.stack) - 1
		s.stack[top]--
		if s.stack[top] > 0 {
			return false
		}
		s.stack = s.stack[:top]
	}
	return true
}

// scanSimple is the fast path for the common complete replies: +, -, :
// lines and $ bulks entirely within p.
func scanSimple(p []byte) (int, bool) {
	if len(p) < 3 {
		return 0, false
	}
	switch p[0] {
	case '+', '-', ':':
		j := indexByte(p, '\n')
		if j < 0 {
			return 0, false
		}
		return j + 1, true
	case '$':
		var n int64
		i := 1
		if p[1] == '-' {
			if len(p) >= 5 && p[2] == '1' && p[3] == '\r' && p[4] == '\n' {
				return 5, true
			}
			return 0, false
		}
		for ; i < len(p) && i < 20; i++ {
			c := p[i]
			if c == '\r' {
				break
			}
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		if i == 1 || i+1 >= len(p) || p[i] != '\r' || p[i+1] != '\n' {
			return 0, false
		}
		end := int64(i+2) + n + 2
		if end > int64(len(p)) {
			return 0, false
		}
		return int(end), true
	}
	return 0, false
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }
