package redis

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// roundTrip writes cmds on a dedicated connection (switching it to the
// client's database first) and relays their replies into c.out, spilling
// large ones to the client as they arrive. onReply, when set, sees each
// reply's index and type. It returns whether the connection is still
// usable.
func (c *conn) roundTrip(st *settings, up backends.RESPConn, cmds []cmd, withTimeout bool, onReply func(i int, typ byte, reply []byte)) (bool, error) {
	c.req = c.req[:0]
	swallow := 0
	// Inside MULTI a SELECT of ours would be queued into the client's
	// transaction: the database is set before MULTI or not at all.
	if up.DB() != c.db && (c.pin == nil || !c.pin.multi) {
		c.req = resp.AppendCommandStrings(c.req, "SELECT", strconv.Itoa(c.db))
		swallow = 1
	}
	for i := range cmds {
		c.req = encode(c.req, &cmds[i])
	}
	up.SetWriteDeadline(time.Now().Add(st.cfg.WriteTimeout.D()))
	if _, err := up.Write(c.req); err != nil {
		return false, fmt.Errorf("%w: write to upstream: %v", backends.ErrUnavailable, err)
	}
	up.SetWriteDeadline(time.Time{})
	if swallow > 0 {
		up.SetDB(c.db)
	}
	var deadline time.Duration
	if withTimeout {
		deadline = up.Timeout()
	}
	c.redir, c.redirected = st.router, false
	defer func() { c.redir = nil }()
	return c.readReplies(up, swallow, len(cmds), deadline, onReply)
}

// readReplies relays n replies (after swallowing skip of our own) from up
// into c.out. A timeout of 0 waits forever (blocking commands).
func (c *conn) readReplies(up backends.RESPConn, skip, n int, timeout time.Duration, onReply func(i int, typ byte, reply []byte)) (bool, error) {
	if c.upbuf == nil {
		c.upbuf = make([]byte, 16<<10)
	}
	c.scan.Reset()
	got, start := 0, len(c.out)
	cut := false // part of an unfinished reply has been written
	if timeout <= 0 {
		up.SetReadDeadline(time.Time{})
	}
	for got < n {
		if timeout > 0 {
			up.SetReadDeadline(time.Now().Add(timeout))
		}
		m, err := up.Read(c.upbuf)
		p := c.upbuf[:m]
		for len(p) > 0 {
			if got == n {
				return false, fmt.Errorf("%w: unexpected data from upstream", backends.ErrUnavailable)
			}
			k, typ, done, serr := c.scan.Scan(p)
			if serr != nil {
				return false, fmt.Errorf("%w: %v", backends.ErrUnavailable, serr)
			}
			if skip > 0 {
				if done {
					skip--
					if typ == '-' {
						return false, fmt.Errorf("%w: upstream refused SELECT", backends.ErrUnavailable)
					}
				}
				p = p[k:]
				continue
			}
			c.out = append(c.out, p[:k]...)
			p = p[k:]
			if done && typ == '-' && c.redir != nil && c.redir.Redirected(c.out[start:]) {
				// The cluster sent a key elsewhere. On a connection held
				// for a transaction the key is not in its slot; a
				// blocking command is retried (c.redirected).
				c.redirected = true
				c.out = append(c.out[:start], crossSlotReply...)
			}
			if done {
				if onReply != nil {
					onReply(got, typ, c.out[start:])
				}
				c.types = append(c.types, typ)
				got++
				start = len(c.out)
				cut = false
			}
			if len(c.out) > spillAt {
				// A large reply: pass on what has arrived, at the pace
				// the client reads it.
				if !c.ob.write(c.out) || !c.ob.wait() {
					return false, errClientGone
				}
				cut = start < len(c.out)
				c.out = c.out[:0]
				start = 0
			}
		}
		if err != nil && got < n {
			if cut {
				return false, fmt.Errorf("%w: %w", backends.ErrPartialReply, upstreamErr(err))
			}
			c.out = c.out[:start]
			return false, upstreamErr(err)
		}
	}
	up.SetReadDeadline(time.Time{})
	return true, nil
}

func upstreamErr(err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: no reply from upstream", backends.ErrTimeout)
	}
	return fmt.Errorf("%w: connection lost: %v", backends.ErrUnavailable, err)
}

// dedicated takes an upstream connection for the client alone: with a
// backend that spreads keys over servers, one to the server of key.
func (c *conn) dedicated(st *settings, key []byte) (backends.RESPConn, error) {
	if st.router != nil && key != nil {
		return st.router.DedicatedFor(c.ctx(), key)
	}
	return st.backend.Dedicated(c.ctx())
}

// firstKey is the first key k names, or nil.
func firstKey(k *cmd) []byte {
	if k.info == nil {
		return nil
	}
	var buf [4][]byte
	if keys := resp.Keys(k.info, k.args, buf[:0]); len(keys) > 0 {
		return keys[0]
	}
	return nil
}

// firstKeyOf is the first key of any of cmds, or nil.
func firstKeyOf(cmds []cmd) []byte {
	for i := range cmds {
		if key := firstKey(&cmds[i]); key != nil {
			return key
		}
	}
	return nil
}

// runPinned runs commands on the connection the client holds, taking one
// if it holds none, and gives it back once no state ties the client to it.
func (c *conn) runPinned(st *settings, cmds []cmd) {
	start := time.Now()
	if c.pin == nil {
		key := firstKeyOf(cmds)
		up, err := c.dedicated(st, key)
		if err != nil {
			c.types = c.types[:0]
			c.backendFailed(st, cmds, 0, err)
			c.recordAll(cmds, start)
			return
		}
		c.pin = &pinned{up: up, selectInMulti: -1, bound: key != nil}
	} else if st.router != nil && c.pin.multi && !c.pin.bound {
		if err := c.bindTransaction(st, firstKeyOf(cmds)); err != nil {
			c.pin.up.Release(false)
			c.pin = nil
			c.types = c.types[:0]
			c.backendFailed(st, cmds, 0, err)
			c.recordAll(cmds, start)
			return
		}
	}
	p := c.pin
	c.types = c.types[:0]
	discard := c.replyOff || c.skipReply
	mark := len(c.out)
	ok, err := c.roundTrip(st, p.up, cmds, true, func(i int, typ byte, reply []byte) {
		c.track(st, &cmds[i], typ, reply)
	})
	c.skipReply = false
	if err == nil && st.router != nil && p.multi && !p.bound {
		// Sent inside a transaction whose server is not chosen yet: kept
		// to be replayed if the first key is served elsewhere.
		for i := range cmds {
			if cmds[i].info == nil || cmds[i].info.Name != "multi" {
				p.queued = encode(p.queued, &cmds[i])
				p.nqueued++
			}
		}
	}
	if err != nil {
		p.up.Release(false)
		c.pin = nil
		c.backendFailed(st, cmds, len(c.types), err)
	} else if !p.held() {
		p.up.Release(ok)
		c.pin = nil
	}
	if discard {
		c.out = c.out[:mark]
	}
	c.recordAll(cmds, start)
}

// bindTransaction makes sure the connection of a transaction begun
// without a key reaches the server of key, its first: if it does not, the
// transaction moves to a connection that does, replaying MULTI and the
// commands queued so far (their replies were given already).
func (c *conn) bindTransaction(st *settings, key []byte) error {
	p := c.pin
	if key == nil {
		return nil
	}
	if st.router.Serves(p.up, key) {
		p.bound, p.queued, p.nqueued = true, nil, 0
		return nil
	}
	up, err := st.router.DedicatedFor(c.ctx(), key)
	if err != nil {
		return err
	}
	req := resp.AppendCommandStrings(nil, "MULTI")
	req = append(req, p.queued...)
	up.SetWriteDeadline(time.Now().Add(st.cfg.WriteTimeout.D()))
	if _, err := up.Write(req); err != nil {
		up.Release(false)
		return fmt.Errorf("%w: write to upstream: %v", backends.ErrUnavailable, err)
	}
	up.SetWriteDeadline(time.Time{})
	mark, types := len(c.out), len(c.types)
	ok, err := c.readReplies(up, 0, 1+p.nqueued, up.Timeout(), nil)
	c.out, c.types = c.out[:mark], c.types[:types]
	if err != nil || !ok {
		up.Release(false)
		if err == nil {
			err = fmt.Errorf("%w: replaying the transaction failed", backends.ErrUnavailable)
		}
		return err
	}
	p.up.Release(false) // closing it drops the transaction begun there
	p.up = up
	p.bound, p.queued, p.nqueued = true, nil, 0
	return nil
}

func (c *conn) recordAll(cmds []cmd, start time.Time) {
	d := time.Since(start)
	for i := range cmds {
		isErr := i >= len(c.types) || c.types[i] == '-'
		c.record(&cmds[i], isErr, d)
	}
}

// track follows the connection state a pinned command changed, from its
// reply.
func (c *conn) track(st *settings, k *cmd, typ byte, reply []byte) {
	p := c.pin
	if k.info == nil {
		return
	}
	ok := typ != '-'
	switch k.info.Name {
	case "multi":
		if ok {
			p.multi = true
			p.selectInMulti = -1
		}
	case "watch":
		if ok && !p.multi {
			p.watching = true
		}
	case "unwatch":
		if !p.multi {
			p.watching = false
		}
	case "discard":
		if p.multi {
			p.multi, p.watching = false, false
			p.queued, p.nqueued = nil, 0
		}
	case "exec":
		if p.multi {
			// EXEC ends the transaction whatever it answers.
			if ok && len(reply) > 0 && reply[0] == '*' && string(reply) != "*-1\r\n" && p.selectInMulti >= 0 {
				c.setDB(p.selectInMulti)
				p.up.SetDB(p.selectInMulti)
			}
			p.multi, p.watching = false, false
			p.queued, p.nqueued = nil, 0
		}
	case "select":
		if p.multi {
			// Until EXEC tells, the connection's database is unknown.
			p.up.SetDB(-1)
		}
		if p.multi && ok && len(k.args) == 2 {
			if db, valid := resp.ParseInt(k.args[1]); valid && db >= 0 && db < int64(st.databases()) {
				p.selectInMulti = int(db)
			}
		}
	case "client":
		if ok && !p.multi {
			p.sticky = true
		}
	}
}

// runBlocking runs a command that may block on the upstream for as long
// as it likes. Meanwhile a watcher reads from the client, so that a
// client that goes away releases the upstream at once (its pop must not
// happen on a connection nobody reads).
func (c *conn) runBlocking(st *settings, k *cmd) {
	start := time.Now()
	key := firstKey(k)
	// A client that holds a connection blocks on it, unless its key lives
	// on another server of a cluster.
	own := c.pin == nil || st.router != nil && key != nil && !c.pin.multi && !st.router.Serves(c.pin.up, key)
	discard := c.replyOff || c.skipReply
	c.skipReply = false
	// Replies so far go out first: the client sees them while it waits.
	if !c.flushOut() {
		c.quit = true
		return
	}
	var (
		ok  bool
		err error
	)
	for attempt := 0; ; attempt++ {
		var up backends.RESPConn
		if own {
			if up, err = c.dedicated(st, key); err != nil {
				c.types = c.types[:0]
				break
			}
		} else {
			up = c.pin.up
		}
		c.blockedOn.Store(up.UpstreamID())
		if h, isHomed := up.(backends.RESPHomed); isHomed {
			c.blockedHome.Store(&homeRef{h.Home()})
		}
		c.mode.Store(modeBlocked)
		c.s.blocked.Add(1)
		stopWatch := c.watchClient(func() { up.Close() })
		c.types = c.types[:0]
		ok, err = c.roundTrip(st, up, []cmd{*k}, false, nil)
		gone := stopWatch()
		c.s.blocked.Add(-1)
		c.mode.Store(modeBusy)
		c.blockedOn.Store(0)
		c.blockedHome.Store(nil)
		if gone {
			ok, err = false, errClientGone
		}
		if own {
			up.Release(ok && err == nil)
		} else if err != nil {
			up.Release(false)
			c.pin = nil
		}
		if err == nil && own && c.redirected && attempt < 2 {
			// The key's slot moved: the command did not run. Try the
			// server the cluster named.
			c.out, c.types = c.out[:0], c.types[:0]
			continue
		}
		break
	}
	if err != nil {
		c.backendFailed(st, []cmd{*k}, len(c.types), err)
	}
	if discard {
		c.out = c.out[:0]
	}
	c.recordAll([]cmd{*k}, start)
}

// watchClient reads from the client while a blocking command waits. Bytes
// it reads are kept for after; if the client closes, gone runs (closing
// the upstream connection, or cancelling the store's wait) so that the
// blocked command ends without taking anything. The returned function
// stops the watcher and reports whether the client went away.
func (c *conn) watchClient(gone func()) func() bool {
	done := make(chan bool, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.nc.Read(buf)
			if n > 0 {
				c.side = append(c.side, buf[:n]...)
				c.s.netIn.Add(uint64(n))
				if len(c.side) > 1<<20 {
					// The client keeps sending while blocked: stop
					// reading and let TCP push back.
					done <- false
					return
				}
			}
			if err != nil {
				if isTimeout(err) && !c.killed.Load() && !c.s.closing.Load() {
					done <- false
					return
				}
				gone()
				done <- true
				return
			}
		}
	}()
	return func() bool {
		c.nc.SetReadDeadline(time.Now())
		gone := <-done
		c.nc.SetReadDeadline(time.Time{})
		return gone
	}
}

var errDuplexClosed = errors.New("duplex closed")

// crossSlotReply answers a command whose key a cluster serves elsewhere
// than the connection the client holds.
const crossSlotReply = "-CROSSSLOT Keys in request don't hash to the same slot\r\n"

// homeRef is the server a blocked client waits on, for CLIENT UNBLOCK.
type homeRef struct{ b backends.RESPPassthrough }
