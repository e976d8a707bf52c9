package redis

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// blocking keeps the clients blocked on keys (BLPOP and friends). Its
// state is only touched inside the store's transactions, which serialise
// it: a client registers in the transaction that found its keys empty,
// and the transaction that fills a key serves the first client waiting on
// it before it ends, as Redis does, so no element is ever taken by a
// client that is gone or handed out twice.
type blocking struct {
	e       *Engine
	waiters map[kv.DBKey][]*waiter
}

// waiter is one blocked client.
type waiter struct {
	keys []kv.DBKey
	// serve tries to take from key; it returns the reply, or nil when
	// the key cannot serve this client (empty, another type).
	serve  func(tx kv.TypedTx, key []byte) []byte
	done   chan []byte
	served bool
}

func newBlocking(e *Engine) *blocking {
	return &blocking{e: e, waiters: map[kv.DBKey][]*waiter{}}
}

func (b *blocking) add(w *waiter) {
	for _, k := range w.keys {
		b.waiters[k] = append(b.waiters[k], w)
	}
}

func (b *blocking) remove(w *waiter) {
	for _, k := range w.keys {
		ws := b.waiters[k]
		for i, x := range ws {
			if x == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(b.waiters, k)
		} else {
			b.waiters[k] = ws
		}
	}
}

// onCommit serves clients waiting on keys the transaction changed, in the
// order they blocked. It runs inside the transaction.
func (b *blocking) onCommit(tx kv.TypedTx, changed []kv.DBKey) {
	if len(b.waiters) == 0 {
		return
	}
	db := tx.DB()
	defer tx.Select(db)
	for _, k := range changed {
		ws := b.waiters[k]
		if len(ws) == 0 {
			continue
		}
		tx.Select(k.DB)
		key := []byte(k.Key)
		for len(b.waiters[k]) > 0 {
			w := b.waiters[k][0]
			reply := w.serve(tx, key)
			if reply == nil {
				break // the key is empty (or of another type) now
			}
			w.served = true
			b.remove(w)
			w.done <- reply
		}
	}
}

// parseTimeout parses a blocking command's timeout in seconds (a float).
func parseTimeout(arg []byte) (time.Duration, string) {
	f, ok := parseFloat(arg)
	if !ok || math.IsInf(f, 0) {
		return 0, errTimeout
	}
	if f < 0 {
		return 0, errTimeoutNeg
	}
	if f*1e9 > math.MaxInt64/2 {
		return 0, errTimeout
	}
	return time.Duration(f * float64(time.Second)), ""
}

// block runs a blocking command: try serves at once in a transaction; if
// it cannot, the client waits on keys for up to timeout (0: forever), or
// until ctx ends (the client went away). Inside MULTI the command does
// not block and answers nullReply.
func (c *call) block(keys [][]byte, timeout time.Duration, try func(tx kv.TypedTx) []byte, serve func(tx kv.TypedTx, key []byte) []byte, nullReply string) {
	s := c.s
	if c.inTx {
		// Inside EXEC nothing blocks: serve now or answer as on timeout.
		if r := try(c.tt); r != nil {
			c.out = append(c.out, r...)
		} else {
			c.out = append(c.out, nullReply...)
		}
		return
	}
	var w *waiter
	var out []byte
	err := s.e.store.Update(c.ctx, s.db, func(tx kv.Tx) error {
		tt := tx.(kv.TypedTx)
		if r := try(tt); r != nil {
			out = r
			return nil
		}
		if s.multi || s.replaying {
			return nil
		}
		w = &waiter{serve: serve, done: make(chan []byte, 1)}
		for _, k := range keys {
			w.keys = append(w.keys, kv.DBKey{DB: s.db, Key: string(k)})
		}
		s.e.blocked.add(w)
		return nil
	})
	if err != nil {
		c.replyErr(err)
		return
	}
	if out != nil {
		c.out = append(c.out, out...)
		return
	}
	if w == nil {
		c.out = append(c.out, nullReply...)
		return
	}
	if s.Blocked != nil {
		s.Blocked(true)
		defer s.Blocked(false)
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	gone := false
	unblockErr := false
	select {
	case r := <-w.done:
		c.out = append(c.out, r...)
		return
	case <-timer:
	case <-c.ctx.Done():
		switch context.Cause(c.ctx) {
		case ErrUnblockTimeout:
		case ErrUnblockError:
			unblockErr = true
		default:
			gone = true
		}
	}
	// Give up, unless the client was served in the meantime.
	s.e.store.Update(context.Background(), s.db, func(tx kv.Tx) error {
		if !w.served {
			s.e.blocked.remove(w)
		}
		return nil
	})
	select {
	case r := <-w.done:
		if !gone {
			c.out = append(c.out, r...)
		}
		// A client that left after being served: its element was taken
		// for it, as Redis would have sent it; nothing is lost that a
		// connected Redis client would have kept.
		return
	default:
	}
	switch {
	case unblockErr:
		c.out = resp.AppendError(c.out, "UNBLOCKED client unblocked via CLIENT UNBLOCK")
	case !gone:
		c.out = append(c.out, nullReply...)
	}
}

// Causes a frontend gives the context of a blocked command to end it as
// CLIENT UNBLOCK does: as if it timed out, or with an error.
var (
	ErrUnblockTimeout = errors.New("unblocked (timeout)")
	ErrUnblockError   = errors.New("unblocked (error)")
)

// keyReply encodes the [key, value] reply of BLPOP/BRPOP.
func keyReply(key, val []byte) []byte {
	out := resp.AppendArray(nil, 2)
	out = resp.AppendBulk(out, key)
	return resp.AppendBulk(out, val)
}

func itoa64(n int64) []byte { return strconv.AppendInt(nil, n, 10) }
