// Package resp implements the Redis serialization protocol (RESP2, and the
// RESP3 reply types a scanner must recognise) as Redis 7 speaks it: a
// resumable request parser with Redis' own limits and error texts, reply
// encoders, a resumable reply scanner for relaying upstream replies in
// bounded memory, and the Redis command table.
package resp

// Redis' fixed protocol constants (server.h).
const (
	// InlineMaxSize is PROTO_INLINE_MAX_SIZE: the longest inline request,
	// and the longest multibulk/bulk header line, Redis accepts.
	InlineMaxSize = 64 * 1024
	// UnauthMaxMultibulk is the largest multibulk count Redis accepts from
	// a client that has not authenticated yet.
	UnauthMaxMultibulk = 10
	// UnauthMaxBulk is the largest bulk Redis accepts from a client that
	// has not authenticated yet.
	UnauthMaxBulk = 16384
)

// Limits bound what one client may send.
type Limits struct {
	// MaxBulkLen is Redis' proto-max-bulk-len: the largest single argument.
	MaxBulkLen int64
	// MaxMultibulkLen is the largest number of arguments in one command.
	MaxMultibulkLen int64
	// MaxInlineLen is the longest inline command (and header line).
	MaxInlineLen int
}

// DefaultLimits are Redis 7's defaults, except MaxMultibulkLen, which Redis
// bounds only by INT_MAX and the query buffer limit; Mecha defaults to 1Mi
// arguments (Redis' own bound before 7.0).
var DefaultLimits = Limits{
	MaxBulkLen:      512 << 20,
	MaxMultibulkLen: 1 << 20,
	MaxInlineLen:    InlineMaxSize,
}

// ProtocolError is a malformed request. Redis answers it with
// "-ERR Protocol error: <Msg>" and closes the connection once the replies
// to the commands before it are written.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

var (
	errTooBigInline       = &ProtocolError{"too big inline request"}
	errUnbalancedQuotes   = &ProtocolError{"unbalanced quotes in request"}
	errTooBigMbulkCount   = &ProtocolError{"too big mbulk count string"}
	errInvalidMultibulk   = &ProtocolError{"invalid multibulk length"}
	errUnauthMultibulk    = &ProtocolError{"unauthenticated multibulk length"}
	errTooBigBulkCount    = &ProtocolError{"too big bulk count string"}
	errInvalidBulk        = &ProtocolError{"invalid bulk length"}
	errUnauthBulk         = &ProtocolError{"unauthenticated bulk length"}
	errExpectedDollarBase = "expected '$', got '"
)

// Command is one parsed request. Args alias the parser's input buffer (and
// its argument arena) and are valid until the buffer is next compacted or
// refilled and the parser is released.
type Command struct {
	// Args is argv; Args[0] is the command name as the client sent it.
	Args [][]byte
	// Raw is the exact bytes of a canonical multibulk request (every line
	// ended by CRLF), suitable for forwarding unchanged. It is nil for
	// inline requests and for multibulk requests with bare CRs, which must
	// be re-encoded before they are forwarded.
	Raw []byte
}

// Parser splits a byte stream into commands exactly as Redis 7's
// processInlineBuffer and processMultibulkBuffer do. It is resumable: a
// command that arrives in pieces is parsed incrementally, so a request of
// many arguments costs linear time however it is fragmented.
//
// The caller owns the buffer. Parse consumes from buf[0:]; offsets kept
// across calls are relative to the start of the pending command, so the
// caller may move the unconsumed tail of the buffer (compaction) between
// calls as long as it passes it again starting at the pending command.
type Parser struct {
	Limits Limits
	// Authenticated lifts the stricter limits Redis applies before AUTH.
	// The caller sets it when the connection requires no authentication or
	// has authenticated.
	Authenticated bool

	// State of a multibulk command in progress.
	inCmd     bool
	remaining int64 // arguments still to read
	bulkLen   int64 // length of the bulk being read, -1 while reading its header
	pos       int   // offset within the pending command of the next byte to parse
	// scanned is how far (from the pending command's start, or from pos
	// inside a multibulk) a line has been searched for its end without
	// finding it, so that a line arriving a byte at a time is searched
	// once, not once per byte.
	scanned   int
	sawNUL    bool
	canonical bool
	spans     []span // argument offsets within the pending command
	args      [][]byte
}

type span struct{ start, end int }

// Reset drops any partially parsed command.
func (p *Parser) Reset() {
	p.inCmd = false
	p.spans = p.spans[:0]
	p.scanned, p.sawNUL = 0, false
}

// Release lets the parser reuse the argument slices of the commands it has
// returned. Call it once those commands have been executed, before parsing
// the next batch.
func (p *Parser) Release() {
	clear(p.args)
	p.args = p.args[:0]
}

// Pending reports whether a partially parsed command is held.
func (p *Parser) Pending() bool { return p.inCmd }

// Parse parses one command from buf, which must start at the first byte not
// yet consumed. It returns the command and the number of bytes it used.
// n == 0 with a nil error means more input is needed (buf keeps the partial
// command; pass it again, with more bytes appended, once they arrive). A
// command with no arguments (an empty inline line, "*0", "*-1") is consumed
// and returned with len(Args) == 0; Redis ignores such input. A
// *ProtocolError means the stream is unusable from this point.
func (p *Parser) Parse(buf []byte) (cmd Command, n int, err error) {
	if !p.inCmd {
		if len(buf) == 0 {
			return Command{}, 0, nil
		}
		if buf[0] != '*' {
			return p.parseInline(buf)
		}
		cr, err := p.headerLine(buf, errTooBigMbulkCount)
		if cr < 0 {
			return Command{}, 0, err
		}
		ll, ok := parseInt(buf[1:cr])
		if !ok || ll > 1<<31-1 || ll > p.Limits.MaxMultibulkLen {
			return Command{}, 0, errInvalidMultibulk
		}
		if ll > UnauthMaxMultibulk && !p.Authenticated {
			return Command{}, 0, errUnauthMultibulk
		}
		if ll <= 0 {
			return Command{}, cr + 2, nil
		}
		p.inCmd = true
		p.remaining = ll
		p.bulkLen = -1
		p.pos = cr + 2
		p.canonical = buf[cr+1] == '\n'
		p.spans = p.spans[:0]
	}
	for p.remaining > 0 {
		if p.bulkLen < 0 {
			rest := buf[p.pos:]
			cr, err := p.headerLine(rest, errTooBigBulkCount)
			if cr < 0 {
				return Command{}, 0, err
			}
			if rest[0] != '$' {
				c := rest[0]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				return Command{}, 0, &ProtocolError{errExpectedDollarBase + string([]byte{c}) + "'"}
			}
			ll, ok := parseInt(rest[1:cr])
			if !ok || ll < 0 || ll > p.Limits.MaxBulkLen {
				return Command{}, 0, errInvalidBulk
			}
			if ll > UnauthMaxBulk && !p.Authenticated {
				return Command{}, 0, errUnauthBulk
			}
			if rest[cr+1] != '\n' {
				p.canonical = false
			}
			p.pos += cr + 2
			p.bulkLen = ll
		}
		if int64(len(buf)-p.pos) < p.bulkLen+2 {
			return Command{}, 0, nil
		}
		end := p.pos + int(p.bulkLen)
		p.spans = append(p.spans, span{p.pos, end})
		// Redis skips the two bytes after the payload without checking them.
		if buf[end] != '\r' || buf[end+1] != '\n' {
			p.canonical = false
		}
		p.pos = end + 2
		p.bulkLen = -1
		p.remaining--
	}
	p.inCmd = false
	first := len(p.args)
	for _, s := range p.spans {
		p.args = append(p.args, buf[s.start:s.end:s.end])
	}
	cmd.Args = p.args[first:len(p.args):len(p.args)]
	if p.canonical {
		cmd.Raw = buf[:p.pos:p.pos]
	}
	return cmd, p.pos, nil
}

// NeedBytes reports how many bytes, counted from the start of the pending
// command, the parser needs before it can make progress: the size the
// caller's buffer must be able to hold. It is 0 when unknown (a header line
// is being read).
func (p *Parser) NeedBytes() int {
	if !p.inCmd || p.bulkLen < 0 {
		return 0
	}
	return p.pos + int(p.bulkLen) + 2
}

func (p *Parser) parseInline(buf []byte) (Command, int, error) {
	// Redis uses strchr, which stops at a NUL byte: such a line never
	// ends, until it is too long.
	nl := -1
	if !p.sawNUL {
		for i := p.scanned; i < len(buf); i++ {
			c := buf[i]
			if c == '\n' {
				nl = i
				break
			}
			if c == 0 {
				p.sawNUL = true
				break
			}
		}
	}
	if nl < 0 {
		if len(buf) > p.Limits.MaxInlineLen {
			return Command{}, 0, errTooBigInline
		}
		if !p.sawNUL {
			p.scanned = len(buf)
		}
		return Command{}, 0, nil
	}
	p.scanned = 0
	line := buf[:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	first := len(p.args)
	args, ok := splitArgs(line, p.args)
	if !ok {
		return Command{}, 0, errUnbalancedQuotes
	}
	p.args = args
	return Command{Args: args[first:len(args):len(args)]}, nl + 1, nil
}

// splitArgs splits an inline request like Redis' sdssplitargs: blanks
// separate arguments; "double quotes" take \n \r \t \b \a and \xHH
// escapes (any other escaped byte stands for itself); 'single quotes' take
// \'; a closing quote must be followed by a blank or the end. A NUL byte
// ends the line, as sdssplitargs works on a C string. Inline requests are
// rare (telnet, PING_INLINE), so arguments are always copied.
func splitArgs(line []byte, args [][]byte) ([][]byte, bool) {
	n := len(line)
	at := func(j int) byte {
		if j < n {
			return line[j]
		}
		return 0
	}
	i := 0
	for {
		for i < n && isSpace(line[i]) {
			i++
		}
		if i >= n || line[i] == 0 {
			return args, true
		}
		cur := []byte{}
		inq, insq, done := false, false, false
		for !done {
			c := at(i)
			switch {
			case inq:
				switch {
				case c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
					cur = append(cur, hexVal(at(i+2))<<4|hexVal(at(i+3)))
					i += 3
				case c == '\\' && at(i+1) != 0:
					i++
					cur = append(cur, unescape(at(i)))
				case c == '"':
					if nx := at(i + 1); nx != 0 && !isSpace(nx) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					cur = append(cur, c)
				}
			case insq:
				switch {
				case c == '\\' && at(i+1) == '\'':
					i++
					cur = append(cur, '\'')
				case c == '\'':
					if nx := at(i + 1); nx != 0 && !isSpace(nx) {
						return nil, false
					}
					done = true
				case c == 0:
					return nil, false
				default:
					cur = append(cur, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					cur = append(cur, c)
				}
			}
			if c != 0 {
				i++
			}
		}
		args = append(args, cur)
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// headerLine finds the end of a count or bulk header line at the start of
// b: Redis searches for '\r' and then skips two bytes without checking
// the second is '\n'. It returns the index of the '\r', or -1 when more
// input is needed (with tooBig once the line is longer than Redis allows).
func (p *Parser) headerLine(b []byte, tooBig error) (int, error) {
	cr := p.findCR(b)
	if cr < 0 {
		if len(b) > p.Limits.MaxInlineLen {
			return -1, tooBig
		}
		return -1, nil
	}
	p.scanned = 0
	if cr > len(b)-2 {
		return -1, nil
	}
	return cr, nil
}

// findCR returns the index of the first '\r' in a header line, or -1,
// resuming where the previous search of the same line stopped. Like
// Redis' strchr it stops at a NUL byte.
func (p *Parser) findCR(b []byte) int {
	if p.sawNUL {
		return -1
	}
	for i := p.scanned; i < len(b); i++ {
		switch b[i] {
		case '\r':
			return i
		case 0:
			p.sawNUL = true
			return -1
		}
	}
	p.scanned = len(b)
	return -1
}

// parseInt parses a decimal integer exactly like Redis' string2ll: an
// optional '-', no '+', no leading zeros, no spaces, within int64.
func parseInt(b []byte) (int64, bool) {
	n := len(b)
	if n == 0 || n > 20 {
		return 0, false
	}
	if n == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	i := 0
	if b[0] == '-' {
		neg = true
		i++
		if i == n {
			return 0, false
		}
	}
	if b[i] < '1' || b[i] > '9' {
		return 0, false
	}
	var v uint64
	for ; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1)/10 {
			return 0, false
		}
		v *= 10
		if v > 1<<64-1-d {
			return 0, false
		}
		v += d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}

// ParseInt parses a decimal integer argument the way Redis does
// (string2ll).
func ParseInt(b []byte) (int64, bool) { return parseInt(b) }
