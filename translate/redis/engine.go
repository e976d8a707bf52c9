// Package redis translates Redis commands onto stores that do not speak
// RESP (package backends/kv): the embedded store, Memcached. It owns
// Redis' semantics — argument parsing, replies and error texts identical
// to Redis 7, transactions, blocking commands, pub/sub — so that every
// store behind it behaves the same to a client, within what the store can
// do (kv.Feature).
package redis

import (
	"context"
	"strings"
	"sync"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// Engine is the translation layer for one store. Every client session on
// the store shares it: it holds the clients blocked on keys and the
// pub/sub subscriptions.
type Engine struct {
	store    kv.Store
	name     string // the backend's name, for error texts
	features kv.Feature
	typed    bool
	blocked  *blocking
	hub      *hub
}

var (
	enginesMu sync.Mutex
	engines   = map[kv.Store]*Engine{}
)

// EngineFor returns the engine of store, creating it on first use. name is
// the backend's name in the configuration.
func EngineFor(store kv.Store, name string) *Engine {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e := engines[store]; e != nil {
		return e
	}
	e := &Engine{store: store, name: name, features: store.Features(), hub: newHub()}
	e.typed = e.features&kv.FeatureTypes != 0
	e.blocked = newBlocking(e)
	if n, ok := store.(kv.Notifier); ok && e.features&kv.FeatureBlocking != 0 {
		n.OnCommit(e.blocked.onCommit)
	}
	engines[store] = e
	return e
}

var (
	replayMu      sync.Mutex
	replayEngines = map[kv.Store]*Engine{}
)

// replayEngine is an engine that is not shared with clients: replaying a
// log wakes nobody.
func replayEngine(store kv.Store) *Engine {
	replayMu.Lock()
	defer replayMu.Unlock()
	if e := replayEngines[store]; e != nil {
		return e
	}
	e := &Engine{store: store, name: "log replay", features: store.Features(), hub: newHub()}
	e.typed = e.features&kv.FeatureTypes != 0
	e.blocked = newBlocking(e)
	replayEngines[store] = e
	return e
}

// Forget drops the engine of a store that is closed.
func Forget(store kv.Store) {
	enginesMu.Lock()
	delete(engines, store)
	enginesMu.Unlock()
	replayMu.Lock()
	delete(replayEngines, store)
	replayMu.Unlock()
}

// Store is the engine's store.
func (e *Engine) Store() kv.Store { return e.store }

// Has reports whether the store has feature f.
func (e *Engine) Has(f kv.Feature) bool { return e.features&f == f }

// unsupported is the reply to a command the store cannot serve.
func (e *Engine) unsupported(name string) string {
	return "ERR command '" + strings.ToUpper(name) + "' is not supported by backend '" + e.name + "'"
}

// Replay executes a command from an append-only log: no client, no
// transaction, the reply discarded. Stores use it to rebuild their data
// with the exact semantics the log was written with.
func Replay(ctx context.Context, store kv.Store, db int, args [][]byte) error {
	e := replayEngine(store)
	s := e.NewSession(nil)
	s.db = db
	s.replaying = true
	out := s.Exec(ctx, args, nil)
	if len(out) > 0 && out[0] == '-' {
		v, _, _ := resp.DecodeValue(out)
		return &replayError{string(v.Str)}
	}
	return nil
}

type replayError struct{ msg string }

func (e *replayError) Error() string { return e.msg }
