// Package s3 is the `protocol: s3` frontend: Amazon S3's REST API over
// HTTP(S), with AWS Signature V4 verified on every request (sigv4), served
// from any blob.Store backend.
package s3

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/frontends/s3/sigv4"
)

func init() {
	frontends.RegisterProtocol("s3", DefaultConfig, func(c *Config, env frontends.Env) (frontends.Frontend, error) {
		return New(c, env)
	})
}

// settings is what a reload replaces.
type settings struct {
	cfg      *Config
	store    blob.Store
	verifier *sigv4.Verifier
	tls      *tls.Config
}

// Server is an S3 frontend.
type Server struct {
	name   string
	log    *slog.Logger
	set    atomic.Pointer[settings]
	health backends.HealthCell

	srv    *http.Server
	ln     net.Listener
	addr   net.Addr
	served chan struct{}

	hostID string
	nextID atomic.Uint64
	idBase string

	stats    *metrics.CommandTable
	inBytes  metrics.Counter
	outBytes metrics.Counter
	active   metrics.Gauge
}

var (
	_ frontends.Frontend   = (*Server)(nil)
	_ frontends.Reloadable = (*Server)(nil)
	_ metrics.Collector    = (*Server)(nil)
)

// New builds the frontend; the backend must be an object store.
func New(cfg *Config, env frontends.Env) (*Server, error) {
	st, err := newSettings(cfg, env)
	if err != nil {
		return nil, err
	}
	s := &Server{name: env.Name, log: env.Logger, stats: metrics.NewCommandTable(opNames[:])}
	if s.log == nil {
		s.log = slog.Default()
	}
	var b [12]byte
	rand.Read(b[:])
	s.hostID = base64.StdEncoding.EncodeToString(b[:])
	s.idBase = strings.ToUpper(hex.EncodeToString(b[:4]))
	s.set.Store(st)
	return s, nil
}

func newSettings(cfg *Config, env frontends.Env) (*settings, error) {
	store, ok := env.Backend.(blob.Store)
	if !ok {
		return nil, fmt.Errorf("s3 frontend %s: backend %s is not an object store (use type fs, memory or s3)", env.Name, env.BackendName)
	}
	st := &settings{cfg: cfg, store: store}
	auth := cfg.Auth
	st.verifier = &sigv4.Verifier{
		Credentials:    auth.secret,
		MaxSkew:        cfg.MaxSkew.D(),
		AllowAnonymous: auth.Anonymous,
	}
	if cfg.StrictRegion {
		st.verifier.Region = cfg.Region
	}
	if cfg.TLS != nil {
		t, err := cfg.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("s3 frontend %s: %w", env.Name, err)
		}
		st.tls = t
	}
	return st, nil
}

// Start opens the listener and serves.
func (s *Server) Start(ctx context.Context) error {
	st := s.set.Load()
	ln, err := frontends.Listen(ctx, "s3", s.name, st.cfg.Listen, &s.health)
	if err != nil {
		return err
	}
	s.ln, s.addr = ln, ln.Addr()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: st.cfg.ReadHeaderTimeout.D(),
		IdleTimeout:       st.cfg.IdleTimeout.D(),
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if st.tls != nil {
		ln = tls.NewListener(ln, st.tls)
	}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.health.Set(backends.StateDown, err.Error())
			s.log.Error("s3 frontend stopped serving", "err", err)
		}
	}()
	s.health.Set(backends.StateUp, "")
	return nil
}

// Stop stops accepting, lets requests in flight finish until ctx is done,
// then closes every connection.
func (s *Server) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.served
	s.health.Set(backends.StateDown, "stopped")
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.addr }

// Health reports whether the listener is serving.
func (s *Server) Health() backends.Health { return s.health.Get() }

// Reload applies a new configuration (credentials, backend, limits) to the
// next requests; the listener and TLS stay as they were started.
func (s *Server) Reload(cfg any, env frontends.Env) error {
	st, err := newSettings(cfg.(*Config), env)
	if err != nil {
		return err
	}
	s.set.Store(st)
	return nil
}

// CollectMetrics exports per-operation request counts, errors and
// latency, and the bytes moved.
func (s *Server) CollectMetrics(w *metrics.Writer) {
	l := []metrics.Label{{Name: "frontend", Value: s.name}, {Name: "protocol", Value: "s3"}}
	s.stats.Collect(w, "mecha_frontend", "Requests", l...)
	w.Counter("mecha_frontend_received_bytes_total", "Object bytes received from clients.", float64(s.inBytes.Load()), l...)
	w.Counter("mecha_frontend_sent_bytes_total", "Object bytes sent to clients.", float64(s.outBytes.Load()), l...)
	w.Gauge("mecha_frontend_requests_in_flight", "Requests being served.", float64(s.active.Load()), l...)
}

// request is one request being served.
type request struct {
	s      *Server
	st     *settings
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	id     string
	hostID string
	op     op
	bucket string
	key    string
	auth   *sigv4.Result
	q      url.Values // the query, parsed once
	failed bool
}

// resource is the path the request named, for error documents.
func (rq *request) resource() string {
	switch {
	case rq.bucket == "":
		return "/"
	case rq.key == "":
		return "/" + rq.bucket
	}
	return "/" + rq.bucket + "/" + rq.key
}

// ServeHTTP authenticates, routes and answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.active.Add(1)
	defer s.active.Add(-1)
	rq := &request{s: s, st: s.set.Load(), w: w, r: r, ctx: r.Context(), hostID: s.hostID}
	rq.id = fmt.Sprintf("%s%012X", s.idBase, s.nextID.Add(1))
	h := w.Header()
	h.Set("x-amz-request-id", rq.id)
	h.Set("x-amz-id-2", s.hostID)
	h.Set("Server", "Mecha")
	rq.serve()
	stats := s.stats.Get(int(rq.op))
	stats.Calls.Inc()
	if rq.failed {
		stats.Errors.Inc()
	}
	stats.Latency.Observe(time.Since(start))
}

func (rq *request) serve() {
	// The address first (errors name the resource), then who is asking,
	// then what is asked.
	if rq.r.Body != nil && rq.r.Body != http.NoBody {
		rq.r.Body = &stallGuard{r: rq.r.Body, rc: http.NewResponseController(rq.w), d: rq.st.cfg.BodyTimeout.D()}
	}
	var err error
	rq.bucket, rq.key, err = rq.st.cfg.address(rq.r)
	if err == nil {
		rq.auth, err = rq.st.verifier.Verify(rq.r)
	}
	if err != nil {
		rq.writeError(err)
		return
	}
	defer rq.auth.Body.Close()
	var handler func(*request) error
	rq.q = rq.r.URL.Query()
	rq.op, handler, err = route(rq.r.Method, rq.bucket, rq.key, rq.q, rq.r.Header)
	if err == nil {
		err = handler(rq)
	}
	if err != nil {
		rq.writeError(err)
	}
}

// stallGuard fails a request body that sends nothing for d: each read
// must complete within d of its start.
type stallGuard struct {
	r  io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (g *stallGuard) Read(p []byte) (int, error) {
	g.rc.SetReadDeadline(time.Now().Add(g.d))
	n, err := g.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errRequestTimeout
	}
	return n, err
}

func (g *stallGuard) Close() error { return g.r.Close() }
