// Package memcached is the `type: memcached` backend: Redis strings and
// keys served by one or more Memcached servers, through the Redis
// translation layer (translate/redis). It speaks Memcached's meta text
// protocol (mg, ms, md, mn) over a few pipelined connections per server,
// spreads keys over the servers with a ketama ring, and builds Redis'
// semantics — conditional and read-modify-write commands, millisecond
// expiry, TTL read-back — on Memcached's compare-and-swap.
package memcached

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

func init() {
	backends.RegisterType("memcached", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: memcached` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Servers are the Memcached servers, as host:port. Keys are spread
	// over them with consistent hashing (ketama).
	Servers []string `yaml:"servers"`
	// Weights gives some servers a larger share of the keys, by address
	// (e.g. {"10.0.0.2:11211": 2}); a server not named weighs 1.
	Weights map[string]int `yaml:"weights"`
	// KeyPrefix is put before every key in Memcached, so that several
	// applications can share servers. Printable ASCII without spaces.
	KeyPrefix string `yaml:"key_prefix"`
	// DialTimeout bounds connecting to a server.
	DialTimeout configs.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds the wait for a reply; past it the client gets an
	// error and the connection is replaced.
	ReadTimeout configs.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds sending a request.
	WriteTimeout configs.Duration `yaml:"write_timeout"`
	// Conns is the number of pipelined connections per server.
	Conns int `yaml:"conns"`
	// HealthInterval is how often every server is checked.
	HealthInterval configs.Duration `yaml:"health_interval"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		Servers:        []string{"127.0.0.1:11211"},
		DialTimeout:    configs.Duration(time.Second),
		ReadTimeout:    configs.Duration(2 * time.Second),
		WriteTimeout:   configs.Duration(2 * time.Second),
		Conns:          2,
		HealthInterval: configs.Duration(time.Second),
	}
}

// maxPrefix bounds key_prefix, so that a hashed key always fits.
const maxPrefix = 100

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, configs.Errorf("servers", "at least one server is needed"))
	}
	seen := map[string]bool{}
	total := 0
	for i, s := range c.Servers {
		key := fmt.Sprintf("servers[%d]", i)
		if err := configs.CheckAddr(key, s); err != nil {
			errs = append(errs, err)
		} else if seen[s] {
			errs = append(errs, configs.Errorf(key, "%s is listed twice", s))
		}
		seen[s] = true
		total += c.weight(s)
	}
	for addr, w := range c.Weights {
		if !seen[addr] {
			errs = append(errs, configs.Errorf("weights."+addr, "not one of servers"))
		} else if w < 1 || w > 1000 {
			errs = append(errs, configs.Errorf("weights."+addr, "must be between 1 and 1000"))
		}
	}
	if len(errs) == 0 {
		for _, s := range c.Servers {
			// Each server needs at least one point on the ring.
			if float64(c.weight(s))/float64(total)*digestsPerServer*float64(len(c.Servers)) < 1 {
				errs = append(errs, configs.Errorf("weights", "%s weighs too little next to the others to get any keys", s))
			}
		}
	}
	if len(c.KeyPrefix) > maxPrefix || !plainKey([]byte(c.KeyPrefix)) {
		errs = append(errs, configs.Errorf("key_prefix", "must be at most %d printable ASCII characters without spaces", maxPrefix))
	}
	if c.Conns < 1 || c.Conns > 64 {
		errs = append(errs, configs.Errorf("conns", "must be between 1 and 64"))
	}
	for _, d := range []struct {
		key string
		v   configs.Duration
	}{{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}, {"health_interval", c.HealthInterval}} {
		if d.v <= 0 {
			errs = append(errs, configs.Errorf(d.key, "must be positive"))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) weight(addr string) int {
	if w, ok := c.Weights[addr]; ok {
		return w
	}
	return 1
}

// Store is the Memcached backend.
type Store struct {
	cfg     *Config
	name    string
	log     *slog.Logger
	prefix  []byte
	servers []*server
	ring    *ring
	health  backends.HealthCell

	healthMu sync.Mutex
	wake     chan struct{}
	stop     chan struct{}
	done     sync.WaitGroup // the health loop
	readers  sync.WaitGroup // connections' reader goroutines
	started  atomic.Bool
	lifeMu   sync.Mutex // orders new connections with Close
	closed   atomic.Bool

	casRetries metrics.Counter
}

var (
	_ kv.Store          = (*Store)(nil)
	_ kv.Inspector      = (*Store)(nil)
	_ metrics.Collector = (*Store)(nil)
)

// New builds the store; it connects in Start.
func New(cfg *Config, env backends.Env) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memcached backend %s: %w", env.Name, err)
	}
	s := &Store{
		cfg:    cfg,
		name:   env.Name,
		log:    env.Logger,
		prefix: []byte(cfg.KeyPrefix),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	weights := make([]int, len(cfg.Servers))
	for i, addr := range cfg.Servers {
		weights[i] = cfg.weight(addr)
		s.servers = append(s.servers, newServer(s, addr, weights[i], cfg.Conns))
	}
	s.ring = newRing(cfg.Servers, weights)
	return s, nil
}

// Start checks every server once and starts the health checks. Servers
// that are down are not an error: the store reports DOWN (or UP with the
// failed servers named, while one is up) and recovers by itself.
func (s *Store) Start(ctx context.Context) error {
	if s.started.Swap(true) {
		return nil
	}
	s.probeAll(ctx)
	s.done.Add(1)
	go s.healthLoop()
	return nil
}

// Close stops the health checks and closes every connection.
func (s *Store) Close() error {
	s.lifeMu.Lock()
	if s.closed.Swap(true) {
		s.lifeMu.Unlock()
		return nil
	}
	s.lifeMu.Unlock()
	close(s.stop)
	s.done.Wait()
	for _, sv := range s.servers {
		sv.closeConns(fmt.Errorf("%w: backend closed", backends.ErrUnavailable))
	}
	s.readers.Wait()
	return nil
}

// Health is UP while at least one server is; the detail names the
// servers that are down.
func (s *Store) Health() backends.Health { return s.health.Get() }

// Features: keys expire and their TTL can be read back; nothing else
// (no types, no scan, no transactions, one database).
func (s *Store) Features() kv.Feature { return kv.FeatureTTL | kv.FeatureTTLRead }

// Databases is 1: Memcached has one keyspace.
func (s *Store) Databases() int { return 1 }

// Update runs fn. Memcached has no transactions: each of fn's operations
// is atomic on its own (compare-and-swap where it reads and writes), but
// not fn as a whole.
func (s *Store) Update(ctx context.Context, db int, fn func(kv.Tx) error) error {
	if db != 0 {
		return errDBRange
	}
	return fn(&tx{s: s, ctx: ctx})
}

// View runs fn; it is Update.
func (s *Store) View(ctx context.Context, db int, fn func(kv.Tx) error) error {
	return s.Update(ctx, db, fn)
}

var errDBRange = errors.New("ERR DB index is out of range")

func (s *Store) healthLoop() {
	defer s.done.Done()
	t := time.NewTicker(s.cfg.HealthInterval.D())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.wake:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout.D()+s.cfg.ReadTimeout.D())
		s.probeAll(ctx)
		cancel()
	}
}

// kick asks for a health check now (a connection broke).
func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, sv := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sv.probe(ctx)
		}()
	}
	wg.Wait()
	s.updateHealth()
}

// updateHealth derives the store's health from its servers'.
func (s *Store) updateHealth() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	var down []string
	up := 0
	for _, sv := range s.servers {
		st, detail := sv.health()
		switch st {
		case backends.StateUp:
			up++
		case backends.StateDown:
			down = append(down, detail)
		default:
			down = append(down, "memcached "+sv.addr+": not checked yet")
		}
	}
	switch {
	case len(down) == 0:
		s.health.Set(backends.StateUp, "")
	case up > 0:
		s.health.Set(backends.StateUp, fmt.Sprintf("%d of %d servers down: %s", len(down), len(s.servers), strings.Join(down, "; ")))
	default:
		st := backends.StateDown
		if s.health.Get().State == backends.StateInit && !s.anyChecked() {
			st = backends.StateInit
		}
		s.health.Set(st, fmt.Sprintf("all %d servers down: %s", len(s.servers), strings.Join(down, "; ")))
	}
}

func (s *Store) anyChecked() bool {
	for _, sv := range s.servers {
		if backends.State(sv.state.Load()) != backends.StateInit {
			return true
		}
	}
	return false
}

// server returns the server that owns a (mapped) key.
func (s *Store) server(k *key) *server {
	if len(s.servers) == 1 {
		return s.servers[0]
	}
	return s.servers[s.ring.pick(k.stored)]
}

// Stats reports INFO's counters, summed over the servers that answer.
func (s *Store) Stats(ctx context.Context) kv.Stats {
	st := kv.Stats{Keys: []int{0}, Expires: []int{0}, AvgTTL: []int64{0}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sv := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := sv.stats(ctx, "")
			if err != nil {
				return
			}
			n := func(k string) uint64 { v, _ := strconv.ParseUint(m[k], 10, 64); return v }
			mu.Lock()
			defer mu.Unlock()
			st.Keys[0] += int(n("curr_items"))
			st.EvictedKeys += n("evictions")
			st.KeyspaceHits += n("get_hits")
			st.KeyspaceMiss += n("get_misses")
			st.ExpiredKeys += n("get_expired")
			st.UsedMemory += n("bytes")
		}()
	}
	wg.Wait()
	return st
}

// CollectMetrics exports the store's metrics, per server.
func (s *Store) CollectMetrics(w *metrics.Writer) {
	b := metrics.Label{Name: "backend", Value: s.name}
	for _, sv := range s.servers {
		l := []metrics.Label{b, {Name: "server", Value: sv.addr}}
		st, _ := sv.health()
		up := 0.0
		if st == backends.StateUp {
			up = 1
		}
		w.Gauge("mecha_memcached_server_up", "1 when the Memcached server answers.", up, l...)
		w.Counter("mecha_memcached_requests_total", "Requests sent to the server, each a pipelined batch of commands.", float64(sv.requests.Load()), l...)
		w.Counter("mecha_memcached_commands_total", "Meta commands sent to the server.", float64(sv.commands.Load()), l...)
		w.Counter("mecha_memcached_failures_total", "Requests that failed because the server was unreachable or too slow.", float64(sv.failures.Load()), l...)
		w.Counter("mecha_memcached_dials_total", "Connections opened to the server.", float64(sv.dials.Load()), l...)
		w.Counter("mecha_memcached_dial_errors_total", "Connections to the server that failed to open.", float64(sv.dialErrors.Load()), l...)
		w.Counter("mecha_memcached_connection_errors_total", "Connections to the server lost or timed out.", float64(sv.connErrors.Load()), l...)
		w.Gauge("mecha_memcached_connections", "Open connections to the server.", float64(sv.conns.Load()), l...)
		w.Gauge("mecha_memcached_item_size_max_bytes", "The server's item size limit.", float64(sv.itemMax.Load()), l...)
	}
	w.Counter("mecha_memcached_cas_retries_total", "Read-modify-write commands retried because another client changed the key in between.", float64(s.casRetries.Load()), b)
}

// nowMS is the clock expiry is measured with, in Unix milliseconds.
func nowMS() int64 { return time.Now().UnixMilli() }
