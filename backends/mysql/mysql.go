// Package mysql is the `type: mysql` backend: a MySQL-protocol server
// (MySQL, MariaDB, TiDB, ...) that the MySQL frontend relays its clients'
// sessions to. Each client gets an upstream session of its own, logged in
// with the backend's credentials; sessions of clients that leave are kept
// idle and reset with COM_CHANGE_USER before they serve another client.
package mysql

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
	"github.com/mecha-gateway/mecha/frontends/netio"
)

func init() {
	backends.RegisterType("mysql", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: mysql` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Addr is the upstream's host:port.
	Addr string `yaml:"addr"`
	// User and Password are Mecha's login at the upstream, independent of
	// the users clients log in to the frontend with.
	User     string         `yaml:"user"`
	Password configs.Secret `yaml:"password"`
	// TLS, when set, encrypts upstream connections (the upstream must
	// offer TLS).
	TLS *configs.TLSClient `yaml:"tls"`
	// ConnectTimeout bounds connecting and logging in.
	ConnectTimeout configs.Duration `yaml:"connect_timeout"`
	// MaxOpen is the most upstream sessions at once (0: no limit); a
	// client past it gets error 1040 "Too many connections".
	MaxOpen int `yaml:"max_open"`
	// MaxIdle is how many sessions of departed clients are kept for reuse.
	MaxIdle int `yaml:"max_idle"`
	// IdleTimeout closes idle sessions unused for longer.
	IdleTimeout configs.Duration `yaml:"idle_timeout"`
	// HealthInterval is how often the upstream is pinged.
	HealthInterval configs.Duration `yaml:"health_interval"`
}

// DefaultConfig returns the defaults: a local MariaDB/MySQL as root.
func DefaultConfig() *Config {
	return &Config{
		Addr:           "127.0.0.1:3306",
		User:           "root",
		ConnectTimeout: configs.Duration(5 * time.Second),
		MaxIdle:        64,
		IdleTimeout:    configs.Duration(5 * time.Minute),
		HealthInterval: configs.Duration(2 * time.Second),
	}
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if err := configs.CheckAddr("addr", c.Addr); err != nil {
		errs = append(errs, err)
	}
	if c.User == "" {
		errs = append(errs, configs.Errorf("user", "is required"))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, configs.Errorf("connect_timeout", "must be positive"))
	}
	if c.MaxOpen < 0 {
		errs = append(errs, configs.Errorf("max_open", "must not be negative"))
	}
	if c.MaxIdle < 0 {
		errs = append(errs, configs.Errorf("max_idle", "must not be negative"))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, configs.Errorf("idle_timeout", "must be positive"))
	}
	if c.HealthInterval <= 0 {
		errs = append(errs, configs.Errorf("health_interval", "must be positive"))
	}
	return errors.Join(errs...)
}

// DialFunc opens a connection to the upstream.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Backend is a MySQL-protocol upstream.
type Backend struct {
	cfg    *Config
	dialer DialFunc
	name   string
	log    *slog.Logger
	tls    *tls.Config
	health backends.HealthCell
	server atomic.Pointer[backends.MySQLServer]

	mu     sync.Mutex
	idle   []*session // most recently released last
	open   int
	stop   chan struct{}
	done   sync.WaitGroup
	resets sync.WaitGroup // sessions being reset on their way to the pool
	close  sync.Once

	dials      metrics.Counter
	dialErrors metrics.Counter
	reuses     metrics.Counter
	resetFails metrics.Counter
	refused    metrics.Counter
	noReuse    atomic.Bool // the upstream cannot reset a session for another client

	// applyCollation sets the client's collation with SET NAMES after
	// login, for upstreams that ignore the handshake's (the embedded
	// engine); collNames caches the names of collation ids.
	applyCollation bool
	collMu         sync.Mutex
	collNames      map[uint8]string
}

// ApplyCollation makes sessions set the client's collation with SET NAMES
// after login, for an upstream that ignores the handshake's. Call it
// before Start.
func (b *Backend) ApplyCollation() { b.applyCollation = true }

// setNames applies a collation id to a fresh session.
func (s *session) setNames(coll uint8) error {
	b := s.b
	b.collMu.Lock()
	name, ok := b.collNames[coll]
	b.collMu.Unlock()
	if !ok {
		rows, err := s.query(fmt.Sprintf("SELECT CONCAT(CHARACTER_SET_NAME, ', collation_connection = ', COLLATION_NAME) FROM information_schema.COLLATIONS WHERE ID = %d", coll))
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil // unknown here: the server's default stays
		}
		name = rows[0]
		b.collMu.Lock()
		if b.collNames == nil {
			b.collNames = map[uint8]string{}
		}
		b.collNames[coll] = name
		b.collMu.Unlock()
	}
	// SET NAMES x COLLATE y would do, but go-mysql-server ignores COLLATE.
	_, err := s.query("SET NAMES " + name)
	return err
}

var (
	_ backends.MySQLPassthrough = (*Backend)(nil)
	_ metrics.Collector         = (*Backend)(nil)
)

// New builds the backend; nothing connects before Start.
func New(cfg *Config, env backends.Env) (*Backend, error) {
	return NewWithDialer(cfg, env, nil)
}

// NewWithDialer builds a backend that reaches its upstream through dial
// instead of TCP to cfg.Addr (which then only names it in messages): an
// engine inside the process, for one.
func NewWithDialer(cfg *Config, env backends.Env, dial DialFunc) (*Backend, error) {
	b := &Backend{cfg: cfg, dialer: dial, name: env.Name, log: env.Logger, stop: make(chan struct{})}
	if b.log == nil {
		b.log = slog.Default()
	}
	if cfg.TLS != nil {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		t, err := cfg.TLS.Build(host)
		if err != nil {
			return nil, fmt.Errorf("mysql backend %s: %w", env.Name, err)
		}
		b.tls = t
	}
	return b, nil
}

// Start checks the upstream once and starts the health checks. An
// upstream that is down leaves the backend DOWN, not failed.
func (b *Backend) Start(ctx context.Context) error {
	b.check(ctx)
	b.done.Add(1)
	go b.loop()
	return nil
}

// Close closes idle sessions and stops the health checks. Sessions in use
// are closed by their clients' frontends.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.close.Do(func() { close(b.stop) })
	b.mu.Unlock()
	b.done.Wait()
	b.resets.Wait()
	b.drainIdle()
	return nil
}

// Health reports the last health check.
func (b *Backend) Health() backends.Health { return b.health.Get() }

// loop pings the upstream and closes sessions idle for too long.
func (b *Backend) loop() {
	defer b.done.Done()
	t := time.NewTicker(b.cfg.HealthInterval.D())
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout.D())
			b.check(ctx)
			cancel()
			b.expire()
		}
	}
}

// check logs in and pings with a session of the pool (or a new one).
func (b *Backend) check(ctx context.Context) {
	s, err := b.take(ctx)
	if err == nil {
		err = s.ping(ctx)
		if err == nil {
			b.repool(s)
		} else {
			s.Close()
		}
	}
	if err != nil {
		if b.health.Set(backends.StateDown, err.Error()) {
			b.log.Warn("mysql upstream down", "addr", b.cfg.Addr, "err", err)
		}
		return
	}
	if b.health.Set(backends.StateUp, "") {
		b.log.Info("mysql upstream up", "addr", b.cfg.Addr, "version", b.server.Load().Version)
	}
}

// take returns any session for the health check: an idle one or a new one.
func (b *Backend) take(ctx context.Context) (*session, error) {
	b.mu.Lock()
	for len(b.idle) > 0 {
		s := b.idle[len(b.idle)-1]
		b.idle = b.idle[:len(b.idle)-1]
		b.mu.Unlock()
		if s.Alive() {
			return s, nil
		}
		s.discard()
		b.mu.Lock()
	}
	b.mu.Unlock()
	return b.dial(ctx, backends.MySQLSessionParams{Caps: wire.Understood, Collation: wire.DefaultCollation})
}

// drainIdle closes every idle session.
func (b *Backend) drainIdle() {
	b.mu.Lock()
	idle := b.idle
	b.idle = nil
	b.mu.Unlock()
	for _, s := range idle {
		s.discard()
	}
}

// expire closes sessions idle past the idle timeout.
func (b *Backend) expire() {
	limit := time.Now().Add(-b.cfg.IdleTimeout.D())
	b.mu.Lock()
	var old []*session
	keep := b.idle[:0]
	for _, s := range b.idle {
		if s.idleSince.Before(limit) {
			old = append(old, s)
		} else {
			keep = append(keep, s)
		}
	}
	clear(b.idle[len(keep):])
	b.idle = keep
	b.mu.Unlock()
	for _, s := range old {
		s.discard()
	}
}

// Server returns what the upstream announced, connecting once if it has
// never been seen.
func (b *Backend) Server(ctx context.Context) (backends.MySQLServer, error) {
	if s := b.server.Load(); s != nil {
		return *s, nil
	}
	s, err := b.take(ctx)
	if err != nil {
		return backends.MySQLServer{}, err
	}
	b.repool(s)
	return *b.server.Load(), nil
}

// Session returns a session for a client: an idle one with the same
// capabilities, reset for p, or a new one.
func (b *Backend) Session(ctx context.Context, p backends.MySQLSessionParams) (backends.MySQLSession, error) {
	for !b.noReuse.Load() {
		s := b.idleWith(p.Caps)
		if s == nil {
			break
		}
		if !s.Alive() {
			s.discard()
			continue
		}
		if err := s.ChangeUser(ctx, p); err != nil {
			s.discard()
			var werr *wire.Error
			if errors.As(err, &werr) && werr.Code == wire.ErUnknownComError {
				// No COM_CHANGE_USER here (Vitess, the embedded engine):
				// sessions cannot be set up for another client, so none is
				// kept for reuse.
				if !b.noReuse.Swap(true) {
					b.log.Info("upstream has no COM_CHANGE_USER: sessions are not reused", "addr", b.cfg.Addr)
				}
				b.drainIdle()
				break
			}
			if errors.As(err, &werr) {
				// The server refused the reset itself (an unknown
				// database): a new session would be refused the same way.
				return nil, err
			}
			b.resetFails.Inc()
			continue
		}
		b.reuses.Inc()
		return s, nil
	}
	return b.dial(ctx, p)
}

func (b *Backend) idleWith(caps uint32) *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.idle) - 1; i >= 0; i-- {
		if s := b.idle[i]; s.requested == caps {
			copy(b.idle[i:], b.idle[i+1:])
			b.idle[len(b.idle)-1] = nil
			b.idle = b.idle[:len(b.idle)-1]
			return s
		}
	}
	return nil
}

// release takes back a session a client has left: it is reset at once,
// in the background, so that the client's transaction is rolled back and
// its locks released now, not when the session is next used, and then
// kept for reuse (or closed if the reset fails or the pool is full).
func (b *Backend) release(s *session) {
	if b.noReuse.Load() {
		s.discard()
		return
	}
	b.mu.Lock()
	select {
	case <-b.stop:
		b.mu.Unlock()
		s.discard()
		return
	default:
	}
	b.resets.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.resets.Done()
		if err := s.reset(); err != nil {
			b.resetFails.Inc()
			s.discard()
			return
		}
		s.idleSince = time.Now()
		b.repool(s)
	}()
}

// repool puts an idle session back as it is (the health check's).
func (b *Backend) repool(s *session) {
	b.mu.Lock()
	if len(b.idle) < b.cfg.MaxIdle {
		select {
		case <-b.stop:
		default:
			b.idle = append(b.idle, s)
			b.mu.Unlock()
			return
		}
	}
	b.mu.Unlock()
	s.discard()
}

// CollectMetrics exports the pool's state.
func (b *Backend) CollectMetrics(w *metrics.Writer) {
	l := metrics.Label{Name: "backend", Value: b.name}
	b.mu.Lock()
	open, idle := b.open, len(b.idle)
	b.mu.Unlock()
	w.Gauge("mecha_mysql_upstream_sessions", "Upstream MySQL sessions open (in use and idle).", float64(open), l)
	w.Gauge("mecha_mysql_upstream_idle_sessions", "Upstream MySQL sessions idle in the pool.", float64(idle), l)
	w.Counter("mecha_mysql_upstream_dials_total", "Upstream MySQL sessions opened.", float64(b.dials.Load()), l)
	w.Counter("mecha_mysql_upstream_dial_errors_total", "Upstream MySQL sessions that failed to open.", float64(b.dialErrors.Load()), l)
	w.Counter("mecha_mysql_upstream_reuses_total", "Idle upstream sessions reset and reused for a new client.", float64(b.reuses.Load()), l)
	w.Counter("mecha_mysql_upstream_refused_total", "Sessions refused because max_open was reached.", float64(b.refused.Load()), l)
}

// bufferSize is the size of a session's read and write buffers: large
// enough that a result set reaches the client in few writes.
const bufferSize = 32 << 10

// dial opens and logs in a new session.
func (b *Backend) dial(ctx context.Context, p backends.MySQLSessionParams) (*session, error) {
	b.mu.Lock()
	if b.cfg.MaxOpen > 0 && b.open >= b.cfg.MaxOpen {
		b.mu.Unlock()
		b.refused.Inc()
		return nil, wire.ErrTooManyConnections()
	}
	b.open++
	b.mu.Unlock()
	s, err := b.connect(ctx, p)
	if err != nil {
		b.mu.Lock()
		b.open--
		b.mu.Unlock()
		b.dialErrors.Inc()
		return nil, err
	}
	b.dials.Inc()
	return s, nil
}

func (b *Backend) connect(ctx context.Context, p backends.MySQLSessionParams) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.ConnectTimeout.D())
	defer cancel()
	var conn net.Conn
	var err error
	if b.dialer != nil {
		conn, err = b.dialer(ctx)
	} else {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", b.cfg.Addr)
	}
	if err != nil {
		return nil, wire.Errorf(wire.CrConnectionError, "HY000", "Can't connect to MySQL server on '%s' (%v)", b.cfg.Addr, unwrapNet(err))
	}
	conn = netio.Wrap(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	s := &session{b: b, raw: conn, conn: conn, requested: p.Caps}
	s.br = bufio.NewReaderSize(conn, bufferSize)
	s.bw = bufio.NewWriterSize(conn, bufferSize)
	if err := s.login(p); err != nil {
		conn.Close()
		var werr *wire.Error
		if errors.As(err, &werr) {
			return nil, err
		}
		return nil, wire.Errorf(wire.CrConnectionError, "HY000", "Can't connect to MySQL server on '%s' (%v)", b.cfg.Addr, unwrapNet(err))
	}
	_ = s.conn.SetDeadline(time.Time{})
	return s, nil
}

// unwrapNet shortens a net.OpError to its cause.
func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
