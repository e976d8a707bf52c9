//go:build linux

package redis

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/mecha-gateway/mecha/frontends/netio"
)

// readiness is an edge-triggered epoll instance of the frontend's own that
// tells client goroutines when their socket has data.
//
// Go's netpoller must try every read before it waits (it forgets readiness
// when a read begins), so a client that is waiting for its reply costs a
// read that fails with EAGAIN on every request. With this set, a client
// goroutine that has drained its socket (a short read) parks until the
// kernel reports new data and then reads once. The epoll descriptor is
// itself watched by Go's netpoller, so one goroutine dispatches every
// client's readiness without holding a thread.
type readiness struct {
	epfd int
	file *os.File
	raw  syscall.RawConn

	mu    sync.Mutex
	conns map[int32]*conn
}

func newReadiness() (*readiness, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "mecha-epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &readiness{epfd: epfd, file: f, raw: raw, conns: map[int32]*conn{}}, nil
}

// run dispatches readiness until the set is closed.
func (r *readiness) run() {
	events := make([]syscall.EpollEvent, 128)
	// The callback never returns true: RawRead waits on the epoll
	// descriptor between calls without forgetting readiness, so no event
	// is lost between draining the set and waiting again.
	r.raw.Read(func(uintptr) bool {
		for {
			n, err := syscall.EpollWait(r.epfd, events, 0)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 {
				return false
			}
			r.mu.Lock()
			for _, ev := range events[:n] {
				if c := r.conns[ev.Fd]; c != nil {
					if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
						// The peer closed: reads return EOF once the data
						// is consumed, and no further edge will say so.
						c.hup.Store(true)
					}
					c.wakeFromPoller()
				}
			}
			r.mu.Unlock()
			if n < len(events) {
				// The set was empty when read: whatever arrives from now
				// on wakes the netpoller, so there is no need to ask
				// again (a system call per round saved).
				return false
			}
		}
	})
}

// add registers a plain TCP client. It reports false when the connection
// cannot be watched this way (it then uses ordinary reads).
func (r *readiness) add(c *conn) bool {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	var fd int32 = -1
	raw.Control(func(f uintptr) { fd = int32(f) })
	if fd < 0 {
		return false
	}
	r.mu.Lock()
	r.conns[fd] = c
	r.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: fd}
	if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		r.mu.Lock()
		delete(r.conns, fd)
		r.mu.Unlock()
		return false
	}
	c.raw, c.fd = raw, fd
	return true
}

// remove unregisters a client before its socket closes.
func (r *readiness) remove(c *conn) {
	if c.raw == nil {
		return
	}
	r.mu.Lock()
	if r.conns[c.fd] == c {
		delete(r.conns, c.fd)
		c.raw.Control(func(f uintptr) {
			syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, int(f), nil)
		})
	}
	r.mu.Unlock()
}

func (r *readiness) close() { r.file.Close() }

// epollET is EPOLLET as the unsigned flag the kernel takes (the syscall
// package declares it negative).
const epollET = 1 << 31

// readRaw reads from a registered client: it waits for the kernel's word
// that data is there unless the previous read may have left some.
func (c *conn) readRaw(buf []byte) (int, error) {
	for {
		if !c.maybeMore && !c.hup.Load() {
			// A client that waits has finished its part of any round
			// (after a stale wake-up it may still hold one).
			c.endRound()
			c.waiting.Store(true)
			select {
			case <-c.readable:
			case <-c.stopRead:
				c.waiting.Store(false)
				return 0, errStopped
			case <-c.idleTimer():
				c.waiting.Store(false)
				return 0, errIdle
			}
			c.waiting.Store(false)
		}
		c.rbuf = buf
		if c.rfn == nil {
			c.rfn = c.readFD // made once: no closure per read
		}
		err := c.raw.Read(c.rfn)
		c.rbuf = nil
		n, rerr := c.rn, c.rerr
		if err != nil {
			return 0, err
		}
		if rerr == syscall.EAGAIN {
			c.maybeMore = false // a stale wake-up: wait for the next
			continue
		}
		if rerr != nil {
			return 0, rerr
		}
		if n == 0 {
			return 0, errEOF
		}
		// A short read emptied the socket; a full one may have left data,
		// for which no new edge will come.
		c.maybeMore = n == len(buf)
		return n, nil
	}
}

func (c *conn) readFD(fd uintptr) bool {
	n, e := netio.Read(fd, c.rbuf)
	c.rn, c.rerr = n, nil
	if e != 0 {
		c.rerr = e
	}
	return true
}

// wakeFromPoller wakes a client whose socket has data. A client that was
// parked waiting joins the current round: the frontend sends the round's
// requests upstream together once every client woken in it has submitted
// (see endRound).
func (c *conn) wakeFromPoller() {
	if c.waiting.CompareAndSwap(true, false) {
		c.s.round.Add(1)
		c.counted.Store(true)
	}
	c.wakeRead()
}

var (
	errStopped = errors.New("connection stopped")
	errIdle    = errors.New("idle timeout")
	errEOF     = errors.New("EOF")
)
