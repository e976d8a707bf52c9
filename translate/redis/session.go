package redis

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// Session is one client's state: its database, its transaction (MULTI,
// WATCH) and its subscriptions. A frontend makes one per connection and
// runs the client's commands through Exec, one goroutine at a time.
type Session struct {
	e  *Engine
	db int

	multi    bool
	dirty    bool // a command failed while queueing: EXEC aborts
	queue    [][][]byte
	watching map[kv.DBKey]uint64

	// Local runs a command the frontend answers itself (CLIENT, INFO,
	// CONFIG GET ...) when EXEC reaches it; nil refuses them in MULTI.
	Local func(args [][]byte, out []byte) []byte
	// Blocked, when set, is told when a blocking command starts waiting
	// (true: its waiter is in place, so a later push serves it after
	// every client that blocked before) and when it stops (false).
	Blocked func(blocked bool)

	// pub/sub
	push     func([]byte) // writes to the client, never blocking
	pmu      sync.Mutex
	busy     bool   // the client's goroutine is between BeginBatch and EndBatch
	pending  []byte // pushes held while busy
	channels map[string]bool
	patterns map[string]bool
	shards   map[string]bool
	nsubs    atomic.Int32 // subscriptions of any kind, read without the lock

	replaying bool
	call      call
	runFn     func(kv.Tx) error
}

// NewSession starts a client session. push delivers pub/sub messages to
// the client; it must not block.
func (e *Engine) NewSession(push func([]byte)) *Session {
	s := &Session{e: e, push: push}
	s.call.s = s
	s.runFn = s.run
	return s
}

// DB is the session's database.
func (s *Session) DB() int { return s.db }

// SetDB selects a database (the frontend validated it).
func (s *Session) SetDB(db int) { s.db = db }

// InMulti reports whether a transaction is open.
func (s *Session) InMulti() bool { return s.multi }

// Subscribed reports whether the client is in subscribed mode.
func (s *Session) Subscribed() bool { return s.nsubs.Load() > 0 }

// recount refreshes nsubs; called with pmu held.
func (s *Session) recount() {
	s.nsubs.Store(int32(len(s.channels) + len(s.patterns) + len(s.shards)))
}

// MayBlock reports whether args is a command that can wait for data
// (BLPOP, XREAD BLOCK, ...): the frontend then watches the client for a
// disconnect while it runs.
func (s *Session) MayBlock(args [][]byte) bool {
	if s.multi {
		return false
	}
	info := resp.Lookup(args[0])
	return info != nil && info.Has(resp.FlagBlocking)
}

// BeginBatch holds pub/sub pushes back while the client's commands run,
// so that a reply (to SUBSCRIBE, say) is never overtaken by a message.
func (s *Session) BeginBatch() {
	s.pmu.Lock()
	s.busy = true
	s.pmu.Unlock()
}

// EndBatch releases the pushes held since BeginBatch, after the batch's
// replies have been written with write.
func (s *Session) EndBatch() {
	s.pmu.Lock()
	s.busy = false
	p := s.pending
	s.pending = nil
	s.pmu.Unlock()
	if len(p) > 0 && s.push != nil {
		s.push(p)
	}
}

// deliver is how the hub hands a message to this session.
func (s *Session) deliver(msg []byte) {
	s.pmu.Lock()
	if s.busy {
		s.pending = append(s.pending, msg...)
		s.pmu.Unlock()
		return
	}
	s.pmu.Unlock()
	if s.push != nil {
		s.push(msg)
	}
}

// Reset returns the session to a fresh connection's state (RESET): no
// transaction, nothing watched, no subscriptions, database 0.
func (s *Session) Reset(ctx context.Context) {
	s.multi, s.dirty, s.queue = false, false, nil
	s.unwatchAll(ctx)
	s.e.hub.unsubscribeAll(s)
	s.db = 0
}

// Close releases what the session holds: watched keys, subscriptions.
func (s *Session) Close() {
	s.unwatchAll(context.Background())
	s.e.hub.unsubscribeAll(s)
}

// call is the context of one command's handler.
type call struct {
	s    *Session
	ctx  context.Context
	tx   kv.Tx
	tt   kv.TypedTx
	h    *handler
	args [][]byte
	out  []byte
	err  error
	// inTx: the handler runs inside a transaction already (EXEC); a
	// handler that would open one uses tx instead, and nothing blocks.
	inTx bool
}

// Exec runs one command and appends its reply to out.
func (s *Session) Exec(ctx context.Context, args [][]byte, out []byte) []byte {
	return s.ExecInfo(ctx, resp.Lookup(args[0]), args, out)
}

// ExecInfo is Exec for a caller that has looked the command up already
// (info nil for an unknown command).
func (s *Session) ExecInfo(ctx context.Context, info *resp.CommandInfo, args [][]byte, out []byte) []byte {
	if info == nil {
		s.dirty = s.multi
		return resp.AppendError(out, unknownCommand(args))
	}
	h, full := lookupHandler(info, args)
	if h == nil && full == "" {
		// An unknown subcommand of a container command.
		s.dirty = s.multi
		return resp.AppendError(out, fmt.Sprintf("ERR unknown subcommand '%.128s'. Try %s HELP.", args[1], strings.ToUpper(info.Name)))
	}
	if !arityOK(full, info, args) {
		s.dirty = s.multi
		return resp.AppendError(out, fmt.Sprintf("ERR wrong number of arguments for '%s' command", full))
	}
	if s.Subscribed() && !allowedSubscribed(info.Name) {
		return resp.AppendError(out, fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", full))
	}
	if h == nil || !s.e.Has(h.needs) {
		s.dirty = s.multi
		return resp.AppendError(out, s.e.unsupported(info.Name))
	}
	if s.multi && !h.immediate {
		if h.noMulti {
			s.dirty = true
			return resp.AppendError(out, fmt.Sprintf("ERR Command not allowed inside a transaction"))
		}
		s.queue = append(s.queue, cloneArgs(args))
		return append(out, "+QUEUED\r\n"...)
	}
	return s.execHandler(ctx, h, args, out)
}

// execHandler runs a handler, in a transaction of its own unless it
// manages the store itself.
func (s *Session) execHandler(ctx context.Context, h *handler, args [][]byte, out []byte) []byte {
	c := &s.call
	c.ctx, c.h, c.args, c.out, c.err = ctx, h, args, out, nil
	if h.noTx {
		h.fn(c)
	} else if err := s.e.store.Update(ctx, s.db, s.runFn); err != nil && c.err == nil {
		c.replyErr(err)
	}
	out = c.out
	c.out, c.args, c.tx, c.tt = nil, nil, nil, nil
	return out
}

// run is the transaction body of a command (a method value made once, so
// that a command allocates no closure).
func (s *Session) run(tx kv.Tx) error {
	c := &s.call
	c.tx = tx
	c.tt, _ = tx.(kv.TypedTx)
	c.h.fn(c)
	return nil
}

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = bytes.Clone(a)
	}
	return out
}

// unknownCommand formats Redis' reply to a command it does not know.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	for _, a := range args[1:] {
		if b.Len() >= 128 {
			break
		}
		rest := 128 - b.Len()
		s := string(a)
		if len(s) > rest {
			s = s[:rest]
		}
		b.WriteString("'" + s + "' ")
	}
	name := string(args[0])
	if len(name) > 128 {
		name = name[:128]
	}
	return "ERR unknown command '" + name + "', with args beginning with: " + b.String()
}

func arityOK(full string, info *resp.CommandInfo, args [][]byte) bool {
	if i := strings.IndexByte(full, '|'); i > 0 {
		if sub := info.Sub(args[1]); sub != nil {
			return sub.ArityOK(len(args))
		}
	}
	return info.ArityOK(len(args))
}

func allowedSubscribed(name string) bool {
	switch name {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe", "ping", "quit", "reset":
		return true
	}
	return false
}
