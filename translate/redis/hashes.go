package redis

import (
	"math"
	"math/big"
	"strconv"

	"github.com/mecha-gateway/mecha/backends/kv"
)

func init() {
	for name, fn := range map[string]func(*call){
		"hset": cmdHSet, "hmset": cmdHSet, "hsetnx": cmdHSetNX, "hget": cmdHGet, "hmget": cmdHMGet,
		"hdel": cmdHDel, "hlen": cmdHLen, "hstrlen": cmdHStrlen, "hexists": cmdHExists,
		"hgetall": cmdHGetAll, "hkeys": cmdHKeys, "hvals": cmdHVals, "hincrby": cmdHIncrBy,
		"hincrbyfloat": cmdHIncrByFloat, "hrandfield": cmdHRandField, "hscan": cmdHScan,
	} {
		reg(name, fn, typed)
	}
}

// hash returns the hash at key: (nil, true) when absent, (nil, false)
// after replying WRONGTYPE.
func (c *call) hash(key []byte) (*kv.Value, bool) {
	v := c.tt.Value(key)
	if v == nil {
		return nil, true
	}
	if v.Kind != kv.KindHash {
		c.wrongType()
		return nil, false
	}
	return v, true
}

// hashForWrite returns the hash at key, creating it when absent.
func (c *call) hashForWrite(key []byte) (*kv.Value, bool) {
	v, ok := c.hash(key)
	if !ok {
		return nil, false
	}
	if v == nil {
		v = kv.NewValue(kv.KindHash)
		c.tt.Put(key, v, false)
	}
	return v, true
}

func cmdHSet(c *call) {
	if len(c.args)%2 != 0 {
		c.errorMsg("ERR wrong number of arguments for '" + lower(c.args[0]) + "' command")
		return
	}
	v, ok := c.hashForWrite(c.args[1])
	if !ok {
		return
	}
	added := 0
	for i := 2; i < len(c.args); i += 2 {
		f := string(c.args[i])
		if _, exists := v.Hash[f]; !exists {
			added++
		}
		v.Hash[f] = cloneBytes(c.args[i+1])
	}
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	if lower(c.args[0]) == "hmset" {
		c.ok()
		return
	}
	c.int(int64(added))
}

func cloneBytes(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

func cmdHSetNX(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v != nil {
		if _, exists := v.Hash[string(c.args[2])]; exists {
			c.int(0)
			return
		}
	}
	v, _ = c.hashForWrite(c.args[1])
	v.Hash[string(c.args[2])] = cloneBytes(c.args[3])
	c.tt.Changed(c.args[1])
	c.propagate([]byte("HSET"), c.args[1], c.args[2], c.args[3])
	c.int(1)
}

func cmdHGet(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.null()
		return
	}
	x, exists := v.Hash[string(c.args[2])]
	if !exists {
		c.null()
		return
	}
	c.bulk(x)
}

func cmdHMGet(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	c.array(len(c.args) - 2)
	for _, f := range c.args[2:] {
		if v == nil {
			c.null()
			continue
		}
		if x, exists := v.Hash[string(f)]; exists {
			c.bulk(x)
		} else {
			c.null()
		}
	}
}

func cmdHDel(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	n := 0
	if v != nil {
		for _, f := range c.args[2:] {
			if _, exists := v.Hash[string(f)]; exists {
				delete(v.Hash, string(f))
				n++
			}
		}
		if n > 0 {
			c.tt.Changed(c.args[1])
			c.propagateSelf()
		}
	}
	c.int(int64(n))
}

func cmdHLen(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	c.int(int64(len(v.Hash)))
}

func cmdHStrlen(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	c.int(int64(len(v.Hash[string(c.args[2])])))
}

func cmdHExists(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	_, exists := v.Hash[string(c.args[2])]
	c.bool(exists)
}

func cmdHGetAll(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	c.array(2 * len(v.Hash))
	for f, x := range v.Hash {
		c.bulkStr(f)
		c.bulk(x)
	}
}

func cmdHKeys(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	c.array(len(v.Hash))
	for f := range v.Hash {
		c.bulkStr(f)
	}
}

func cmdHVals(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	c.array(len(v.Hash))
	for _, x := range v.Hash {
		c.bulk(x)
	}
}

func cmdHIncrBy(c *call) {
	delta, ok := c.argInt(3)
	if !ok {
		return
	}
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	var cur int64
	if v != nil {
		if x, exists := v.Hash[string(c.args[2])]; exists {
			n, ok := parseIntArg(x)
			if !ok {
				c.errorMsg(errHashNotInt)
				return
			}
			cur = n
		}
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		c.errorMsg(errOverflow)
		return
	}
	cur += delta
	v, _ = c.hashForWrite(c.args[1])
	v.Hash[string(c.args[2])] = strconv.AppendInt(nil, cur, 10)
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	c.int(cur)
}

func cmdHIncrByFloat(c *call) {
	incr, ok := longDouble(c.args[3])
	if !ok {
		c.errorMsg(errNotFloat)
		return
	}
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	cur := new(big.Float).SetPrec(64)
	if v != nil {
		if x, exists := v.Hash[string(c.args[2])]; exists {
			f, ok := longDouble(x)
			if !ok || f.IsInf() {
				c.errorMsg(errHashNotFloat)
				return
			}
			cur = f
		}
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
	v, _ = c.hashForWrite(c.args[1])
	v.Hash[string(c.args[2])] = []byte(s)
	c.tt.Changed(c.args[1])
	c.propagate([]byte("HSET"), c.args[1], c.args[2], []byte(s))
	c.bulkStr(s)
}

func cmdHRandField(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	if len(c.args) == 2 {
		if v == nil {
			c.null()
			return
		}
		for f := range v.Hash {
			c.bulkStr(f)
			return
		}
	}
	n, ok := c.argInt(2)
	if !ok {
		return
	}
	withValues := false
	if len(c.args) == 4 {
		if lower(c.args[3]) != "withvalues" {
			c.syntax()
			return
		}
		withValues = true
	} else if len(c.args) > 4 {
		c.syntax()
		return
	}
	var fields []string
	if v != nil {
		for f := range v.Hash {
			fields = append(fields, f)
		}
	}
	picks := randomPicks(len(fields), n)
	if withValues {
		c.array(2 * len(picks))
	} else {
		c.array(len(picks))
	}
	for _, i := range picks {
		c.bulkStr(fields[i])
		if withValues {
			c.bulk(v.Hash[fields[i]])
		}
	}
}

func cmdHScan(c *call) {
	v, ok := c.hash(c.args[1])
	if !ok {
		return
	}
	var items [][2][]byte
	if v != nil {
		for f, x := range v.Hash {
			items = append(items, [2][]byte{[]byte(f), x})
		}
	}
	c.scanCollection(items, true)
}
