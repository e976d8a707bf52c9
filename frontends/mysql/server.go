// Package mysql is the `protocol: mysql` frontend: a MySQL server at the
// packet level. It authenticates clients against its own users (TLS,
// mysql_native_password, caching_sha2_password with both of its paths),
// gives each client an upstream session of its own from the backend, and
// relays commands and responses between them unchanged, parsing only as
// much of each response as it takes to find its end. Result sets stream
// through in bounded memory and reach the client in large writes.
package mysql

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
	"github.com/mecha-gateway/mecha/frontends/netio"
)

func init() {
	frontends.RegisterProtocol("mysql", DefaultConfig, func(c *Config, env frontends.Env) (frontends.Frontend, error) {
		return New(c, env)
	})
}

// settings is the part of the frontend that a reload replaces.
type settings struct {
	cfg     *Config
	tls     *tls.Config
	backend backends.MySQLPassthrough
	users   map[string]string
	plugin  string
	rsaKey  func() (*rsa.PrivateKey, []byte, error)
}

// Server is a MySQL frontend.
type Server struct {
	name   string
	log    *slog.Logger
	set    atomic.Pointer[settings]
	health backends.HealthCell

	ln   net.Listener
	addr net.Addr
	wg   sync.WaitGroup

	mu      sync.Mutex
	conns   map[uint32]*conn
	closing atomic.Bool
	nextID  atomic.Uint32
	nconns  atomic.Int64
	sweep   chan struct{}
	hup     *netio.HangupWatcher // nil where unsupported: the sweeper polls

	// sha2Cache holds, per user, the password that last passed
	// caching_sha2_password's full authentication, as MySQL's cache does:
	// the fast path is only taken for users in it.
	sha2Mu    sync.Mutex
	sha2Cache map[string]string
	// The RSA key generated when no rsa_key_file is set.
	genOnce sync.Once
	genK    *rsa.PrivateKey
	genPub  []byte
	genErr  error

	stats     *metrics.CommandTable
	accepted  metrics.Counter
	rejected  metrics.Counter
	authFails metrics.Counter
	// Logins by method: mysql_native_password, and caching_sha2_password's
	// fast and full paths.
	authNative, authFast, authFull metrics.Counter
	protoErrs                      metrics.Counter
	upLost                         metrics.Counter
}

var (
	_ frontends.Frontend   = (*Server)(nil)
	_ frontends.Reloadable = (*Server)(nil)
	_ metrics.Collector    = (*Server)(nil)
)

// connIDBase starts the connection ids Mecha announces, far above the
// thread ids of a MySQL server, so that KILL can tell them apart.
const connIDBase = 1 << 30

func commandNames() []string {
	names := make([]string, wire.NumCommands+1)
	for i := range wire.NumCommands {
		names[i] = wire.CommandName(byte(i))
	}
	names[wire.NumCommands] = "unknown"
	return names
}

// New builds the frontend; the backend must be a MySQL-protocol server.
func New(cfg *Config, env frontends.Env) (*Server, error) {
	s := &Server{
		name:      env.Name,
		log:       env.Logger,
		conns:     map[uint32]*conn{},
		sha2Cache: map[string]string{},
		stats:     metrics.NewCommandTable(commandNames()),
		sweep:     make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	st, err := newSettings(cfg, env)
	if err != nil {
		return nil, err
	}
	s.set.Store(st)
	return s, nil
}

func newSettings(cfg *Config, env frontends.Env) (*settings, error) {
	b, ok := env.Backend.(backends.MySQLPassthrough)
	if !ok {
		return nil, fmt.Errorf("backend %q cannot serve the mysql protocol", env.BackendName)
	}
	st := &settings{cfg: cfg, backend: b}
	st.users, st.plugin = cfg.users()
	if cfg.TLS != nil {
		t, err := cfg.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("mysql frontend %s: %w", env.Name, err)
		}
		st.tls = t
	}
	if cfg.RSAKeyFile != "" {
		key, pub, err := loadRSAKey(cfg.RSAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("mysql frontend %s: rsa_key_file: %w", env.Name, err)
		}
		st.rsaKey = func() (*rsa.PrivateKey, []byte, error) { return key, pub, nil }
	}
	return st, nil
}

// Start listens and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	st := s.set.Load()
	ln, err := frontends.Listen(ctx, "mysql", s.name, st.cfg.Listen, &s.health)
	if err != nil {
		return err
	}
	s.ln = ln
	s.addr = ln.Addr()
	if w, err := netio.NewHangupWatcher(s.upstreamHangup); err == nil {
		s.hup = w
	}
	s.health.Set(backends.StateUp, "")
	// Learn the upstream's handshake (or open an embedded engine) now
	// rather than at the first client.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), st.cfg.ConnectTimeout.D())
		defer cancel()
		if _, err := st.backend.Server(ctx); err != nil {
			s.log.Warn("mysql backend not reachable yet", "err", err)
		}
	}()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		frontends.AcceptLoop(s.ln, s.log, s.accept)
	}()
	go s.sweeper()
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.addr }

// Health reports whether the listener is serving.
func (s *Server) Health() backends.Health { return s.health.Get() }

// Reload applies a new configuration: new connections use it; connected
// clients keep their session and upstream.
func (s *Server) Reload(cfg any, env frontends.Env) error {
	st, err := newSettings(cfg.(*Config), env)
	if err != nil {
		return err
	}
	s.set.Store(st)
	return nil
}

func (s *Server) accept(nc net.Conn) {
	s.accepted.Inc()
	st := s.set.Load()
	id := connIDBase + s.nextID.Add(1)
	if s.nconns.Load() >= int64(st.cfg.MaxConnections) {
		s.rejected.Inc()
		refuse(nc, wire.ErrTooManyConnections())
		return
	}
	c := newConn(s, st, nc, id)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[id] = c
	s.mu.Unlock()
	s.nconns.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, id)
		s.mu.Unlock()
		s.nconns.Add(-1)
	}()
}

// refuse answers a connection with an error instead of a greeting.
func refuse(nc net.Conn, e *wire.Error) {
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	b := []byte{0, 0, 0, 0}
	b = e.AppendPayload(b)
	n := len(b) - 4
	b[0], b[1], b[2] = byte(n), byte(n>>8), byte(n>>16)
	_, _ = nc.Write(b)
	_ = nc.Close()
}

// lookup returns the connection Mecha announced as id.
func (s *Server) lookup(id uint32) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// upstreamHangup is told that the upstream session of connection id was
// closed by the server.
func (s *Server) upstreamHangup(id uint32) {
	if c := s.lookup(id); c != nil {
		c.upDead.Store(true)
		c.checkIdle()
	}
}

// sweepInterval is how often idle clients' upstream sessions are checked.
const sweepInterval = time.Second

// sweeper closes clients whose upstream session the server closed while
// they were idle (restart, wait_timeout, KILL), so that they see the
// connection end as they would connected directly, and their driver opens
// a new one, instead of finding out with their next query.
func (s *Server) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.sweep:
			return
		case <-t.C:
		}
		before := time.Now().Add(-sweepInterval).UnixNano()
		s.mu.Lock()
		idle := make([]*conn, 0, len(s.conns))
		for _, c := range s.conns {
			if !c.watched.Load() && c.lastActive.Load() < before {
				idle = append(idle, c)
			}
		}
		s.mu.Unlock()
		for _, c := range idle {
			c.checkIdle()
		}
	}
}

// Stop stops accepting, closes idle clients, lets the others finish the
// command they are in, and closes every connection once ctx is done.
func (s *Server) Stop(ctx context.Context) error {
	if s.closing.Swap(true) {
		return nil
	}
	if s.ln != nil {
		s.ln.Close()
		close(s.sweep)
	}
	s.mu.Lock()
	for _, c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for _, c := range s.conns {
			c.kill()
		}
		s.mu.Unlock()
		<-done
	}
	s.hup.Close()
	s.health.Set(backends.StateDown, "stopped")
	return nil
}

// CollectMetrics exports the frontend's metrics.
func (s *Server) CollectMetrics(w *metrics.Writer) {
	l := []metrics.Label{{Name: "frontend", Value: s.name}, {Name: "protocol", Value: "mysql"}}
	s.stats.Collect(w, "mecha_frontend", "Commands", l...)
	w.Gauge("mecha_frontend_connections", "Clients connected now.", float64(s.nconns.Load()), l...)
	w.Counter("mecha_frontend_connections_total", "Client connections accepted.", float64(s.accepted.Load()), l...)
	w.Counter("mecha_frontend_connections_rejected_total", "Client connections refused by max_connections.", float64(s.rejected.Load()), l...)
	w.Counter("mecha_frontend_auth_failures_total", "Logins refused (wrong user or password, TLS required).", float64(s.authFails.Load()), l...)
	for _, a := range []struct {
		method string
		c      *metrics.Counter
	}{{"mysql_native_password", &s.authNative}, {"caching_sha2_password_fast", &s.authFast}, {"caching_sha2_password_full", &s.authFull}} {
		w.Counter("mecha_frontend_logins_total", "Successful logins, by authentication method and path.", float64(a.c.Load()), append(l, metrics.Label{Name: "method", Value: a.method})...)
	}
	w.Counter("mecha_frontend_protocol_errors_total", "Clients disconnected for malformed input or limits.", float64(s.protoErrs.Load()), l...)
	w.Counter("mecha_frontend_upstream_lost_total", "Client sessions ended because their upstream session failed.", float64(s.upLost.Load()), l...)
}

// rsaKey returns the key for caching_sha2_password's full authentication
// without TLS: rsa_key_file's, or one generated at the first need.
func (s *Server) rsaKey(st *settings) (*rsa.PrivateKey, []byte, error) {
	if st.rsaKey != nil {
		return st.rsaKey()
	}
	s.genOnce.Do(func() { s.genK, s.genPub, s.genErr = generateRSAKey() })
	return s.genK, s.genPub, s.genErr
}

// sha2Cached reports whether user's password passed full authentication.
func (s *Server) sha2Cached(user, password string) bool {
	s.sha2Mu.Lock()
	defer s.sha2Mu.Unlock()
	p, ok := s.sha2Cache[user]
	return ok && p == password
}

func (s *Server) sha2Remember(user, password string) {
	s.sha2Mu.Lock()
	s.sha2Cache[user] = password
	s.sha2Mu.Unlock()
}

func loadRSAKey(path string) (*rsa.PrivateKey, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("no PEM block")
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		key = k
	} else if k8, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k8.(*rsa.PrivateKey)
		if !ok {
			return nil, nil, errors.New("not an RSA key")
		}
		key = rk
	} else {
		return nil, nil, err
	}
	return key, publicPEM(key), nil
}

func generateRSAKey() (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	return key, publicPEM(key), nil
}

func publicPEM(key *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
