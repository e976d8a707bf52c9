package backends

import (
	"fmt"
	"sort"
	"sync"
)

// Registry maps the name a configuration uses for a module (a backend's
// `type`, a frontend's `protocol`) to the module. Modules register from
// init; registering a name twice panics.
type Registry[M any] struct {
	kind string
	mu   sync.RWMutex
	m    map[string]M
}

// NewRegistry returns an empty registry; kind names what it holds in
// panic messages ("backend type").
func NewRegistry[M any](kind string) *Registry[M] {
	return &Registry[M]{kind: kind, m: map[string]M{}}
}

// Register adds a module.
func (r *Registry[M]) Register(name string, m M) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("%s %q registered twice", r.kind, name))
	}
	r.m[name] = m
}

// Lookup returns the module registered as name.
func (r *Registry[M]) Lookup(name string) (M, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.m[name]
	return m, ok
}

// Names lists the registered names, sorted.
func (r *Registry[M]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for n := range r.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
