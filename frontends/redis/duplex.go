package redis

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// duplex relays a subscribed (or MONITOR) client: pushes flow from the
// upstream connection to the client at any time, and the client's
// commands go upstream unchanged, so that the upstream enforces what a
// subscribed client may do and answers exactly as Redis does.
//
// To learn whether the client is still subscribed before a command that
// Mecha must handle itself, the client loop sends a barrier: PING with a
// token only Mecha knows. The upstream answers it after everything sent
// before it, as ["pong", token] while subscribed and as the bare token
// otherwise; the copier recognises the answer, drops it, and reports the
// state.
type duplex struct {
	c       *conn
	up      backends.RESPConn
	monitor bool
	keepPin bool // up belongs to c.pin and outlives the duplex

	marks    chan bool // barrier answers: true while still subscribed
	done     chan struct{}
	quitting atomic.Bool
	stopped  atomic.Bool
}

var (
	barrierToken    = newBarrierToken()
	barrierCmd      = resp.AppendCommandStrings(nil, "PING", barrierToken)
	barrierSubbed   = []byte("*2\r\n$4\r\npong\r\n$" + strconv.Itoa(len(barrierToken)) + "\r\n" + barrierToken + "\r\n")
	barrierUnsubbed = []byte("$" + strconv.Itoa(len(barrierToken)) + "\r\n" + barrierToken + "\r\n")
)

func newBarrierToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "mecha-barrier-" + hex.EncodeToString(b)
}

// enterDuplex starts relaying for k, a SUBSCRIBE-family command or
// MONITOR.
func (c *conn) enterDuplex(st *settings, k *cmd) {
	start := time.Now()
	d := &duplex{c: c, monitor: k.info.Name == "monitor", marks: make(chan bool, 1), done: make(chan struct{})}
	if c.pin != nil {
		d.up, d.keepPin = c.pin.up, true
	} else {
		// Shard channels (SSUBSCRIBE) live on their slot's server.
		up, err := c.dedicated(st, firstKey(k))
		if err != nil {
			c.types = c.types[:0]
			c.backendFailed(st, []cmd{*k}, 0, err)
			c.recordAll([]cmd{*k}, start)
			return
		}
		d.up = up
	}
	// Replies to earlier commands must reach the client before pushes.
	if !c.flushOut() {
		c.quit = true
		if !d.keepPin {
			d.up.Release(false)
		}
		return
	}
	c.dmu.Lock()
	c.duplex = d
	c.dmu.Unlock()
	c.mode.Store(modeDuplex)
	go d.run()
	c.record(k, false, time.Since(start))
	d.send(encode(c.req[:0], k))
}

// send writes raw commands upstream.
func (d *duplex) send(b []byte) bool {
	d.up.SetWriteDeadline(time.Now().Add(d.c.s.set.Load().cfg.WriteTimeout.D()))
	_, err := d.up.Write(b)
	d.up.SetWriteDeadline(time.Time{})
	if err != nil {
		d.c.quit = true
		return false
	}
	return true
}

// duplexExec handles commands from a client in duplex mode. It returns
// how many of cmds it consumed; it stops early when the client has left
// subscribed mode, and the rest are served normally.
func (c *conn) duplexExec(st *settings, cmds []cmd) int {
	d := c.duplex
	for i := 0; i < len(cmds); {
		k := &cmds[i]
		name := ""
		if k.info != nil {
			name = k.info.Name
		}
		switch {
		case d.monitor && name != "reset":
			// A monitoring connection stays a raw relay until it closes.
			n, done := c.relayRun(d, cmds[i:], func(k *cmd) bool { return !(k.info != nil && k.info.Name == "reset") })
			if done {
				return len(cmds)
			}
			i += n
		case isDuplexCommand(k):
			n, done := c.relayRun(d, cmds[i:], isDuplexCommand)
			if done {
				return len(cmds)
			}
			i += n
		case name == "reset":
			if !d.monitor {
				d.barrier()
			}
			c.leaveDuplex(false)
			return i // RESET itself is answered locally
		default:
			subscribed, ok := d.barrier()
			if !ok {
				c.quit = true
				return len(cmds)
			}
			if !subscribed {
				c.leaveDuplex(true)
				return i
			}
			// Still subscribed: the upstream refuses the command with
			// Redis' own error.
			c.record(k, true, 0)
			if !d.send(encode(c.req[:0], k)) {
				return len(cmds)
			}
			i++
		}
	}
	return len(cmds)
}

// relayRun sends upstream the leading commands of cmds that pass, up to
// and including a QUIT, and reports how many it sent; done means the
// connection is ending (QUIT, or the upstream failed).
func (c *conn) relayRun(d *duplex, cmds []cmd, pass func(*cmd) bool) (int, bool) {
	n := 0
	c.req = c.req[:0]
	for n < len(cmds) && pass(&cmds[n]) {
		c.req = encode(c.req, &cmds[n])
		c.record(&cmds[n], false, 0)
		n++
		if k := &cmds[n-1]; k.info != nil && k.info.Name == "quit" {
			d.quitting.Store(true)
			break
		}
	}
	if !d.send(c.req) {
		return n, true
	}
	if d.quitting.Load() {
		c.awaitQuit(d)
		return n, true
	}
	return n, false
}

func isDuplexCommand(k *cmd) bool {
	if k.info == nil {
		return false
	}
	switch k.info.Name {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe", "ping", "quit":
		return true
	}
	return false
}

// barrier waits until the upstream has answered everything sent so far
// and reports whether the client is still subscribed; ok is false if the
// upstream connection failed.
func (d *duplex) barrier() (subscribed, ok bool) {
	if !d.send(barrierCmd) {
		return false, false
	}
	t := time.NewTimer(d.up.Timeout() + time.Second)
	defer t.Stop()
	select {
	case s := <-d.marks:
		return s, true
	case <-d.done:
		// The copier stops after reporting that the client left
		// subscribed mode; anything else is a failure.
		select {
		case s := <-d.marks:
			return s, true
		default:
			return false, false
		}
	case <-t.C:
		return false, false
	}
}

// awaitQuit waits for the upstream to answer QUIT and close.
func (c *conn) awaitQuit(d *duplex) {
	select {
	case <-d.done:
	case <-time.After(d.up.Timeout() + time.Second):
	}
	c.quit = true
}

// leaveDuplex returns the client to normal mode. The upstream connection
// is reused only when the barrier proved it unsubscribed (clean).
func (c *conn) leaveDuplex(clean bool) {
	d := c.duplex
	if !clean {
		d.stop()
	} else {
		<-d.done
	}
	c.dmu.Lock()
	c.duplex = nil
	c.dmu.Unlock()
	c.mode.Store(modeBusy)
	if d.keepPin {
		if !clean {
			c.pin.up.Release(false)
			c.pin = nil
		}
		return
	}
	d.up.Release(clean)
}

// stop closes the upstream side and waits for the copier.
func (d *duplex) stop() {
	if d.stopped.Swap(true) {
		return
	}
	d.up.Close()
	<-d.done
}

// run copies from the upstream to the client until the upstream closes or
// a barrier shows the client has left subscribed mode.
func (d *duplex) run() {
	defer close(d.done)
	c := d.c
	d.up.SetReadDeadline(time.Time{})
	buf := make([]byte, 16<<10)
	var (
		scan resp.ReplyScanner
		out  []byte
		cur  []byte // the reply being scanned, while it may still be a barrier answer
		big  bool   // the current reply is too long to be one
	)
	for {
		n, err := d.up.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			k, _, done, serr := scan.Scan(p)
			if serr != nil {
				err = serr
				break
			}
			if big {
				out = append(out, p[:k]...)
			} else {
				cur = append(cur, p[:k]...)
				if len(cur) > len(barrierSubbed) {
					out = append(out, cur...)
					cur, big = cur[:0], true
				}
			}
			p = p[k:]
			if !done {
				continue
			}
			if !big {
				switch {
				case bytes.Equal(cur, barrierSubbed):
					d.marks <- true
				case bytes.Equal(cur, barrierUnsubbed) && !d.monitor:
					// Out of subscribed mode: nothing more will come
					// unasked. Stop here and hand the connection back.
					c.ob.write(out)
					d.marks <- false
					return
				default:
					out = append(out, cur...)
				}
			}
			cur, big = cur[:0], false
		}
		if len(out) > 0 {
			if !c.ob.write(out) {
				d.up.Close()
				return
			}
			out = out[:0]
		}
		if err != nil {
			if !d.quitting.Load() && !d.stopped.Load() {
				// The subscription is gone with the upstream connection:
				// close the client so that it reconnects and resubscribes.
				c.nc.Close()
			}
			return
		}
	}
}
