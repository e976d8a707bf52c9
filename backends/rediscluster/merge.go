package rediscluster

import (
	"math/rand/v2"
	"strconv"

	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// mergeReplies makes the one reply of a command sent to several nodes
// from theirs (st.subs). An error from any node is the reply, as it would
// be from a single Redis.
func mergeReplies(st *cmdState) []byte {
	for _, s := range st.subs {
		if len(s) == 0 || s[0] == '-' || s[0] == '!' {
			if len(s) == 0 {
				return []byte("-ERR no reply from a cluster node\r\n")
			}
			return s
		}
	}
	switch st.merge {
	case mergeSum:
		var sum int64
		for _, s := range st.subs {
			n, ok := intReply(s)
			if !ok {
				return unexpected(s)
			}
			sum += n
		}
		return resp.AppendInt(nil, sum)
	case mergeConcat:
		var elems [][]byte
		for _, s := range st.subs {
			e, ok := elements(s)
			if !ok {
				return unexpected(s)
			}
			elems = append(elems, e...)
		}
		return appendArray(nil, elems)
	case mergeMGet:
		out := make([][]byte, st.nkeys)
		for j, s := range st.subs {
			e, ok := elements(s)
			if !ok || len(e) != len(st.pos[j]) {
				return unexpected(s)
			}
			for i, k := range st.pos[j] {
				out[k] = e[i]
			}
		}
		return appendArray(nil, out)
	case mergeAnd:
		var acc [][]byte
		for _, s := range st.subs {
			e, ok := elements(s)
			if !ok || acc != nil && len(e) != len(acc) {
				return unexpected(s)
			}
			if acc == nil {
				acc = e
				continue
			}
			for i := range acc {
				if string(e[i]) == ":0\r\n" {
					acc[i] = e[i]
				}
			}
		}
		return appendArray(nil, acc)
	case mergeRandom:
		var keys [][]byte
		for _, s := range st.subs {
			if s[0] == '$' && string(s) != "$-1\r\n" {
				keys = append(keys, s)
			}
		}
		if len(keys) == 0 {
			return []byte("$-1\r\n")
		}
		return keys[rand.IntN(len(keys))]
	case mergeScan:
		return scanReply(st)
	}
	// mergeOK, mergeSame: every node agreed.
	return st.subs[0]
}

// scanReply gives the client the scanned node's keys with Mecha's
// cursor: the node's next cursor, or the next node's first.
func scanReply(st *cmdState) []byte {
	s := st.subs[0]
	e, ok := elements(s)
	if !ok || len(e) != 2 {
		return unexpected(s)
	}
	v, _, err := resp.DecodeValue(e[0])
	if err != nil || v.Type != '$' {
		return unexpected(s)
	}
	c, err := strconv.ParseUint(string(v.Str), 10, 64)
	if err != nil || c >= 1<<(64-scanNodeBits) {
		return unexpected(s)
	}
	var next uint64
	switch {
	case c != 0:
		next = c<<scanNodeBits | uint64(st.scanNode)
	case st.scanNode+1 < st.scanNodes:
		next = uint64(st.scanNode + 1)
	}
	out := resp.AppendArray(nil, 2)
	out = resp.AppendBulk(out, strconv.AppendUint(nil, next, 10))
	return append(out, e[1]...)
}

// elements splits an array reply into its elements' bytes.
func elements(b []byte) ([][]byte, bool) {
	if len(b) < 4 || b[0] != '*' {
		return nil, false
	}
	i := 1
	for i < len(b) && b[i] != '\r' {
		i++
	}
	n, ok := resp.ParseInt(b[1:i])
	if !ok || i+1 >= len(b) {
		return nil, false
	}
	if n < 0 {
		return nil, true
	}
	rest := b[i+2:]
	out := make([][]byte, 0, n)
	var sc resp.ReplyScanner
	for range n {
		k, _, done, err := sc.Scan(rest)
		if err != nil || !done {
			return nil, false
		}
		out = append(out, rest[:k])
		rest = rest[k:]
	}
	return out, len(rest) == 0
}

func appendArray(dst []byte, elems [][]byte) []byte {
	dst = resp.AppendArray(dst, len(elems))
	for _, e := range elems {
		dst = append(dst, e...)
	}
	return dst
}

// intReply reads an integer reply.
func intReply(b []byte) (int64, bool) {
	if len(b) < 4 || b[0] != ':' {
		return 0, false
	}
	return resp.ParseInt(b[1 : len(b)-2])
}

func unexpected(b []byte) []byte {
	return resp.AppendError(nil, "ERR unexpected reply from a cluster node: "+strconv.Quote(string(b[:min(len(b), 64)])))
}
