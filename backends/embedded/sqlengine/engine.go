// Package sqlengine is an embedded MySQL-dialect SQL engine: the server of
// go-mysql-server with its in-memory storage, run inside the Mecha process
// on an in-process listener, with every statement serialised by one global
// lock and the data kept in a snapshot file that is rewritten at most once
// per interval. Clients reach it only through Engine.Dial.
package sqlengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/analyzer"
	"github.com/dolthub/vitess/go/mysql"
)

// Defaults of Options.
const (
	DefaultVersion          = "8.0.31-" + versionPostfix
	DefaultLockWaitTimeout  = 50 * time.Second
	DefaultSnapshotInterval = time.Second
	// DefaultDatabase is created when the engine starts with no data, as a
	// fresh MariaDB has a `test` database.
	DefaultDatabase = "test"
)

// versionPostfix is what VERSION() appends to go-mysql-server's @@version
// (8.0.31).
const versionPostfix = "mecha-embedded"

// snapshotFile is the name of the snapshot inside Options.Dir.
const snapshotFile = "snapshot.sql"

// lockFileName is the file locked while an engine uses a directory.
const lockFileName = "LOCK"

// Options configure the engine.
type Options struct {
	// Dir is where the data is kept (snapshot.sql); it is created with
	// mode 0700 if missing. Empty keeps the data in memory only.
	Dir string
	// Version is the server version announced in the handshake. Default
	// DefaultVersion, the same text VERSION() returns.
	Version string
	// LockWaitTimeout is how long a statement waits for the engine while
	// another connection runs a statement or holds a transaction open,
	// before it fails with error 1205 (as innodb_lock_wait_timeout).
	// Default 50s.
	LockWaitTimeout time.Duration
	// SnapshotInterval is the longest time between a write and the
	// snapshot that holds it (as Redis' appendfsync everysec): a crash
	// loses at most about the writes of the last interval. Default 1s; a
	// negative value writes snapshots only at Close.
	SnapshotInterval time.Duration
	// Logger receives the engine's events; go-mysql-server's and vitess'
	// own log lines are passed to it too. Default slog.Default().
	Logger *slog.Logger
}

// Stats are counters for metrics.
type Stats struct {
	// SnapshotsWritten counts snapshots written since Open.
	SnapshotsWritten uint64
	// SnapshotErrors counts snapshots that failed (they are retried at the
	// next interval).
	SnapshotErrors uint64
	// SnapshotBytes counts the bytes of all snapshots written since Open.
	SnapshotBytes uint64
	// LastSnapshotBytes is the size of the latest snapshot.
	LastSnapshotBytes uint64
	// LastSnapshotDuration is how long the latest snapshot took, of which
	// LastSnapshotLockHeld with the global lock held.
	LastSnapshotDuration time.Duration
	LastSnapshotLockHeld time.Duration
	// LastSnapshotAt is when the latest snapshot was completed.
	LastSnapshotAt time.Time
	// LockWaits counts statements that had to wait for the global lock;
	// LockWaitTimeouts those that gave up with error 1205.
	LockWaits        uint64
	LockWaitTimeouts uint64
}

// Engine is a running embedded SQL engine.
type Engine struct {
	opts     Options
	log      *slog.Logger
	provider *memory.DbProvider
	sqle     *sqle.Engine
	server   *server.Server
	listener *memListener
	lock     *globalLock
	dirLock  *os.File

	dirty    atomic.Bool
	snapMu   sync.Mutex // one snapshot at a time
	stop     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	closeErr error

	statsMu sync.Mutex
	stats   Stats
}

// Open loads the snapshot in opts.Dir, if there is one, and starts the
// in-process server. A snapshot that cannot be read or replayed is an
// error naming the file.
func Open(opts Options) (*Engine, error) {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.LockWaitTimeout <= 0 {
		opts.LockWaitTimeout = DefaultLockWaitTimeout
	}
	if opts.SnapshotInterval == 0 {
		opts.SnapshotInterval = DefaultSnapshotInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	installLogBridge(opts.Logger)

	e := &Engine{
		opts:     opts,
		log:      opts.Logger,
		listener: newMemListener(),
		lock:     newGlobalLock(),
		stop:     make(chan struct{}),
	}
	if err := e.start(); err != nil {
		e.cleanup()
		return nil, err
	}
	return e, nil
}

func (e *Engine) start() error {
	if e.opts.Dir != "" {
		if err := os.MkdirAll(e.opts.Dir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(e.opts.Dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("open lock file: %w", err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return fmt.Errorf("data dir %s is in use by another engine: %w", e.opts.Dir, err)
		}
		e.dirLock = f
	}

	e.provider = memory.NewDBProvider()
	e.provider.WithOption(memory.NativeIndexProvider(true))
	e.sqle = sqle.New(analyzer.NewDefaultWithVersion(e.provider), &sqle.Config{VersionPostfix: versionPostfix})

	loaded, err := e.load()
	if err != nil {
		return err
	}
	if !loaded {
		ctx := e.internalContext(context.Background())
		if err := e.provider.CreateDatabase(ctx, DefaultDatabase); err != nil {
			return fmt.Errorf("create database %s: %w", DefaultDatabase, err)
		}
		e.markDirty()
	}

	cfg := server.Config{
		Protocol: "tcp",
		Address:  "localhost",
		Listener: e.listener,
		Version:  e.opts.Version,
	}
	wrap := func(h mysql.Handler) (mysql.Handler, error) {
		return &lockingHandler{inner: h, e: e}, nil
	}
	srv, err := server.NewServerWithHandler(cfg, e.sqle, sql.NewContext, memory.NewSessionBuilder(e.provider), nil, wrap)
	if err != nil {
		return fmt.Errorf("start sql server: %w", err)
	}
	e.server = srv

	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = srv.Start() // returns when the listener is closed
	}()
	if e.opts.Dir != "" && e.opts.SnapshotInterval > 0 {
		e.wg.Add(1)
		go e.snapshotLoop()
	}
	return nil
}

// Dial returns a new client connection to the engine. The client speaks
// the MySQL protocol on it, starting with the server's handshake; user
// root with an empty password logs in (go-mysql-server checks no
// credentials when it has no user table, so any user name and password
// are accepted: only code in this process can dial).
func (e *Engine) Dial(ctx context.Context) (net.Conn, error) {
	c, err := e.listener.Dial(ctx)
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, fmt.Errorf("dial embedded sql engine: engine closed: %w", err)
		}
		return nil, fmt.Errorf("dial embedded sql engine: %w", err)
	}
	return c, nil
}

// Close stops the engine: no new connections, open ones are closed (their
// uncommitted transactions discarded), statements in progress are
// cancelled, and a final snapshot is written. It is safe to call more than
// once.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return e.closeErr
	}
	e.closed = true

	close(e.stop)
	e.listener.Close()
	e.lock.close()
	e.listener.closeAll()
	// Closing a connection does not interrupt its statement: cancel the
	// statements still running, as KILL QUERY does.
	for _, p := range e.sqle.ProcessList.Processes() {
		e.sqle.ProcessList.Kill(p.Connection)
	}
	e.wg.Wait()

	// Wait for the commands still finishing and keep the lock: nothing runs
	// after this.
	if err := e.lock.acquire(context.Background(), internalOwner, 0); err != nil {
		e.closeErr = err
	} else if e.opts.Dir != "" && (e.dirty.Load() || !e.snapshotExists()) {
		if err := e.snapshotLocked(); err != nil {
			e.closeErr = err
		}
	}
	e.cleanup()
	return e.closeErr
}

// cleanup releases what start acquired; it also undoes a half-finished
// start.
func (e *Engine) cleanup() {
	if e.server != nil {
		_ = e.server.Close()
	}
	e.listener.Close()
	if e.sqle != nil {
		_ = e.sqle.Close()
	}
	if e.dirLock != nil {
		e.dirLock.Close()
		e.dirLock = nil
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.statsMu.Lock()
	s := e.stats
	e.statsMu.Unlock()
	s.LockWaits = e.lock.waits.Load()
	s.LockWaitTimeouts = e.lock.timeouts.Load()
	return s
}

// markDirty records that data may have changed since the last snapshot.
func (e *Engine) markDirty() { e.dirty.Store(true) }

// internalContext is a context with a session of its own, for the engine's
// own statements (loading and writing snapshots).
func (e *Engine) internalContext(ctx context.Context) *sql.Context {
	sess := memory.NewSession(sql.NewBaseSession(), e.provider)
	return sql.NewContext(ctx, sql.WithSession(sess))
}
