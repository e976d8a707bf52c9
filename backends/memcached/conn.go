package memcached

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
)

// status is a meta reply's code.
type status uint8

const (
	stVA          status = iota + 1 // a value follows
	stHD                            // done, no value
	stEN                            // miss (mg)
	stNF                            // not found
	stNS                            // not stored
	stEX                            // CAS mismatch
	stMN                            // end of a no-op
	stOK                            // flush_all
	stStats                         // STAT lines up to END
	stTooLarge                      // SERVER_ERROR object too large for cache
	stServerError                   // other SERVER_ERRORs: the item failed, the connection is fine
)

// reply is one reply. Tokens Mecha does not ask for are ignored.
type reply struct {
	status status
	cas    uint64
	flags  uint32
	ttl    int64
	size   int64
	value  []byte
	msg    string   // SERVER_ERROR text
	stats  []string // "name value" lines of a stats reply
}

// request is a batch of commands for one server, sent in one write; its
// replies arrive in order.
type request struct {
	buf     []byte
	n       int  // replies expected
	stats   bool // the one command is a `stats`: its reply ends with END
	replies []reply
	err     error
	done    chan struct{}
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func getRequest() *request { return requestPool.Get().(*request) }

// release returns a request whose replies have been used. A request that
// was abandoned (its caller gave up waiting) is never released: the reader
// may still write to it.
func (r *request) release() {
	if cap(r.buf) > 64<<10 {
		r.buf = nil
	}
	clear(r.replies)
	r.buf, r.n, r.stats, r.replies, r.err = r.buf[:0], 0, false, r.replies[:0], nil
	requestPool.Put(r)
}

// errNotSent wraps the error of a connection that was broken before a
// request reached it: nothing was sent, so the request may be retried.
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }

// maxValue bounds the size a reply may announce: Memcached's largest item
// size is 1 GB.
const maxValue = 1<<30 + 1<<20

// conn is one pipelined connection to a server. Any goroutine appends its
// request to the write buffer; the one that finds no write in progress
// writes everything pending, so that requests arriving together leave in
// one write. One reader goroutine parses the replies, which Memcached
// sends in request order, and hands each request its own.
type conn struct {
	srv *server
	nc  net.Conn
	br  *bufio.Reader

	mu      sync.Mutex
	queue   []*request // sent or being sent, awaiting replies, oldest first from head
	head    int
	wbuf    []byte
	spare   []byte
	writing bool
	err     error       // why the connection broke; nil while it works
	dead    atomic.Bool // err is set
}

func newConn(srv *server, nc net.Conn) *conn {
	c := &conn{srv: srv, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	srv.s.readers.Add(1)
	go c.readLoop()
	return c
}

// broken reports whether the connection can no longer be used.
func (c *conn) broken() bool { return c.dead.Load() }

// send queues req and writes it (with whatever else is pending) unless
// another goroutine is writing already. Once send returns nil, req
// completes: with its replies, or with the error that broke the
// connection.
func (c *conn) send(req *request) error {
	rt := c.srv.s.cfg.ReadTimeout.D()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return errNotSent{err}
	}
	if c.pending() == 0 {
		// The reply must start within read_timeout.
		c.nc.SetReadDeadline(time.Now().Add(rt))
	}
	c.push(req)
	c.wbuf = append(c.wbuf, req.buf...)
	if c.writing {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	wt := c.srv.s.cfg.WriteTimeout.D()
	for len(c.wbuf) > 0 && c.err == nil {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.mu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(wt))
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		if cap(buf) <= 256<<10 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.breakLocked(c.srv.netError("write to", err, wt))
		}
	}
	c.writing = false
	c.mu.Unlock()
	return nil
}

// The queue of requests awaiting replies; c.mu held.

func (c *conn) pending() int { return len(c.queue) - c.head }

func (c *conn) push(r *request) {
	if c.head > 0 && len(c.queue) == cap(c.queue) {
		// Reuse the room the answered requests left.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, r)
}

func (c *conn) pop() {
	c.queue[c.head] = nil
	c.head++
	if c.head == len(c.queue) {
		c.queue, c.head = c.queue[:0], 0
	}
}

// close breaks the connection with err: its pending requests fail with it.
func (c *conn) close(err error) {
	c.mu.Lock()
	c.breakLocked(err)
	c.mu.Unlock()
}

// breakLocked records why the connection broke and closes the socket;
// the reader then fails what is pending.
func (c *conn) breakLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	c.dead.Store(true)
	c.nc.Close()
}

// readLoop reads replies until the connection breaks, then fails every
// request still waiting. It is the only goroutine that completes
// requests.
func (c *conn) readLoop() {
	err := c.readReplies()
	c.mu.Lock()
	c.breakLocked(err)
	err = c.err
	q := c.queue[c.head:]
	c.queue, c.head = nil, 0
	c.mu.Unlock()
	for _, r := range q {
		r.err = err
		r.done <- struct{}{}
	}
	c.srv.connClosed(c, err)
	c.srv.s.readers.Done()
}

func (c *conn) readReplies() error {
	rt := c.srv.s.cfg.ReadTimeout.D()
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && len(line) == 0 {
				c.mu.Lock()
				idle := c.pending() == 0
				if idle {
					c.nc.SetReadDeadline(time.Time{})
				}
				c.mu.Unlock()
				if idle {
					continue // a deadline set for a request that has been answered
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				return c.srv.protocolError("reply line too long")
			}
			return c.srv.netError("read from", err, rt)
		}
		c.mu.Lock()
		var req *request
		if c.pending() > 0 {
			req = c.queue[c.head]
		}
		c.mu.Unlock()
		if req == nil {
			return c.srv.protocolError(fmt.Sprintf("unexpected reply %q", trimLine(line)))
		}
		var r reply
		fatal, err := c.parse(line, req.stats, &r)
		if err != nil {
			return err
		}
		if fatal != nil {
			// The server did not understand a command: the stream can no
			// longer be trusted, so this request fails and the connection
			// is replaced.
			c.mu.Lock()
			c.pop()
			c.breakLocked(fmt.Errorf("%w: memcached %s: connection reset after an error reply", backends.ErrUnavailable, c.srv.addr))
			c.mu.Unlock()
			req.err = fatal
			req.done <- struct{}{}
			return fatal
		}
		req.replies = append(req.replies, r)
		if len(req.replies) < req.n {
			continue
		}
		c.mu.Lock()
		c.pop()
		if c.pending() == 0 {
			c.nc.SetReadDeadline(time.Time{})
		} else {
			c.nc.SetReadDeadline(time.Now().Add(rt))
		}
		c.mu.Unlock()
		req.done <- struct{}{}
	}
}

// parse decodes the reply that starts with line. It returns fatal for
// an error reply that leaves the connection unusable, and err when the
// connection failed.
func (c *conn) parse(line []byte, stats bool, r *reply) (fatal, err error) {
	line = trimLine(line)
	code, rest, _ := bytes.Cut(line, []byte{' '})
	switch string(code) {
	case "VA":
		sizeTok, flags, _ := bytes.Cut(rest, []byte{' '})
		n, perr := strconv.ParseInt(string(sizeTok), 10, 64)
		if perr != nil || n < 0 || n > maxValue {
			return nil, c.srv.protocolError(fmt.Sprintf("bad value size in %q", line))
		}
		r.status = stVA
		if err := r.tokens(flags); err != nil {
			return nil, c.srv.protocolError(err.Error())
		}
		// The value is read after the line: line aliases the reader's
		// buffer, but nothing of it is kept.
		r.value = make([]byte, n+2)
		if _, err := io.ReadFull(c.br, r.value); err != nil {
			return nil, c.srv.netError("read from", err, c.srv.s.cfg.ReadTimeout.D())
		}
		if r.value[n] != '\r' || r.value[n+1] != '\n' {
			return nil, c.srv.protocolError("value not terminated by CRLF")
		}
		r.value = r.value[:n:n]
		return nil, nil
	case "HD":
		r.status = stHD
		if err := r.tokens(rest); err != nil {
			return nil, c.srv.protocolError(err.Error())
		}
		return nil, nil
	case "EN":
		r.status = stEN
	case "NF":
		r.status = stNF
	case "NS":
		r.status = stNS
	case "EX":
		r.status = stEX
	case "MN":
		r.status = stMN
	case "OK":
		r.status = stOK
	case "STAT", "END":
		if !stats {
			return nil, c.srv.protocolError(fmt.Sprintf("unexpected reply %q", line))
		}
		r.status = stStats
		for string(code) == "STAT" {
			r.stats = append(r.stats, string(rest))
			next, err := c.br.ReadSlice('\n')
			if err != nil {
				return nil, c.srv.netError("read from", err, c.srv.s.cfg.ReadTimeout.D())
			}
			code, rest, _ = bytes.Cut(trimLine(next), []byte{' '})
		}
		if string(code) != "END" {
			return nil, c.srv.protocolError(fmt.Sprintf("unexpected line %q in stats", code))
		}
	case "SERVER_ERROR":
		r.msg = string(rest)
		if r.msg == "object too large for cache" {
			r.status = stTooLarge
		} else {
			r.status = stServerError
		}
	default:
		// ERROR, CLIENT_ERROR or anything else: a command Mecha sent was
		// refused, and what follows may be out of step.
		return fmt.Errorf("memcached %s refused a command: %s", c.srv.addr, line), nil
	}
	return nil, nil
}

// tokens reads the flags of a VA or HD reply.
func (r *reply) tokens(b []byte) error {
	for len(b) > 0 {
		var tok []byte
		tok, b, _ = bytes.Cut(b, []byte{' '})
		if len(tok) < 2 {
			continue
		}
		v := string(tok[1:])
		var err error
		switch tok[0] {
		case 'c':
			r.cas, err = strconv.ParseUint(v, 10, 64)
		case 'f':
			var f uint64
			f, err = strconv.ParseUint(v, 10, 32)
			r.flags = uint32(f)
		case 't':
			r.ttl, err = strconv.ParseInt(v, 10, 64)
		case 's':
			r.size, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return fmt.Errorf("bad token %q", tok)
		}
	}
	return nil
}

func trimLine(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}
