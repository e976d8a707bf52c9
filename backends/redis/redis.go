// Package redis is the `type: redis` backend: a real Redis server (or any
// server speaking RESP natively) that the Redis frontend forwards commands
// to unchanged. Stateless commands share a few multiplexed upstream
// connections, so that many clients' requests reach Redis in large
// pipelined writes; commands that need connection state take a dedicated
// connection from a pool.
package redis

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends/netio"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	backends.RegisterType("redis", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: redis` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Addr is the upstream's host:port.
	Addr    string `yaml:"addr"`
	Options `yaml:",inline"`
}

// Options are how Mecha connects to a Redis server: the `type: redis`
// backend's settings besides the address, shared by every node of a
// `type: redis-cluster` backend.
type Options struct {
	// Username is the upstream ACL user; empty authenticates with the
	// password alone (the default user).
	Username string `yaml:"username"`
	// Password authenticates Mecha to the upstream. It is independent of
	// the password clients give the frontend.
	Password configs.Secret `yaml:"password"`
	// TLS, when set, encrypts upstream connections.
	TLS *configs.TLSClient `yaml:"tls"`
	// DialTimeout bounds connecting and authenticating.
	DialTimeout configs.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds the wait for a reply (blocking commands excepted);
	// past it the client gets an error and the connection is replaced.
	// 0 waits forever.
	ReadTimeout configs.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds sending a request.
	WriteTimeout configs.Duration `yaml:"write_timeout"`
	// Conns is the number of shared, multiplexed connections; 0 means one
	// per CPU Mecha runs on (max_procs). Fewer connections make larger
	// pipelines, which costs the upstream less.
	Conns int `yaml:"conns"`
	// MaxIdle is how many idle dedicated connections are kept for reuse.
	MaxIdle int `yaml:"max_idle"`
	// IdleTimeout closes dedicated connections idle for longer.
	IdleTimeout configs.Duration `yaml:"idle_timeout"`
	// HealthInterval is how often the upstream is pinged.
	HealthInterval configs.Duration `yaml:"health_interval"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{Addr: "127.0.0.1:6379", Options: DefaultOptions()}
}

// DefaultOptions returns the default connection settings.
func DefaultOptions() Options {
	return Options{
		DialTimeout:    configs.Duration(2 * time.Second),
		ReadTimeout:    configs.Duration(5 * time.Second),
		WriteTimeout:   configs.Duration(5 * time.Second),
		Conns:          0,
		MaxIdle:        32,
		IdleTimeout:    configs.Duration(5 * time.Minute),
		HealthInterval: configs.Duration(time.Second),
	}
}

// Validate checks the address (Options checks the rest).
func (c *Config) Validate() error { return configs.CheckAddr("addr", c.Addr) }

// Validate checks the values.
func (o *Options) Validate() error {
	var errs []error
	if o.Conns < 0 || o.Conns > 64 {
		errs = append(errs, configs.Errorf("conns", "must be between 0 (one per CPU) and 64"))
	}
	if o.MaxIdle < 0 {
		errs = append(errs, configs.Errorf("max_idle", "must not be negative"))
	}
	if o.DialTimeout <= 0 {
		errs = append(errs, configs.Errorf("dial_timeout", "must be positive"))
	}
	if o.HealthInterval <= 0 {
		errs = append(errs, configs.Errorf("health_interval", "must be positive"))
	}
	return errors.Join(errs...)
}

// Backend is a Redis upstream.
type Backend struct {
	cfg    *Config
	name   string
	log    *slog.Logger
	tls    *tls.Config
	health backends.HealthCell

	dbs     atomic.Int32
	version atomic.Pointer[string]
	slot    []muxSlot
	rr      atomic.Uint32

	poolMu sync.Mutex
	idle   []*dedicated
	gen    atomic.Uint64 // bumped when the upstream is found down: older connections are stale

	probe  chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup
	closed atomic.Bool

	labels      []metrics.Label // on every metric: the backend, and the node of a cluster
	dials       metrics.Counter
	dialErrors  metrics.Counter
	connErrors  metrics.Counter
	dedicatedN  metrics.Gauge
	lateFlushes metrics.Counter
}

var _ backends.RESPPassthrough = (*Backend)(nil)
var _ metrics.Collector = (*Backend)(nil)

// New builds the backend; it connects in Start.
func New(cfg *Config, env backends.Env) (*Backend, error) {
	conns := cfg.Conns
	if conns == 0 {
		conns = runtime.GOMAXPROCS(0)
	}
	b := &Backend{
		cfg:   cfg,
		name:  env.Name,
		log:   env.Logger,
		slot:  make([]muxSlot, conns),
		probe: make(chan struct{}, 1),
		stop:  make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if cfg.TLS != nil {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		t, err := cfg.TLS.Build(host)
		if err != nil {
			return nil, fmt.Errorf("redis backend %s: %w", env.Name, err)
		}
		b.tls = t
	}
	b.dbs.Store(16)
	b.labels = []metrics.Label{{Name: "backend", Value: env.Name}}
	return b, nil
}

// Start checks the upstream once and starts health checks. An unreachable
// upstream is not an error: the backend reports DOWN and recovers when it
// comes back.
func (b *Backend) Start(ctx context.Context) error {
	b.check(ctx)
	b.done.Add(1)
	go b.healthLoop()
	return nil
}

// Close closes every upstream connection.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.stop)
	b.done.Wait()
	for i := range b.slot {
		s := &b.slot[i]
		s.mu.Lock()
		if s.mc != nil {
			s.mc.breakConn(fmt.Errorf("%w: backend closed", backends.ErrUnavailable))
		}
		s.mu.Unlock()
	}
	b.dropIdle()
	return nil
}

// Health reports the upstream's state.
func (b *Backend) Health() backends.Health { return b.health.Get() }

// Databases is the upstream's `databases` setting.
func (b *Backend) Databases() int { return int(b.dbs.Load()) }

func (b *Backend) healthLoop() {
	defer b.done.Done()
	t := time.NewTicker(b.cfg.HealthInterval.D())
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		case <-b.probe:
		}
		b.watchdog()
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout.D()+b.cfg.ReadTimeout.D())
		b.check(ctx)
		cancel()
	}
}

// check asks the upstream, on a fresh connection, for its version and
// number of databases, and updates health.
func (b *Backend) check(ctx context.Context) {
	nc, err := b.dial(ctx)
	if err == nil {
		err = b.fetchInfo(nc)
		nc.Close()
	}
	if err != nil {
		if b.health.Set(backends.StateDown, err.Error()) {
			b.log.Warn("upstream down", "addr", b.cfg.Addr, "err", err)
		}
		b.gen.Add(1)
		b.dropIdle()
		return
	}
	if b.health.Set(backends.StateUp, "") {
		b.log.Info("upstream up", "addr", b.cfg.Addr, "version", b.Version())
	}
}

// watchdog gives up on shared connections whose upstream stopped
// answering, failing their callers with a timeout. Keeping this off the
// request path spares every request a timer update.
func (b *Backend) watchdog() {
	now := nanotime()
	for i := range b.slot {
		s := &b.slot[i]
		s.mu.Lock()
		mc := s.mc
		s.mu.Unlock()
		if mc == nil {
			continue
		}
		if err := mc.overdue(now); err != nil {
			b.log.Warn("upstream connection stalled; replacing it", "err", err)
			mc.breakConn(err)
		}
	}
}

// requestProbe asks the health loop to check the upstream now.
func (b *Backend) requestProbe() {
	select {
	case b.probe <- struct{}{}:
	default:
	}
}

// fetchInfo reads the upstream's `databases` setting and version. An
// upstream that refuses CONFIG or INFO (managed services often rename
// them) is assumed to have 16 databases and Redis 7.0's version.
func (b *Backend) fetchInfo(nc net.Conn) error {
	req := resp.AppendCommandStrings(nil, "CONFIG", "GET", "databases")
	req = resp.AppendCommandStrings(req, "INFO", "server")
	replies, err := roundTrip(nc, req, 2, b.cfg.ReadTimeout.D())
	if err != nil {
		return fmt.Errorf("%w: %v", backends.ErrUnavailable, errText(err))
	}
	if v, _, err := resp.DecodeValue(replies[0]); err == nil && v.Type == '*' && len(v.Array) == 2 {
		if n, err := strconv.Atoi(string(v.Array[1].Str)); err == nil && n > 0 {
			b.dbs.Store(int32(n))
		}
	}
	if v, _, err := resp.DecodeValue(replies[1]); err == nil && v.Type == '$' {
		for _, line := range bytes.Split(v.Str, []byte("\r\n")) {
			if ver, ok := bytes.CutPrefix(line, []byte("redis_version:")); ok {
				s := string(ver)
				b.version.Store(&s)
			}
		}
	} else if err == nil && v.IsError() && bytes.HasPrefix(v.Str, []byte("NOAUTH")) {
		return fmt.Errorf("%w: upstream requires a password (set password: in the backend)", backends.ErrUnavailable)
	}
	return nil
}

// Version is the upstream's redis_version.
func (b *Backend) Version() string {
	if v := b.version.Load(); v != nil {
		return *v
	}
	return "7.0.0"
}

// roundTrip writes req and reads n replies, each returned whole.
func roundTrip(nc net.Conn, req []byte, n int, timeout time.Duration) ([][]byte, error) {
	if timeout > 0 {
		nc.SetDeadline(time.Now().Add(timeout))
		defer nc.SetDeadline(time.Time{})
	}
	if _, err := nc.Write(req); err != nil {
		return nil, err
	}
	var (
		sc      resp.ReplyScanner
		buf     = make([]byte, 0, 512)
		start   int
		replies [][]byte
		tmp     [4096]byte
	)
	scanned := 0
	for len(replies) < n {
		m, err := nc.Read(tmp[:])
		buf = append(buf, tmp[:m]...)
		for scanned < len(buf) && len(replies) < n {
			k, _, done, serr := sc.Scan(buf[scanned:])
			if serr != nil {
				return nil, serr
			}
			scanned += k
			if done {
				replies = append(replies, buf[start:scanned])
				start = scanned
			}
		}
		if err != nil && len(replies) < n {
			return nil, err
		}
	}
	return replies, nil
}

// dial connects and authenticates a new upstream connection.
func (b *Backend) dial(ctx context.Context) (net.Conn, error) {
	b.dials.Inc()
	d := net.Dialer{Timeout: b.cfg.DialTimeout.D(), KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", b.cfg.Addr)
	if err != nil {
		b.dialErrors.Inc()
		return nil, fmt.Errorf("%w: dial %s: %v", backends.ErrUnavailable, b.cfg.Addr, errText(err))
	}
	nc = netio.Wrap(nc)
	if b.tls != nil {
		tc := tls.Client(nc, b.tls)
		hctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout.D())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			b.dialErrors.Inc()
			return nil, fmt.Errorf("%w: tls handshake with %s: %v", backends.ErrUnavailable, b.cfg.Addr, err)
		}
		nc = tc
	}
	if b.cfg.Password != "" {
		var req []byte
		if b.cfg.Username != "" {
			req = resp.AppendCommandStrings(nil, "AUTH", b.cfg.Username, b.cfg.Password.Reveal())
		} else {
			req = resp.AppendCommandStrings(nil, "AUTH", b.cfg.Password.Reveal())
		}
		replies, err := roundTrip(nc, req, 1, b.cfg.DialTimeout.D())
		if err != nil {
			nc.Close()
			b.dialErrors.Inc()
			return nil, fmt.Errorf("%w: authenticate to %s: %v", backends.ErrUnavailable, b.cfg.Addr, errText(err))
		}
		if replies[0][0] == '-' {
			nc.Close()
			b.dialErrors.Inc()
			msg := string(bytes.TrimRight(replies[0][1:], "\r\n"))
			return nil, fmt.Errorf("%w: authenticate to %s: %s", backends.ErrUnavailable, b.cfg.Addr, msg)
		}
	}
	return nc, nil
}

// errText shortens network errors to their cause ("connection refused").
func errText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys interface{ Unwrap() error }
		if errors.As(op.Err, &sys) && sys.Unwrap() != nil {
			return sys.Unwrap().Error()
		}
		return op.Err.Error()
	}
	return err.Error()
}

// SetMetricLabel adds a label to the backend's metrics (the node, for a
// cluster's nodes). Call it before Start.
func (b *Backend) SetMetricLabel(l metrics.Label) { b.labels = append(b.labels, l) }

// CollectMetrics exports the upstream's connection metrics.
func (b *Backend) CollectMetrics(w *metrics.Writer) {
	l := b.labels
	w.Counter("mecha_backend_dials_total", "Upstream connections opened.", float64(b.dials.Load()), l...)
	w.Counter("mecha_backend_dial_errors_total", "Upstream connections that failed to open or authenticate.", float64(b.dialErrors.Load()), l...)
	w.Counter("mecha_backend_connection_errors_total", "Upstream connections lost or timed out while in use.", float64(b.connErrors.Load()), l...)
	w.Counter("mecha_backend_late_flushes_total", "Deferred requests the frontend failed to flush, sent by the watchdog instead (should stay 0).", float64(b.lateFlushes.Load()), l...)
	w.Gauge("mecha_backend_dedicated_connections", "Upstream connections reserved by clients (transactions, blocking commands, pub/sub) or idle in the pool.", float64(b.dedicatedN.Load()), l...)
}
