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
	whole   bool // the part is the whole batch: its request is the client's
	cur     int  // the target whose reply is arriving
	skip    int  // replies to drop (ASKING's)
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
	cc := &ccall{b: b, parent: call, cmds: make([]cmdState, call.N)}
	if sl, ok := call.Sink.(redis.Slotter); ok {
		cc.slot = sl.Slot()
	}
	call.Types = call.Types[:0]

	p := parserPool.Get().(*resp.Parser)
	defer func() { p.Release(); p.Reset(); parserPool.Put(p) }()
	var (
		parts []*part
		keys  [][]byte
		req   = call.Req
		off   int
	)
	for i := 0; i < call.N; i++ {
		cmd, n, err := p.Parse(req[off:])
		if err != nil || n == 0 || len(cmd.Args) == 0 {
			return fmt.Errorf("malformed request for the cluster: command %d of %d", i+1, call.N)
		}
		raw := req[off : off+n]
		off += n
		for _, t := range cc.routeOf(l, &cc.cmds[i], raw, cmd.Args, &keys) {
			t.cmd = i
			parts = addTarget(parts, cc, t)
		}
	}
	p.Release()
	if len(parts) == 1 && len(parts[0].targets) == call.N {
		whole := true
		for _, t := range parts[0].targets {
			whole = whole && t.sub < 0
		}
		parts[0].whole = whole
	}
	cc.mu.Lock()
	// Commands answered here (CROSSSLOT) may be first in line.
	cc.advance()
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

// addTarget puts t into the batch's part for its node.
func addTarget(parts []*part, cc *ccall, t target) []*part {
	for _, p := range parts {
		if p.node == t.node {
			p.targets = append(p.targets, t)
			return parts
		}
	}
	return append(parts, &part{cc: cc, node: t.node, targets: []target{t}})
}

// send submits a part to its node. A node that cannot take it (nothing
// was sent) makes Mecha read the layout again and route the part's
// commands anew, once; after that they are answered with the error.
func (cc *ccall) send(ctx context.Context, p *part) {
	p.Req = p.Req[:0]
	if p.whole {
		p.Req = cc.parent.Req
	}
	for i := 0; i < len(p.targets) && !p.whole; i++ {
		t := &p.targets[i]
		if t.asking {
			p.Req = append(p.Req, askingCmd...)
			p.skip++
		}
		p.Req = append(p.Req, t.req...)
	}
	p.N = len(p.targets) + p.skip
	p.Sink = p
	err := p.node.Submit(ctx, &p.RESPCall)
	if err == nil {
		return
	}
	b := cc.b
	if !p.targets[0].asking && p.targets[0].redirects == 0 && b.refreshAfterFailure(ctx) {
		l := b.layout.Load()
		var retry []*part
		for _, t := range p.targets {
			t.redirects++ // counts as a redirection: no second retry
			if nn := cc.rerouted(l, t); nn != nil && nn != p.node {
				t.node = nn
				retry = addTarget(retry, cc, t)
				continue
			}
			cc.failTargets([]target{t}, err)
		}
		for _, rp := range retry {
			cc.send(ctx, rp)
		}
		return
	}
	cc.failTargets(p.targets, err)
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

// failTargets answers targets whose node failed with the backend error.
func (cc *ccall) failTargets(ts []target, err error) {
	msg := resp.AppendError(nil, backends.ErrorText(cc.b.name, err))
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for _, t := range ts {
		cc.complete(t, msg, '-')
	}
	cc.advance()
}

// Deliver receives reply bytes from the node, in order.
func (p *part) Deliver(_ *backends.RESPCall, b []byte) {
	cc := p.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
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
}

// Done ends the node's call: on error, the commands that got no reply
// get the backend error.
func (p *part) Done(_ *backends.RESPCall, err error) {
	if err == nil {
		return
	}
	cc := p.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.ended {
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
	msg := resp.AppendError(nil, backends.ErrorText(cc.b.name, err))
	for i := p.cur; i < len(p.targets); i++ {
		cc.complete(p.targets[i], msg, '-')
	}
	cc.advance()
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
		cc.parent.Sink.Deliver(cc.parent, piece)
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
				parent.Sink.Deliver(parent, st.reply)
				st.reply, st.streamed = nil, true
			}
			return
		}
		if len(st.reply) > 0 {
			parent.Sink.Deliver(parent, st.reply)
		}
		parent.Types = append(parent.Types, st.typ)
		st.reply = nil
		cc.next++
	}
	cc.ended = true
	parent.Sink.Done(parent, nil)
}

// abort ends the call with err: the client's stream cannot be repaired.
func (cc *ccall) abort(err error) {
	if cc.ended {
		return
	}
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
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout.D())
			defer cancel()
			n, err := b.nodeFor(ctx, addr)
			if err != nil {
				cc.failTargets([]target{nt}, err)
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

// resend sends one target again, alone.
func (cc *ccall) resend(t target) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.resendLocked(t)
}

// resendLocked sends t on its own. Submitting never calls the part's sink
// synchronously, so holding cc.mu here is safe.
func (cc *ccall) resendLocked(t target) {
	if cc.ended {
		return
	}
	p := &part{cc: cc, node: t.node, targets: []target{t}}
	if t.asking {
		p.Req = append(p.Req, askingCmd...)
		p.skip = 1
	}
	p.Req = append(p.Req, t.req...)
	p.N = 1 + p.skip
	p.Sink = p
	ctx, cancel := context.WithTimeout(context.Background(), cc.b.cfg.DialTimeout.D())
	defer cancel()
	if err := t.node.Submit(ctx, &p.RESPCall); err != nil {
		msg := resp.AppendError(nil, backends.ErrorText(cc.b.name, err))
		cc.complete(t, msg, '-')
		cc.advance()
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
