package sqlengine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dolthub/vitess/go/mysql"
)

// internalOwner is the lock owner id of the engine's own work (snapshots).
// Client connection ids start at 1.
const internalOwner uint32 = 0

// errLockWaitTimeout is what a client waiting too long for the engine gets,
// in the words and numbers of InnoDB's lock wait timeout.
func errLockWaitTimeout() error {
	return mysql.NewSQLError(mysql.ERLockWaitTimeout, mysql.SSUnknownSQLState,
		"Lock wait timeout exceeded; try restarting transaction")
}

// errShutdown is what a client waiting for the engine gets when it closes.
func errShutdown() error {
	return mysql.NewSQLError(mysql.ERServerShutdown, mysql.SSServerShutdown, "Server shutdown in progress")
}

// globalLock serialises all statements of the engine. It is owned by one
// connection at a time: for the duration of a command, and from command to
// command while that connection has a transaction open. The owner never
// waits: its next command inside a transaction finds the lock already its
// own.
type globalLock struct {
	sem    chan struct{} // holds one token while the lock is owned
	closed chan struct{}
	once   sync.Once

	mu     sync.Mutex
	held   bool
	owner  uint32
	active int  // commands of the owner in progress
	keep   bool // the owner has a transaction open

	waits    atomic.Uint64
	timeouts atomic.Uint64
}

func newGlobalLock() *globalLock {
	return &globalLock{sem: make(chan struct{}, 1), closed: make(chan struct{})}
}

// acquire makes id the owner for one more command. It waits at most timeout
// (no limit if timeout <= 0) and returns errLockWaitTimeout after that,
// errShutdown once the lock is closed, or ctx's error.
func (l *globalLock) acquire(ctx context.Context, id uint32, timeout time.Duration) error {
	l.mu.Lock()
	if l.held && l.owner == id {
		l.active++
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()

	// Once the engine closes, clients get no more turns; the engine's own
	// work (the last snapshot) still does.
	closed := l.closed
	if id == internalOwner {
		closed = nil
	}
	select {
	case <-closed:
		return errShutdown()
	default:
	}

	select {
	case l.sem <- struct{}{}:
	default:
		if id != internalOwner {
			l.waits.Add(1)
		}
		var expired <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case l.sem <- struct{}{}:
		case <-expired:
			if id != internalOwner {
				l.timeouts.Add(1)
			}
			return errLockWaitTimeout()
		case <-closed:
			return errShutdown()
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	l.mu.Lock()
	l.held, l.owner, l.active, l.keep = true, id, 1, false
	l.mu.Unlock()
	return nil
}

// release ends one command of id. keep says whether id still has a
// transaction open; the lock passes on when no command of id is in progress
// and keep is false.
func (l *globalLock) release(id uint32, keep bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || l.owner != id {
		return
	}
	l.active--
	l.keep = keep
	if l.active <= 0 && !l.keep {
		l.free()
	}
}

// drop gives up id's ownership whatever its transaction state: the
// connection closed or reset its session. Should a command of id still be
// in progress, the lock passes on when it ends.
func (l *globalLock) drop(id uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || l.owner != id {
		return
	}
	l.keep = false
	if l.active <= 0 {
		l.free()
	}
}

// owns reports whether id owns the lock.
func (l *globalLock) owns(id uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held && l.owner == id
}

// free passes the lock on; l.mu is held.
func (l *globalLock) free() {
	l.held, l.owner, l.active, l.keep = false, 0, 0, false
	<-l.sem
}

// close makes every client waiter, present and future, fail with
// errShutdown.
func (l *globalLock) close() {
	l.once.Do(func() { close(l.closed) })
}
