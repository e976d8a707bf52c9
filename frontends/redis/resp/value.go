package resp

import (
	"bytes"
	"errors"
)

// Value is a decoded reply, for the few replies Mecha inspects itself
// (INFO, CONFIG GET). The hot path never decodes replies.
type Value struct {
	// Type is the RESP type byte: + - : $ * (RESP3 types as they come).
	Type  byte
	Str   []byte
	Int   int64
	Array []Value
	// Null is set for $-1 and *-1.
	Null bool
}

// IsError reports whether the value is an error reply.
func (v Value) IsError() bool { return v.Type == '-' || v.Type == '!' }

var errShort = errors.New("resp: truncated value")

// DecodeValue decodes one complete reply from b.
func DecodeValue(b []byte) (Value, int, error) {
	return decodeValue(b, 0)
}

func decodeValue(b []byte, depth int) (Value, int, error) {
	if depth > maxReplyDepth {
		return Value{}, 0, &ErrReply{"nesting too deep"}
	}
	nl := bytes.Index(b, []byte("\r\n"))
	if nl < 1 {
		return Value{}, 0, errShort
	}
	v := Value{Type: b[0]}
	line := b[1:nl]
	n := nl + 2
	switch b[0] {
	case '+', '-', '_', '#', ',', '(':
		v.Str = line
		return v, n, nil
	case ':':
		i, ok := parseInt(line)
		if !ok {
			return Value{}, 0, &ErrReply{"bad integer"}
		}
		v.Int = i
		return v, n, nil
	case '$', '!', '=':
		l, ok := parseInt(line)
		if !ok || l < -1 {
			return Value{}, 0, &ErrReply{"bad bulk length"}
		}
		if l == -1 {
			v.Null = true
			return v, n, nil
		}
		if int64(len(b)-n) < l+2 {
			return Value{}, 0, errShort
		}
		v.Str = b[n : n+int(l)]
		return v, n + int(l) + 2, nil
	case '*', '~', '>', '%':
		l, ok := parseInt(line)
		if !ok || l < -1 {
			return Value{}, 0, &ErrReply{"bad array length"}
		}
		if l == -1 {
			v.Null = true
			return v, n, nil
		}
		if b[0] == '%' {
			l *= 2
		}
		for i := int64(0); i < l; i++ {
			e, m, err := decodeValue(b[n:], depth+1)
			if err != nil {
				return Value{}, 0, err
			}
			v.Array = append(v.Array, e)
			n += m
		}
		return v, n, nil
	}
	return Value{}, 0, &ErrReply{"unknown type"}
}

// AppendValue encodes v in RESP2.
func AppendValue(dst []byte, v Value) []byte {
	switch v.Type {
	case '+':
		return AppendSimple(dst, string(v.Str))
	case '-':
		return AppendError(dst, string(v.Str))
	case ':':
		return AppendInt(dst, v.Int)
	case '$':
		if v.Null {
			return AppendNull(dst)
		}
		return AppendBulk(dst, v.Str)
	case '*':
		if v.Null {
			return AppendNullArray(dst)
		}
		dst = AppendArray(dst, len(v.Array))
		for _, e := range v.Array {
			dst = AppendValue(dst, e)
		}
		return dst
	}
	return AppendNull(dst)
}
