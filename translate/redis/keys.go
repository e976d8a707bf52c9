package redis

import (
	"math"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	reg("del", cmdDel)
	reg("unlink", cmdDel)
	reg("exists", cmdExists)
	reg("touch", cmdExists)
	reg("type", cmdType, typed)
	reg("expire", cmdExpire, needs(kv.FeatureTTL))
	reg("pexpire", cmdExpire, needs(kv.FeatureTTL))
	reg("expireat", cmdExpire, needs(kv.FeatureTTL))
	reg("pexpireat", cmdExpire, needs(kv.FeatureTTL))
	reg("ttl", cmdTTL, needs(kv.FeatureTTL))
	reg("pttl", cmdTTL, needs(kv.FeatureTTL))
	reg("expiretime", cmdTTL, needs(kv.FeatureTTLRead))
	reg("pexpiretime", cmdTTL, needs(kv.FeatureTTLRead))
	reg("persist", cmdPersist, needs(kv.FeatureTTLRead))
	reg("rename", cmdRename, typed, needs(kv.FeatureRenames))
	reg("renamenx", cmdRename, typed, needs(kv.FeatureRenames))
	reg("copy", cmdCopy, typed, needs(kv.FeatureRenames))
	reg("move", cmdMove, typed, needs(kv.FeatureRenames|kv.FeatureMultiDB))
	reg("keys", cmdKeys, needs(kv.FeatureScan|kv.FeatureTypes))
	reg("scan", cmdScan, needs(kv.FeatureScan|kv.FeatureTypes))
	reg("randomkey", cmdRandomKey, needs(kv.FeatureScan|kv.FeatureTypes))
	reg("dbsize", cmdDBSize, typed)
	reg("flushdb", cmdFlushDB)
	reg("flushall", cmdFlushAll)
	reg("swapdb", cmdSwapDB, typed, needs(kv.FeatureMultiDB))
	reg("object|encoding", cmdObjectEncoding, typed)
	reg("object|refcount", cmdObjectRefcount, typed)
	reg("object|idletime", cmdObjectIdle, typed)
	reg("object|freq", cmdObjectFreq, typed)
	reg("object|help", cmdObjectHelp)
}

func cmdDel(c *call) {
	n, err := c.tx.Delete(c.args[1:]...)
	if c.check(err) {
		return
	}
	if n > 0 {
		c.propagate(append([][]byte{[]byte("DEL")}, c.args[1:]...)...)
	}
	c.int(int64(n))
}

func cmdExists(c *call) {
	n, err := c.tx.Exists(c.args[1:]...)
	if c.check(err) {
		return
	}
	c.int(int64(n))
}

func cmdType(c *call) {
	v := c.tt.Value(c.args[1])
	if v == nil {
		c.simple("none")
		return
	}
	c.simple(v.Kind.String())
}

func cmdExpire(c *call) {
	name := lower(c.args[0])
	n, ok := c.argInt(2)
	if !ok {
		return
	}
	cond := kv.ExpireAlways
	var nx, xx, gt, lt bool
	for _, a := range c.args[3:] {
		switch lower(a) {
		case "nx":
			nx = true
		case "xx":
			xx = true
		case "gt":
			gt = true
		case "lt":
			lt = true
		default:
			c.errorMsg("ERR Unsupported option " + string(a))
			return
		}
	}
	switch {
	case nx && (xx || gt || lt):
		c.errorMsg("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	case gt && lt:
		c.errorMsg("ERR GT and LT options at the same time are not compatible")
		return
	case nx:
		cond = kv.ExpireNX
	case xx:
		cond = kv.ExpireXX
	}
	if gt {
		cond = kv.ExpireGT
	} else if lt {
		cond = kv.ExpireLT
	}
	if gt || lt {
		if xx {
			// XX together with GT/LT: GT/LT already require an expiry
			// for a change, except LT, which accepts keys without one.
			if n, err := c.tx.TTL(c.args[1]); err == nil && n.IsZero() {
				c.int(0)
				return
			}
		}
	}
	now := c.now()
	var at time.Time
	overflow := false
	switch name {
	case "expire":
		overflow = n > math.MaxInt64/1000 || n < math.MinInt64/1000 || (n > 0 && now.UnixMilli() > math.MaxInt64-n*1000)
		at = time.UnixMilli(now.UnixMilli() + n*1000)
	case "pexpire":
		overflow = n > 0 && now.UnixMilli() > math.MaxInt64-n
		at = time.UnixMilli(now.UnixMilli() + n)
	case "expireat":
		overflow = n > math.MaxInt64/1000 || n < math.MinInt64/1000
		at = time.UnixMilli(n * 1000)
	case "pexpireat":
		at = time.UnixMilli(n)
	}
	if overflow {
		c.errorMsg("ERR invalid expire time in '" + name + "' command")
		return
	}
	if at.UnixMilli() == 0 {
		at = time.UnixMilli(-1) // not the zero Time: that means "persist"
	}
	done, err := c.tx.Expire(c.args[1], at, cond)
	if c.check(err) {
		return
	}
	if done {
		c.propagateExpireAt(c.args[1], at)
	}
	c.bool(done)
}

func cmdTTL(c *call) {
	at, err := c.tx.TTL(c.args[1])
	switch err {
	case nil:
	case kv.ErrNotFound:
		c.int(-2)
		return
	case kv.ErrTTLUnknown:
		// The store cannot tell (Memcached): the key exists, its expiry
		// is not known. -1 is what Redis says of a key without one.
		c.int(-1)
		return
	default:
		c.replyErr(err)
		return
	}
	if at.IsZero() {
		c.int(-1)
		return
	}
	ms := at.UnixMilli()
	switch lower(c.args[0]) {
	case "ttl":
		// Rounded to the nearest second, as Redis does.
		left := ms - c.now().UnixMilli()
		c.int(max(0, (left+500)/1000))
	case "pttl":
		c.int(max(0, ms-c.now().UnixMilli()))
	case "expiretime":
		c.int(ms / 1000)
	default:
		c.int(ms)
	}
}

func cmdPersist(c *call) {
	done, err := c.tx.Expire(c.args[1], time.Time{}, kv.ExpireAlways)
	if c.check(err) {
		return
	}
	if done {
		c.propagateSelf()
	}
	c.bool(done)
}

func cmdRename(c *call) {
	nx := lower(c.args[0]) == "renamenx"
	if c.tt.Value(c.args[1]) == nil {
		c.errorMsg(errNoSuchKey)
		return
	}
	if nx {
		if string(c.args[1]) == string(c.args[2]) {
			c.int(0)
			return
		}
		if c.tt.Value(c.args[2]) != nil {
			c.int(0)
			return
		}
	}
	if c.check(c.tt.Rename(c.args[1], c.args[2])) {
		return
	}
	c.propagateSelf()
	if nx {
		c.int(1)
	} else {
		c.ok()
	}
}

func cmdCopy(c *call) {
	db := c.tx.DB()
	replace := false
	for i := 3; i < len(c.args); i++ {
		switch lower(c.args[i]) {
		case "replace":
			replace = true
		case "db":
			if i+1 >= len(c.args) {
				c.syntax()
				return
			}
			n, ok := parseIntArg(c.args[i+1])
			if !ok {
				c.errorMsg(errNotInt)
				return
			}
			if n < 0 || n >= int64(c.s.e.store.Databases()) {
				c.errorMsg(errDBRange)
				return
			}
			db = int(n)
			i++
		default:
			c.syntax()
			return
		}
	}
	if db == c.tx.DB() && string(c.args[1]) == string(c.args[2]) {
		c.errorMsg(errSameObject)
		return
	}
	done, err := c.tt.CopyTo(c.args[1], db, c.args[2], replace)
	if c.check(err) {
		return
	}
	if done {
		c.propagateSelf()
	}
	c.bool(done)
}

func cmdMove(c *call) {
	n, ok := parseIntArg(c.args[2])
	if !ok {
		c.errorMsg(errNotInt)
		return
	}
	if n < 0 || n >= int64(c.s.e.store.Databases()) {
		c.errorMsg(errDBRange)
		return
	}
	if int(n) == c.tx.DB() {
		c.errorMsg(errSameObject)
		return
	}
	done, err := c.tt.MoveTo(c.args[1], int(n))
	if c.check(err) {
		return
	}
	if done {
		c.propagateSelf()
	}
	c.bool(done)
}

func cmdKeys(c *call) {
	pattern := c.args[1]
	all := string(pattern) == "*"
	var keys [][]byte
	var cur uint64
	for {
		cur = c.tt.Scan(cur, 1024, func(k []byte, _ *kv.Value) {
			if all || resp.Match(pattern, k, false) {
				keys = append(keys, k)
			}
		})
		if cur == 0 {
			break
		}
	}
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdScan(c *call) {
	cursor, err := strconv.ParseUint(string(c.args[1]), 10, 64)
	if err != nil {
		c.errorMsg(errInvalidCur)
		return
	}
	var match []byte
	count := int64(10)
	kind := ""
	for i := 2; i < len(c.args); i += 2 {
		if i+1 >= len(c.args) {
			c.syntax()
			return
		}
		switch lower(c.args[i]) {
		case "match":
			match = c.args[i+1]
			if string(match) == "*" {
				match = nil
			}
		case "count":
			n, ok := parseIntArg(c.args[i+1])
			if !ok {
				c.errorMsg(errNotInt)
				return
			}
			if n < 1 {
				c.syntax()
				return
			}
			count = n
		case "type":
			kind = lower(c.args[i+1])
		default:
			c.syntax()
			return
		}
	}
	var keys [][]byte
	next := c.tt.Scan(cursor, int(min(count, 1<<20)), func(k []byte, v *kv.Value) {
		if match != nil && !resp.Match(match, k, false) {
			return
		}
		if kind != "" && v.Kind.String() != kind {
			return
		}
		keys = append(keys, k)
	})
	c.array(2)
	c.bulkStr(strconv.FormatUint(next, 10))
	c.array(len(keys))
	for _, k := range keys {
		c.bulk(k)
	}
}

func cmdRandomKey(c *call) {
	k := c.tt.RandomKey()
	if k == nil {
		c.null()
		return
	}
	c.bulk(k)
}

func cmdDBSize(c *call) { c.int(int64(c.tt.Size())) }

// flushOption checks FLUSHDB/FLUSHALL's ASYNC|SYNC.
func (c *call) flushOption() bool {
	if len(c.args) > 2 {
		c.syntax()
		return false
	}
	if len(c.args) == 2 {
		switch lower(c.args[1]) {
		case "async", "sync":
		default:
			c.syntax()
			return false
		}
	}
	return true
}

func cmdFlushDB(c *call) {
	if !c.flushOption() {
		return
	}
	if c.check(c.tx.Flush()) {
		return
	}
	c.propagate([]byte("FLUSHDB"))
	c.ok()
}

func cmdFlushAll(c *call) {
	if !c.flushOption() {
		return
	}
	if c.tt != nil {
		if c.check(c.tt.FlushAll()) {
			return
		}
	} else if c.check(c.tx.Flush()) {
		return
	}
	c.propagate([]byte("FLUSHALL"))
	c.ok()
}

func cmdSwapDB(c *call) {
	a, ok1 := parseIntArg(c.args[1])
	b, ok2 := parseIntArg(c.args[2])
	if !ok1 {
		c.errorMsg("ERR invalid first DB index")
		return
	}
	if !ok2 {
		c.errorMsg("ERR invalid second DB index")
		return
	}
	n := int64(c.s.e.store.Databases())
	if a < 0 || b < 0 || a >= n || b >= n {
		c.errorMsg(errDBRange)
		return
	}
	if c.check(c.tt.SwapDB(int(a), int(b))) {
		return
	}
	c.propagateSelf()
	c.ok()
}

// encoding answers OBJECT ENCODING plausibly: what Redis 7 would use for
// a value of this size and content.
func encoding(v *kv.Value) string {
	switch v.Kind {
	case kv.KindString:
		if _, ok := parseIntArg(v.Str); ok && len(v.Str) <= 20 {
			return "int"
		}
		if len(v.Str) <= 44 {
			return "embstr"
		}
		return "raw"
	case kv.KindList:
		return "quicklist" // Redis 7.0 encodes every list so

	case kv.KindHash:
		if len(v.Hash) <= 128 {
			for f, x := range v.Hash {
				if len(f) > 64 || len(x) > 64 {
					return "hashtable"
				}
			}
			return "listpack"
		}
		return "hashtable"
	case kv.KindSet:
		allInts := true
		for m := range v.Set {
			if _, ok := parseIntArg([]byte(m)); !ok {
				allInts = false
				break
			}
		}
		if allInts && len(v.Set) <= 512 {
			return "intset"
		}
		return "hashtable"
	case kv.KindZSet:
		if v.ZSet.Len() <= 128 {
			small := true
			v.ZSet.Each(func(e kv.Entry) bool {
				small = len(e.Member) <= 64
				return small
			})
			if small {
				return "listpack"
			}
		}
		return "skiplist"
	}
	return "raw"
}

func cmdObjectEncoding(c *call) {
	v := c.tt.Value(c.args[2])
	if v == nil {
		c.null()
		return
	}
	c.bulkStr(encoding(v))
}

func cmdObjectRefcount(c *call) {
	if c.tt.Value(c.args[2]) == nil {
		c.null()
		return
	}
	c.int(1)
}

func cmdObjectIdle(c *call) {
	if c.tt.Value(c.args[2]) == nil {
		c.null()
		return
	}
	c.int(0)
}

func cmdObjectFreq(c *call) {
	c.errorMsg("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
}

func cmdObjectHelp(c *call) {
	lines := []string{
		"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"ENCODING <key>",
		"    Return the kind of internal representation used in order to store the value",
		"    associated with a <key>.",
		"FREQ <key>",
		"    Return the access frequency index of the <key>. The returned integer is",
		"    proportional to the logarithm of the recent access frequency of the key.",
		"IDLETIME <key>",
		"    Return the idle time of the <key>, that is the approximated number of",
		"    seconds elapsed since the last access to the key.",
		"REFCOUNT <key>",
		"    Return the number of references of the value associated with the specified",
		"    <key>.",
		"HELP",
		"    Prints this help.",
	}
	c.array(len(lines))
	for _, l := range lines {
		c.simple(l)
	}
}
