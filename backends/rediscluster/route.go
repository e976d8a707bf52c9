package rediscluster

import (
	"strconv"

	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// merge is how the replies of a command sent to several nodes become the
// one reply its client gets.
type merge uint8

const (
	mergeNone   merge = iota // one node, its reply unchanged
	mergeMGet                // MGET split by slot: the values back in key order
	mergeOK                  // MSET split by slot: +OK when every part is
	mergeSum                 // DEL, EXISTS, UNLINK, TOUCH, DBSIZE: the sum
	mergeConcat              // KEYS: every node's keys
	mergeSame                // FLUSHALL, SCRIPT LOAD ...: the first error, or the first reply
	mergeAnd                 // SCRIPT EXISTS: 1 where every node has the script
	mergeRandom              // RANDOMKEY: a key from a node that has one
	mergeScan                // SCAN: the node's reply with Mecha's cursor
)

// splits are the multi-key commands Redis' semantics let Mecha split by
// slot: each key's outcome is independent of the others. keyStep is the
// distance between keys (MSET's values sit between them).
var splits = map[string]struct {
	merge   merge
	keyStep int
}{
	"mget":   {mergeMGet, 1},
	"mset":   {mergeOK, 2},
	"del":    {mergeSum, 1},
	"exists": {mergeSum, 1},
	"unlink": {mergeSum, 1},
	"touch":  {mergeSum, 1},
}

// fanouts are the commands about the whole keyspace (or every node's
// state), sent to every master.
var fanouts = map[string]merge{
	"keys":             mergeConcat,
	"dbsize":           mergeSum,
	"flushall":         mergeSame,
	"flushdb":          mergeSame,
	"randomkey":        mergeRandom,
	"script|load":      mergeSame,
	"script|flush":     mergeSame,
	"script|exists":    mergeAnd,
	"function|load":    mergeSame,
	"function|delete":  mergeSame,
	"function|flush":   mergeSame,
	"function|restore": mergeSame,
	"config|set":       mergeSame,
	"config|resetstat": mergeSame,
	"config|rewrite":   mergeSame,
}

// crossSlotErr is Redis Cluster's reply to keys in several slots.
const crossSlotErr = "-CROSSSLOT Keys in request don't hash to the same slot\r\n"

// scanNodeBits is how many low bits of a SCAN cursor Mecha gives out name
// the master being scanned; the node's own cursor is in the others.
const scanNodeBits = 10

// routeOf decides where command i goes: it adds the targets to send for
// it to the batch's parts, or, for a command answered here, fills its
// reply.
func (cc *ccall) routeOf(l *layout, i int, raw []byte, args [][]byte, info *resp.CommandInfo) {
	st := &cc.cmds[i]
	name := ""
	if info != nil {
		name = info.Name
		arity := info
		if len(info.Subcommands) > 0 && len(args) > 1 {
			if sub := info.Sub(args[1]); sub != nil {
				name, arity = sub.Name, sub
			}
		}
		if !arity.ArityOK(len(args)) {
			// Malformed: any node answers with Redis' own error.
			cc.add(target{node: l.any, req: raw, cmd: i, sub: -1})
			return
		}
		if name == "mset" && len(args)%2 == 0 {
			// A single Redis checks this before anything else; a
			// cluster node would see the keys first.
			st.reply = append(st.reply, "-ERR wrong number of arguments for 'mset' command\r\n"...)
			st.typ, st.done = '-', true
			return
		}
	}
	if m, ok := fanouts[name]; ok {
		cc.fanout(l, i, raw, m)
		return
	}
	if name == "scan" {
		cc.scan(l, i, args)
		return
	}
	cc.keys = resp.Keys(info, args, cc.keys[:0])
	ks := cc.keys
	if len(ks) == 0 {
		cc.add(target{node: l.any, req: raw, cmd: i, sub: -1})
		return
	}
	slot := Slot(ks[0])
	same := true
	for _, k := range ks[1:] {
		if Slot(k) != slot {
			same = false
			break
		}
	}
	if same {
		cc.add(target{node: cc.b.nodeOf(l, slot), req: raw, cmd: i, sub: -1})
		return
	}
	sp, ok := splits[name]
	if !ok {
		cc.b.crossSlot.Inc()
		st.reply = append(st.reply, crossSlotErr...)
		st.typ, st.done = '-', true
		return
	}
	cc.split(l, i, args, sp.merge, sp.keyStep)
}

// split sends a multi-key command as one command per slot, each to its
// node; st.pos remembers which of the command's keys each part holds.
func (cc *ccall) split(l *layout, i int, args [][]byte, m merge, step int) {
	st := &cc.cmds[i]
	type group struct {
		slot int
		args [][]byte
		pos  []int
	}
	var groups []group
	for i, k := 1, 0; i+step-1 < len(args); i, k = i+step, k+1 {
		slot := Slot(args[i])
		g := -1
		for j := range groups {
			if groups[j].slot == slot {
				g = j
				break
			}
		}
		if g < 0 {
			groups = append(groups, group{slot: slot, args: [][]byte{args[0]}})
			g = len(groups) - 1
		}
		groups[g].args = append(groups[g].args, args[i:i+step]...)
		groups[g].pos = append(groups[g].pos, k)
	}
	st.merge = m
	st.subs = make([][]byte, len(groups))
	st.pending = len(groups)
	if m == mergeMGet {
		st.pos = make([][]int, len(groups))
		st.nkeys = (len(args) - 1) / step
	}
	for j, g := range groups {
		if m == mergeMGet {
			st.pos[j] = g.pos
		}
		cc.add(target{node: cc.b.nodeOf(l, g.slot), req: resp.AppendCommand(nil, g.args...), cmd: i, sub: j})
	}
}

// fanout sends the command to every master.
func (cc *ccall) fanout(l *layout, i int, raw []byte, m merge) {
	st := &cc.cmds[i]
	st.merge, st.fanout = m, true
	st.subs = make([][]byte, len(l.masters))
	st.pending = len(l.masters)
	for j, n := range l.masters {
		cc.add(target{node: n, req: raw, cmd: i, sub: j})
	}
}

// scan walks the masters one after the other: Mecha's cursor carries the
// index of the master in its low bits and that master's cursor above
// them.
func (cc *ccall) scan(l *layout, i int, args [][]byte) {
	st := &cc.cmds[i]
	if len(args) < 2 {
		cc.add(target{node: l.any, req: resp.AppendCommand(nil, args...), cmd: i, sub: -1})
		return
	}
	c, err := strconv.ParseUint(string(args[1]), 10, 64)
	idx := int(c & (1<<scanNodeBits - 1))
	if err != nil || idx >= len(l.masters) {
		st.reply = append(st.reply, "-ERR invalid cursor\r\n"...)
		st.typ, st.done = '-', true
		return
	}
	nargs := append([][]byte(nil), args...)
	nargs[1] = strconv.AppendUint(nil, c>>scanNodeBits, 10)
	st.merge, st.fanout = mergeScan, true
	st.subs = make([][]byte, 1)
	st.pending = 1
	st.scanNode, st.scanNodes = idx, len(l.masters)
	cc.add(target{node: l.masters[idx], req: resp.AppendCommand(nil, nargs...), cmd: i, sub: 0})
}

// nodeOf is the master of slot, or any master when the slot has none (its
// reply then tells the client the cluster is down, in Redis' words).
func (b *Backend) nodeOf(l *layout, slot int) *node {
	if n := l.slots[slot].Load(); n != nil {
		return n
	}
	return l.any
}
