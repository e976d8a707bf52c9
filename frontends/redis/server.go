// Package redis is the `protocol: redis` frontend: a RESP2 server that
// speaks Redis 7's protocol exactly (framing, limits, connection commands,
// error texts) and serves data commands from the configured backend.
package redis

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
	translate "github.com/mecha-gateway/mecha/translate/redis"
)

func init() {
	frontends.RegisterProtocol("redis", DefaultConfig, func(c *Config, env frontends.Env) (frontends.Frontend, error) {
		return New(c, env)
	})
}

// settings is the part of the frontend that a reload replaces.
type settings struct {
	cfg *Config
	tls *tls.Config
	// Exactly one of backend (a RESP server, passed through) and kv (a
	// store served through the translation layer) is set.
	backend  backends.RESPPassthrough
	router   backends.RESPRouter // set when backend spreads keys over servers
	kv       *translate.Engine
	bname    string
	limits   resp.Limits
	authNeed bool
}

// emulatedVersion is the Redis version the translation layer behaves as.
const emulatedVersion = "7.0.15"

func (st *settings) databases() int {
	if st.kv != nil {
		return st.kv.Databases()
	}
	return st.backend.Databases()
}

func (st *settings) version() string {
	if st.kv != nil {
		return emulatedVersion
	}
	return st.backend.Version()
}

// flush sends deferred requests upstream (passthrough only).
func (st *settings) flush() {
	if st.backend != nil {
		st.backend.Flush()
	}
}

// Server is a Redis frontend.
type Server struct {
	name    string
	version string
	log     *slog.Logger
	set     atomic.Pointer[settings]
	health  backends.HealthCell
	start   time.Time

	ln    net.Listener
	addr  net.Addr
	wg    sync.WaitGroup
	ready *readiness // nil where unsupported

	mu      sync.Mutex
	conns   map[int64]*conn
	closing atomic.Bool

	nextID   atomic.Int64
	round    atomic.Int32 // clients woken together that have not finished their input
	nclients atomic.Int64
	blocked  atomic.Int64

	stats     *metrics.CommandTable
	accepted  metrics.Counter
	rejected  metrics.Counter
	protoErrs metrics.Counter
	netIn     metrics.Counter
	netOut    metrics.Counter
	flushes   metrics.Counter
}

var (
	_ frontends.Frontend   = (*Server)(nil)
	_ frontends.Reloadable = (*Server)(nil)
	_ metrics.Collector    = (*Server)(nil)
)

// unknownCommand is the metrics index of commands not in the table.
var unknownCommand = resp.NumCommandIDs()

func commandNames() []string {
	names := make([]string, resp.NumCommandIDs()+1)
	for i := 0; i < resp.NumCommandIDs(); i++ {
		names[i] = resp.CommandByID(i).Name
	}
	names[unknownCommand] = "unknown"
	return names
}

// New builds the frontend. The backend must speak RESP.
func New(cfg *Config, env frontends.Env) (*Server, error) {
	s := &Server{
		name:    env.Name,
		version: env.Version,
		log:     env.Logger,
		conns:   map[int64]*conn{},
		stats:   metrics.NewCommandTable(commandNames()),
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
	st := &settings{
		cfg:      cfg,
		bname:    env.BackendName,
		limits:   cfg.Limits.parser(),
		authNeed: cfg.Auth != nil,
	}
	switch b := env.Backend.(type) {
	case backends.RESPPassthrough:
		st.backend = b
		st.router, _ = b.(backends.RESPRouter)
	case kv.Store:
		st.kv = translate.EngineFor(b, env.BackendName)
	default:
		return nil, fmt.Errorf("backend %q cannot serve the redis protocol", env.BackendName)
	}
	if cfg.TLS != nil {
		t, err := cfg.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("redis frontend %s: %w", env.Name, err)
		}
		st.tls = t
	}
	return st, nil
}

// Start listens and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	st := s.set.Load()
	ln, err := frontends.Listen(ctx, "redis", s.name, st.cfg.Listen, &s.health)
	if err != nil {
		return err
	}
	s.ln = ln
	s.addr = ln.Addr()
	if r, err := newReadiness(); err == nil {
		s.ready = r
		go r.run()
	}
	s.start = time.Now()
	s.health.Set(backends.StateUp, "")
	s.wg.Add(1)
	go s.acceptLoop()
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.addr }

// Health reports whether the listener is serving.
func (s *Server) Health() backends.Health { return s.health.Get() }

// Reload applies a new configuration in place: new connections and the
// next command of existing ones use it.
func (s *Server) Reload(cfg any, env frontends.Env) error {
	st, err := newSettings(cfg.(*Config), env)
	if err != nil {
		return err
	}
	s.set.Store(st)
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	frontends.AcceptLoop(s.ln, s.log, s.accept)
}

// accept starts serving one client.
func (s *Server) accept(nc net.Conn) {
	s.accepted.Inc()
	st := s.set.Load()
	if s.nclients.Load() >= int64(st.cfg.Limits.MaxClients) {
		s.rejected.Inc()
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write([]byte("-ERR max number of clients reached\r\n"))
		nc.Close()
		return
	}
	if st.tls != nil {
		nc = tls.Server(nc, st.tls)
	}
	c := newConn(s, nc)
	if s.ready != nil && st.tls == nil {
		s.ready.add(c)
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c.id] = c
	s.mu.Unlock()
	s.nclients.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c.id)
		s.mu.Unlock()
		s.nclients.Add(-1)
	}()
}

// Stop stops accepting, lets each client finish the commands it has sent,
// and closes every connection once ctx is done.
func (s *Server) Stop(ctx context.Context) error {
	if s.closing.Swap(true) {
		return nil
	}
	if s.ln != nil {
		s.ln.Close()
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
	if s.ready != nil {
		s.ready.close()
	}
	s.health.Set(backends.StateDown, "stopped")
	return nil
}

// clients returns the connected clients sorted by id.
func (s *Server) clients() []*conn {
	s.mu.Lock()
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// CollectMetrics exports the frontend's metrics.
func (s *Server) CollectMetrics(w *metrics.Writer) {
	l := []metrics.Label{{Name: "frontend", Value: s.name}, {Name: "protocol", Value: "redis"}}
	s.stats.Collect(w, "mecha_frontend", "Commands", l...)
	w.Gauge("mecha_frontend_connections", "Clients connected now.", float64(s.nclients.Load()), l...)
	w.Counter("mecha_frontend_connections_total", "Client connections accepted.", float64(s.accepted.Load()), l...)
	w.Counter("mecha_frontend_connections_rejected_total", "Client connections refused by max_clients.", float64(s.rejected.Load()), l...)
	w.Counter("mecha_frontend_protocol_errors_total", "Clients disconnected for malformed input or limits.", float64(s.protoErrs.Load()), l...)
	w.Gauge("mecha_frontend_blocked_clients", "Clients waiting in a blocking command.", float64(s.blocked.Load()), l...)
	w.Counter("mecha_frontend_received_bytes_total", "Bytes read from clients.", float64(s.netIn.Load()), l...)
	w.Counter("mecha_frontend_sent_bytes_total", "Bytes written to clients.", float64(s.netOut.Load()), l...)
	w.Counter("mecha_frontend_flushes_total", "Writes to client sockets (a pipelined batch is answered in as few as one).", float64(s.flushes.Load()), l...)
}

var pid = os.Getpid()

var (
	osName     = runtime.GOOS + " " + runtime.GOARCH
	executable = func() string {
		p, _ := os.Executable()
		return p
	}()
)
