package redis

import (
	"context"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	reg("multi", cmdMulti, needs(kv.FeatureTransactions), noTx, immediate)
	reg("exec", cmdExec, needs(kv.FeatureTransactions), noTx, immediate)
	reg("discard", cmdDiscard, needs(kv.FeatureTransactions), noTx, immediate)
	reg("watch", cmdWatch, needs(kv.FeatureTransactions), noTx, immediate)
	reg("unwatch", cmdUnwatch, needs(kv.FeatureTransactions), noTx)
}

func cmdMulti(c *call) {
	if c.s.multi {
		c.errorMsg("ERR MULTI calls can not be nested")
		return
	}
	c.s.multi, c.s.dirty, c.s.queue = true, false, nil
	c.ok()
}

func cmdDiscard(c *call) {
	if !c.s.multi {
		c.errorMsg("ERR DISCARD without MULTI")
		return
	}
	c.s.multi, c.s.dirty, c.s.queue = false, false, nil
	c.s.unwatchAll(c.ctx)
	c.ok()
}

func cmdWatch(c *call) {
	s := c.s
	if s.multi {
		c.errorMsg("ERR WATCH inside MULTI is not allowed")
		return
	}
	err := s.e.store.Update(c.ctx, s.db, func(tx kv.Tx) error {
		tt := tx.(kv.TypedTx)
		if s.watching == nil {
			s.watching = map[kv.DBKey]uint64{}
		}
		for _, k := range c.args[1:] {
			dk := kv.DBKey{DB: s.db, Key: string(k)}
			if _, already := s.watching[dk]; already {
				continue
			}
			s.watching[dk] = tt.Watch(k)
		}
		return nil
	})
	if c.check(err) {
		return
	}
	c.ok()
}

func cmdUnwatch(c *call) {
	c.s.unwatchAll(c.ctx)
	c.ok()
}

// unwatchAll forgets every watched key.
func (s *Session) unwatchAll(ctx context.Context) {
	if len(s.watching) == 0 {
		return
	}
	s.e.store.Update(ctx, s.db, func(tx kv.Tx) error {
		tt := tx.(kv.TypedTx)
		for k := range s.watching {
			tt.Select(k.DB)
			tt.Unwatch([]byte(k.Key))
		}
		return nil
	})
	s.watching = nil
}

// isLocalCommand reports whether the frontend answers args itself.
func isLocalCommand(args [][]byte) bool {
	info := resp.Lookup(args[0])
	if info == nil {
		return false
	}
	switch info.Name {
	case "client", "info", "config", "auth", "hello", "reset", "quit":
		return true
	}
	return false
}

func cmdExec(c *call) {
	s := c.s
	if !s.multi {
		c.errorMsg("ERR EXEC without MULTI")
		return
	}
	queue := s.queue
	s.multi, s.queue = false, nil
	if s.dirty {
		s.dirty = false
		s.unwatchAll(c.ctx)
		c.errorMsg("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	replies := make([][]byte, len(queue))
	aborted := false
	err := s.e.store.Update(c.ctx, s.db, func(tx kv.Tx) error {
		tt, _ := tx.(kv.TypedTx)
		for k, v := range s.watching {
			tt.Select(k.DB)
			if tt.Version([]byte(k.Key)) != v {
				aborted = true
				return nil
			}
		}
		tx.Select(s.db)
		for i, args := range queue {
			if isLocalCommand(args) {
				continue // answered after the transaction, in place
			}
			replies[i] = s.runQueued(c.ctx, tx, tt, args)
		}
		return nil
	})
	s.unwatchAll(c.ctx)
	if c.check(err) {
		return
	}
	if aborted {
		c.nullArray()
		return
	}
	c.array(len(queue))
	for i, r := range replies {
		if r == nil && isLocalCommand(queue[i]) {
			if s.Local != nil {
				r = s.Local(queue[i], nil)
			} else {
				r = resp.AppendError(nil, "ERR command not allowed in a transaction")
			}
		}
		c.out = append(c.out, r...)
	}
}

// runQueued runs one queued command inside EXEC's transaction.
func (s *Session) runQueued(ctx context.Context, tx kv.Tx, tt kv.TypedTx, args [][]byte) []byte {
	info := resp.Lookup(args[0])
	h, _ := lookupHandler(info, args)
	qc := call{s: s, ctx: ctx, tx: tx, tt: tt, h: h, args: args, inTx: true}
	h.fn(&qc)
	return qc.out
}
