//go:build unix

package mysql

import (
	"net"
	"syscall"
)

// peekIdle reports whether an idle connection is still open with nothing
// unread: a non-blocking MSG_PEEK finds no data and no end of stream.
func peekIdle(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		case err != nil, n >= 0:
			// Data, end of stream (n == 0) or an error: not idle.
			alive = false
		}
		return true
	})
	return alive && err == nil
}
