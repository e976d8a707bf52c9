// Package fs is the `type: fs` blob backend: buckets and objects kept as
// files under a root directory, with S3's semantics (backends/blob).
//
// Every write streams into a temporary file beside the tree, is synced,
// and appears by rename: readers and a crash at any point see the old
// object or the new one, never a part. See README.md for the layout on
// disk and the guarantees.
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

func init() {
	backends.RegisterType("fs", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: fs` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Root is the directory that holds the buckets, one directory each;
	// default <data_dir>/objects. It is created if missing. One Mecha
	// process at a time may use a root.
	Root string `yaml:"root"`
	// MultipartMaxAge is how long a multipart upload may stay neither
	// completed nor aborted: a janitor then removes it and its parts.
	// 0 keeps unfinished uploads until a client aborts them.
	MultipartMaxAge configs.Duration `yaml:"multipart_max_age"`
	// Fsync makes every write reach the disk before it is acknowledged
	// (file, then directory). Off, writes are faster and a crash of Mecha
	// still loses nothing, but a crash of the machine may lose the most
	// recent writes.
	Fsync bool `yaml:"fsync"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{MultipartMaxAge: configs.Duration(24 * time.Hour), Fsync: true}
}

// Validate checks the values.
func (c *Config) Validate() error {
	if c.MultipartMaxAge < 0 {
		return configs.Errorf("multipart_max_age", "must not be negative (0: never expire)")
	}
	return nil
}

// Names at the top of the root, beside the buckets (bucket names start
// with a letter or digit, so none of these can be a bucket).
const (
	formatFile = ".mecha-fs.json" // how keys are encoded in this root
	lockName   = ".lock"          // locked while a store uses the root
	tmpDir     = ".tmp"           // files being written; emptied at start
	uploadsDir = ".uploads"       // multipart uploads, by bucket and id
	bucketFile = "~bucket.json"   // in each bucket's directory: its creation time
)

// How often the store checks that its root is usable (and, while it is
// not, tries to open it again).
const healthInterval = 5 * time.Second

// Store is the fs store.
type Store struct {
	cfg    *Config
	name   string
	log    *slog.Logger
	dir    string // the root directory, as configured
	health backends.HealthCell

	root     atomic.Pointer[os.Root]
	lockFile *os.File
	// fold is set when the root's file system ignores case: upper-case
	// letters are then escaped in names (names.go).
	fold bool
	// boot starts every version this process writes, so that the sweep
	// of orphans at start tells a crashed process's leftovers from files
	// being written now.
	boot string
	seq  atomic.Uint64
	// swept is closed when the sweep of orphans that opening the root
	// starts is over (tests wait on it).
	swept chan struct{}

	// bucketsMu orders bucket creation and deletion (write lock) with
	// every commit into a bucket (read lock).
	bucketsMu   sync.RWMutex
	keyLocks    [256]sync.Mutex // serialise commits to one key
	uploadLocks [64]sync.Mutex  // serialise parts, completion and abort of one upload

	lifeMu  sync.Mutex
	started bool
	openMu  sync.Mutex // orders opening the root with itself and Close
	stop    chan struct{}
	done    sync.WaitGroup

	puts, gets, deletes, written, expired, orphans metrics.Counter
}

var (
	_ blob.Store        = (*Store)(nil)
	_ metrics.Collector = (*Store)(nil)
)

// New builds the store; it opens its root in Start.
func New(cfg *Config, env backends.Env) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fs backend %s: %w", env.Name, err)
	}
	s := &Store{cfg: cfg, name: env.Name, log: env.Logger, dir: cfg.Root, stop: make(chan struct{}), swept: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.dir == "" {
		base := env.DataDir
		if base == "" {
			base = "./mecha-data"
		}
		s.dir = filepath.Join(base, "objects")
	}
	var b [4]byte
	rand.Read(b[:])
	s.boot = hex.EncodeToString(b[:])
	return s, nil
}

// Start opens the root. A root that cannot be used is not an error: the
// store reports DOWN with the reason, answers requests with
// ServiceUnavailable, and keeps trying.
func (s *Store) Start(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.started {
		return nil
	}
	s.started = true
	s.tryOpen()
	s.done.Add(1)
	go s.loop()
	return nil
}

// Close stops the background work and releases the root.
func (s *Store) Close() error {
	s.lifeMu.Lock()
	if !s.started {
		s.lifeMu.Unlock()
		return nil
	}
	s.started = false
	close(s.stop)
	s.lifeMu.Unlock()
	s.done.Wait()
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if r := s.root.Swap(nil); r != nil {
		r.Close()
	}
	if s.lockFile != nil {
		s.lockFile.Close() // releases the lock
		s.lockFile = nil
	}
	s.health.Set(backends.StateDown, "closed")
	return nil
}

// Health is UP while the root is usable; DOWN names the problem.
func (s *Store) Health() backends.Health { return s.health.Get() }

// tryOpen opens the root, unless it is open, and records the outcome in
// the health.
func (s *Store) tryOpen() {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.root.Load() != nil {
		return
	}
	if err := s.open(); err != nil {
		if s.health.Set(backends.StateDown, err.Error()) {
			s.log.Error("fs backend cannot use its root", "root", s.dir, "err", err)
		}
		return
	}
	s.health.Set(backends.StateUp, "")
	s.log.Info("fs backend ready", "root", s.dir, "fold_case", s.fold, "fsync", s.cfg.Fsync)
}

// open opens and locks the root, prepares its directories, empties the
// temporary directory of what a crash left, and starts the sweep of
// orphaned versions.
func (s *Store) open() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("root %s: %w", s.dir, err)
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("root %s: %w", s.dir, err)
	}
	fail := func(err error) error {
		r.Close()
		return fmt.Errorf("root %s: %w", s.dir, err)
	}
	lock, err := r.OpenFile(lockName, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return fail(fmt.Errorf("in use by another process (%v)", err))
	}
	fail = func(err error) error {
		lock.Close()
		r.Close()
		return fmt.Errorf("root %s: %w", s.dir, err)
	}
	// What a crash left half written is in .tmp: none of it was visible.
	if left, err := readDirNames(r, tmpDir); err == nil && len(left) > 0 {
		s.log.Info("fs backend removes files a previous run left half written", "root", s.dir, "files", len(left))
	}
	if err := r.RemoveAll(tmpDir); err != nil {
		return fail(err)
	}
	for _, d := range []string{tmpDir, uploadsDir} {
		if err := r.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fail(err)
		}
	}
	if err := s.loadFormat(r); err != nil {
		return fail(err)
	}
	s.lockFile = lock
	s.root.Store(r)
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		defer close(s.swept)
		s.sweepOrphans(r)
	}()
	return nil
}

// format is the root's format file: how keys are encoded in it.
type format struct {
	Format   int  `json:"format"`
	FoldCase bool `json:"fold_case"`
}

// loadFormat reads the root's format file, or writes it for a new root
// after probing whether the file system ignores case.
func (s *Store) loadFormat(r *os.Root) error {
	b, err := r.ReadFile(formatFile)
	if err == nil {
		var f format
		if err := json.Unmarshal(b, &f); err != nil || f.Format != 1 {
			return fmt.Errorf("%s: not a format this version understands: %s", formatFile, b)
		}
		s.fold = f.FoldCase
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	probe := tmpDir + "/case-probe"
	if err := r.WriteFile(probe, nil, 0o644); err != nil {
		return err
	}
	_, err = r.Stat(tmpDir + "/CASE-PROBE")
	s.fold = err == nil
	r.Remove(probe)
	b, _ = json.Marshal(format{Format: 1, FoldCase: s.fold})
	tmp := s.tempName("format")
	if err := s.writeFileSynced(r, tmp, b); err != nil {
		return err
	}
	if err := r.Rename(tmp, formatFile); err != nil {
		return err
	}
	return s.syncDir(r, ".")
}

// loop checks the root's health, reopens it while it is not usable, and
// runs the janitor.
func (s *Store) loop() {
	defer s.done.Done()
	check := time.NewTicker(healthInterval)
	defer check.Stop()
	var janitor <-chan time.Time
	if age := s.cfg.MultipartMaxAge.D(); age > 0 {
		t := time.NewTicker(min(max(age/8, time.Second), time.Hour))
		defer t.Stop()
		janitor = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-check.C:
			if s.root.Load() == nil {
				s.tryOpen()
			} else {
				s.checkHealth()
			}
		case now := <-janitor:
			if r := s.root.Load(); r != nil {
				s.expireUploads(r, now)
			}
		}
	}
}

// checkHealth checks that the root can still be written.
func (s *Store) checkHealth() {
	r := s.root.Load()
	if r == nil {
		return
	}
	probe := s.tempName("health")
	err := r.WriteFile(probe, nil, 0o644)
	if err == nil {
		err = r.Remove(probe)
	}
	if err != nil {
		if s.health.Set(backends.StateDown, fmt.Sprintf("root %s: %v", s.dir, err)) {
			s.log.Error("fs backend root is not writable", "root", s.dir, "err", err)
		}
		return
	}
	if s.health.Set(backends.StateUp, "") {
		s.log.Info("fs backend root is writable again", "root", s.dir)
	}
}

// fsroot returns the open root, or ServiceUnavailable.
func (s *Store) fsroot() (*os.Root, error) {
	if r := s.root.Load(); r != nil {
		return r, nil
	}
	detail := s.health.Get().Detail
	if detail == "" {
		detail = "not started"
	}
	return nil, &blob.Error{Code: "ServiceUnavailable", Status: 503, Message: "The object store is unavailable: " + detail}
}

// ioError turns a file system error into the S3 error to answer: a full
// disk is ErrStorageFull, anything else ErrInternal (logged with its
// cause, which the error keeps).
func (s *Store) ioError(op string, err error) error {
	var be *blob.Error
	switch {
	case errors.As(err, &be):
		return err
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %w (%v)", op, blob.ErrStorageFull, err)
	}
	s.log.Error("fs backend I/O error", "op", op, "err", err)
	return fmt.Errorf("%s: %w (%v)", op, blob.ErrInternal, err)
}

// tempName returns a new name in the temporary directory.
func (s *Store) tempName(what string) string {
	var b [8]byte
	rand.Read(b[:])
	return tmpDir + "/" + hex.EncodeToString(b[:]) + "." + what
}

// newVersion returns a version name no other write of this root uses.
func (s *Store) newVersion() string {
	return fmt.Sprintf("%s-%x", s.boot, s.seq.Add(1))
}

// writeFileSynced writes a small file, synced when configured.
func (s *Store) writeFileSynced(r *os.Root, name string, b []byte) error {
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && s.cfg.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.Remove(name)
	}
	return err
}

// syncDir makes the entries of a directory durable, when configured.
func (s *Store) syncDir(r *os.Root, dir string) error {
	if !s.cfg.Fsync {
		return nil
	}
	f, err := r.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// readDirNames lists the names in a directory of the root.
func readDirNames(r *os.Root, dir string) ([]string, error) {
	f, err := r.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// readDirEntries lists the entries of a directory of the root, with
// their types.
func readDirEntries(r *os.Root, dir string) ([]os.DirEntry, error) {
	f, err := r.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// parseEntry is parseName, and kindOther for a name whose kind does not
// match its type (another program's file with a name like a directory's).
func (s *Store) parseEntry(e os.DirEntry) (kind entryKind, part, version string) {
	kind, part, version = parseName(e.Name(), s.fold)
	switch {
	case (kind == kindDir || kind == kindCont) && !e.IsDir(),
		(kind == kindMeta || kind == kindData) && !e.Type().IsRegular():
		return kindOther, "", ""
	}
	return kind, part, version
}

// CollectMetrics exports the store's activity.
func (s *Store) CollectMetrics(w *metrics.Writer) {
	l := metrics.Label{Name: "backend", Value: s.name}
	w.Counter("mecha_fs_puts_total", "Objects written (puts, copies, completed uploads).", float64(s.puts.Load()), l)
	w.Counter("mecha_fs_gets_total", "Objects opened for reading.", float64(s.gets.Load()), l)
	w.Counter("mecha_fs_deletes_total", "Objects deleted.", float64(s.deletes.Load()), l)
	w.Counter("mecha_fs_written_bytes_total", "Bytes of object and part bodies written.", float64(s.written.Load()), l)
	w.Counter("mecha_fs_expired_uploads_total", "Multipart uploads removed by the janitor after multipart_max_age.", float64(s.expired.Load()), l)
	w.Counter("mecha_fs_orphans_removed_total", "Files a crash left behind, removed at start.", float64(s.orphans.Load()), l)
}
