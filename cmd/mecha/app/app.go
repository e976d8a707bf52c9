package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/grpcapi"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Mecha is a running gateway.
type Mecha struct {
	log     *slog.Logger
	version string
	started time.Time

	mu   sync.Mutex // serialises Reload and Shutdown
	plan atomic.Pointer[plan]

	admin     *http.Server
	adminAddr net.Addr

	reloads      metrics.Counter
	reloadErrors metrics.Counter
	closed       bool
}

// Validate checks a configuration as `mecha validate` does: every module
// section decoded strictly, every reference resolved, every instance
// constructible.
func Validate(cfg *configs.Config) error {
	_, err := compile(cfg, slog.New(slog.DiscardHandler), "", nil)
	return err
}

// Start builds and starts everything cfg describes. If any part fails to
// start, what did start is stopped again.
func Start(ctx context.Context, cfg *configs.Config, log *slog.Logger, version string) (*Mecha, error) {
	m := &Mecha{log: log, version: version, started: time.Now()}
	p, err := compile(cfg, log, version, nil)
	if err != nil {
		return nil, err
	}
	if err := m.startPlan(ctx, p, nil); err != nil {
		return nil, err
	}
	m.plan.Store(p)
	if cfg.Admin.Listen != "" {
		if err := m.startAdmin(cfg.Admin.Listen); err != nil {
			m.stopPlan(context.Background(), p)
			return nil, err
		}
	}
	return m, nil
}

// startPlan starts p's backends that are not running yet, then its new
// frontends. On failure it undoes what it started.
func (m *Mecha) startPlan(ctx context.Context, p *plan, keep map[*frontendEntry]bool) error {
	var startedB []backends.Backend
	var startedF []frontends.Frontend
	undo := func() {
		for _, f := range startedF {
			f.Stop(context.Background())
		}
		for _, b := range startedB {
			b.Close()
		}
	}
	for _, name := range sortedKeys(p.backends) {
		e := p.backends[name]
		if e.started {
			continue
		}
		if err := e.b.Start(ctx); err != nil {
			undo()
			return fmt.Errorf("start backend %s: %w", name, err)
		}
		e.started = true
		startedB = append(startedB, e.b)
	}
	for _, fe := range p.frontends {
		if keep[fe] {
			continue
		}
		if err := fe.f.Start(ctx); err != nil {
			undo()
			return err
		}
		startedF = append(startedF, fe.f)
	}
	if g := p.grpc; g != nil && g.srv == nil {
		srv := grpcapi.New(g.cfg, g.set, m.log.With("frontend", "grpc"))
		if err := srv.Start(ctx); err != nil {
			undo()
			return err
		}
		g.srv = srv
	}
	return nil
}

// stopPlan stops every frontend (draining until ctx is done) and closes
// every backend.
func (m *Mecha) stopPlan(ctx context.Context, p *plan) {
	var wg sync.WaitGroup
	for _, fe := range p.frontends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fe.f.Stop(ctx)
		}()
	}
	if p.grpc != nil && p.grpc.srv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.grpc.srv.Stop(ctx, nil)
		}()
	}
	wg.Wait()
	for _, name := range sortedKeys(p.backends) {
		p.backends[name].b.Close()
	}
}

// Reload applies cfg in place. Frontends and backends whose configuration
// did not change keep running with their connections; a frontend whose
// backend changed switches to the new one without dropping clients; a
// frontend whose listen address or protocol changed is restarted. An
// invalid cfg is refused and the running configuration stays.
func (m *Mecha) Reload(ctx context.Context, cfg *configs.Config, drain time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mecha is shutting down")
	}
	old := m.plan.Load()
	np, err := compile(cfg, m.log, m.version, old)
	if err != nil {
		m.reloadErrors.Inc()
		return err
	}
	if cfg.Admin.Listen != old.cfg.Admin.Listen {
		m.reloadErrors.Inc()
		return &configs.Error{Pos: configs.Pos{File: cfg.Source}, Key: "admin.listen", Msg: "cannot change on reload (restart Mecha)"}
	}
	oldByName := map[string]*frontendEntry{}
	for _, fe := range old.frontends {
		oldByName[fe.name] = fe
	}
	keep := map[*frontendEntry]bool{}
	var reloaded []*frontendEntry
	var restart []*frontendEntry // old frontends to stop
	for _, fe := range np.frontends {
		of, ok := oldByName[fe.name]
		if !ok {
			continue
		}
		delete(oldByName, fe.name)
		sameBackend := old.backends[of.backend] != nil && np.backends[fe.backend].b == old.backends[of.backend].b
		switch {
		case of.protocol != fe.protocol || of.listen != fe.listen:
			restart = append(restart, of)
		case of.base.Equal(fe.base) && sameBackend:
			fe.f = of.f
			keep[fe] = true
		default:
			if r, ok := of.f.(frontends.Reloadable); ok {
				if err := r.Reload(fe.cfg, np.frontendEnv(fe, m.log, m.version)); err != nil {
					m.reloadErrors.Inc()
					return err
				}
				fe.f = of.f
				keep[fe] = true
				reloaded = append(reloaded, fe)
			} else {
				restart = append(restart, of)
			}
		}
	}
	for _, of := range oldByName {
		restart = append(restart, of)
	}
	// Free the addresses of frontends that restart, then start what is
	// new. A frontend moving to an address another one leaves is fine.
	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	for _, of := range restart {
		of.f.Stop(dctx)
	}
	if err := m.reloadGRPC(ctx, dctx, old, np, drain); err != nil {
		m.reloadErrors.Inc()
		return err
	}
	if err := m.startPlan(ctx, np, keep); err != nil {
		m.reloadErrors.Inc()
		m.log.Error("reload failed while starting; some frontends may be stopped", "err", err)
		return err
	}
	m.plan.Store(np)
	// Backends nothing uses any more close once requests in flight on
	// them had time to finish; clients holding one of their connections
	// (a transaction, a subscription) keep it until they let it go.
	for name, e := range old.backends {
		if ne, ok := np.backends[name]; ok && ne.b == e.b {
			continue
		}
		time.AfterFunc(min(drain, 5*time.Second), func() { e.b.Close() })
	}
	m.reloads.Inc()
	m.log.Info("configuration reloaded", "source", cfg.Source, "frontends_restarted", len(restart), "frontends_reconfigured", len(reloaded))
	return nil
}

// reloadGRPC carries the gRPC API over to np: the running server serves
// np's components from now on when its listeners stay the same;
// otherwise it stops (keeping the components np carries over) and
// startPlan starts a new one.
func (m *Mecha) reloadGRPC(ctx, dctx context.Context, old, np *plan, drain time.Duration) error {
	if old.grpc == nil || old.grpc.srv == nil {
		return nil
	}
	srv := old.grpc.srv
	if np.grpc == nil {
		srv.Stop(dctx, nil)
		return nil
	}
	if srv.SameListeners(np.grpc.cfg) {
		if err := srv.Swap(ctx, np.grpc.cfg, np.grpc.set, min(drain, 5*time.Second)); err != nil {
			return err
		}
		np.grpc.srv = srv
		return nil
	}
	keep := map[component.Component]bool{}
	for _, e := range np.grpc.set.Entries() {
		keep[e.C] = true
	}
	srv.Stop(dctx, keep)
	return nil
}

// GRPCAddr returns the gRPC API's bound address, nil when it is off.
func (m *Mecha) GRPCAddr() net.Addr {
	if g := m.plan.Load().grpc; g != nil && g.srv != nil {
		return g.srv.Addr()
	}
	return nil
}

// GRPCTokenRequired reports whether gRPC calls must carry a token.
func (m *Mecha) GRPCTokenRequired() bool {
	g := m.plan.Load().grpc
	return g != nil && g.cfg.Auth.Token != ""
}

// DaprAddr returns the Dapr-compatible listener's address, nil when off.
func (m *Mecha) DaprAddr() net.Addr {
	if g := m.plan.Load().grpc; g != nil && g.srv != nil {
		return g.srv.DaprAddr()
	}
	return nil
}

// Shutdown stops accepting, drains in-flight requests until ctx is done,
// and closes everything.
func (m *Mecha) Shutdown(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	if m.admin != nil {
		m.admin.Close()
	}
	m.stopPlan(ctx, m.plan.Load())
}

// FrontendAddr returns the bound address of the named frontend.
func (m *Mecha) FrontendAddr(name string) net.Addr {
	for _, fe := range m.plan.Load().frontends {
		if fe.name == name {
			return fe.f.Addr()
		}
	}
	return nil
}

// AdminAddr returns the admin endpoint's bound address.
func (m *Mecha) AdminAddr() net.Addr { return m.adminAddr }

// Frontends lists the running frontends: name, protocol, address.
func (m *Mecha) Frontends() [][3]string {
	var out [][3]string
	for _, fe := range m.plan.Load().frontends {
		out = append(out, [3]string{fe.name, fe.protocol, fe.f.Addr().String()})
	}
	return out
}

// ShutdownTimeout is how long shutdown waits for in-flight requests.
func (m *Mecha) ShutdownTimeout() time.Duration {
	return m.plan.Load().cfg.ShutdownTimeout.D()
}
