package redis

import (
	"math/bits"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	reg("setbit", cmdSetBit, needs(kv.FeatureStringRanges))
	reg("getbit", cmdGetBit, needs(kv.FeatureStringRanges))
	reg("bitcount", cmdBitCount, needs(kv.FeatureStringRanges))
	reg("bitpos", cmdBitPos, needs(kv.FeatureStringRanges))
	reg("bitop", cmdBitOp, needs(kv.FeatureStringRanges))
}

// stringAt reads the string at key for bit commands: (nil, true) when
// absent, (nil, false) after an error reply.
func (c *call) stringAt(key []byte) ([]byte, bool) {
	v, err := c.tx.Get(key)
	switch err {
	case nil:
		return v, true
	case kv.ErrNotFound:
		return nil, true
	}
	c.replyErr(err)
	return nil, false
}

func cmdSetBit(c *call) {
	off, ok := resp.ParseInt(c.args[2])
	if !ok || off < 0 || off >= maxStringSize*8 {
		c.errorMsg(errBitOffset)
		return
	}
	if len(c.args[3]) != 1 || (c.args[3][0] != '0' && c.args[3][0] != '1') {
		c.errorMsg(errBitValue)
		return
	}
	cur, ok := c.stringAt(c.args[1])
	if !ok {
		return
	}
	byteIdx := off >> 3
	n := max(int64(len(cur)), byteIdx+1)
	next := make([]byte, n)
	copy(next, cur)
	mask := byte(1 << (7 - uint(off&7)))
	old := next[byteIdx]&mask != 0
	if c.args[3][0] == '1' {
		next[byteIdx] |= mask
	} else {
		next[byteIdx] &^= mask
	}
	if _, err := c.tx.Set(c.args[1], next, kv.SetOptions{KeepTTL: true}); c.check(err) {
		return
	}
	c.propagateSelf()
	c.bool(old)
}

func cmdGetBit(c *call) {
	off, ok := resp.ParseInt(c.args[2])
	if !ok || off < 0 || off >= maxStringSize*8 {
		c.errorMsg(errBitOffset)
		return
	}
	cur, ok := c.stringAt(c.args[1])
	if !ok {
		return
	}
	byteIdx := off >> 3
	if byteIdx >= int64(len(cur)) {
		c.int(0)
		return
	}
	c.bool(cur[byteIdx]&byte(1<<(7-uint(off&7))) != 0)
}

// bitRange parses BITCOUNT/BITPOS's start end [BYTE|BIT] and returns the
// bit range [lo, hi] over a string of n bytes; empty reports nothing to
// look at.
func (c *call) bitRange(opts [][]byte, n int64, needEnd bool) (lo, hi int64, empty, ok bool) {
	lo, hi = 0, n*8-1
	if len(opts) == 0 {
		return lo, hi, n == 0, true
	}
	start, ok1 := resp.ParseInt(opts[0])
	if !ok1 {
		c.errorMsg(errNotInt)
		return 0, 0, false, false
	}
	end := int64(-1)
	explicitEnd := false
	isBit := false
	if len(opts) >= 2 {
		e, ok2 := resp.ParseInt(opts[1])
		if !ok2 {
			c.errorMsg(errNotInt)
			return 0, 0, false, false
		}
		end, explicitEnd = e, true
	} else if needEnd {
		c.syntax()
		return 0, 0, false, false
	}
	if len(opts) == 3 {
		switch lower(opts[2]) {
		case "byte":
		case "bit":
			isBit = true
		default:
			c.syntax()
			return 0, 0, false, false
		}
	} else if len(opts) > 3 {
		c.syntax()
		return 0, 0, false, false
	}
	total := n
	if isBit {
		total = n * 8
	}
	if start < 0 {
		start += total
	}
	if end < 0 {
		end += total
	}
	if start < 0 {
		start = 0
	}
	if end < 0 {
		end = 0
	}
	if end >= total {
		end = total - 1
	}
	if start > end || total == 0 {
		return 0, 0, true, true
	}
	_ = explicitEnd
	if isBit {
		return start, end, false, true
	}
	return start * 8, end*8 + 7, false, true
}

func bitAt(b []byte, i int64) bool { return b[i>>3]&byte(1<<(7-uint(i&7))) != 0 }

func cmdBitCount(c *call) {
	if len(c.args) == 3 {
		c.syntax()
		return
	}
	cur, ok := c.stringAt(c.args[1])
	if !ok {
		return
	}
	lo, hi, empty, ok := c.bitRange(c.args[2:], int64(len(cur)), true)
	if !ok {
		return
	}
	if empty {
		c.int(0)
		return
	}
	n := int64(0)
	i := lo
	for ; i <= hi && i&7 != 0; i++ {
		if bitAt(cur, i) {
			n++
		}
	}
	for ; i+7 <= hi; i += 8 {
		n += int64(bits.OnesCount8(cur[i>>3]))
	}
	for ; i <= hi; i++ {
		if bitAt(cur, i) {
			n++
		}
	}
	c.int(n)
}

func cmdBitPos(c *call) {
	if len(c.args[2]) != 1 || (c.args[2][0] != '0' && c.args[2][0] != '1') {
		c.errorMsg("ERR The bit argument must be 1 or 0.")
		return
	}
	want := c.args[2][0] == '1'
	cur, ok := c.stringAt(c.args[1])
	if !ok {
		return
	}
	if cur == nil {
		if want {
			c.int(-1)
		} else {
			c.int(0)
		}
		return
	}
	lo, hi, empty, ok := c.bitRange(c.args[3:], int64(len(cur)), false)
	if !ok {
		return
	}
	if empty {
		c.int(-1)
		return
	}
	for i := lo; i <= hi; i++ {
		if bitAt(cur, i) == want {
			c.int(i)
			return
		}
	}
	// Looking for a clear bit with no end given: the string is padded
	// with zeros to the right, as Redis says.
	if !want && len(c.args) <= 4 {
		c.int(hi + 1)
		return
	}
	c.int(-1)
}

func cmdBitOp(c *call) {
	op := lower(c.args[1])
	switch op {
	case "and", "or", "xor", "not":
	default:
		c.syntax()
		return
	}
	srcs := c.args[3:]
	if op == "not" && len(srcs) != 1 {
		c.errorMsg("ERR BITOP NOT must be called with a single source key.")
		return
	}
	vals := make([][]byte, len(srcs))
	maxLen := 0
	for i, k := range srcs {
		v, ok := c.stringAt(k)
		if !ok {
			return
		}
		vals[i] = v
		maxLen = max(maxLen, len(v))
	}
	res := make([]byte, maxLen)
	for i := range res {
		get := func(v []byte) byte {
			if i < len(v) {
				return v[i]
			}
			return 0
		}
		switch op {
		case "not":
			res[i] = ^get(vals[0])
		case "and":
			b := byte(0xff)
			for _, v := range vals {
				b &= get(v)
			}
			res[i] = b
		case "or":
			var b byte
			for _, v := range vals {
				b |= get(v)
			}
			res[i] = b
		case "xor":
			var b byte
			for _, v := range vals {
				b ^= get(v)
			}
			res[i] = b
		}
	}
	if maxLen == 0 {
		c.tx.Delete(c.args[2])
	} else if _, err := c.tx.Set(c.args[2], res, kv.SetOptions{}); c.check(err) {
		return
	}
	c.propagateSelf()
	c.int(int64(maxLen))
}
