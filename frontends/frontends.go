// Package frontends holds the contract of Mecha's listeners: each frontend
// module owns its sockets and speaks one wire protocol exactly, and knows
// nothing of which backend serves it beyond the capability interfaces in
// package backends.
package frontends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
)

// Frontend is a listener for one protocol. Constructors have no side
// effects: the listener opens in Start and closes in Stop.
type Frontend interface {
	// Start opens the listener and serves in the background.
	Start(ctx context.Context) error
	// Stop stops accepting, lets in-flight requests finish until ctx is
	// done, then closes every connection.
	Stop(ctx context.Context) error
	// Health reports INIT before Start, UP while serving, DOWN after a
	// failure.
	Health() backends.Health
	// Addr is the bound address, valid after Start.
	Addr() net.Addr
}

// Reloadable is implemented by frontends that can apply a new
// configuration of themselves in place, keeping their listener and their
// clients' connections.
type Reloadable interface {
	// Reload applies cfg (same protocol and listen address) and env (whose
	// backend may be a new instance). Connections already open keep their
	// session state and pick up the new settings where it is safe.
	Reload(cfg any, env Env) error
}

// Base holds the keys every frontend entry has.
type Base struct {
	// Name identifies the frontend in logs, metrics and /readyz.
	Name string `yaml:"name"`
	// Protocol selects the frontend module (redis, s3, mysql).
	Protocol string `yaml:"protocol"`
	// Listen is the address to accept clients on (127.0.0.1 by default).
	Listen string `yaml:"listen"`
	// Backend names the entry under `backends` that serves requests.
	Backend string `yaml:"backend"`
}

// FrontendBase returns the common keys; every frontend configuration
// embeds Base and so has this method.
func (b *Base) FrontendBase() *Base { return b }

// Validate checks the common keys.
func (b *Base) Validate() error {
	if b.Name == "" {
		return configs.Errorf("name", "is required")
	}
	if b.Listen == "" {
		return configs.Errorf("listen", "is required")
	}
	if err := configs.CheckListen("listen", b.Listen); err != nil {
		return err
	}
	if b.Backend == "" {
		return configs.Errorf("backend", "is required")
	}
	return nil
}

// Env is what the runtime gives a frontend module.
type Env struct {
	// Name is the frontend's name.
	Name string
	// Logger is tagged with the frontend's name.
	Logger *slog.Logger
	// Backend serves the frontend's requests.
	Backend backends.Backend
	// BackendName is the backend's name in the configuration.
	BackendName string
	// Version is Mecha's version, for protocols that report it.
	Version string
}

// Module registers one frontend protocol.
type Module struct {
	// Protocol is the value of `protocol:` that selects the module.
	Protocol string
	// NewConfig returns a pointer to the module's configuration struct,
	// filled with defaults. It must embed Base inline.
	NewConfig func() any
	// New builds the frontend. It fails if env.Backend offers no
	// capability the protocol can be served from.
	New func(cfg any, env Env) (Frontend, error)
}

var registry = backends.NewRegistry[Module]("frontend protocol")

// Register adds a frontend module. It is called from init; registering a
// protocol twice panics.
func Register(m Module) { registry.Register(m.Protocol, m) }

// RegisterProtocol registers a module with a typed configuration.
func RegisterProtocol[C any](protocol string, defaults func() *C, build func(*C, Env) (Frontend, error)) {
	Register(Module{
		Protocol:  protocol,
		NewConfig: func() any { return defaults() },
		New:       func(cfg any, env Env) (Frontend, error) { return build(cfg.(*C), env) },
	})
}

// Lookup returns the module registered for protocol.
func Lookup(protocol string) (Module, bool) { return registry.Lookup(protocol) }

// Protocols lists the registered protocols.
func Protocols() []string { return registry.Names() }

// Listen opens a frontend's TCP listener on addr. A failure marks health
// DOWN and names the frontend.
func Listen(ctx context.Context, protocol, name, addr string, health *backends.HealthCell) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		health.Set(backends.StateDown, err.Error())
		return nil, fmt.Errorf("%s frontend %s: listen: %w", protocol, name, err)
	}
	return ln, nil
}

// AcceptLoop accepts connections on ln and hands each to handle, until ln
// is closed. Transient failures (out of file descriptors) back off as
// net/http does instead of spinning.
func AcceptLoop(ln net.Listener, log *slog.Logger, handle func(net.Conn)) {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			log.Warn("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		handle(nc)
	}
}
