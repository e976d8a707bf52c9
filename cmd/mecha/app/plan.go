// Package app is Mecha's runtime: it turns a configuration into running
// frontends and backends, serves the admin endpoint, and applies new
// configurations in place.
package app

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/grpcapi"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// plan is a configuration checked and turned into module instances that
// have not started.
type plan struct {
	cfg       *configs.Config
	backends  map[string]*backendEntry
	frontends []*frontendEntry
	// grpc is the gRPC API's section and components, nil when off; srv
	// is its server once started.
	grpc *grpcEntry
}

type grpcEntry struct {
	cfg *grpcapi.Config
	set *grpcapi.Set
	srv *grpcapi.Server
}

type backendEntry struct {
	name string
	typ  string
	node configs.Node
	cfg  any
	b    backends.Backend
	// started is set once the instance runs (or, in a reload, when it is
	// carried over from the running plan).
	started bool
}

type frontendEntry struct {
	base configs.Node
	name string
	cfg  any
	f    frontends.Frontend
	// listen, protocol and backend as configured
	protocol string
	listen   string
	backend  string
}

// compile decodes every module section, checks references, and builds
// (without starting) each frontend and backend. Backends whose section is
// unchanged from running are reused rather than built again.
func compile(cfg *configs.Config, log *slog.Logger, version string, running *plan) (*plan, error) {
	var errs configs.Errors
	add := func(err error) { errs.Add(err, configs.Pos{File: cfg.Source}, "") }
	p := &plan{cfg: cfg, backends: map[string]*backendEntry{}}

	names := make([]string, 0, len(cfg.Backends))
	for name := range cfg.Backends {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		node := cfg.Backends[name]
		typ, ok := node.Scalar("type")
		if !ok {
			add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".type", Msg: "is required (one of: " + joinNames(backends.Types()) + ")"})
			continue
		}
		mod, ok := backends.Lookup(typ)
		if !ok {
			add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".type", Msg: fmt.Sprintf("unknown backend type %q (known: %s)", typ, joinNames(backends.Types()))})
			continue
		}
		if running != nil {
			if old, ok := running.backends[name]; ok && old.typ == typ && old.node.Equal(node) {
				p.backends[name] = &backendEntry{name: name, typ: typ, node: node, cfg: old.cfg, b: old.b, started: true}
				continue
			}
		}
		bcfg := mod.NewConfig()
		if err := node.Decode(bcfg); err != nil {
			add(err)
			continue
		}
		p.backends[name] = &backendEntry{name: name, typ: typ, node: node, cfg: bcfg}
	}

	seenName := map[string]bool{}
	seenListen := map[string]string{}
	for _, node := range cfg.Frontends {
		proto, ok := node.Scalar("protocol")
		if !ok {
			add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".protocol", Msg: "is required (one of: " + joinNames(frontends.Protocols()) + ")"})
			continue
		}
		mod, ok := frontends.Lookup(proto)
		if !ok {
			add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".protocol", Msg: fmt.Sprintf("unknown protocol %q (known: %s)", proto, joinNames(frontends.Protocols()))})
			continue
		}
		fcfg := mod.NewConfig()
		if err := node.Decode(fcfg); err != nil {
			add(err)
			continue
		}
		base := baseOf(fcfg)
		if seenName[base.Name] {
			add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".name", Msg: fmt.Sprintf("frontend name %q is used twice", base.Name)})
			continue
		}
		seenName[base.Name] = true
		if other, dup := seenListen[base.Listen]; dup && !isEphemeral(base.Listen) {
			add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".listen", Msg: fmt.Sprintf("address %s is already used by frontend %q", base.Listen, other)})
			continue
		}
		seenListen[base.Listen] = base.Name
		if _, ok := p.backends[base.Backend]; !ok {
			if _, declared := cfg.Backends[base.Backend]; !declared {
				add(&configs.Error{Pos: node.Pos(), Key: node.Path() + ".backend", Msg: fmt.Sprintf("no backend named %q (declared: %s)", base.Backend, joinNames(sortedKeys(cfg.Backends)))})
			}
			continue
		}
		p.frontends = append(p.frontends, &frontendEntry{base: node, name: base.Name, cfg: fcfg, protocol: proto, listen: base.Listen, backend: base.Backend})
	}
	if len(errs) > 0 {
		return nil, errs
	}

	// Build the instances. Constructors have no side effects, so a
	// configuration that fails here leaves nothing behind.
	for _, name := range names {
		e := p.backends[name]
		if e.b != nil {
			continue
		}
		mod, _ := backends.Lookup(e.typ)
		b, err := mod.New(e.cfg, backends.Env{
			Name:    name,
			Logger:  log.With("backend", name),
			DataDir: cfg.DataDir,
			Lookup:  p.lookupBackend,
		})
		if err != nil {
			add(&configs.Error{Pos: e.node.Pos(), Key: e.node.Path(), Msg: err.Error()})
			continue
		}
		e.b = b
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, fe := range p.frontends {
		mod, _ := frontends.Lookup(fe.protocol)
		f, err := mod.New(fe.cfg, p.frontendEnv(fe, log, version))
		if err != nil {
			add(&configs.Error{Pos: fe.base.Pos(), Key: fe.base.Path() + ".backend", Msg: err.Error()})
			continue
		}
		fe.f = f
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if !cfg.GRPC.IsZero() {
		gcfg := grpcapi.DefaultConfig()
		if err := cfg.GRPC.Decode(gcfg); err != nil {
			return nil, err
		}
		var runningSet *grpcapi.Set
		if running != nil && running.grpc != nil {
			runningSet = running.grpc.set
		}
		set, err := grpcapi.BuildSet(gcfg, component.Env{Logger: log, DataDir: cfg.DataDir}, runningSet)
		if err != nil {
			return nil, err
		}
		p.grpc = &grpcEntry{cfg: gcfg, set: set}
	}
	return p, nil
}

func (p *plan) frontendEnv(fe *frontendEntry, log *slog.Logger, version string) frontends.Env {
	return frontends.Env{
		Name:        fe.name,
		Logger:      log.With("frontend", fe.name),
		Backend:     p.backends[fe.backend].b,
		BackendName: fe.backend,
		Version:     version,
	}
}

func (p *plan) lookupBackend(name string) (backends.Backend, error) {
	e, ok := p.backends[name]
	if !ok || e.b == nil {
		return nil, fmt.Errorf("no backend named %q", name)
	}
	return e.b, nil
}

// baseOf returns the common keys of a decoded frontend configuration.
func baseOf(cfg any) *frontends.Base {
	type hasBase interface{ FrontendBase() *frontends.Base }
	if hb, ok := cfg.(hasBase); ok {
		return hb.FrontendBase()
	}
	panic(fmt.Sprintf("app: frontend config %T does not embed frontends.Base", cfg))
}

func isEphemeral(listen string) bool {
	return len(listen) >= 2 && listen[len(listen)-2:] == ":0"
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
