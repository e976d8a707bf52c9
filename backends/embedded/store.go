// Package embedded is the `type: embedded` backend: a Redis-compatible
// store inside Mecha — strings, hashes, lists, sets and sorted sets in
// sixteen databases, with expiry and an append-only log on disk — that the
// Redis frontend serves through the translation layer (translate/redis).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

func init() {
	backends.RegisterType("embedded", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: embedded` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Dir holds the append-only log; default <data_dir>/<backend name>.
	Dir string `yaml:"dir"`
	// Persistence turns the append-only log on (the default) or off.
	Persistence *bool `yaml:"persistence"`
	// Fsync is when the log reaches the disk: everysec (at most the last
	// second is lost in a crash), always (nothing is), or no (the OS
	// decides).
	Fsync string `yaml:"fsync"`
	// RewriteMinSize and RewritePercentage trigger compaction of the log
	// when it is larger than RewriteMinSize and grew by RewritePercentage
	// since the last compaction (Redis' auto-aof-rewrite-*).
	RewriteMinSize    configs.Size `yaml:"rewrite_min_size"`
	RewritePercentage int          `yaml:"rewrite_percentage"`
	// Databases is the number of logical databases.
	Databases int `yaml:"databases"`
	// SQL configures the MySQL-dialect engine, used when a MySQL frontend
	// is served from this backend.
	SQL SQLConfig `yaml:"sql"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{Fsync: "everysec", RewriteMinSize: 64 << 20, RewritePercentage: 100, Databases: 16, SQL: defaultSQLConfig()}
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	switch c.Fsync {
	case "everysec", "always", "no":
	default:
		errs = append(errs, configs.Errorf("fsync", "must be everysec, always or no, not %q", c.Fsync))
	}
	if c.Databases < 1 || c.Databases > 1<<16 {
		errs = append(errs, configs.Errorf("databases", "must be between 1 and 65536"))
	}
	if c.RewritePercentage < 0 {
		errs = append(errs, configs.Errorf("rewrite_percentage", "must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) persistent() bool { return c.Persistence == nil || *c.Persistence }

// Store is the embedded store. One mutex serialises transactions, as
// Redis' single thread does; commands are short, and Mecha runs few
// threads.
type Store struct {
	cfg    *Config
	name   string
	log    *slog.Logger
	dir    string
	health backends.HealthCell

	mu      sync.Mutex
	dbs     []*database
	tx      tx
	hooks   []func(kv.TypedTx, []kv.DBKey)
	watched map[kv.DBKey]*watch
	clock   uint64 // bumps on every watched change

	aof         *aof
	extraConfig map[string]string
	sql         sqlSide

	stop chan struct{}
	done sync.WaitGroup

	expired metrics.Counter
	hits    metrics.Counter
	misses  metrics.Counter
	writes  metrics.Counter
	started atomic.Bool
}

type watch struct {
	refs    int
	version uint64
}

// database is one of the store's logical databases.
type database struct {
	keys     *dict
	volatile map[*entry]struct{} // keys with an expiry
}

var (
	_ kv.Store          = (*Store)(nil)
	_ kv.Notifier       = (*Store)(nil)
	_ kv.Inspector      = (*Store)(nil)
	_ metrics.Collector = (*Store)(nil)
)

// New builds the store; it loads its log in Start.
func New(cfg *Config, env backends.Env) (*Store, error) {
	s := &Store{cfg: cfg, name: env.Name, log: env.Logger, watched: map[kv.DBKey]*watch{}, stop: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.dir = cfg.Dir
	if s.dir == "" {
		base := env.DataDir
		if base == "" {
			base = "./mecha-data"
		}
		s.dir = filepath.Join(base, env.Name)
	}
	s.dbs = make([]*database, cfg.Databases)
	for i := range s.dbs {
		s.dbs[i] = newDatabase()
	}
	s.tx.s = s
	return s, nil
}

func newDatabase() *database {
	return &database{keys: newDict(), volatile: map[*entry]struct{}{}}
}

// Start loads the log and starts expiring keys.
func (s *Store) Start(ctx context.Context) error {
	if s.cfg.persistent() {
		a, err := openAOF(s, s.dir)
		if err != nil {
			s.health.Set(backends.StateDown, err.Error())
			return fmt.Errorf("embedded store %s: %w", s.name, err)
		}
		s.aof = a
	}
	s.started.Store(true)
	s.health.Set(backends.StateUp, "")
	s.done.Add(1)
	go s.expireLoop()
	return nil
}

// Close stops background work and, with persistence, writes and syncs
// what is left of the log: after a clean shutdown nothing is lost.
func (s *Store) Close() error {
	sqlErr := s.closeSQL()
	if !s.started.Swap(false) {
		return sqlErr
	}
	close(s.stop)
	s.done.Wait()
	if s.aof != nil {
		return errors.Join(sqlErr, s.aof.close())
	}
	return sqlErr
}

// Health reports UP once the log is loaded.
func (s *Store) Health() backends.Health { return s.health.Get() }

// Features lists everything: the embedded store does all the translation
// layer can.
func (s *Store) Features() kv.Feature {
	return kv.FeatureTTL | kv.FeatureTTLRead | kv.FeatureTypes | kv.FeatureScan | kv.FeatureTransactions |
		kv.FeaturePubSub | kv.FeatureBlocking | kv.FeatureMultiDB | kv.FeatureRenames | kv.FeatureStringRanges
}

// Databases is the number of databases.
func (s *Store) Databases() int { return len(s.dbs) }

// OnCommit registers a hook run at the end of read-write transactions.
func (s *Store) OnCommit(fn func(kv.TypedTx, []kv.DBKey)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// Update runs fn as one atomic transaction.
func (s *Store) Update(ctx context.Context, db int, fn func(kv.Tx) error) error {
	if db < 0 || db >= len(s.dbs) {
		return fmt.Errorf("ERR DB index is out of range")
	}
	s.mu.Lock()
	t := &s.tx
	t.begin(db, true)
	err := fn(t)
	s.writes.Add(uint64(len(t.changed)))
	s.runHooks(t)
	if s.aof != nil && len(t.propagated) > 0 {
		s.aof.append(t.propagated, t.propCount)
	}
	t.end()
	s.mu.Unlock()
	if s.aof != nil && s.cfg.Fsync == "always" && len(t.propagated) > 0 {
		s.aof.syncNow()
	}
	return err
}

// View runs fn as a read-only transaction.
func (s *Store) View(ctx context.Context, db int, fn func(kv.Tx) error) error {
	return s.Update(ctx, db, fn)
}

// now is the store's clock in Unix milliseconds.
func nowMS() int64 { return time.Now().UnixMilli() }

// lookup returns the live entry at key, expiring it if its time passed.
func (t *tx) lookup(key []byte) *entry {
	e := t.s.dbs[t.db].keys.find(key)
	if e == nil {
		return nil
	}
	if e.expireAt != 0 && e.expireAt <= t.nowMillis() {
		t.s.expireKey(t.db, e, t)
		return nil
	}
	return e
}

// expireKey removes an expired key, as Redis does when it notices.
func (s *Store) expireKey(db int, e *entry, t *tx) {
	s.removeEntry(db, e)
	s.expired.Inc()
	t.changedKey(db, e.keyString())
	// The log shows the deletion, as Redis' does: replayed later, the
	// key's time may not have passed yet on a clock that differs.
	t.propagateTo(db, []byte("DEL"), e.keyBytes())
}

func (s *Store) removeEntry(db int, e *entry) {
	d := s.dbs[db]
	d.keys.remove(e)
	if e.expireAt != 0 {
		delete(d.volatile, e)
	}
}

func (s *Store) addEntry(db int, e *entry) {
	d := s.dbs[db]
	d.keys.add(e)
	if e.expireAt != 0 {
		d.volatile[e] = struct{}{}
	}
}

// touchWatched bumps the version of a watched key.
func (s *Store) touchWatched(db int, key string) {
	if len(s.watched) == 0 {
		return
	}
	if w := s.watched[kv.DBKey{DB: db, Key: key}]; w != nil {
		s.clock++
		w.version = s.clock
	}
}

// touchWatchedIn bumps the versions of the keys watched in db that db
// holds, or that other (the database db is swapped with) holds: FLUSHDB
// and SWAPDB change them, as Redis' touchAllWatchedKeysInDb.
func (s *Store) touchWatchedIn(db int, other *database) {
	for k, w := range s.watched {
		if k.DB != db {
			continue
		}
		key := []byte(k.Key)
		if s.dbs[db].keys.find(key) != nil || (other != nil && other.keys.find(key) != nil) {
			s.clock++
			w.version = s.clock
		}
	}
}

// expireLoop removes expired keys in the background, as Redis' active
// expire cycle does: every 100 ms, sample keys with an expiry and delete
// the expired ones, again while more than a quarter of a sample was.
func (s *Store) expireLoop() {
	defer s.done.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for db := range s.dbs {
			for round := 0; round < 16; round++ {
				if s.expireSample(db) <= 5 {
					break
				}
			}
		}
	}
}

// expireSample checks up to 20 keys with an expiry in db and returns how
// many had expired.
func (s *Store) expireSample(db int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dbs[db]
	// Background work keeps a dict that commands leave alone from
	// holding two tables.
	d.keys.rehashFor(1000)
	if len(d.volatile) == 0 {
		return 0
	}
	now := nowMS()
	n, expired := 0, 0
	t := &s.tx
	t.begin(db, true)
	for e := range d.volatile {
		if n++; n > 20 {
			break
		}
		if e.expireAt <= now {
			s.expireKey(db, e, t)
			expired++
		}
	}
	s.runHooks(t)
	if s.aof != nil && len(t.propagated) > 0 {
		s.aof.append(t.propagated, t.propCount)
	}
	t.end()
	return expired
}

// runHooks runs the commit hooks on the keys the transaction changed,
// again on the keys the hooks themselves change (a blocked BLMOVE fed by
// a push feeds the client blocked on its destination), until none is
// left.
func (s *Store) runHooks(t *tx) {
	for done := 0; done < len(t.changed) && len(s.hooks) > 0; {
		batch := t.changed[done:len(t.changed):len(t.changed)]
		done = len(t.changed)
		for _, h := range s.hooks {
			h(t, batch)
		}
	}
}

// Stats reports INFO's counters.
func (s *Store) Stats(ctx context.Context) kv.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := kv.Stats{
		Keys: make([]int, len(s.dbs)), Expires: make([]int, len(s.dbs)), AvgTTL: make([]int64, len(s.dbs)),
		ExpiredKeys: s.expired.Load(), KeyspaceHits: s.hits.Load(), KeyspaceMiss: s.misses.Load(),
	}
	now := nowMS()
	for i, d := range s.dbs {
		st.Keys[i] = d.keys.len()
		st.Expires[i] = len(d.volatile)
		var sum, n int64
		for e := range d.volatile {
			if n++; n > 100 {
				break
			}
			sum += max(0, e.expireAt-now)
		}
		if n > 0 {
			st.AvgTTL[i] = sum / n
		}
	}
	return st
}

// CollectMetrics exports the store's metrics.
func (s *Store) CollectMetrics(w *metrics.Writer) {
	s.collectSQL(w)
	l := metrics.Label{Name: "backend", Value: s.name}
	s.mu.Lock()
	keys := 0
	for _, d := range s.dbs {
		keys += d.keys.len()
	}
	var logBytes int64
	if s.aof != nil {
		logBytes = s.aof.size
	}
	s.mu.Unlock()
	w.Gauge("mecha_embedded_keys", "Keys held, over all databases.", float64(keys), l)
	w.Counter("mecha_embedded_expired_keys_total", "Keys removed because their time passed.", float64(s.expired.Load()), l)
	w.Counter("mecha_embedded_writes_total", "Keys written.", float64(s.writes.Load()), l)
	w.Gauge("mecha_embedded_log_bytes", "Size of the append-only log.", float64(logBytes), l)
}

func randIntN(n int) int { return rand.IntN(n) }

func itoa(i int) string { return strconv.Itoa(i) }
