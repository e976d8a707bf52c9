package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// A muxSlot holds one shared connection and replaces it when it breaks.
type muxSlot struct {
	mu      sync.Mutex
	mc      *muxConn
	lastErr error
	errAt   time.Time
}

// failFast is how long a failed dial is remembered: requests in that
// window fail at once instead of each waiting for a dial of its own.
const failFast = 200 * time.Millisecond

// Submit queues call on a shared connection. The connection is chosen by
// the call's sink, so that one client's calls all travel in order on the
// same connection and their replies reach it in order.
func (b *Backend) Submit(ctx context.Context, call *backends.RESPCall) error {
	if b.closed.Load() {
		return fmt.Errorf("%w: backend closed", backends.ErrUnavailable)
	}
	s := &b.slot[slotOf(call.Sink, len(b.slot))]
	for attempt := 0; ; attempt++ {
		mc, err := s.get(ctx, b)
		if err != nil {
			return err
		}
		if mc.submit(call) {
			return nil
		}
		// The connection broke before the call was queued: nothing
		// reached the upstream, so a fresh connection is safe to try.
		if attempt > 0 {
			return fmt.Errorf("%w: connection lost", backends.ErrUnavailable)
		}
	}
}

// Slotter is implemented by sinks that pin their calls to one shared
// connection.
type Slotter interface{ Slot() int }

func slotOf(s backends.RESPSink, n int) int {
	if sl, ok := s.(Slotter); ok {
		return sl.Slot() % n
	}
	return 0
}

func (s *muxSlot) get(ctx context.Context, b *Backend) (*muxConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mc != nil && !s.mc.isBroken() {
		return s.mc, nil
	}
	if s.lastErr != nil && time.Since(s.errAt) < failFast {
		return nil, s.lastErr
	}
	nc, err := b.dial(ctx)
	if err != nil {
		s.lastErr, s.errAt = err, time.Now()
		b.requestProbe()
		return nil, err
	}
	s.lastErr = nil
	s.mc = newMuxConn(nc, b)
	return s.mc, nil
}

// muxConn is an upstream connection shared by many clients. Callers
// append their requests to a write buffer under a lock; a writer
// goroutine sends everything pending in one write. A reader goroutine
// scans the replies and hands each caller's bytes to its sink, in order.
type muxConn struct {
	nc net.Conn
	b  *Backend

	mu         sync.Mutex
	wbuf       []byte
	spare      []byte
	kicked     bool          // the writer has been told there is something to write
	writing    bool          // a write is in progress
	deferredAt int64         // nanotime of the oldest deferred request not yet written, or 0
	kick       chan struct{} // wakes the writer
	stopWriter sync.Once
	writeStart atomic.Int64 // nanotime a write began, 0 when none is in progress
	db         int          // database selected by the requests written so far
	queue      []*pending
	head       int // index of the first pending call in queue
	broken     error

	scan resp.ReplyScanner
}

type pending struct {
	sent    int64 // nanotime when queued, for the watchdog
	call    *backends.RESPCall
	swallow int  // leading replies (our SELECT) not meant for the caller
	left    int  // replies still expected for the caller
	cut     bool // part of an unfinished reply was delivered
}

var pendingPool = sync.Pool{New: func() any { return new(pending) }}

func newMuxConn(nc net.Conn, b *Backend) *muxConn {
	mc := &muxConn{nc: nc, b: b, wbuf: make([]byte, 0, 16<<10), spare: make([]byte, 0, 16<<10), kick: make(chan struct{}, 1)}
	go mc.readLoop()
	go mc.writeLoop()
	return mc
}

func (mc *muxConn) isBroken() bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.broken != nil
}

// submit queues call. It returns false, having queued nothing, if the
// connection is broken.
func (mc *muxConn) submit(call *backends.RESPCall) bool {
	p := pendingPool.Get().(*pending)
	*p = pending{call: call, left: call.N, sent: nanotime()}
	call.Types = call.Types[:0]
	mc.mu.Lock()
	if mc.broken != nil {
		mc.mu.Unlock()
		pendingPool.Put(p)
		return false
	}
	if call.DB != mc.db {
		mc.wbuf = resp.AppendCommandStrings(mc.wbuf, "SELECT", itoa(call.DB))
		mc.db = call.DB
		p.swallow = 1
	}
	mc.wbuf = append(mc.wbuf, call.Req...)
	mc.queue = append(mc.queue, p)
	if call.Deferred {
		mc.deferredAt = p.sent // Flush sends it
	} else if !mc.kicked {
		mc.kicked = true
		select {
		case mc.kick <- struct{}{}:
		default:
		}
	}
	mc.mu.Unlock()
	return true
}

// Flush writes every deferred request now, on the caller's goroutine.
func (b *Backend) Flush() {
	for i := range b.slot {
		s := &b.slot[i]
		s.mu.Lock()
		mc := s.mc
		s.mu.Unlock()
		if mc != nil {
			mc.flush()
		}
	}
}

func (mc *muxConn) flush() {
	mc.mu.Lock()
	mc.writeLocked()
	mc.mu.Unlock()
}

// writeLocked writes everything pending unless a write is already in
// progress (whoever is writing picks up what was added meanwhile). It is
// called with mu held and returns with it held.
func (mc *muxConn) writeLocked() {
	if mc.writing {
		return
	}
	mc.writing = true
	for len(mc.wbuf) > 0 && mc.broken == nil {
		buf := mc.wbuf
		mc.wbuf = mc.spare[:0]
		mc.kicked = false
		mc.deferredAt = 0
		mc.mu.Unlock()
		mc.writeStart.Store(nanotime())
		_, err := mc.nc.Write(buf)
		mc.writeStart.Store(0)
		mc.mu.Lock()
		if cap(buf) <= 1<<20 {
			mc.spare = buf[:0]
		}
		if err != nil {
			mc.mu.Unlock()
			mc.breakConn(fmt.Errorf("%w: write to upstream: %v", backends.ErrUnavailable, errText(err)))
			mc.mu.Lock()
		}
	}
	mc.writing = false
}

// writeLoop writes whatever callers have queued without deferring it.
// Running it on its own goroutine batches naturally: by the time it is
// scheduled, every client that became runnable meanwhile has appended its
// request, and all go to the upstream in one write.
func (mc *muxConn) writeLoop() {
	for range mc.kick {
		// Let the clients that are runnable now append their requests
		// first: they go out in this write instead of one write each.
		runtime.Gosched()
		mc.mu.Lock()
		mc.writeLocked()
		mc.kicked = false
		broken := mc.broken != nil
		mc.mu.Unlock()
		if broken {
			return
		}
	}
}

func (mc *muxConn) readLoop() {
	buf := make([]byte, 32<<10)
	for {
		n, err := mc.nc.Read(buf)
		if n > 0 {
			if perr := mc.consume(buf[:n]); perr != nil {
				mc.fail(fmt.Errorf("%w: %v", backends.ErrUnavailable, perr))
				return
			}
		}
		if err != nil {
			mc.fail(fmt.Errorf("%w: connection lost: %v", backends.ErrUnavailable, errText(err)))
			return
		}
	}
}

// current returns the oldest pending call, or nil.
func (mc *muxConn) current() *pending {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.head == len(mc.queue) {
		return nil
	}
	return mc.queue[mc.head]
}

// pop removes the oldest pending call, which has all its replies.
func (mc *muxConn) pop() {
	mc.mu.Lock()
	mc.queue[mc.head] = nil
	mc.head++
	if mc.head == len(mc.queue) {
		mc.queue = mc.queue[:0]
		mc.head = 0
	}
	mc.mu.Unlock()
}

// consume hands the reply bytes in p to their calls' sinks: each call's
// share of p goes in one piece. Only the reader goroutine touches a call
// once it is queued.
func (mc *muxConn) consume(p []byte) error {
	e := mc.current()
	from := 0 // start in p of bytes not yet delivered to e
	for i := 0; i < len(p); {
		if e == nil {
			return errors.New("reply without a request")
		}
		k, typ, done, err := mc.scan.Scan(p[i:])
		if err != nil {
			return err
		}
		i += k
		if e.swallow > 0 {
			from = i
			if done {
				e.swallow--
				if typ == '-' {
					// Our SELECT failed: what follows ran in the wrong
					// database. Break the connection rather than pretend.
					return errors.New("upstream refused SELECT")
				}
			}
			continue
		}
		if !done {
			continue
		}
		call := e.call
		call.Types = append(call.Types, typ)
		e.left--
		if e.left > 0 {
			continue
		}
		call.Sink.Deliver(call, p[from:i])
		from = i
		// Off the queue before it can be reused: the watchdog reads the
		// queue's head under mc.mu.
		mc.pop()
		pendingPool.Put(e)
		call.Sink.Done(call, nil)
		e = mc.current()
	}
	if e != nil && from < len(p) {
		// The call continues in the next read: pass on what has come so
		// far, so that replies of any size flow through in bounded memory.
		e.call.Sink.Deliver(e.call, p[from:])
		e.cut = mc.scan.Busy()
	} else if e != nil {
		e.cut = false
	}
	return nil
}

// fail breaks the connection and ends every pending call with the reason.
// It runs on the reader goroutine, the only one that ends calls; other
// goroutines break the connection by closing it (breakConn).
func (mc *muxConn) fail(err error) {
	mc.mu.Lock()
	if mc.broken == nil {
		mc.broken = err
	} else {
		err = mc.broken // the reason it was broken (a timeout, say)
	}
	q := mc.queue[mc.head:]
	mc.queue, mc.head = nil, 0
	mc.mu.Unlock()
	mc.nc.Close()
	mc.stopWriter.Do(func() { close(mc.kick) })
	if len(q) > 0 {
		mc.b.connErrors.Inc()
	}
	mc.b.requestProbe()
	for _, e := range q {
		ferr := err
		if e.cut {
			ferr = fmt.Errorf("%w: %w", backends.ErrPartialReply, err)
		}
		e.call.Sink.Done(e.call, ferr)
	}
}

// overdue reports why the connection should be given up on: a reply or a
// write pending for longer than the backend's timeouts.
func (mc *muxConn) overdue(now int64) error {
	cfg := mc.b.cfg
	if ws := mc.writeStart.Load(); ws != 0 && cfg.WriteTimeout > 0 && now-ws > int64(cfg.WriteTimeout) {
		return fmt.Errorf("%w: upstream not accepting writes for %s", backends.ErrTimeout, cfg.WriteTimeout.D())
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.deferredAt != 0 && now-mc.deferredAt > int64(100*time.Millisecond) && !mc.kicked {
		// A safety net: deferred requests are normally flushed by the
		// frontend at once.
		mc.b.lateFlushes.Inc()
		mc.kicked = true
		select {
		case mc.kick <- struct{}{}:
		default:
		}
	}
	if cfg.ReadTimeout > 0 && mc.head < len(mc.queue) && now-mc.queue[mc.head].sent > int64(cfg.ReadTimeout) {
		return fmt.Errorf("%w: no reply within %s", backends.ErrTimeout, cfg.ReadTimeout.D())
	}
	return nil
}

// breakConn marks the connection broken and closes it; the reader then
// fails the pending calls.
func (mc *muxConn) breakConn(err error) {
	mc.mu.Lock()
	if mc.broken == nil {
		mc.broken = err
	}
	mc.mu.Unlock()
	mc.nc.Close()
}

func itoa(i int) string {
	if i >= 0 && i < 10 {
		return string(rune('0' + i))
	}
	return fmt.Sprint(i)
}

var clockStart = time.Now()

// nanotime is a cheap monotonic clock.
func nanotime() int64 { return int64(time.Since(clockStart)) }
