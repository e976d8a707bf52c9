package netio

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// HangupWatcher reports connections whose peer has closed them (FIN, RST)
// as soon as the kernel sees it, without reading from them: a proxy learns
// that an idle upstream session ended while its client is idle too. It
// watches for EPOLLRDHUP, never for data, so that busy connections cost
// it nothing.
type HangupWatcher struct {
	epfd   int
	notify func(tag uint32)
	closed atomic.Bool
	done   sync.WaitGroup
}

// NewHangupWatcher starts a watcher that calls notify (on its own
// goroutine) with the tag of each connection that hangs up.
func NewHangupWatcher(notify func(tag uint32)) (*HangupWatcher, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &HangupWatcher{epfd: fd, notify: notify}
	w.done.Add(1)
	go w.loop()
	return w, nil
}

func (w *HangupWatcher) loop() {
	defer w.done.Done()
	events := make([]syscall.EpollEvent, 64)
	for !w.closed.Load() {
		// A bounded wait, so that Close needs no wake-up descriptor.
		n, err := syscall.EpollWait(w.epfd, events, 500)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			w.notify(uint32(ev.Fd))
		}
	}
}

// Add watches c (a TCP connection, possibly wrapped by Wrap) under tag
// and returns the function that stops watching it, to be called before c
// is closed. It returns nil if c cannot be watched.
func (w *HangupWatcher) Add(c net.Conn, tag uint32) func() {
	sc, ok := c.(syscall.Conn)
	if w == nil || !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	if fd < 0 {
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | 1<<31 /* EPOLLET */, Fd: int32(tag)}
	if syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev) != nil {
		return nil
	}
	return func() { _ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, fd, nil) }
}

// Close stops the watcher.
func (w *HangupWatcher) Close() {
	if w == nil || w.closed.Swap(true) {
		return
	}
	w.done.Wait()
	_ = syscall.Close(w.epfd)
}
