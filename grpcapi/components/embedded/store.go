// Package embedded holds Mecha's own components of the gRPC API, `type:
// embedded` for every capability: configuration, locks, pub/sub and
// sequencers kept in a bbolt file under Mecha's data directory, so that
// the API works on a machine with no other store. See README.md.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Type is the `type:` of every embedded component.
const Type = "embedded"

// StoreOptions are the keys every embedded component has.
type StoreOptions struct {
	// Path is the component's database file; default
	// <data_dir>/grpc/<capability>/<component name>.db.
	Path string `yaml:"path"`
	// Sync makes every write reach the disk (fsync) before it is
	// acknowledged (the default). With false, the OS writes it back when
	// it likes: a crash of Mecha loses nothing, a crash of the machine
	// may lose the last writes.
	Sync bool `yaml:"sync"`
	// OpenTimeout is how long Start waits for the file while another
	// process (another Mecha on the same data directory) has it open,
	// before it fails (default 1s).
	OpenTimeout configs.Duration `yaml:"open_timeout"`
}

func defaultStoreOptions() StoreOptions {
	return StoreOptions{Sync: true, OpenTimeout: configs.Duration(time.Second)}
}

// Validate checks the values.
func (o *StoreOptions) Validate() error {
	if o.OpenTimeout <= 0 {
		return configs.Errorf("open_timeout", "must be positive")
	}
	return nil
}

// checkBase refuses metadata: the embedded components have keys of their
// own instead.
func checkBase(b *component.Base) error {
	if len(b.Metadata) > 0 {
		return configs.Errorf("metadata", "the embedded component takes no metadata; its options are keys of their own (path, sync, ...)")
	}
	return nil
}

var errClosed = errors.New("component is closed")

// base is what every embedded component is made of: a bbolt file opened
// in Start, a committer that groups concurrent writes into shared
// transactions, and health.
type base struct {
	capability component.Capability
	opts       StoreOptions
	path       string
	log        *slog.Logger
	health     backends.HealthCell
	buckets    [][]byte

	mu      sync.Mutex
	db      *bolt.DB
	c       *committer
	closed  bool
	closing atomic.Bool // set first thing in close, read by the committer
}

func newBase(capability component.Capability, opts StoreOptions, env component.Env, buckets ...string) (*base, error) {
	path := opts.Path
	if path == "" {
		if env.Name == "" || env.Name == "." || env.Name == ".." || strings.ContainsAny(env.Name, `/\`+"\x00") {
			return nil, fmt.Errorf("embedded %s component: name %q cannot be a file name; set path", capability, env.Name)
		}
		dir := env.DataDir
		if dir == "" {
			dir = "mecha-data"
		}
		path = filepath.Join(dir, "grpc", string(capability), env.Name+".db")
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &base{capability: capability, opts: opts, path: path, log: log}
	for _, name := range buckets {
		b.buckets = append(b.buckets, []byte(name))
	}
	return b, nil
}

// Path is the component's database file.
func (b *base) Path() string { return b.path }

// Health reports UP while the file is open.
func (b *base) Health() backends.Health { return b.health.Get() }

// start opens the file, creates the buckets and starts the committer.
func (b *base) start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if b.db != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(b.path), 0o755); err != nil {
		return fmt.Errorf("embedded %s: %w", b.capability, err)
	}
	timeout := b.opts.OpenTimeout.D()
	if timeout <= 0 {
		timeout = time.Second
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	db, err := bolt.Open(b.path, 0o600, &bolt.Options{
		Timeout:        timeout,
		NoSync:         !b.opts.Sync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("open %s: the file is in use by another process (another Mecha with the same data_dir?); gave up after %v", b.path, timeout)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", b.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range b.buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("open %s: %w", b.path, err)
	}
	b.db = db
	b.c = newCommitter(db, b)
	b.health.Set(backends.StateUp, "")
	return nil
}

// close stops the committer (after it committed what was queued) and
// closes the file; closing twice is fine.
func (b *base) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.closing.Store(true)
	b.health.Set(backends.StateDown, "closed")
	if b.db == nil {
		return nil
	}
	b.c.close()
	err := b.db.Close()
	if err != nil {
		return fmt.Errorf("close %s: %w", b.path, err)
	}
	return nil
}

func (b *base) committer() (*committer, *bolt.DB, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil || b.closed {
		return nil, nil, component.Unavailable(errClosed)
	}
	return b.c, b.db, nil
}

// view runs fn in a read transaction.
func (b *base) view(fn func(tx *bolt.Tx) error) error {
	_, db, err := b.committer()
	if err != nil {
		return err
	}
	if err := db.View(fn); err != nil {
		return b.storeErr(err)
	}
	return nil
}

// update runs fn in a write transaction shared with concurrent callers,
// and after on the committer's goroutine once the transaction is durable,
// in commit order. fn may run more than once (when another function of
// its transaction fails, each is run again on its own): it must compute
// its outcome afresh on each run, and write nothing when it returns an
// error. Outcomes that are not failures of the store (a lock that is
// held, a version that does not match) are recorded by fn and it returns
// nil.
func (b *base) update(fn func(tx *bolt.Tx) error, after func()) error {
	c, _, err := b.committer()
	if err != nil {
		return err
	}
	if err := c.submit(fn, after); err != nil {
		return b.storeErr(err)
	}
	return nil
}

// storeErr wraps a failure of the file as ErrUnavailable.
func (b *base) storeErr(err error) error {
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err // fn's own error, returned as it is
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, errClosed) {
		return component.Unavailable(errClosed)
	}
	return component.Unavailable(fmt.Errorf("%s: %w", b.path, err))
}

// committer groups the write transactions of concurrent callers: while
// one transaction commits (and syncs), the functions that arrive queue up
// and the next transaction runs them all, so that they share one fsync.
type committer struct {
	commits atomic.Int64 // transactions committed, for tests
	db      *bolt.DB
	b       *base
	mu      sync.Mutex
	queue   []*op
	shut    bool
	kick    chan struct{}
	done    chan struct{}
}

type op struct {
	fn    func(tx *bolt.Tx) error
	after func()
	res   chan error
}

// fnError is an error a function returned (as opposed to a failure to
// commit).
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

const maxOpsPerTx = 1000

func newCommitter(db *bolt.DB, b *base) *committer {
	c := &committer{db: db, b: b, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) submit(fn func(tx *bolt.Tx) error, after func()) error {
	o := &op{fn: fn, after: after, res: make(chan error, 1)}
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return errClosed
	}
	c.queue = append(c.queue, o)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return <-o.res
}

// close commits what is queued and stops.
func (c *committer) close() {
	c.mu.Lock()
	c.shut = true
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxOpsPerTx)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		shut, more := c.shut, len(c.queue) > 0
		c.mu.Unlock()
		if len(batch) == 0 {
			if shut {
				return
			}
			<-c.kick
			continue
		}
		c.commit(batch)
		if more {
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}
	}
}

func (c *committer) commit(batch []*op) {
	var failed *op
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			if err := o.fn(tx); err != nil {
				failed = o
				return &fnError{err}
			}
		}
		return nil
	})
	if err == nil {
		c.commits.Add(1)
		c.ok()
		for _, o := range batch {
			if o.after != nil {
				o.after()
			}
			o.res <- nil
		}
		return
	}
	if failed == nil {
		c.b.health.Set(backends.StateDown, err.Error())
		c.b.log.Error("embedded store: commit failed", "path", c.b.path, "err", err)
	}
	if len(batch) == 1 {
		batch[0].res <- err
		return
	}
	// One function failed, or the commit did: run each on its own, so that
	// one bad write does not fail the others.
	for _, o := range batch {
		err := c.db.Update(func(tx *bolt.Tx) error {
			if err := o.fn(tx); err != nil {
				return &fnError{err}
			}
			return nil
		})
		if err == nil {
			c.ok()
			if o.after != nil {
				o.after()
			}
		}
		o.res <- err
	}
}

func (c *committer) ok() {
	if h := c.b.health.Get(); h.State != backends.StateUp && !c.b.closing.Load() {
		c.b.health.Set(backends.StateUp, "")
	}
}
