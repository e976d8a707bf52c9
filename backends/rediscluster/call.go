package rediscluster

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/redis"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// A ccall is one batch a client submitted, spread over the nodes. The
// commands' replies come back from several nodes' reader goroutines; the
// ccall hands them to the client in the order of its commands, streaming
// the oldest unanswered one as it arrives and holding the later ones.
type ccall struct {
	b      *Backend
	parent *backends.RESPCall
	slot   int // the client's shared connection on every node

	mu    sync.Mutex
	cmds  []cmdState
	next  int  // the oldest command whose reply has not been passed on
	ended bool // parent.Sink.Done was called
	// out gathers the bytes for the client until the node's piece has
	// been handled, so that they reach the client in one write.
	out []byte
	// inflight counts the parts sent and not yet done, and re-sends
	// scheduled: the ccall is reused once it has ended and none is left.
	inflight int

	parts []*part  // the parts of the batch being planned
	pool  []*part  // part objects owned by the ccall, reused
	used  int      // how many of pool are in use
	keys  [][]byte // scratch for key extraction
}

var ccallPool = sync.Pool{New: func() any { return new(ccall) }}

// newCCall prepares a ccall for call.
func newCCall(b *Backend, call *backends.RESPCall) *ccall {
	cc := ccallPool.Get().(*ccall)
	cc.b, cc.parent = b, call
	if cap(cc.cmds) < call.N {
		cc.cmds = make([]cmdState, call.N)
	}
	cc.cmds = cc.cmds[:call.N]
	for i := range cc.cmds {
		cc.cmds[i] = cmdState{reply: cc.cmds[i].reply[:0]}
	}
	cc.slot = 0
	if sl, ok := call.Sink.(redis.Slotter); ok {
		cc.slot = sl.Slot()
	}
	cc.next, cc.ended, cc.inflight, cc.used = 0, false, 0, 0
	cc.parts = cc.parts[:0]
	return cc
}

// newPart returns a part for node n. It runs with cc.mu held, or before
// anything of the batch was sent.
func (cc *ccall) newPart(n *node) *part {
	if cc.used == len(cc.pool) {
		cc.pool = append(cc.pool, &part{cc: cc})
	}
	p := cc.pool[cc.used]
	cc.used++
	p.cc, p.node = cc, n
	p.targets = p.targets[:0]
	p.whole, p.cur, p.skip = false, 0, 0
	p.scan.Reset()
	p.RESPCall = backends.RESPCall{Req: p.RESPCall.Req[:0], Types: p.RESPCall.Types[:0], Sink: p}
	return p
}

// release gives the ccall back once it has ended and no part of it is in
// flight. It runs with cc.mu held; nothing may touch cc afterwards.
func (cc *ccall) release() {
	if !cc.ended || cc.inflight > 0 {
		return
	}
	cc.parent, cc.b = nil, nil
	clear(cc.keys)
	for _, p := range cc.pool[:cc.used] {
		clear(p.targets)
	}
	ccallPool.Put(cc)
}

// emit queues bytes for the client.
func (cc *ccall) emit(b []byte) { cc.out = append(cc.out, b...) }

// flushBig passes queued bytes to the client once they are many (a large
// reply streams through in bounded memory); the rest go out in one write
// when the call ends, whichever node answers last.
func (cc *ccall) flushBig() {
	if len(cc.out) >= 64<<10 {
		cc.flush()
	}
}

// flush passes queued bytes to the client.
func (cc *ccall) flush() {
	if len(cc.out) > 0 && !cc.ended {
		cc.parent.Sink.Deliver(cc.parent, cc.out)
	}
	cc.out = cc.out[:0]
}

// cmdState is one of the batch's commands.
type cmdState struct {
	reply    []byte // held reply bytes (or the merged reply)
	typ      byte   // the reply's first byte, once done
	done     bool
	streamed bool // reply bytes went to the client as they came

	// For commands sent to several nodes.
	merge     merge
	fanout    bool     // sent to every master, not split by key
	subs      [][]byte // each part's reply
	pending   int      // parts not yet answered
	pos       [][]int  // MGET: the command's key indexes in each part
	nkeys     int      // MGET: keys in the command
	scanNode  int      // SCAN: the master scanned, and how many there are
	scanNodes int
}

// target is a command (or a part of one) on its way to a node.
type target struct {
	node *node
	req  []byte // the command's bytes
	cmd  int    // index in ccall.cmds
	sub  int    // part index in cmdState.subs, or -1 for the whole reply
	// asking prefixes the command with ASKING (an ASK redirection).
	asking    bool
	redirects int
	started   bool // bytes of its reply arrived
	first     byte // the reply's first byte
}

// part is the commands of a batch that go to one node: one call on that
// node's shared connection.
type part struct {
	backends.RESPCall
	cc      *ccall
	node    *node
	targets []target
	own     []byte // the part's request, when it is not the client's
	whole   bool   // the part is the whole batch: its request is the client's
	cur     int    // the target whose reply is arriving
	skip    int    // replies to drop (ASKING's)
	scan    resp.ReplyScanner
}

// Slot keeps the client's calls on one shared connection of each node,
// so that its commands to a node run in the order it sent them.
func (p *part) Slot() int { return p.cc.slot }

var parserPool = sync.Pool{New: func() any {
	return &resp.Parser{Authenticated: true, Limits: resp.Limits{MaxBulkLen: 1 << 62, MaxMultibulkLen: 1<<31 - 1, MaxInlineLen: 1 << 30}}
}}

// Submit sends each command of call to the node of its keys.
func (b *Backend) Submit(ctx context.Context, call *backends.RESPCall) error {
	if b.closed.Load() {
		return fmt.Errorf("%w: backend closed", backends.ErrUnavailable)
	}
	l, err := b.currentLayout(ctx)
	if err != nil {
		return err
	}
	cc := newCCall(b, call)
	call.Types = call.Types[:0]

	req, off := call.Req, 0
	if len(call.Parsed) == call.N {
		// The frontend parsed the commands already.
		for i, pc := range call.Parsed {
			cc.routeOf(l, i, req[off:pc.End], pc.Args, pc.Info)
			off = pc.End
		}
	} else {
		p := parserPool.Get().(*resp.Parser)
		defer func() { p.Release(); p.Reset(); parserPool.Put(p) }()
		for i := 0; i < call.N; i++ {
			cmd, n, err := p.Parse(req[off:])
			if err != nil || n == 0 || len(cmd.Args) == 0 {
				cc.ended = true
				cc.release()
				return fmt.Errorf("malformed request for the cluster: command %d of %d", i+1, call.N)
			}
			cc.routeOf(l, i, req[off:off+n], cmd.Args, resp.Lookup(cmd.Args[0]))
			off += n
		}
	}
	parts := cc.parts
	if len(parts) == 1 && len(parts[0].targets) == call.N {
		whole := true
		for _, t := range parts[0].targets {
			whole = whole && t.sub < 0
		}
		parts[0].whole = whole
	}
	cc.mu.Lock()
	// Counted now: a part's replies may end the call before the next
	// part is sent.
	cc.inflight += len(parts)
	// Commands answered here (CROSSSLOT) may be first in line.
	cc.advance()
	cc.flushBig()
	cc.release()
	cc.mu.Unlock()
	for _, pt := range parts {
		pt.Deferred = call.Deferred
		cc.send(ctx, pt)
	}
	return nil
}

// currentLayout returns the slot map, reading it first if there is none
// yet (the cluster was down when Mecha started).
func (b *Backend) currentLayout(ctx context.Context) (*layout, error) {
	if l := b.layout.Load(); l != nil && l.any != nil {
		return l, nil
	}
	if err := b.refresh(ctx); err != nil {
		return nil, err
	}
	if l := b.layout.Load(); l != nil && l.any != nil {
		return l, nil
	}
	return nil, fmt.Errorf("%w: the cluster serves no slots", backends.ErrUnavailable)
}

// add puts t into the batch's part for its node.
func (cc *ccall) add(t target) {
	for _, p := range cc.parts {
		if p.node == t.node {
			p.targets = append(p.targets, t)
			return
		}
	}
	p := cc.newPart(t.node)
	p.targets = append(p.targets, t)
	cc.parts = append(cc.parts, p)
}

// send submits a part to its node. A node that cannot take it (nothing
// was sent) makes Mecha read the layout again and route the part's
// commands anew, once; after that they are answered with the error.
// The part must be counted in cc.inflight; a part not sent is uncounted
// here.
func (cc *ccall) send(ctx context.Context, p *part) {
	if p.whole {
		// The client's request as it is: no copy.
		p.Req = cc.parent.Req
	} else {
		p.Req = p.own[:0]
		for i := range p.targets {
			t := &p.targets[i]
			if t.asking {
				p.Req = append(p.Req, askingCmd...)
				p.skip++
			}
			p.Req = append(p.Req, t.req...)
		}
		p.own = p.Req
	}
	p.N = len(p.targets) + p.skip
	err := p.node.Submit(ctx, &p.RESPCall)
	if err == nil {
		return
	}
	b := cc.b
	name := b.name
	if !p.targets[0].asking && p.targets[0].redirects == 0 && b.refreshAfterFailure(ctx) {
		l := b.layout.Load()
		cc.mu.Lock()
		var retry []*part
		for _, t := range p.targets {
			t.redirects++ // counts as a redirection: no second retry
			if nn := cc.rerouted(l, t); nn != nil && nn != p.node {
				t.node = nn
				retry = cc.addTo(retry, t)
				continue
			}
			cc.complete(t, resp.AppendError(nil, backends.ErrorText(name, err)), '-')
		}
		cc.inflight += len(retry) - 1
		cc.advance()
		cc.flushBig()
		cc.mu.Unlock()
		for _, rp := range retry {
			cc.send(ctx, rp)
		}
		cc.mu.Lock()
		cc.release()
		cc.mu.Unlock()
		return
	}
	cc.mu.Lock()
	cc.inflight--
	cc.failLocked(p.targets, err)
	cc.release()
	cc.mu.Unlock()
}

// addTo puts t into the part for its node among parts. It runs with
// cc.mu held.
func (cc *ccall) addTo(parts []*part, t target) []*part {
	for _, p := range parts {
		if p.node == t.node {
			p.targets = append(p.targets, t)
			return parts
		}
	}
	p := cc.newPart(t.node)
	p.targets = append(p.targets, t)
	return append(parts, p)
}

var askingCmd = resp.AppendCommandStrings(nil, "ASKING")

// rerouted is the node that serves t's command in layout l, or nil for
// a part of a fanned-out command, which is not moved elsewhere.
func (cc *ccall) rerouted(l *layout, t target) *node {
	if l == nil || cc.cmds[t.cmd].fanout {
		return nil
	}
	p := parserPool.Get().(*resp.Parser)
	defer func() { p.Release(); p.Reset(); parserPool.Put(p) }()
	cmd, _, err := p.Parse(t.req)
	if err != nil || len(cmd.Args) == 0 {
		return nil
	}
	keys := resp.Keys(resp.Lookup(cmd.Args[0]), cmd.Args, nil)
	if len(keys) == 0 {
		return l.any
	}
	return cc.b.nodeOf(l, Slot(keys[0]))
}

// failLocked answers targets whose node failed with the backend error.
// It runs with cc.mu held.
func (cc *ccall) failLocked(ts []target, err error) {
	if cc.ended {
		return
	}
	msg := resp.AppendError(nil, backends.ErrorText(cc.b.name, err))
	for _, t := range ts {
		cc.complete(t, msg, '-')
	}
	cc.advance()
	cc.flushBig()
}

// Deliver receives reply bytes from the node, in order.
func (p *part) Deliver(_ *backends.RESPCall, b []byte) {
	cc := p.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.ended {
		return
	}
	for len(b) > 0 {
		n, typ, done, err := p.scan.Scan(b)
		if err != nil {
			// The node's connection scanned these bytes already: this
			// cannot happen short of memory corruption.
			cc.abort(fmt.Errorf("%w: %v", backends.ErrUnavailable, err))
			return
		}
		piece := b[:n]
		b = b[n:]
		if p.skip > 0 {
			if done {
				p.skip--
			}
			continue
		}
		if p.cur >= len(p.targets) {
			cc.abort(fmt.Errorf("%w: unexpected reply from %s", backends.ErrUnavailable, p.node.addr))
			return
		}
		t := &p.targets[p.cur]
		cc.receive(t, piece, typ, done)
		if done {
			p.cur++
		}
	}
	cc.advance()
	cc.flushBig()
}

// Done ends the node's call: on error, the commands that got no reply
// get the backend error.
func (p *part) Done(_ *backends.RESPCall, err error) {
	cc := p.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.inflight--
	defer cc.release()
	if err == nil || cc.ended {
		return
	}
	if p.cur < len(p.targets) {
		t := &p.targets[p.cur]
		if t.started && t.sub < 0 && cc.cmds[t.cmd].streamed {
			// Part of this reply reached the client.
			cc.abort(fmt.Errorf("%w: %w", backends.ErrPartialReply, err))
			return
		}
	}
	cc.failLocked(p.targets[p.cur:], err)
}

// receive takes a piece of t's reply. It runs with cc.mu held.
func (cc *ccall) receive(t *target, piece []byte, typ byte, done bool) {
	if cc.ended {
		return
	}
	st := &cc.cmds[t.cmd]
	if !t.started {
		t.started = true
		t.first = piece[0]
	}
	if t.sub >= 0 {
		st.subs[t.sub] = append(st.subs[t.sub], piece...)
		if done && !(typ == '-' && cc.redirect(t, st.subs[t.sub])) {
			cc.complete(*t, nil, typ)
		} else if done {
			st.subs[t.sub] = st.subs[t.sub][:0]
		}
		return
	}
	if t.first != '-' && (st.streamed || t.cmd == cc.next && len(st.reply) == 0) {
		// The oldest command's reply goes to the client as it comes.
		cc.emit(piece)
		st.streamed = true
	} else {
		st.reply = append(st.reply, piece...)
	}
	if !done {
		return
	}
	if typ == '-' && cc.redirect(t, st.reply) {
		st.reply = st.reply[:0]
		return
	}
	st.typ, st.done = typ, true
}

// complete records the whole reply of t: msg (an error of Mecha's) or,
// when msg is nil, what receive gathered. It runs with cc.mu held.
func (cc *ccall) complete(t target, msg []byte, typ byte) {
	st := &cc.cmds[t.cmd]
	if st.done {
		return
	}
	if t.sub < 0 {
		if msg != nil {
			st.reply = append(st.reply[:0], msg...)
		}
		st.typ, st.done = typ, true
		return
	}
	if msg != nil {
		st.subs[t.sub] = append(st.subs[t.sub][:0], msg...)
	}
	st.pending--
	if st.pending == 0 {
		st.reply = mergeReplies(st)
		st.typ, st.done = st.reply[0], true
		st.subs = nil
	}
}

// advance passes on the replies of the oldest commands that are complete
// and, once all are, ends the call. It runs with cc.mu held.
func (cc *ccall) advance() {
	if cc.ended {
		return
	}
	parent := cc.parent
	for cc.next < len(cc.cmds) {
		st := &cc.cmds[cc.next]
		if !st.done {
			if st.merge == mergeNone && !st.streamed && len(st.reply) > 0 && st.reply[0] != '-' {
				// Its reply began arriving while an older one was awaited.
				cc.emit(st.reply)
				st.reply, st.streamed = st.reply[:0], true
			}
			return
		}
		cc.emit(st.reply)
		parent.Types = append(parent.Types, st.typ)
		st.reply = st.reply[:0]
		cc.next++
	}
	cc.flush()
	cc.ended = true
	parent.Sink.Done(parent, nil)
}

// abort ends the call with err: the client's stream cannot be repaired.
func (cc *ccall) abort(err error) {
	if cc.ended {
		return
	}
	cc.flush()
	cc.ended = true
	cc.parent.Sink.Done(cc.parent, err)
}

// redirect follows a MOVED or ASK reply for t by sending its command to
// the node named, and reports whether it did. It runs with cc.mu held,
// on the reader goroutine of the node that replied.
func (cc *ccall) redirect(t *target, reply []byte) bool {
	b := cc.b
	kind, slot, addr, ok := parseRedirect(reply)
	if !ok {
		if bytes.HasPrefix(reply, []byte("-TRYAGAIN ")) && t.redirects < b.cfg.MaxRedirects {
			// A multi-key command during a resharding: its keys are
			// being moved. Redis' advice is to retry a little later.
			nt := *t
			nt.redirects++
			nt.started = false
			cc.inflight++ // the re-send to come
			time.AfterFunc(tryAgainDelay, func() { cc.resend(nt) })
			return true
		}
		return false
	}
	if t.redirects >= b.cfg.MaxRedirects {
		return false
	}
	b.redirects.Inc()
	nt := *t
	nt.redirects++
	nt.started = false
	nt.asking = kind == "ASK"
	n := b.knownNode(addr)
	if n == nil {
		// A node Mecha has not met: connect off the reader goroutine.
		b.requestRefresh()
		cc.inflight++ // the re-send to come
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout.D())
			defer cancel()
			n, err := b.nodeFor(ctx, addr)
			if err != nil {
				cc.mu.Lock()
				cc.inflight--
				cc.failLocked([]target{nt}, err)
				cc.release()
				cc.mu.Unlock()
				return
			}
			if kind == "MOVED" {
				b.moved(slot, n)
			}
			nt.node = n
			cc.resend(nt)
		}()
		return true
	}
	nt.node = n
	// Re-send before the slot map changes, so that a command of this
	// client routed by the new map cannot overtake this one.
	cc.resendLocked(nt)
	if kind == "MOVED" {
		b.moved(slot, n)
	}
	return true
}

const tryAgainDelay = 25 * time.Millisecond

// resend sends one target again, alone: a re-send scheduled earlier
// (counted in cc.inflight).
func (cc *ccall) resend(t target) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.inflight--
	cc.resendLocked(t)
	cc.release()
}

// resendLocked sends t on its own. Submitting never calls the part's sink
// synchronously, so holding cc.mu here is safe.
func (cc *ccall) resendLocked(t target) {
	if cc.ended {
		return
	}
	p := cc.newPart(t.node)
	p.targets = append(p.targets, t)
	if t.asking {
		p.Req = append(p.own[:0], askingCmd...)
		p.skip = 1
	} else {
		p.Req = p.own[:0]
	}
	p.Req = append(p.Req, t.req...)
	p.own = p.Req
	p.N = 1 + p.skip
	ctx, cancel := context.WithTimeout(context.Background(), cc.b.cfg.DialTimeout.D())
	defer cancel()
	cc.inflight++
	if err := t.node.Submit(ctx, &p.RESPCall); err != nil {
		cc.inflight--
		cc.failLocked([]target{t}, err)
	}
}

// parseRedirect reads "-MOVED 3999 127.0.0.1:6381" or "-ASK ...".
func parseRedirect(reply []byte) (kind string, slot int, addr string, ok bool) {
	line := bytes.TrimRight(reply, "\r\n")
	var rest []byte
	switch {
	case bytes.HasPrefix(line, []byte("-MOVED ")):
		kind, rest = "MOVED", line[7:]
	case bytes.HasPrefix(line, []byte("-ASK ")):
		kind, rest = "ASK", line[5:]
	default:
		return "", 0, "", false
	}
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return "", 0, "", false
	}
	s, err := strconv.Atoi(string(rest[:sp]))
	if err != nil || s < 0 || s >= NumSlots {
		return "", 0, "", false
	}
	addr = string(rest[sp+1:])
	if addr == "" || addr[0] == ':' {
		return "", 0, "", false
	}
	return kind, s, addr, true
}

// knownNode returns the node at addr if Mecha has started it.
func (b *Backend) knownNode(addr string) *node {
	b.nodesMu.Lock()
	defer b.nodesMu.Unlock()
	return b.nodes[addr]
}

// moved records that slot is now served by n, ahead of the next refresh,
// and asks for one.
func (b *Backend) moved(slot int, n *node) {
	if l := b.layout.Load(); l != nil {
		l.slots[slot].Store(n)
	}
	b.requestRefresh()
}

// refreshAfterFailure reads the layout again after a node could not be
// reached, unless that was done a moment ago. It reports whether the
// layout may have changed.
func (b *Backend) refreshAfterFailure(ctx context.Context) bool {
	if time.Duration(time.Now().UnixNano()-b.lastRefresh.Load()) < minRefreshGap {
		return false
	}
	return b.refresh(ctx) == nil
}
