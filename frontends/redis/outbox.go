package redis

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/frontends/netio"
)

// outbox serialises everything written to one client: replies a
// backend's reader goroutine relays as they arrive, pushes from a
// subscription, and the replies the connection's own goroutine produces.
// A write is attempted without blocking; what the socket does not take is
// queued and finished by a flusher goroutine, so that a slow client never
// holds up a reader shared with other clients. A client whose queue grows
// past the limit is disconnected, as Redis does with its output buffer
// limits.
type outbox struct {
	nc    net.Conn
	raw   syscall.RawConn // nil for TLS: every write then goes through the flusher
	limit int
	// timeout bounds how long the flusher waits on a client that reads
	// nothing.
	timeout func() time.Duration
	onDead  func()
	onBytes func(n int)

	mu       sync.Mutex
	wfn      func(fd uintptr) bool
	wb       []byte // the write in progress (tryWrite)
	wn       int
	werr     error
	queue    []byte
	flushing bool
	dead     bool
	idle     *sync.Cond // signalled when the queue empties
}

func newOutbox(nc net.Conn, limit int, timeout func() time.Duration, onDead func(), onBytes func(int)) *outbox {
	o := &outbox{nc: nc, limit: limit, timeout: timeout, onDead: onDead, onBytes: onBytes}
	o.idle = sync.NewCond(&o.mu)
	o.wfn = o.writeFD
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			o.raw = rc
		}
	}
	return o
}

// write sends b, or queues it. It never blocks on the client. It reports
// false once the client is gone.
func (o *outbox) write(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead {
		return false
	}
	if !o.flushing && o.raw != nil {
		n, err := o.tryWrite(b)
		if n > 0 {
			o.onBytes(n)
		}
		if err != nil {
			o.die()
			return false
		}
		b = b[n:]
		if len(b) == 0 {
			return true
		}
	}
	if len(o.queue)+len(b) > o.limit {
		o.die()
		return false
	}
	o.queue = append(o.queue, b...)
	if !o.flushing {
		o.flushing = true
		go o.flush()
	}
	return true
}

// tryWrite writes what the socket takes now. It runs with mu held; the
// write function is made once so that no closure is allocated per write.
func (o *outbox) tryWrite(b []byte) (int, error) {
	o.wb, o.wn, o.werr = b, 0, nil
	if err := o.raw.Write(o.wfn); err != nil {
		o.wb = nil
		return o.wn, err
	}
	o.wb = nil
	return o.wn, o.werr
}

func (o *outbox) writeFD(fd uintptr) bool {
	for len(o.wb) > 0 {
		m, e := netio.Write(fd, o.wb)
		if m > 0 {
			o.wn += m
			o.wb = o.wb[m:]
		}
		if e != 0 {
			if e != syscall.EAGAIN {
				o.werr = e
			}
			break
		}
		if m == 0 {
			break
		}
	}
	return true // never wait for writability here
}

// flush writes the queue until it is empty, blocking on the client.
func (o *outbox) flush() {
	o.mu.Lock()
	for len(o.queue) > 0 && !o.dead {
		buf := o.queue
		o.queue = nil
		o.mu.Unlock()
		if t := o.timeout(); t > 0 {
			o.nc.SetWriteDeadline(time.Now().Add(t))
		}
		n, err := o.nc.Write(buf)
		o.onBytes(n)
		o.mu.Lock()
		if err != nil {
			o.die()
		} else if len(o.queue) == 0 && cap(buf) <= 64<<10 {
			o.queue = buf[:0] // reuse
		}
	}
	o.flushing = false
	o.idle.Broadcast()
	o.mu.Unlock()
}

// wait blocks until everything written so far has reached the socket.
func (o *outbox) wait() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.flushing && !o.dead {
		o.idle.Wait()
	}
	return !o.dead
}

// die marks the client gone; called with mu held.
func (o *outbox) die() {
	if o.dead {
		return
	}
	o.dead = true
	o.queue = nil
	o.idle.Broadcast()
	go o.onDead()
}

var errClientGone = errors.New("client gone")

// backlog is how many bytes wait for a slow client.
func (o *outbox) backlog() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue)
}
