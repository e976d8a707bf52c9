// Package netio gives TCP connections reads and writes that do not enter
// the Go scheduler's syscall state. A proxy's small reads and writes on
// loopback often take longer than the 20 µs after which the runtime hands
// the goroutine's P to another thread; that hand-off, not the syscall,
// then dominates (measured: 2.4 context switches per relayed MySQL query
// with net.Conn). The sockets stay non-blocking and registered with the
// netpoller, so deadlines, Close and waiting for readiness work as for any
// net.Conn.
package netio

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Conn is a TCP connection whose Read and Write use raw syscalls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// State of the call in progress, kept here so that the callbacks
	// given to RawConn are allocated once per connection.
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	rfunc func(uintptr) bool
	wbuf  []byte
	wn    int
	werr  syscall.Errno
	wfunc func(uintptr) bool
}

// Wrap returns c with raw-syscall I/O if it is a TCP connection, else c.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	nc := &Conn{TCPConn: tc, rc: rc}
	nc.rfunc = nc.doRead
	nc.wfunc = nc.doWrite
	return nc
}

func (c *Conn) doRead(fd uintptr) bool {
	n, e := Read(fd, c.rbuf)
	if e == syscall.EAGAIN {
		return false
	}
	c.rn, c.rerr = n, e
	return true
}

// Read reads like net.Conn's Read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.rfunc)
	c.rbuf = nil
	if err != nil {
		return 0, c.opError("read", err)
	}
	if c.rerr != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, e := Write(fd, c.wbuf[c.wn:])
		switch e {
		case syscall.EAGAIN:
			return false
		case 0:
			c.wn += n
			continue
		}
		c.werr = e
		return true
	}
	return true
}

// Write writes all of p like net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.wfunc)
	c.wbuf = nil
	if err == nil && c.werr != 0 {
		err = os.NewSyscallError("write", c.werr)
	}
	if err != nil {
		return c.wn, c.opError("write", err)
	}
	return c.wn, nil
}

func (c *Conn) opError(op string, err error) error {
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads from a non-blocking fd without entering the scheduler's
// syscall state (see the package comment); EINTR is retried.
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(ptr(p)), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

// Write writes to a non-blocking fd like Read.
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(ptr(p)), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}
