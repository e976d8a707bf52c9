package redis

import (
	"context"
	"time"

	"github.com/mecha-gateway/mecha/frontends/redis/resp"
	translate "github.com/mecha-gateway/mecha/translate/redis"
)

// executeKV runs a batch against a store served through the translation
// layer: the session answers data commands, transactions, blocking
// commands and pub/sub; connection commands stay here.
func (c *conn) executeKV(st *settings, cmds []cmd) {
	s := c.sess
	// One clock read per command: each command's latency runs from the
	// end of the one before it (the batch's arrival for the first).
	start := time.Now()
	for i := range cmds {
		if c.quit || c.killed.Load() {
			return
		}
		k := &cmds[i]
		c.lastCmd.Store(int32(k.id))
		mark := len(c.out)
		skip := c.skipReply
		switch {
		case !c.authed && (k.info == nil || !k.info.Has(resp.FlagNoAuth)):
			c.out = resp.AppendError(c.out, "NOAUTH Authentication required.")
		case c.kvLocal(k):
			c.local(st, k)
		case s.MayBlock(k.args):
			c.runBlockingKV(k)
		default:
			c.out = s.ExecInfo(c.ctx(), k.info, k.args, c.out)
			if db := s.DB(); db != c.db {
				c.setDB(db) // SELECT inside EXEC
			}
		}
		isErr := len(c.out) > mark && c.out[mark] == '-'
		if !isClientReply(k) && (c.replyOff || skip) {
			c.out = c.out[:mark]
			c.skipReply = false
		}
		end := time.Now()
		c.record(k, isErr, end.Sub(start))
		start = end
	}
}

// kvLocal reports whether the frontend answers k itself rather than the
// session: connection commands, except inside MULTI (queued) or in
// subscribed mode (where the session enforces what is allowed).
func (c *conn) kvLocal(k *cmd) bool {
	if k.info == nil {
		return false
	}
	switch k.info.Name {
	case "auth", "hello", "quit", "reset":
		return true
	}
	if c.sess.InMulti() || c.sess.Subscribed() {
		return false
	}
	switch k.info.Name {
	case "client", "info", "config", "select", "ping", "echo":
		return true
	}
	return false
}

// localInExec answers a connection command queued in a transaction, when
// EXEC reaches it.
func (c *conn) localInExec(args [][]byte, out []byte) []byte {
	saved := c.out
	c.out = out
	k := cmd{args: args, info: resp.Lookup(args[0])}
	k.id = metricID(&k)
	c.local(c.s.set.Load(), &k)
	res := c.out
	c.out = saved
	return res
}

// runBlockingKV runs a command that may wait for data in the store, with
// a watcher that ends the wait if the client goes away.
func (c *conn) runBlockingKV(k *cmd) {
	c.drain()
	if !c.flushOut() {
		c.quit = true
		return
	}
	ctx, cancel := context.WithCancelCause(c.ctx())
	defer cancel(nil)
	c.kvUnblock.Store(&cancel)
	c.mode.Store(modeBlocked)
	stopWatch := c.watchClient(func() { cancel(context.Canceled) })
	c.out = c.sess.Exec(ctx, k.args, c.out)
	gone := stopWatch()
	c.mode.Store(modeBusy)
	c.kvUnblock.Store(nil)
	if gone {
		c.quit = true
		c.killed.Store(true)
	}
}

// unblockKV ends another client's blocking command as CLIENT UNBLOCK
// does; it reports whether the client was blocked.
func (o *conn) unblockKV(withError bool) bool {
	p := o.kvUnblock.Load()
	if p == nil {
		return false
	}
	if withError {
		(*p)(translate.ErrUnblockError)
	} else {
		(*p)(translate.ErrUnblockTimeout)
	}
	return true
}
