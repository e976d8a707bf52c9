package redis

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// Redis 7's error texts.
const (
	errSyntax       = "ERR syntax error"
	errNotInt       = "ERR value is not an integer or out of range"
	errNotFloat     = "ERR value is not a valid float"
	errWrongType    = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errNoSuchKey    = "ERR no such key"
	errOverflow     = "ERR increment or decrement would overflow"
	errNaN          = "ERR increment would produce NaN or Infinity"
	errIndex        = "ERR index out of range"
	errMaxSize      = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	errMinMaxFloat  = "ERR min or max is not a float"
	errMinMaxLex    = "ERR min or max not valid string range item"
	errBitOffset    = "ERR bit offset is not an integer or out of range"
	errBitValue     = "ERR bit is not an integer or out of range"
	errTimeout      = "ERR timeout is not a float or out of range"
	errTimeoutNeg   = "ERR timeout is negative"
	errDBRange      = "ERR DB index is out of range"
	errSameObject   = "ERR source and destination objects are the same"
	errInvalidCur   = "ERR invalid cursor"
	errHashNotInt   = "ERR hash value is not an integer"
	errHashNotFloat = "ERR hash value is not a float"
)

// maxStringSize is proto-max-bulk-len: strings may not grow past it.
const maxStringSize = 512 << 20

func (c *call) ok()               { c.out = resp.AppendOK(c.out) }
func (c *call) simple(s string)   { c.out = resp.AppendSimple(c.out, s) }
func (c *call) errorMsg(s string) { c.out = resp.AppendError(c.out, s) }
func (c *call) int(n int64)       { c.out = resp.AppendInt(c.out, n) }
func (c *call) bulk(b []byte)     { c.out = resp.AppendBulk(c.out, b) }
func (c *call) bulkStr(s string)  { c.out = resp.AppendBulkString(c.out, s) }
func (c *call) null()             { c.out = resp.AppendNull(c.out) }
func (c *call) nullArray()        { c.out = resp.AppendNullArray(c.out) }
func (c *call) array(n int)       { c.out = resp.AppendArray(c.out, n) }
func (c *call) wrongType()        { c.errorMsg(errWrongType) }
func (c *call) syntax()           { c.errorMsg(errSyntax) }
func (c *call) bool(b bool) {
	if b {
		c.int(1)
	} else {
		c.int(0)
	}
}

// double replies with a score as Redis does (%.17g).
func (c *call) double(f float64) { c.bulkStr(formatDouble(f)) }

func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// replyErr turns a store error into Redis' reply.
func (c *call) replyErr(err error) {
	switch {
	case errors.Is(err, kv.ErrWrongType):
		c.wrongType()
	case errors.Is(err, kv.ErrNotInteger):
		c.errorMsg(errNotInt)
	case errors.Is(err, kv.ErrOverflow):
		c.errorMsg(errOverflow)
	case errors.Is(err, kv.ErrNotFound):
		c.errorMsg(errNoSuchKey)
	case errors.Is(err, kv.ErrUnsupported):
		c.errorMsg(c.s.e.unsupported(string(c.args[0])))
	case errors.Is(err, kv.ErrTooLarge):
		c.errorMsg("ERR value too large for backend '" + c.s.e.name + "'")
	case errors.Is(err, backends.ErrTimeout):
		// The same form as the Redis frontend's for passthrough backends.
		c.errorMsg("ERR backend '" + c.s.e.name + "' timed out: " + trimSentinel(err, backends.ErrTimeout))
	case errors.Is(err, backends.ErrUnavailable):
		c.errorMsg("ERR backend '" + c.s.e.name + "' unavailable: " + trimSentinel(err, backends.ErrUnavailable))
	default:
		msg := err.Error()
		if !strings.HasPrefix(msg, "ERR ") && !strings.HasPrefix(msg, "WRONGTYPE") {
			msg = "ERR backend '" + c.s.e.name + "' failed: " + msg
		}
		c.errorMsg(msg)
	}
}

// trimSentinel drops the sentinel's own text from the front of err's.
func trimSentinel(err, sentinel error) string {
	s, p := err.Error(), sentinel.Error()+": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// check replies with err and reports whether there was one.
func (c *call) check(err error) bool {
	if err != nil {
		c.replyErr(err)
		return true
	}
	return false
}

// argInt parses args[i] as Redis' getLongLongFromObject does.
func (c *call) argInt(i int) (int64, bool) {
	n, ok := resp.ParseInt(c.args[i])
	if !ok {
		c.errorMsg(errNotInt)
	}
	return n, ok
}

// parseFloat parses a float as Redis' string2d/strtold do: decimal or
// exponent notation, inf/-inf/+inf; no NaN, no spaces.
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 5000 {
		return 0, false
	}
	if b[0] == ' ' || b[len(b)-1] == ' ' {
		return 0, false
	}
	s := string(b)
	switch strings.ToLower(s) {
	case "inf", "+inf", "infinity", "+infinity":
		return math.Inf(1), true
	case "-inf", "-infinity":
		return math.Inf(-1), true
	}
	// Like strtod with Redis' checks: out of range (overflow, or
	// underflow to zero) and NaN are refused.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// argFloat parses args[i] as a float, replying errNotFloat otherwise.
func (c *call) argFloat(i int) (float64, bool) {
	f, ok := parseFloat(c.args[i])
	if !ok {
		c.errorMsg(errNotFloat)
	}
	return f, ok
}

// longDouble emulates the 80-bit long double Redis uses for INCRBYFLOAT
// and HINCRBYFLOAT, so that 0.1 + 0.2 gives "0.3" as in Redis.
func longDouble(b []byte) (*big.Float, bool) {
	s := strings.TrimSpace(string(b))
	if s != string(b) || s == "" {
		return nil, false
	}
	f, _, err := big.ParseFloat(s, 10, 64, big.ToNearestEven)
	if err != nil {
		return nil, false
	}
	return f, true
}

// formatLongDouble prints like Redis' ld2string(LD_STR_HUMAN): fixed
// point with 17 decimals, trailing zeros removed.
func formatLongDouble(f *big.Float) string {
	s := f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// lower returns an ASCII-lowercased copy, for option names.
func lower(b []byte) string {
	return strings.ToLower(string(b))
}
