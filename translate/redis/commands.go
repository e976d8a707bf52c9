package redis

import (
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// handler implements one command (or subcommand, "object|encoding").
type handler struct {
	fn    func(c *call)
	needs kv.Feature
	// noTx handlers manage store access themselves (transactions,
	// blocking commands, pub/sub).
	noTx bool
	// immediate handlers run at once even inside MULTI (EXEC, DISCARD,
	// WATCH ...); the others are queued.
	immediate bool
	// noMulti handlers are refused inside MULTI.
	noMulti bool
}

var handlers = map[string]*handler{}

type hopt func(*handler)

func needs(f kv.Feature) hopt { return func(h *handler) { h.needs |= f } }

var (
	noTx      hopt = func(h *handler) { h.noTx = true }
	immediate hopt = func(h *handler) { h.immediate = true }
	noMulti   hopt = func(h *handler) { h.noMulti = true }
	typed          = needs(kv.FeatureTypes)
)

// reg registers the handler of a command; names are Redis' lower-case
// names, with "container|sub" for subcommands.
func reg(name string, fn func(*call), opts ...hopt) {
	if _, dup := handlers[name]; dup {
		panic("translate/redis: " + name + " registered twice")
	}
	h := &handler{fn: fn}
	for _, o := range opts {
		o(h)
	}
	handlers[name] = h
}

// lookupHandler finds the handler for args. For a container command it
// returns the subcommand's full name; ("", nil) means an unknown
// subcommand.
func lookupHandler(info *resp.CommandInfo, args [][]byte) (*handler, string) {
	if len(info.Subcommands) == 0 || len(args) < 2 {
		return handlers[info.Name], info.Name
	}
	sub := info.Sub(args[1])
	if sub == nil {
		return nil, ""
	}
	return handlers[sub.Name], sub.Name
}

// Supported reports whether the engine serves the named command, for
// COMMAND and the docs.
func (e *Engine) Supported(name string) bool {
	h := handlers[name]
	return h != nil && e.Has(h.needs)
}

// propagate records the command's effect for a store's log.
func (c *call) propagate(args ...[]byte) {
	if c.tt != nil && !c.s.replaying {
		c.tt.Propagate(args...)
	}
}

// propagateSelf records the command as it was given.
func (c *call) propagateSelf() { c.propagate(c.args...) }
