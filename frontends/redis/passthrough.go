package redis

import (
	"errors"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// How a command reaches the backend.
type route uint8

const (
	routeShared   route = iota // any shared connection: needs no state but the database
	routeLocal                 // answered by the frontend itself
	routePin                   // needs a connection held across commands (MULTI, WATCH, CLIENT TRACKING)
	routeBlocking              // may block: a connection of its own, no read timeout
	routeDuplex                // (P|S)SUBSCRIBE, MONITOR: pushes flow both ways
)

// pinned is an upstream connection held by one client across commands.
type pinned struct {
	up       backends.RESPConn
	multi    bool // inside MULTI
	watching bool // WATCH is active
	sticky   bool // connection-scoped server state (CLIENT TRACKING, NO-EVICT): held until the client leaves
	// bound: the connection reaches the server of the transaction's keys
	// (cluster backends). A transaction begun without a key is not bound
	// until its first key; queued holds what it sent meanwhile.
	bound   bool
	queued  []byte
	nqueued int
	// selectInMulti is the database a SELECT queued in the transaction
	// switches to when EXEC runs it, or -1.
	selectInMulti int
}

func (p *pinned) held() bool { return p.multi || p.watching || p.sticky }

// routeOf decides how k is served, given the connection's state.
func (c *conn) routeOf(st *settings, k *cmd) route {
	if st.router != nil && c.pin != nil && !c.pin.multi && k.info != nil && !c.pinnedRunEnds(k) {
		// A cluster client that holds a connection (WATCH) uses it only
		// for keys of that connection's server.
		if key := firstKey(k); key != nil && !st.router.Serves(c.pin.up, key) {
			pin := c.pin
			c.pin = nil
			r := c.routeOf(st, k)
			c.pin = pin
			return r
		}
	}
	info := k.info
	if info == nil {
		if c.pin != nil {
			return routePin
		}
		return routeShared
	}
	switch info.Name {
	case "auth", "hello", "quit", "reset":
		return routeLocal
	}
	if c.pin != nil && c.pin.multi {
		// Inside a transaction the upstream queues everything else, as
		// Redis would; CLIENT REPLY alone stays with us, since the
		// upstream must keep answering.
		if info.Name == "client" && len(k.args) > 1 && resp.EqualFold(k.args[1], "reply") {
			return routeLocal
		}
		return routePin
	}
	switch info.Name {
	case "ping", "echo", "select", "info", "config":
		if info.Name == "config" && !(len(k.args) > 1 && resp.EqualFold(k.args[1], "get")) {
			break
		}
		return routeLocal
	case "client":
		return c.clientRoute(k)
	case "multi", "watch":
		return routePin
	case "subscribe", "psubscribe", "ssubscribe", "monitor":
		return routeDuplex
	case "wait":
		return routeBlocking
	case "xread", "xreadgroup":
		for _, a := range k.args[1:] {
			if resp.EqualFold(a, "block") {
				return routeBlocking
			}
		}
		if c.pin != nil {
			return routePin
		}
		return routeShared
	}
	if info.Has(resp.FlagBlocking) {
		return routeBlocking
	}
	if c.pin != nil {
		return routePin
	}
	return routeShared
}

// clientRoute routes the CLIENT subcommands: those about this connection
// are answered here; those that set server-side state of the connection
// pin it; the rest are server-wide and go anywhere.
func (c *conn) clientRoute(k *cmd) route {
	if len(k.args) < 2 {
		return routeLocal
	}
	sub := k.args[1]
	for _, s := range []string{"id", "setname", "getname", "setinfo", "info", "list", "kill", "reply", "help", "unblock"} {
		if resp.EqualFold(sub, s) {
			return routeLocal
		}
	}
	for _, s := range []string{"tracking", "caching", "getredir", "trackinginfo", "no-evict", "no-touch"} {
		if resp.EqualFold(sub, s) {
			return routePin
		}
	}
	if c.pin != nil {
		return routePin
	}
	return routeShared
}

// execute runs a batch of commands in order. Runs of shared commands are
// submitted without waiting; anything this goroutine answers itself, or
// sends on a connection of the client's own, first waits for those
// replies so that the client receives everything in order.
func (c *conn) execute(st *settings, cmds []cmd) {
	if st.kv != nil {
		c.executeKV(st, cmds)
		return
	}
	for i := 0; i < len(cmds); {
		if c.quit || c.killed.Load() {
			return
		}
		if c.duplex != nil {
			c.drain()
			n := c.duplexExec(st, cmds[i:])
			i += n
			continue
		}
		k := &cmds[i]
		c.lastCmd.Store(int32(k.id))
		if !c.authed && (k.info == nil || !k.info.Has(resp.FlagNoAuth)) {
			c.drain()
			c.localError(k, "NOAUTH Authentication required.")
			i++
			continue
		}
		switch c.routeOf(st, k) {
		case routeLocal:
			c.drain()
			start := time.Now()
			mark := len(c.out)
			skip := c.skipReply
			c.local(st, k)
			isErr := len(c.out) > mark && c.out[mark] == '-'
			if !isClientReply(k) && (c.replyOff || skip) {
				c.out = c.out[:mark]
				c.skipReply = false
			}
			c.record(k, isErr, time.Since(start))
			i++
		case routeShared:
			j := i + 1
			// A run of shared commands goes upstream as one request. Runs
			// stop where CLIENT REPLY SKIP must drop a single reply.
			for !c.skipReply && j < len(cmds) && c.authed && c.routeOf(st, &cmds[j]) == routeShared {
				j++
			}
			c.submitShared(st, cmds[i:j])
			i = j
		case routePin:
			c.drain()
			j := i + 1
			for !c.skipReply && j < len(cmds) && c.authed && c.routeOf(st, &cmds[j]) == routePin && !c.pinnedRunEnds(&cmds[j-1]) {
				j++
			}
			c.runPinned(st, cmds[i:j])
			i = j
		case routeBlocking:
			c.drain()
			c.runBlocking(st, k)
			i++
		case routeDuplex:
			c.drain()
			c.enterDuplex(st, k)
			i++
		}
	}
}

func isClientReply(k *cmd) bool {
	return k.info != nil && k.info.Name == "client" && len(k.args) > 1 && resp.EqualFold(k.args[1], "reply")
}

// pinnedRunEnds reports whether a pinned run must stop after k because k
// may change whether later commands are pinned.
func (c *conn) pinnedRunEnds(k *cmd) bool {
	if k.info == nil {
		return false
	}
	switch k.info.Name {
	case "exec", "discard", "unwatch", "multi", "watch", "select", "client":
		return true
	}
	return false
}

// encode appends k as a request for the upstream: its own bytes when they
// are canonical RESP, re-encoded otherwise (inline commands).
func encode(dst []byte, k *cmd) []byte {
	if k.raw != nil {
		return append(dst, k.raw...)
	}
	return resp.AppendCommand(dst, k.args...)
}

// maxInflight bounds the calls one client has in flight on shared
// connections; a client pipelining faster waits for the oldest.
const maxInflight = 64

// sharedCall is a run of commands in flight on a shared connection. The
// backend's reader relays its replies straight into the client's outbox.
type sharedCall struct {
	backends.RESPCall
	c       *conn
	st      *settings
	ids     []int
	start   time.Time
	discard bool
}

var sharedPool = sync.Pool{New: func() any { return new(sharedCall) }}

// Slot keeps one client's calls on one shared connection, so that their
// replies come back in the order they were sent.
func (sc *sharedCall) Slot() int { return int(sc.c.id) }

// Deliver relays reply bytes to the client.
func (sc *sharedCall) Deliver(_ *backends.RESPCall, b []byte) {
	if !sc.discard {
		sc.c.ob.write(b)
	}
}

// Done ends the call: commands without a reply get the backend's error.
func (sc *sharedCall) Done(call *backends.RESPCall, err error) {
	c := sc.c
	got := len(call.Types)
	if err != nil {
		if errors.Is(err, backends.ErrPartialReply) {
			// Part of a reply reached the client: its stream cannot be
			// repaired.
			c.kill()
		} else if !sc.discard {
			msg := resp.AppendError(nil, c.backendError(sc.st, err))
			for i := got; i < len(sc.ids); i++ {
				c.ob.write(msg)
			}
		}
	}
	d := time.Since(sc.start)
	for i, id := range sc.ids {
		c.recordID(id, i >= got || call.Types[i] == '-', d)
	}
	sc.c, sc.st = nil, nil
	sharedPool.Put(sc)
	c.callDone()
}

// submitShared sends a run of shared commands through the backend's
// multiplexed connections without waiting for the replies.
func (c *conn) submitShared(st *settings, cmds []cmd) {
	// Replies this goroutine produced must reach the client before the
	// ones this call brings.
	c.flushOut()
	if c.inflight.Load() >= maxInflight {
		c.drain()
	}
	sc := sharedPool.Get().(*sharedCall)
	sc.c, sc.st = c, st
	sc.start = time.Now()
	sc.discard = c.replyOff || c.skipReply
	c.skipReply = false
	sc.DB = c.db
	sc.N = len(cmds)
	sc.Sink = sc
	sc.Req = sc.Req[:0]
	sc.ids = sc.ids[:0]
	clear(sc.Parsed)
	sc.Parsed = sc.Parsed[:0]
	for i := range cmds {
		sc.Req = encode(sc.Req, &cmds[i])
		sc.ids = append(sc.ids, cmds[i].id)
		if st.router != nil {
			sc.Parsed = append(sc.Parsed, backends.ParsedCommand{Args: cmds[i].args, Info: cmds[i].info, End: len(sc.Req)})
		}
	}
	if len(sc.Req) > spillAt {
		// A large request would be copied into the shared write buffer
		// and hold up everyone behind it: give it a connection of its own.
		discard := sc.discard
		sharedPool.Put(sc)
		c.drain()
		c.viaDedicated(st, cmds, discard)
		return
	}
	c.inflight.Add(1)
	// Clients read through the frontend's poller finish in rounds:
	// their requests wait for the round to end and go upstream together.
	sc.Deferred = c.raw != nil
	c.deferred = c.deferred || sc.Deferred
	if err := st.backend.Submit(c.ctx(), &sc.RESPCall); err != nil {
		// Nothing was sent: answer every command with the error, after
		// the replies of earlier calls.
		c.inflight.Add(-1)
		discard := sc.discard
		sc.c, sc.st = nil, nil
		sharedPool.Put(sc)
		c.drain()
		c.types = c.types[:0]
		if !discard {
			c.backendFailed(st, cmds, 0, err)
		}
		c.recordAll(cmds, time.Now())
	}
}

// viaDedicated runs shared commands on a pooled dedicated connection.
func (c *conn) viaDedicated(st *settings, cmds []cmd, discard bool) {
	start := time.Now()
	c.types = c.types[:0]
	mark := len(c.out)
	up, err := st.backend.Dedicated(c.ctx())
	if err == nil {
		var ok bool
		ok, err = c.roundTrip(st, up, cmds, true, nil)
		up.Release(ok)
	}
	if err != nil {
		c.backendFailed(st, cmds, len(c.types), err)
	}
	if discard {
		c.out = c.out[:mark]
	}
	c.recordAll(cmds, start)
}

// backendFailed answers the commands from index got on with the error.
// A reply already partly written cannot be repaired: the client is
// disconnected instead.
func (c *conn) backendFailed(st *settings, cmds []cmd, got int, err error) {
	if errors.Is(err, backends.ErrPartialReply) || errors.Is(err, errClientGone) {
		c.quit = true
		c.killed.Store(true)
		return
	}
	msg := c.backendError(st, err)
	for i := got; i < len(cmds); i++ {
		c.out = resp.AppendError(c.out, msg)
	}
	c.types = c.types[:got]
}

// backendError maps a backend failure to the error text clients get.
func (c *conn) backendError(st *settings, err error) string {
	return backends.ErrorText(st.bname, err)
}
