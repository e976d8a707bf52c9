// Package grpcapi serves the gRPC API for capabilities without a trusted
// open protocol: the mecha.runtime.v1 services (Configuration, Lock,
// PubSub, Sequencer) and, on a port of its own, the configuration, lock
// and pub/sub calls of dapr.proto.runtime.v1.Dapr, all backed by the
// components configured under grpc.components (package component).
//
// The services validate requests (INVALID_ARGUMENT with a message naming
// the field), resolve the component, and add what the API promises on
// top of every store: blocking lock waits, release of locks when a
// client's connection closes, segment-cached sequences. Component errors
// become UNAVAILABLE (store unreachable), ABORTED (version conflict),
// NOT_FOUND or UNIMPLEMENTED.
package grpcapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

// Server runs the gRPC listeners over a set of components.
type Server struct {
	log *slog.Logger
	cfg atomic.Pointer[Config]
	set atomic.Pointer[Set]

	grpc, dapr *grpc.Server
	ln, dln    net.Listener
	health     *health.Server
	state      backends.HealthCell

	locks  lockWaiters
	owned  connLocks
	seqs   segments
	subs   atomic.Int64 // open pub/sub and configuration subscriptions
	calls  sync.Map     // full method name → *methodStats
	stopMu sync.Mutex
	done   bool
	quit   chan struct{}
	// stopping is cancelled when Stop begins: subscriptions, which never
	// end by themselves, end then (clients subscribe again elsewhere or
	// after the restart) instead of holding shutdown for the whole drain.
	stopping context.Context
	stop     context.CancelFunc
}

// maxStreamsPerConn bounds the calls and subscriptions open at once on
// one client connection.
const maxStreamsPerConn = 1000

// New returns a server for cfg over set; nothing runs until Start.
func New(cfg *Config, set *Set, log *slog.Logger) *Server {
	s := &Server{log: log}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.cfg.Store(cfg)
	s.set.Store(set)
	s.owned.m = map[string]map[heldLock]struct{}{}
	s.seqs.m = map[seqKey]*segment{}
	return s
}

// Config returns the configuration the server runs with.
func (s *Server) Config() *Config { return s.cfg.Load() }

// Set returns the components the server serves from.
func (s *Server) Set() *Set { return s.set.Load() }

// Start starts the components that are not running yet, then listens.
// On failure what it started is stopped again.
func (s *Server) Start(ctx context.Context) error {
	var started []component.Component
	undo := func() {
		for _, c := range started {
			c.Close()
		}
	}
	for _, e := range s.set.Load().Entries() {
		if e.started {
			continue
		}
		if err := e.C.Start(ctx); err != nil {
			undo()
			return fmt.Errorf("start %s component %s: %w", e.Capability, e.Name, err)
		}
		e.started = true
		started = append(started, e.C)
	}
	opts, err := s.serverOptions()
	if err != nil {
		undo()
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Config().Listen)
	if err != nil {
		undo()
		return fmt.Errorf("grpc: listen: %w", err)
	}
	s.ln = trackingListener{ln, s}
	s.grpc = grpc.NewServer(opts...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	runtimev1.RegisterConfigurationServer(s.grpc, &configService{s: s})
	runtimev1.RegisterLockServer(s.grpc, &lockService{s: s})
	runtimev1.RegisterPubSubServer(s.grpc, &pubsubService{s: s})
	runtimev1.RegisterSequencerServer(s.grpc, &sequencerService{s: s})
	if s.Config().DaprListen != "" {
		dln, err := lc.Listen(ctx, "tcp", s.Config().DaprListen)
		if err != nil {
			s.ln.Close()
			undo()
			return fmt.Errorf("grpc: dapr_listen: %w", err)
		}
		s.dln = trackingListener{dln, s}
		s.dapr = grpc.NewServer(opts...)
		healthpb.RegisterHealthServer(s.dapr, s.health)
		reflection.Register(s.dapr)
		registerDapr(s.dapr, s)
		go s.dapr.Serve(s.dln)
	}
	go s.grpc.Serve(s.ln)
	s.state.Set(backends.StateUp, "")
	s.updateHealth()
	s.quit = make(chan struct{})
	go func() {
		// grpc.health.v1 follows the components' health.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.updateHealth()
			}
		}
	}()
	return nil
}

func (s *Server) serverOptions() ([]grpc.ServerOption, error) {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(s.Config().MaxMessageSize)),
		grpc.MaxSendMsgSize(int(s.Config().MaxMessageSize)),
		// One connection may not open streams without bound (each
		// subscription holds goroutines): past this many, the client
		// queues new calls until one ends.
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		// Clients may ping idle connections (the Dapr SDK does) without
		// being cut off for it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Mecha pings a connection that has been silent for 30 s and
		// closes it when the ping goes unanswered for 10 s: a client
		// whose machine vanished (no FIN) loses its subscriptions and
		// release_on_disconnect locks within ~40 s, not when TCP gives up.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if s.Config().TLS != nil {
		tc, err := s.Config().TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("grpc: tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return opts, nil
}

// Addr is the bound address of the mecha.runtime.v1 listener.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// DaprAddr is the bound address of the Dapr listener, nil when off.
func (s *Server) DaprAddr() net.Addr {
	if s.dln == nil {
		return nil
	}
	return s.dln.Addr()
}

// SameListeners reports whether cfg can be applied to the running server
// with Swap: same addresses, TLS and message size (what the listeners are
// built with). The token and the segment size are read per call, so a
// new token applies to the next call without dropping connections.
func (s *Server) SameListeners(cfg *Config) bool {
	o := s.Config()
	sameTLS := (o.TLS == nil) == (cfg.TLS == nil) && (o.TLS == nil || *o.TLS == *cfg.TLS)
	return o.Listen == cfg.Listen && o.DaprListen == cfg.DaprListen && sameTLS &&
		o.MaxMessageSize == cfg.MaxMessageSize
}

// Swap starts set's new components and serves from set from now on;
// components of the old set that set does not carry over are closed
// after drain. Calls and subscriptions in flight keep the component they
// started with.
func (s *Server) Swap(ctx context.Context, cfg *Config, set *Set, drain time.Duration) error {
	var started []component.Component
	for _, e := range set.Entries() {
		if e.started {
			continue
		}
		if err := e.C.Start(ctx); err != nil {
			for _, c := range started {
				c.Close()
			}
			return fmt.Errorf("start %s component %s: %w", e.Capability, e.Name, err)
		}
		e.started = true
		started = append(started, e.C)
	}
	old := s.set.Swap(set)
	s.cfg.Store(cfg)
	keep := map[component.Component]bool{}
	for _, e := range set.Entries() {
		keep[e.C] = true
	}
	s.seqs.retain(keep)
	for _, e := range old.Entries() {
		if !keep[e.C] {
			c := e.C
			time.AfterFunc(drain, func() { c.Close() })
		}
	}
	s.updateHealth()
	return nil
}

// Stop stops serving: new calls are refused, calls in flight (and open
// streams) get until ctx is done, then everything is closed. Components
// in keep stay open (a reload carries them over); the rest are closed.
func (s *Server) Stop(ctx context.Context, keep map[component.Component]bool) {
	s.stopMu.Lock()
	if s.done {
		s.stopMu.Unlock()
		return
	}
	s.done = true
	s.stopMu.Unlock()
	s.stop()
	if s.quit != nil {
		close(s.quit)
	}
	s.state.Set(backends.StateDown, "stopped")
	if s.health != nil {
		s.health.Shutdown()
	}
	var wg sync.WaitGroup
	for _, g := range []*grpc.Server{s.grpc, s.dapr} {
		if g == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopped := make(chan struct{})
			go func() { g.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				g.Stop()
				<-stopped
			}
		}()
	}
	wg.Wait()
	for _, e := range s.set.Load().Entries() {
		if !keep[e.C] {
			e.C.Close()
		}
	}
}

// Health is UP while the listeners serve.
func (s *Server) Health() backends.Health { return s.state.Get() }

// updateHealth publishes per-service status on grpc.health.v1: a service
// is SERVING when it has a component and all its components are UP.
func (s *Server) updateHealth() {
	if s.health == nil {
		return
	}
	set := s.set.Load()
	for capab, svc := range map[component.Capability]string{
		component.CapConfig:    runtimev1.Configuration_ServiceDesc.ServiceName,
		component.CapLock:      runtimev1.Lock_ServiceDesc.ServiceName,
		component.CapPubSub:    runtimev1.PubSub_ServiceDesc.ServiceName,
		component.CapSequencer: runtimev1.Sequencer_ServiceDesc.ServiceName,
	} {
		st := healthpb.HealthCheckResponse_SERVING
		if len(set.byCap[capab]) == 0 {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		for _, e := range set.byCap[capab] {
			if e.C.Health().State != backends.StateUp {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
		}
		s.health.SetServingStatus(svc, st)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
}

// lookup returns the component of capability named name, and its name;
// an empty name means the only one configured. field names the request
// field in messages.
func lookup[T any](s *Server, capab component.Capability, field, name string) (T, string, error) {
	var zero T
	m := s.set.Load().byCap[capab]
	if name == "" {
		if len(m) == 1 {
			for n, e := range m {
				return e.C.(T), n, nil
			}
		}
		if len(m) == 0 {
			return zero, "", status.Errorf(codes.FailedPrecondition, "no %s component is configured (grpc.components.%s)", capab, capab)
		}
		return zero, "", status.Errorf(codes.InvalidArgument, "%s is required: %d %s components are configured (%s)", field, len(m), capab, names(m))
	}
	e, ok := m[name]
	if !ok {
		return zero, "", status.Errorf(codes.InvalidArgument, "%s %q: no such %s component (configured: %s)", field, name, capab, names(m))
	}
	return e.C.(T), name, nil
}

func names(m map[string]*Entry) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// toStatus turns a component error into a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, component.ErrVersionMismatch):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, component.ErrUnknownMessage):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, component.ErrNotSupported):
		return status.Error(codes.Unimplemented, err.Error())
	}
	// Anything else is the store failing: the client may retry.
	return status.Error(codes.Unavailable, err.Error())
}

// ---- authentication and metrics ----

func (s *Server) authorize(ctx context.Context, method string) error {
	tok := s.Config().Auth.Token.Reveal()
	if tok == "" || strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var got string
	if v := md.Get("dapr-api-token"); len(v) > 0 {
		got = v[0]
	} else if v := md.Get("authorization"); len(v) > 0 {
		got, _ = strings.CutPrefix(v[0], "Bearer ")
	}
	if got == "" {
		return status.Error(codes.Unauthenticated, "missing token: send metadata `authorization: Bearer <token>` or `dapr-api-token`")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
		return status.Error(codes.Unauthenticated, "invalid token")
	}
	return nil
}

type methodStats struct {
	latency metrics.Histogram
	mu      sync.Mutex
	codes   map[codes.Code]uint64
}

func (s *Server) record(method string, start time.Time, err error) {
	v, ok := s.calls.Load(method)
	if !ok {
		v, _ = s.calls.LoadOrStore(method, &methodStats{codes: map[codes.Code]uint64{}})
	}
	ms := v.(*methodStats)
	ms.latency.Observe(time.Since(start))
	c := status.Code(err)
	ms.mu.Lock()
	ms.codes[c]++
	ms.mu.Unlock()
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	if err := s.authorize(ctx, info.FullMethod); err != nil {
		s.record(info.FullMethod, start, err)
		return nil, err
	}
	resp, err := handler(ctx, req)
	err = toStatus(err)
	s.record(info.FullMethod, start, err)
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
		s.record(info.FullMethod, start, err)
		return err
	}
	s.subs.Add(1)
	defer s.subs.Add(-1)
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	err := handler(srv, &stoppableStream{ServerStream: ss, ctx: ctx})
	if s.stopping.Err() != nil && ss.Context().Err() == nil {
		err = status.Error(codes.Unavailable, "Mecha is shutting down: subscribe again")
	}
	err = toStatus(err)
	s.record(info.FullMethod, start, err)
	return err
}

// stoppableStream is a stream whose context also ends when the server
// stops.
type stoppableStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppableStream) Context() context.Context { return s.ctx }

// CollectMetrics writes the API's metrics.
func (s *Server) CollectMetrics(w *metrics.Writer) {
	s.calls.Range(func(k, v any) bool {
		method := k.(string)
		ms := v.(*methodStats)
		svc, m := splitMethod(method)
		l := []metrics.Label{{Name: "service", Value: svc}, {Name: "method", Value: m}}
		w.Histogram("mecha_grpc_request_duration_seconds", "Time to serve a call (a stream: its whole life).", &ms.latency, l...)
		ms.mu.Lock()
		for c, n := range ms.codes {
			w.Counter("mecha_grpc_requests_total", "Calls served, by status code.", float64(n), append(l, metrics.Label{Name: "code", Value: c.String()})...)
		}
		ms.mu.Unlock()
		return true
	})
	w.Gauge("mecha_grpc_open_streams", "Open streaming calls (subscriptions).", float64(s.subs.Load()))
	for _, e := range s.set.Load().Entries() {
		h := e.C.Health()
		l := []metrics.Label{{Name: "capability", Value: string(e.Capability)}, {Name: "component", Value: e.Name}, {Name: "type", Value: e.Type}}
		w.Gauge("mecha_component_up", "1 when the gRPC API component is healthy.", boolF(h.State == backends.StateUp), l...)
		if c, ok := e.C.(metrics.Collector); ok {
			c.CollectMetrics(w)
		}
	}
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "", full
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ---- connection tracking, for locks released on disconnect ----

// trackingListener hands gRPC connections that report their closing, so
// that locks taken with release_on_disconnect go with the connection.
// (A grpc stats handler could say the same, but it makes gRPC build
// stats events for every call: ~20 µs of CPU per call here.)
type trackingListener struct {
	net.Listener
	s *Server
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, s: l.s, key: c.RemoteAddr().String()}, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	key  string
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.s.releaseConn(c.key) })
	return err
}

// SyscallConn exposes the socket, as gRPC uses it for TCP options.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

// connID names the client connection of a call: its remote address,
// unique among open connections.
func connID(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
