// Package backends holds the contracts every Mecha module builds on: the
// Backend lifecycle, the registry that maps a configuration `type` to a
// module, health reporting, and the capability interfaces that frontends
// call (one per capability; see resp.go).
package backends

import (
	"context"
	"log/slog"
)

// Backend is a store that frontends serve requests from. Constructors have
// no side effects: sockets and goroutines start in Start and stop in
// Close, which must also undo a half-finished Start.
type Backend interface {
	// Start connects or opens the store. A backend whose upstream is down
	// still starts (reporting DOWN) so that Mecha comes up and recovers
	// by itself when the upstream does.
	Start(ctx context.Context) error
	// Close releases everything the backend holds.
	Close() error
	// Health reports the backend's state for /readyz and /metrics.
	Health() Health
}

// Base holds the keys every backend entry has.
type Base struct {
	// Type selects the backend module (redis, embedded, fs, ...).
	Type string `yaml:"type"`
}

// Env is what the runtime gives a backend module.
type Env struct {
	// Name is the backend's name in the configuration.
	Name string
	// Logger is tagged with the backend's name.
	Logger *slog.Logger
	// DataDir is where the backend may keep files.
	DataDir string
	// Lookup returns another configured backend, for backends made of
	// backends (migrations).
	Lookup func(name string) (Backend, error)
}

// Module registers one backend type.
type Module struct {
	// Type is the value of `type:` that selects the module.
	Type string
	// NewConfig returns a pointer to the module's configuration struct,
	// filled with defaults; the runtime decodes the entry into it.
	NewConfig func() any
	// New builds the backend from its decoded configuration.
	New func(cfg any, env Env) (Backend, error)
}

var registry = NewRegistry[Module]("backend type")

// Register adds a backend module. It is called from init; registering a
// type twice panics.
func Register(m Module) { registry.Register(m.Type, m) }

// RegisterType registers a module with a typed configuration.
func RegisterType[C any](typ string, defaults func() *C, build func(*C, Env) (Backend, error)) {
	Register(Module{
		Type:      typ,
		NewConfig: func() any { return defaults() },
		New:       func(cfg any, env Env) (Backend, error) { return build(cfg.(*C), env) },
	})
}

// Lookup returns the module registered for typ.
func Lookup(typ string) (Module, bool) { return registry.Lookup(typ) }

// Types lists the registered backend types.
func Types() []string { return registry.Names() }
