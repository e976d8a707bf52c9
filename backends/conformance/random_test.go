package conformance

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/mecha-gateway/mecha/backends/kv"
)

// Random scripts: long sequences of commands drawn with a fixed seed over
// a few keys, so that commands meet each other's results (a counter
// appended to, a list popped empty, a hash renamed over a set ...) in
// ways hand-written scripts miss. Only commands whose replies are
// determined are drawn (no SPOP, RANDOMKEY, TTL readings).

// randomScripts are the generated scripts' names, for targets that must
// skip them all.
var randomScripts []string

func init() {
	for i := range 4 {
		for _, g := range []struct {
			name  string
			needs kv.Feature
			gen   func(r *rand.Rand) step
		}{
			{"random-strings", 0, randomString},
			{"random-typed", typed, randomTyped},
			{"random-more", typed | ranges, randomMore},
		} {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			sc := script{name: fmt.Sprintf("%s-%d", g.name, i), needs: g.needs}
			for range 400 {
				sc.steps = append(sc.steps, g.gen(r))
			}
			scripts = append(scripts, sc)
			randomScripts = append(randomScripts, sc.name)
		}
	}
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

var (
	rKeys    = []string{"a", "b", "c", "d"}
	rValues  = []string{"", "0", "1", "-7", "42", "9223372036854775806", "-9223372036854775807", "x", "hello world", "3.5", "\x00\xff\r\n", "10"}
	rMembers = []string{"m1", "m2", "m3", "m4", "m5", ""}
)

func rKey(r *rand.Rand) string   { return pick(r, rKeys...) }
func rValue(r *rand.Rand) string { return pick(r, rValues...) }
func rInt(r *rand.Rand, lo, hi int) string {
	return strconv.Itoa(lo + r.IntN(hi-lo+1))
}

// randomString draws a command on strings and keys: what every backend
// serves, Memcached included.
func randomString(r *rand.Rand) step {
	k := rKey(r)
	switch r.IntN(17) {
	case 0:
		args := []string{"SET", k, rValue(r)}
		if r.IntN(3) == 0 {
			args = append(args, pick(r, "NX", "XX"))
		}
		if r.IntN(3) == 0 {
			args = append(args, "GET")
		}
		if r.IntN(4) == 0 {
			// Deadlines all different and far off: GT and LT compare
			// them, and none passes while the script runs.
			args = append(args, pick(r, []string{"EX", "1000"}, []string{"PX", "2000000"})...)
		} else if r.IntN(4) == 0 {
			args = append(args, "KEEPTTL")
		}
		return x(args...)
	case 1:
		return x("GET", k)
	case 2:
		return x("APPEND", k, rValue(r))
	case 3:
		return x("INCR", k)
	case 4:
		return x("DECRBY", k, pick(r, "1", "-5", "9223372036854775807", "x"))
	case 5:
		return x("INCRBY", k, pick(r, "3", "-2", "0", "1.5"))
	case 6:
		return x("GETSET", k, rValue(r))
	case 7:
		return x("GETDEL", k)
	case 8:
		return x("MGET", k, rKey(r), rKey(r))
	case 9:
		return x("MSET", k, rValue(r), rKey(r), rValue(r))
	case 10:
		return x("SETNX", k, rValue(r))
	case 11:
		return x("EXISTS", k, rKey(r), k)
	case 12:
		return x("DEL", k, rKey(r))
	case 13:
		return x("STRLEN", k)
	case 14:
		return x("MSETNX", k, rValue(r), rKey(r), rValue(r))
	case 15:
		// Absolute times, so that GT and LT compare deadlines that do
		// not depend on when the command runs (before 2038: Memcached).
		return x("EXPIREAT", k, pick(r, "2000000000", "2100000000"), pick(r, "NX", "XX", "GT", "LT"))
	default:
		return x("PERSIST", k)
	}
}

// randomTyped draws a command on hashes, lists, sets, sorted sets and
// keys, over the same keys, so that types collide (WRONGTYPE).
func randomTyped(r *rand.Rand) step {
	k := rKey(r)
	m := func() string { return pick(r, rMembers...) }
	switch r.IntN(40) {
	case 0:
		return x("LPUSH", k, m(), m())
	case 1:
		return x("RPUSH", k, m())
	case 2:
		return x("LPOP", k, rInt(r, 0, 3))
	case 3:
		return x("RPOP", k)
	case 4:
		return x("LRANGE", k, rInt(r, -4, 2), rInt(r, -2, 5))
	case 5:
		return x("LINSERT", k, pick(r, "BEFORE", "AFTER"), m(), m())
	case 6:
		return x("LREM", k, rInt(r, -2, 2), m())
	case 7:
		return x("LTRIM", k, rInt(r, -3, 1), rInt(r, -1, 3))
	case 8:
		return x("LSET", k, rInt(r, -2, 2), m())
	case 9:
		return x("LPOS", k, m(), "RANK", pick(r, "1", "-1", "2"))
	case 10:
		return x("LMOVE", k, rKey(r), pick(r, "LEFT", "RIGHT"), pick(r, "LEFT", "RIGHT"))
	case 11:
		return x("HSET", k, m(), rValue(r), m(), rValue(r))
	case 12:
		return x("HGET", k, m())
	case 13:
		return x("HDEL", k, m(), m())
	case 14:
		return x("HINCRBY", k, m(), pick(r, "1", "-3", "x"))
	case 15:
		return s(pairs, "HGETALL", k)
	case 16:
		return x("HLEN", k)
	case 17:
		return x("SADD", k, m(), m())
	case 18:
		return x("SREM", k, m())
	case 19:
		return s(unordered, "SMEMBERS", k)
	case 20:
		return s(unordered, pick(r, "SINTER", "SUNION", "SDIFF"), k, rKey(r))
	case 21:
		return x(pick(r, "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"), k, rKey(r), rKey(r))
	case 22:
		return x("SMOVE", k, rKey(r), m())
	case 23:
		return x("SISMEMBER", k, m())
	case 24:
		args := []string{"ZADD", k}
		if r.IntN(3) == 0 {
			args = append(args, pick(r, "NX", "XX", "GT", "LT"))
		}
		if r.IntN(3) == 0 {
			args = append(args, "CH")
		}
		return x(append(args, rInt(r, -3, 5), m())...)
	case 25:
		return x("ZINCRBY", k, pick(r, "1", "-2.5", "inf"), m())
	case 26:
		return x("ZRANGE", k, rInt(r, -3, 1), rInt(r, -1, 4), "WITHSCORES")
	case 27:
		return x("ZRANGE", k, pick(r, "-inf", "(1", "0"), pick(r, "+inf", "3", "(4"), "BYSCORE", "LIMIT", rInt(r, 0, 1), rInt(r, -1, 2))
	case 28:
		return x("ZRANK", k, m())
	case 29:
		return x("ZSCORE", k, m())
	case 30:
		return x("ZPOPMIN", k, rInt(r, 1, 2))
	case 31:
		return x(pick(r, "ZUNIONSTORE", "ZINTERSTORE"), k, "2", rKey(r), rKey(r), "WEIGHTS", "1", "2", "AGGREGATE", pick(r, "SUM", "MIN", "MAX"))
	case 32:
		return x("ZREM", k, m(), m())
	case 33:
		return x("TYPE", k)
	case 34:
		return x("RENAME", k, rKey(r))
	case 35:
		return x("COPY", k, rKey(r), "REPLACE")
	case 36:
		return x("DEL", k)
	case 37:
		return x("ZRANGESTORE", k, rKey(r), "0", "-1")
	case 38:
		return x("EXISTS", k, rKey(r))
	default:
		return randomString(r)
	}
}

// randomMore draws the rest: string ranges and bits, floats, and the
// less common list, hash, set and sorted-set commands.
func randomMore(r *rand.Rand) step {
	k := rKey(r)
	m := func() string { return pick(r, rMembers...) }
	lex := func() string { return pick(r, "-", "+", "[m2", "(m3", "[", "(m5") }
	score := func() string { return pick(r, "-inf", "+inf", "0", "(1", "2", "(3.5", "1e1") }
	switch r.IntN(37) {
	case 0:
		return x("SETRANGE", k, rInt(r, 0, 12), rValue(r))
	case 1:
		return x("GETRANGE", k, rInt(r, -8, 4), rInt(r, -8, 8))
	case 2:
		return x("SETBIT", k, rInt(r, 0, 40), pick(r, "0", "1"))
	case 3:
		return x("GETBIT", k, rInt(r, 0, 40))
	case 4:
		return x("BITCOUNT", k, rInt(r, -3, 2), rInt(r, -2, 5), pick(r, "BYTE", "BIT"))
	case 5:
		return x("BITPOS", k, pick(r, "0", "1"), rInt(r, -2, 2))
	case 6:
		return x("BITOP", pick(r, "AND", "OR", "XOR"), k, rKey(r), rKey(r))
	case 7:
		return x("INCRBYFLOAT", k, pick(r, "1.5", "-0.25", "1e3", "3", "x", "0.1"))
	case 8:
		return x("HINCRBYFLOAT", k, m(), pick(r, "1.5", "-2", "1e-2", "x"))
	case 9:
		return x("HMGET", k, m(), m())
	case 10:
		return x("HSETNX", k, m(), rValue(r))
	case 11:
		return x("HSTRLEN", k, m())
	case 12:
		return s(unordered, "HVALS", k)
	case 13:
		return x("LINDEX", k, rInt(r, -3, 3))
	case 14:
		return x(pick(r, "LPUSHX", "RPUSHX"), k, m())
	case 15:
		return x("LMPOP", "2", k, rKey(r), pick(r, "LEFT", "RIGHT"), "COUNT", rInt(r, 1, 3))
	case 16:
		return x("RPOPLPUSH", k, rKey(r))
	case 17:
		return x("SMISMEMBER", k, m(), m())
	case 18:
		return x("SINTERCARD", "2", k, rKey(r), "LIMIT", rInt(r, 0, 3))
	case 19:
		return x("SADD", k, m(), m(), m())
	case 20:
		return x("ZADD", k, rInt(r, 0, 3), m(), rInt(r, 0, 3), m())
	case 21:
		return x("ZADD", k, "INCR", pick(r, "1", "-1", "0.5"), m())
	case 22:
		return x("ZRANGEBYLEX", "lex", lex(), lex())
	case 23:
		return x("ZLEXCOUNT", "lex", lex(), lex())
	case 24:
		return x("ZCOUNT", k, score(), score())
	case 25:
		return x("ZREVRANGEBYSCORE", k, score(), score(), "WITHSCORES", "LIMIT", rInt(r, 0, 2), rInt(r, -1, 2))
	case 26:
		return x("ZMSCORE", k, m(), m())
	case 27:
		return x("ZPOPMAX", k, rInt(r, 1, 3))
	case 28:
		return x(pick(r, "ZDIFF", "ZINTER", "ZUNION"), "2", k, rKey(r), "WITHSCORES")
	case 29:
		return x("ZINTERCARD", "2", k, rKey(r))
	case 30:
		return x("ZMPOP", "2", k, rKey(r), pick(r, "MIN", "MAX"), "COUNT", rInt(r, 1, 2))
	case 31:
		if r.IntN(2) == 0 {
			return x("ZREMRANGEBYSCORE", k, pick(r, "-inf", "(1"), pick(r, "+inf", "2"))
		}
		return x("ZREMRANGEBYLEX", "lex", lex(), lex())
	case 32:
		return x("ZRANGE", "lex", lex(), lex(), "BYLEX", "REV", "LIMIT", "0", rInt(r, -1, 2))
	case 33:
		return x("ZREVRANK", k, m())
	case 34:
		return x("GETEX", k, "PERSIST")
	case 35:
		// Lex ranges are defined only over equal scores: key "lex"
		// holds members of score 0 only.
		return x("ZADD", "lex", "0", m(), "0", m())
	default:
		return randomTyped(r)
	}
}
