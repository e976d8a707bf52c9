package redis

import (
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
)

func init() {
	reg("get", cmdGet)
	reg("set", cmdSet)
	reg("setnx", cmdSetNX)
	reg("setex", cmdSetEX, needs(kv.FeatureTTL))
	reg("psetex", cmdSetEX, needs(kv.FeatureTTL))
	reg("getset", cmdGetSet)
	reg("getdel", cmdGetDel)
	reg("getex", cmdGetEx, needs(kv.FeatureTTL))
	reg("mget", cmdMGet)
	reg("mset", cmdMSet)
	reg("msetnx", cmdMSetNX)
	reg("incr", cmdIncr)
	reg("decr", cmdIncr)
	reg("incrby", cmdIncr)
	reg("decrby", cmdIncr)
	reg("incrbyfloat", cmdIncrByFloat)
	reg("append", cmdAppend)
	reg("strlen", cmdStrlen)
	reg("getrange", cmdGetRange, needs(kv.FeatureStringRanges))
	reg("substr", cmdGetRange, needs(kv.FeatureStringRanges))
	reg("setrange", cmdSetRange, needs(kv.FeatureStringRanges))
}

func cmdGet(c *call) {
	v, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
		c.bulk(v)
	case kv.ErrNotFound:
		c.null()
	default:
		c.replyErr(err)
	}
}

// expiryOption parses EX/PX/EXAT/PXAT seconds-or-ms into an absolute
// time. cmd names the command in the error text.
func (c *call) expiryOption(opt string, arg []byte, now time.Time, cmd string) (time.Time, bool) {
	n, ok := parseIntArg(arg)
	if !ok {
		c.errorMsg(errNotInt)
		return time.Time{}, false
	}
	if n <= 0 {
		c.errorMsg("ERR invalid expire time in '" + cmd + "' command")
		return time.Time{}, false
	}
	var at time.Time
	switch opt {
	case "ex":
		if n > math.MaxInt64/1000 || now.UnixMilli() > math.MaxInt64-n*1000 {
			c.errorMsg("ERR invalid expire time in '" + cmd + "' command")
			return time.Time{}, false
		}
		at = now.Add(time.Duration(n) * time.Second)
	case "px":
		if now.UnixMilli() > math.MaxInt64-n {
			c.errorMsg("ERR invalid expire time in '" + cmd + "' command")
			return time.Time{}, false
		}
		at = now.Add(time.Duration(n) * time.Millisecond)
	case "exat":
		if n > math.MaxInt64/1000 {
			c.errorMsg("ERR invalid expire time in '" + cmd + "' command")
			return time.Time{}, false
		}
		at = time.UnixMilli(n * 1000)
	case "pxat":
		at = time.UnixMilli(n)
	}
	return at, true
}

func parseIntArg(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != string(b) {
		return 0, false
	}
	return n, true
}

// now is the transaction's clock (or the wall clock for stores without
// one).
func (c *call) now() time.Time {
	if c.tt != nil {
		return c.tt.Now()
	}
	return time.Now()
}

func cmdSet(c *call) {
	var o kv.SetOptions
	var expOpt string
	for i := 3; i < len(c.args); i++ {
		switch opt := lower(c.args[i]); opt {
		case "nx":
			if o.XX {
				c.syntax()
				return
			}
			o.NX = true
		case "xx":
			if o.NX {
				c.syntax()
				return
			}
			o.XX = true
		case "get":
			o.Get = true
		case "keepttl":
			if expOpt != "" {
				c.syntax()
				return
			}
			o.KeepTTL = true
		case "ex", "px", "exat", "pxat":
			if expOpt != "" || o.KeepTTL || i+1 >= len(c.args) {
				c.syntax()
				return
			}
			expOpt = opt
			i++
		default:
			c.syntax()
			return
		}
	}
	if expOpt != "" {
		// The value is checked after the whole command parsed, as Redis does.
		for i := 3; i < len(c.args); i++ {
			if lower(c.args[i]) == expOpt {
				at, ok := c.expiryOption(expOpt, c.args[i+1], c.now(), "set")
				if !ok {
					return
				}
				o.ExpireAt = at
				break
			}
		}
		if !c.s.e.Has(kv.FeatureTTL) {
			c.errorMsg(c.s.e.unsupported("set"))
			return
		}
	}
	r, err := c.tx.Set(c.args[1], c.args[2], o)
	if c.check(err) {
		return
	}
	if r.Done {
		c.propagateSet(c.args[1], c.args[2], o)
	}
	switch {
	case o.Get && !r.HadOld:
		c.null()
	case o.Get:
		c.bulk(r.Old)
	case r.Done:
		c.ok()
	default:
		c.null()
	}
}

// propagateSet logs a SET with its expiry made absolute.
func (c *call) propagateSet(key, val []byte, o kv.SetOptions) {
	switch {
	case !o.ExpireAt.IsZero():
		c.propagate([]byte("SET"), key, val, []byte("PXAT"), []byte(strconv.FormatInt(o.ExpireAt.UnixMilli(), 10)))
	case o.KeepTTL:
		c.propagate([]byte("SET"), key, val, []byte("KEEPTTL"))
	default:
		c.propagate([]byte("SET"), key, val)
	}
}

func cmdSetNX(c *call) {
	o := kv.SetOptions{NX: true}
	r, err := c.tx.Set(c.args[1], c.args[2], o)
	if c.check(err) {
		return
	}
	if r.Done {
		c.propagateSet(c.args[1], c.args[2], o)
	}
	c.bool(r.Done)
}

func cmdSetEX(c *call) {
	unit := "ex"
	if lower(c.args[0]) == "psetex" {
		unit = "px"
	}
	at, ok := c.expiryOption(unit, c.args[2], c.now(), lower(c.args[0]))
	if !ok {
		return
	}
	o := kv.SetOptions{ExpireAt: at}
	if _, err := c.tx.Set(c.args[1], c.args[3], o); c.check(err) {
		return
	}
	c.propagateSet(c.args[1], c.args[3], o)
	c.ok()
}

func cmdGetSet(c *call) {
	r, err := c.tx.Set(c.args[1], c.args[2], kv.SetOptions{Get: true})
	if c.check(err) {
		return
	}
	c.propagateSet(c.args[1], c.args[2], kv.SetOptions{})
	if !r.HadOld {
		c.null()
		return
	}
	c.bulk(r.Old)
}

func cmdGetDel(c *call) {
	if gd, ok := c.tx.(kv.GetDeleter); ok {
		v, err := gd.GetDel(c.args[1])
		switch err {
		case nil:
			c.propagate([]byte("DEL"), c.args[1])
			c.bulk(v)
		case kv.ErrNotFound:
			c.null()
		default:
			c.replyErr(err)
		}
		return
	}
	v, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
	case kv.ErrNotFound:
		c.null()
		return
	default:
		c.replyErr(err)
		return
	}
	if _, err := c.tx.Delete(c.args[1]); c.check(err) {
		return
	}
	c.propagate([]byte("DEL"), c.args[1])
	c.bulk(v)
}

func cmdGetEx(c *call) {
	var at time.Time
	persist, set := false, false
	for i := 2; i < len(c.args); i++ {
		switch opt := lower(c.args[i]); opt {
		case "persist":
			if set {
				c.syntax()
				return
			}
			persist, set = true, true
		case "ex", "px", "exat", "pxat":
			if set || i+1 >= len(c.args) {
				c.syntax()
				return
			}
			var ok bool
			if at, ok = c.expiryOption(opt, c.args[i+1], c.now(), "getex"); !ok {
				return
			}
			set = true
			i++
		default:
			c.syntax()
			return
		}
	}
	v, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
	case kv.ErrNotFound:
		c.null()
		return
	default:
		c.replyErr(err)
		return
	}
	switch {
	case persist:
		if done, err := c.tx.Expire(c.args[1], time.Time{}, kv.ExpireAlways); c.check(err) {
			return
		} else if done {
			c.propagate([]byte("PERSIST"), c.args[1])
		}
	case !at.IsZero():
		if _, err := c.tx.Expire(c.args[1], at, kv.ExpireAlways); c.check(err) {
			return
		}
		c.propagateExpireAt(c.args[1], at)
	}
	c.bulk(v)
}

// propagateExpireAt logs an expiry as PEXPIREAT (a time in the past
// deletes the key, which replays the same).
func (c *call) propagateExpireAt(key []byte, at time.Time) {
	c.propagate([]byte("PEXPIREAT"), key, []byte(strconv.FormatInt(at.UnixMilli(), 10)))
}

func cmdMGet(c *call) {
	if b, ok := c.tx.(kv.BatchTx); ok {
		vals, err := b.GetMany(c.args[1:])
		if c.check(err) {
			return
		}
		c.array(len(vals))
		for _, v := range vals {
			if v == nil {
				c.null()
			} else {
				c.bulk(v)
			}
		}
		return
	}
	c.array(len(c.args) - 1)
	for _, k := range c.args[1:] {
		v, err := c.tx.Get(k)
		if err != nil {
			// MGET answers nil for anything that is not a string.
			c.null()
			continue
		}
		c.bulk(v)
	}
}

func cmdMSet(c *call) {
	if len(c.args)%2 != 1 {
		c.errorMsg("ERR wrong number of arguments for '" + lower(c.args[0]) + "' command")
		return
	}
	if b, ok := c.tx.(kv.BatchTx); ok {
		if c.check(b.SetMany(c.args[1:])) {
			return
		}
		c.propagateSelf()
		c.ok()
		return
	}
	for i := 1; i < len(c.args); i += 2 {
		if _, err := c.tx.Set(c.args[i], c.args[i+1], kv.SetOptions{}); c.check(err) {
			return
		}
	}
	c.propagateSelf()
	c.ok()
}

func cmdMSetNX(c *call) {
	if len(c.args)%2 != 1 {
		c.errorMsg("ERR wrong number of arguments for 'msetnx' command")
		return
	}
	for i := 1; i < len(c.args); i += 2 {
		n, err := c.tx.Exists(c.args[i])
		if c.check(err) {
			return
		}
		if n > 0 {
			c.int(0)
			return
		}
	}
	for i := 1; i < len(c.args); i += 2 {
		if _, err := c.tx.Set(c.args[i], c.args[i+1], kv.SetOptions{}); c.check(err) {
			return
		}
	}
	c.propagate(append([][]byte{[]byte("MSET")}, c.args[1:]...)...)
	c.int(1)
}

func cmdIncr(c *call) {
	var delta int64 = 1
	switch lower(c.args[0]) {
	case "decr":
		delta = -1
	case "incrby", "decrby":
		n, ok := c.argInt(2)
		if !ok {
			return
		}
		delta = n
		if lower(c.args[0]) == "decrby" {
			if n == math.MinInt64 {
				c.errorMsg("ERR decrement would overflow")
				return
			}
			delta = -n
		}
	}
	n, err := c.tx.IncrBy(c.args[1], delta)
	if c.check(err) {
		return
	}
	c.propagateSelf()
	c.int(n)
}

func cmdIncrByFloat(c *call) {
	// Redis checks the key's type, then its value, then the increment.
	cur := new(big.Float).SetPrec(64)
	v, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
		f, ok := longDouble(v)
		if !ok || f.IsInf() {
			c.errorMsg(errNotFloat)
			return
		}
		cur = f
	case kv.ErrNotFound:
	default:
		c.replyErr(err)
		return
	}
	incr, ok := longDouble(c.args[2])
	if !ok {
		c.errorMsg(errNotFloat)
		return
	}
	if incr.IsInf() {
		c.errorMsg(errNaN)
		return
	}
	sum := new(big.Float).SetPrec(64).Add(cur, incr)
	if f, _ := sum.Float64(); math.IsInf(f, 0) {
		c.errorMsg(errNaN)
		return
	}
	s := formatLongDouble(sum)
	if _, err := c.tx.Set(c.args[1], []byte(s), kv.SetOptions{KeepTTL: true}); c.check(err) {
		return
	}
	// Logged as a SET of the result, so that replay rounds no differently.
	c.propagate([]byte("SET"), c.args[1], []byte(s), []byte("KEEPTTL"))
	c.bulkStr(s)
}

func cmdAppend(c *call) {
	if v, err := c.tx.Get(c.args[1]); err == nil && len(v)+len(c.args[2]) > maxStringSize {
		c.errorMsg(errMaxSize)
		return
	}
	n, err := c.tx.Append(c.args[1], c.args[2])
	if c.check(err) {
		return
	}
	c.propagateSelf()
	c.int(n)
}

func cmdStrlen(c *call) {
	v, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
		c.int(int64(len(v)))
	case kv.ErrNotFound:
		c.int(0)
	default:
		c.replyErr(err)
	}
}

// rangeIndexes turns the start/end of LRANGE, LTRIM, ZRANGE and
// ZREMRANGEBYRANK (negative from the end) into a slice of a length-n
// sequence; ok false means empty. An end still negative once counted
// from the end makes the range empty.
func rangeIndexes(start, end, n int64) (int64, int64, bool) {
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start = max(start, 0)
	if start > end || start >= n {
		return 0, 0, false
	}
	return start, min(end, n-1), true
}

// strRangeIndexes is rangeIndexes for GETRANGE, which (unlike the others)
// takes an end before the start of the string as its first byte.
func strRangeIndexes(start, end, n int64) (int64, int64, bool) {
	if end < 0 && end+n < 0 {
		end = -n
	}
	return rangeIndexes(start, end, n)
}

func cmdGetRange(c *call) {
	start, ok := c.argInt(2)
	if !ok {
		return
	}
	end, ok := c.argInt(3)
	if !ok {
		return
	}
	v, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
	case kv.ErrNotFound:
		c.bulkStr("")
		return
	default:
		c.replyErr(err)
		return
	}
	if start < 0 && end < 0 && start > end {
		c.bulkStr("")
		return
	}
	s, e, ok := strRangeIndexes(start, end, int64(len(v)))
	if !ok {
		c.bulkStr("")
		return
	}
	c.bulk(v[s : e+1])
}

func cmdSetRange(c *call) {
	off, ok := c.argInt(2)
	if !ok {
		return
	}
	if off < 0 {
		c.errorMsg("ERR offset is out of range")
		return
	}
	val := c.args[3]
	cur, err := c.tx.Get(c.args[1])
	switch err {
	case nil:
	case kv.ErrNotFound:
		if len(val) == 0 {
			c.int(0)
			return
		}
	default:
		c.replyErr(err)
		return
	}
	if len(val) == 0 {
		c.int(int64(len(cur)))
		return
	}
	if off+int64(len(val)) > maxStringSize {
		c.errorMsg(errMaxSize)
		return
	}
	n := max(int64(len(cur)), off+int64(len(val)))
	// A new slice: readers may hold the old bytes.
	next := make([]byte, n)
	copy(next, cur)
	copy(next[off:], val)
	if _, err := c.tx.Set(c.args[1], next, kv.SetOptions{KeepTTL: true}); c.check(err) {
		return
	}
	c.propagateSelf()
	c.int(n)
}
