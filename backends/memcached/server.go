package memcached

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
)

// dialBackoff is how long a failed dial is remembered: requests for a
// server that refused a connection fail at once rather than each dialing.
const dialBackoff = 250 * time.Millisecond

// defaultItemMax is Memcached's default item size limit, used until the
// server's own (stats settings) is known.
const defaultItemMax = 1 << 20

// server is one Memcached server and its connections.
type server struct {
	s      *Store
	addr   string
	weight int
	slots  []slot
	rr     atomic.Uint32

	// failed dials: until when to fail fast, and with what.
	failMu    sync.Mutex
	failUntil time.Time
	failErr   error

	state    atomic.Int32 // backends.State
	stateMu  sync.Mutex
	detail   string
	itemMax  atomic.Int64
	settings atomic.Bool // item_size_max was read

	requests   metrics.Counter
	commands   metrics.Counter
	failures   metrics.Counter
	dials      metrics.Counter
	dialErrors metrics.Counter
	connErrors metrics.Counter
	conns      metrics.Gauge
}

// slot holds one of the server's connections.
type slot struct {
	mu sync.Mutex // held while dialing
	c  atomic.Pointer[conn]
}

func newServer(s *Store, addr string, weight, conns int) *server {
	sv := &server{s: s, addr: addr, weight: weight, slots: make([]slot, conns)}
	sv.itemMax.Store(defaultItemMax)
	return sv
}

// conn returns a working connection, dialing one if needed.
func (sv *server) conn(ctx context.Context) (*conn, error) {
	sl := &sv.slots[int(sv.rr.Add(1))%len(sv.slots)]
	if c := sl.c.Load(); c != nil && !c.broken() {
		return c, nil
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if c := sl.c.Load(); c != nil && !c.broken() {
		return c, nil
	}
	if sv.s.closed.Load() {
		return nil, fmt.Errorf("%w: backend closed", backends.ErrUnavailable)
	}
	sv.failMu.Lock()
	if time.Now().Before(sv.failUntil) {
		err := sv.failErr
		sv.failMu.Unlock()
		return nil, err
	}
	sv.failMu.Unlock()
	sv.dials.Inc()
	d := net.Dialer{Timeout: sv.s.cfg.DialTimeout.D(), KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", sv.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		sv.dialErrors.Inc()
		err = fmt.Errorf("%w: memcached %s: %v", backends.ErrUnavailable, sv.addr, shortNetError(err))
		sv.failMu.Lock()
		sv.failUntil, sv.failErr = time.Now().Add(dialBackoff), err
		sv.failMu.Unlock()
		sv.setState(backends.StateDown, err)
		return nil, err
	}
	sv.s.lifeMu.Lock()
	if sv.s.closed.Load() {
		sv.s.lifeMu.Unlock()
		nc.Close()
		return nil, fmt.Errorf("%w: backend closed", backends.ErrUnavailable)
	}
	sv.conns.Add(1)
	c := newConn(sv, nc)
	sv.s.lifeMu.Unlock()
	if old := sl.c.Swap(c); old != nil {
		old.close(fmt.Errorf("%w: memcached %s: connection replaced", backends.ErrUnavailable, sv.addr))
	}
	sv.setState(backends.StateUp, nil)
	return c, nil
}

// connClosed is called once a connection has failed everything pending.
func (sv *server) connClosed(c *conn, err error) {
	sv.conns.Add(-1)
	if !sv.s.closed.Load() {
		sv.connErrors.Inc()
		sv.s.log.Debug("memcached connection closed", "server", sv.addr, "err", err)
		sv.s.kick()
	}
}

// do sends req to the server and waits for its replies.
func (sv *server) do(ctx context.Context, req *request) error {
	if err := sv.send(ctx, req); err != nil {
		return err
	}
	return sv.wait(ctx, req)
}

// send queues req on one of the server's connections.
func (sv *server) send(ctx context.Context, req *request) error {
	sv.requests.Inc()
	sv.commands.Add(uint64(req.n))
	for attempt := 0; ; attempt++ {
		c, err := sv.conn(ctx)
		if err == nil {
			err = c.send(req)
		}
		var ns errNotSent
		if errors.As(err, &ns) && attempt == 0 {
			continue // broken before the request reached it: a fresh one
		}
		if err != nil {
			sv.failures.Inc()
		}
		return err
	}
}

// wait waits for the replies of a request send accepted.
func (sv *server) wait(ctx context.Context, req *request) error {
	select {
	case <-req.done:
	case <-ctx.Done():
		return errAbandoned{ctx.Err()}
	}
	if req.err != nil {
		sv.failures.Inc()
	}
	return req.err
}

// errAbandoned: the caller stopped waiting; the request must not be
// reused.
type errAbandoned struct{ err error }

func (e errAbandoned) Error() string { return e.err.Error() }
func (e errAbandoned) Unwrap() error { return e.err }

// probe checks the server with a no-op (and reads its settings once).
func (sv *server) probe(ctx context.Context) {
	req := getRequest()
	req.buf = append(req.buf, "mn\r\n"...)
	req.n = 1
	err := sv.do(ctx, req)
	if err == nil && (len(req.replies) != 1 || req.replies[0].status != stMN) {
		err = sv.protocolError("no MN reply to mn")
	}
	if !errors.As(err, new(errAbandoned)) {
		req.release()
	}
	if err != nil {
		sv.setState(backends.StateDown, err)
		return
	}
	if !sv.settings.Load() {
		if st, err := sv.stats(ctx, "settings"); err == nil {
			if n, err := strconv.ParseInt(st["item_size_max"], 10, 64); err == nil && n > 0 {
				sv.itemMax.Store(n)
			}
			sv.settings.Store(true)
		}
	}
	sv.setState(backends.StateUp, nil)
}

// stats runs `stats [what]` and returns its values by name.
func (sv *server) stats(ctx context.Context, what string) (map[string]string, error) {
	req := getRequest()
	req.buf = append(req.buf, "stats"...)
	if what != "" {
		req.buf = append(append(req.buf, ' '), what...)
	}
	req.buf = append(req.buf, "\r\n"...)
	req.n, req.stats = 1, true
	err := sv.do(ctx, req)
	if err != nil {
		if !errors.As(err, new(errAbandoned)) {
			req.release()
		}
		return nil, err
	}
	out := map[string]string{}
	if r := req.replies[0]; r.status == stStats {
		for _, l := range r.stats {
			k, v, _ := strings.Cut(l, " ")
			out[k] = v
		}
	}
	req.release()
	return out, nil
}

// flush empties the server (flush_all).
func (sv *server) flush(ctx context.Context) error {
	req := getRequest()
	req.buf = append(req.buf, "flush_all\r\n"...)
	req.n = 1
	err := sv.do(ctx, req)
	if err == nil {
		if r := req.replies[0]; r.status != stOK {
			err = fmt.Errorf("memcached %s: flush_all: %s", sv.addr, statusText(r))
		}
	}
	if !errors.As(err, new(errAbandoned)) {
		req.release()
	}
	return err
}

// setState records the server's health and updates the store's.
func (sv *server) setState(st backends.State, err error) {
	sv.stateMu.Lock()
	detail := ""
	if err != nil {
		detail = err.Error()
		for _, sentinel := range []error{backends.ErrUnavailable, backends.ErrTimeout} {
			detail = strings.TrimPrefix(detail, sentinel.Error()+": ")
		}
	}
	old := backends.State(sv.state.Swap(int32(st)))
	sv.detail = detail
	if st == backends.StateDown {
		sv.settings.Store(false) // it may come back with other settings
	}
	sv.stateMu.Unlock()
	if old != st {
		if st == backends.StateDown {
			sv.s.log.Warn("memcached server down", "server", sv.addr, "err", detail)
		} else if old == backends.StateDown {
			sv.s.log.Info("memcached server up", "server", sv.addr)
		}
		sv.s.updateHealth()
	}
}

func (sv *server) health() (backends.State, string) {
	sv.stateMu.Lock()
	defer sv.stateMu.Unlock()
	return backends.State(sv.state.Load()), sv.detail
}

// closeConns breaks every connection with err.
func (sv *server) closeConns(err error) {
	for i := range sv.slots {
		if c := sv.slots[i].c.Load(); c != nil {
			c.close(err)
		}
	}
}

// netError classifies a socket error: a timeout is backends.ErrTimeout,
// anything else backends.ErrUnavailable.
func (sv *server) netError(op string, err error, timeout time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: memcached %s: no reply within %s", backends.ErrTimeout, sv.addr, timeout)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: memcached %s: connection closed", backends.ErrUnavailable, sv.addr)
	}
	return fmt.Errorf("%w: memcached %s: %s: %v", backends.ErrUnavailable, sv.addr, op, shortNetError(err))
}

func (sv *server) protocolError(what string) error {
	return fmt.Errorf("memcached %s: protocol error: %s", sv.addr, what)
}

// shortNetError drops the repetition in a *net.OpError ("dial tcp
// 127.0.0.1:1: connect: connection refused" becomes "connection refused").
func shortNetError(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		msg := oe.Err.Error()
		if m, ok := strings.CutPrefix(msg, "connect: "); ok {
			return m
		}
		return msg
	}
	return err.Error()
}

func statusText(r reply) string {
	switch r.status {
	case stVA:
		return "VA"
	case stHD:
		return "HD"
	case stEN:
		return "EN"
	case stNF:
		return "NF"
	case stNS:
		return "NS"
	case stEX:
		return "EX"
	case stMN:
		return "MN"
	case stOK:
		return "OK"
	case stTooLarge, stServerError:
		return "SERVER_ERROR " + r.msg
	}
	return "unexpected reply"
}
