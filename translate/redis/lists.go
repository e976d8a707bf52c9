package redis

import (
	"bytes"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	for name, fn := range map[string]func(*call){
		"lpush": cmdPush, "rpush": cmdPush, "lpushx": cmdPush, "rpushx": cmdPush,
		"lpop": cmdPop, "rpop": cmdPop, "llen": cmdLLen, "lrange": cmdLRange, "lindex": cmdLIndex,
		"lset": cmdLSet, "linsert": cmdLInsert, "lrem": cmdLRem, "ltrim": cmdLTrim, "lpos": cmdLPos,
		"lmove": cmdLMove, "rpoplpush": cmdLMove, "lmpop": cmdLMPop,
	} {
		reg(name, fn, typed)
	}
	for name, fn := range map[string]func(*call){
		"blpop": cmdBPop, "brpop": cmdBPop, "blmove": cmdBLMove, "brpoplpush": cmdBLMove, "blmpop": cmdBLMPop,
	} {
		reg(name, fn, typed, needs(kv.FeatureBlocking), noTx)
	}
}

// list returns the list at key: (nil, true) when absent, (nil, false)
// after replying WRONGTYPE.
func (c *call) list(key []byte) (*kv.Value, bool) {
	v := c.tt.Value(key)
	if v == nil {
		return nil, true
	}
	if v.Kind != kv.KindList {
		c.wrongType()
		return nil, false
	}
	return v, true
}

func cmdPush(c *call) {
	name := lower(c.args[0])
	left := name[0] == 'l'
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		if name == "lpushx" || name == "rpushx" {
			c.int(0)
			return
		}
		v = kv.NewValue(kv.KindList)
		c.tt.Put(c.args[1], v, false)
	}
	for _, x := range c.args[2:] {
		if left {
			v.List.PushFront(cloneBytes(x))
		} else {
			v.List.PushBack(cloneBytes(x))
		}
	}
	n := v.List.Len()
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	c.int(int64(n))
}

// popCount parses LPOP/RPOP's optional count; (0, false) after an error
// reply, count -1 without the argument.
func (c *call) popCount(i int) (int64, bool) {
	if len(c.args) <= i {
		return -1, true
	}
	n, ok := resp.ParseInt(c.args[i])
	if !ok || n < 0 {
		c.errorMsg("ERR value is out of range, must be positive")
		return 0, false
	}
	return n, true
}

func cmdPop(c *call) {
	left := lower(c.args[0])[0] == 'l'
	count, ok := c.popCount(2)
	if !ok {
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		if count >= 0 {
			c.nullArray()
		} else {
			c.null()
		}
		return
	}
	if count < 0 {
		c.bulk(popOne(v.List, left))
	} else {
		n := min(count, int64(v.List.Len()))
		c.array(int(n))
		for i := int64(0); i < n; i++ {
			c.bulk(popOne(v.List, left))
		}
		if n == 0 {
			return
		}
	}
	c.tt.Changed(c.args[1])
	c.propagateSelf()
}

func popOne(l *kv.List, left bool) []byte {
	if left {
		return l.PopFront()
	}
	return l.PopBack()
}

func cmdLLen(c *call) {
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	c.int(int64(v.List.Len()))
}

func cmdLRange(c *call) {
	start, ok := c.argInt(2)
	if !ok {
		return
	}
	end, ok := c.argInt(3)
	if !ok {
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	s, e, ok := rangeIndexes(start, end, int64(v.List.Len()))
	if !ok {
		c.array(0)
		return
	}
	c.array(int(e - s + 1))
	v.List.Each(int(s), int(e), func(_ int, b []byte) bool { c.bulk(b); return true })
}

// listIndex turns LINDEX/LSET's index (negative from the end) into a
// position, reporting whether it is in range.
func listIndex(i int64, n int) (int, bool) {
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		return 0, false
	}
	return int(i), true
}

func cmdLIndex(c *call) {
	idx, ok := c.argInt(2)
	if !ok {
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.null()
		return
	}
	i, ok := listIndex(idx, v.List.Len())
	if !ok {
		c.null()
		return
	}
	c.bulk(v.List.Index(i))
}

func cmdLSet(c *call) {
	idx, ok := c.argInt(2)
	if !ok {
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.errorMsg(errNoSuchKey)
		return
	}
	i, ok := listIndex(idx, v.List.Len())
	if !ok {
		c.errorMsg(errIndex)
		return
	}
	v.List.Set(i, cloneBytes(c.args[3]))
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	c.ok()
}

func cmdLInsert(c *call) {
	var after bool
	switch lower(c.args[2]) {
	case "before":
	case "after":
		after = true
	default:
		c.syntax()
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	pos := -1
	v.List.Each(0, v.List.Len()-1, func(i int, b []byte) bool {
		if bytes.Equal(b, c.args[3]) {
			pos = i
			return false
		}
		return true
	})
	if pos < 0 {
		c.int(-1)
		return
	}
	if after {
		pos++
	}
	v.List.Insert(pos, cloneBytes(c.args[4]))
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	c.int(int64(v.List.Len()))
}

func cmdLRem(c *call) {
	count, ok := c.argInt(2)
	if !ok {
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	l := v.List
	removed := int64(0)
	if count >= 0 {
		for i := 0; i < l.Len(); {
			if (count == 0 || removed < count) && bytes.Equal(l.Index(i), c.args[3]) {
				l.RemoveAt(i)
				removed++
				continue
			}
			i++
		}
	} else {
		for i := l.Len() - 1; i >= 0; i-- {
			if removed < -count && bytes.Equal(l.Index(i), c.args[3]) {
				l.RemoveAt(i)
				removed++
			}
		}
	}
	if removed > 0 {
		c.tt.Changed(c.args[1])
		c.propagateSelf()
	}
	c.int(removed)
}

func cmdLTrim(c *call) {
	start, ok := c.argInt(2)
	if !ok {
		return
	}
	end, ok := c.argInt(3)
	if !ok {
		return
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.ok()
		return
	}
	s, e, ok := rangeIndexes(start, end, int64(v.List.Len()))
	if !ok {
		v.List.Trim(1, 0)
	} else {
		v.List.Trim(int(s), int(e))
	}
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	c.ok()
}

func cmdLPos(c *call) {
	rank, count, maxlen := int64(1), int64(-1), int64(0)
	for i := 3; i < len(c.args); i += 2 {
		if i+1 >= len(c.args) {
			c.syntax()
			return
		}
		n, ok := c.argInt(i + 1)
		if !ok {
			return
		}
		switch lower(c.args[i]) {
		case "rank":
			if n == 0 || n == -1<<63 {
				c.errorMsg("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
				return
			}
			rank = n
		case "count":
			if n < 0 {
				c.errorMsg("ERR COUNT can't be negative")
				return
			}
			count = n
		case "maxlen":
			if n < 0 {
				c.errorMsg("ERR MAXLEN can't be negative")
				return
			}
			maxlen = n
		default:
			c.syntax()
			return
		}
	}
	v, ok := c.list(c.args[1])
	if !ok {
		return
	}
	var found []int64
	if v != nil {
		l := v.List
		skip := rank
		if skip < 0 {
			skip = -skip
		}
		checked := int64(0)
		for j := 0; j < l.Len(); j++ {
			i := j
			if rank < 0 {
				i = l.Len() - 1 - j
			}
			if maxlen > 0 && checked >= maxlen {
				break
			}
			checked++
			if bytes.Equal(l.Index(i), c.args[2]) {
				if skip > 1 {
					skip--
					continue
				}
				found = append(found, int64(i))
				if count == -1 || (count > 0 && int64(len(found)) >= count) {
					break
				}
			}
		}
	}
	if count == -1 {
		if len(found) == 0 {
			c.null()
		} else {
			c.int(found[0])
		}
		return
	}
	c.array(len(found))
	for _, i := range found {
		c.int(i)
	}
}

// moveEnd parses LMOVE's LEFT|RIGHT.
func moveEnd(b []byte) (left, ok bool) {
	switch lower(b) {
	case "left":
		return true, true
	case "right":
		return false, true
	}
	return false, false
}

// lmove pops from src and pushes onto dst. It returns the element (nil
// when src is empty); wrong reports a key of another type.
func lmove(tt kv.TypedTx, src, dst []byte, fromLeft, toLeft bool) (elem []byte, wrong bool) {
	sv := tt.Value(src)
	if sv == nil {
		return nil, false
	}
	dv := tt.Value(dst)
	if sv.Kind != kv.KindList || dv != nil && dv.Kind != kv.KindList {
		return nil, true
	}
	elem = popOne(sv.List, fromLeft)
	if dv == nil {
		dv = kv.NewValue(kv.KindList)
		tt.Put(dst, dv, false)
	}
	// Push before src is marked changed, so that a rotation (src == dst)
	// never leaves the list empty in between.
	if toLeft {
		dv.List.PushFront(elem)
	} else {
		dv.List.PushBack(elem)
	}
	tt.Changed(dst)
	tt.Changed(src)
	return elem, false
}

func cmdLMove(c *call) {
	fromLeft, toLeft := false, true // RPOPLPUSH
	if lower(c.args[0]) == "lmove" {
		var ok1, ok2 bool
		fromLeft, ok1 = moveEnd(c.args[3])
		toLeft, ok2 = moveEnd(c.args[4])
		if !ok1 || !ok2 {
			c.syntax()
			return
		}
	}
	elem, wrong := lmove(c.tt, c.args[1], c.args[2], fromLeft, toLeft)
	switch {
	case wrong:
		c.wrongType()
	case elem == nil:
		c.null()
	default:
		c.propagate([]byte("LMOVE"), c.args[1], c.args[2], endName(fromLeft), endName(toLeft))
		c.bulk(elem)
	}
}

func endName(left bool) []byte {
	if left {
		return []byte("LEFT")
	}
	return []byte("RIGHT")
}

// mpopArgs parses LMPOP/BLMPOP/ZMPOP/BZMPOP's numkeys key... end [COUNT n]
// starting at args[i]; it returns the keys, the end word and the count.
func (c *call) mpopArgs(i int, ends ...string) (keys [][]byte, end string, count int64, ok bool) {
	n, ok := resp.ParseInt(c.args[i])
	if !ok || n <= 0 {
		c.errorMsg("ERR numkeys should be greater than 0")
		return nil, "", 0, false
	}
	if int64(len(c.args)) < int64(i)+1+n+1 {
		c.syntax()
		return nil, "", 0, false
	}
	keys = c.args[i+1 : i+1+int(n)]
	j := i + 1 + int(n)
	end = lower(c.args[j])
	valid := false
	for _, e := range ends {
		valid = valid || e == end
	}
	if !valid {
		c.syntax()
		return nil, "", 0, false
	}
	count = 1
	j++
	for j < len(c.args) {
		if lower(c.args[j]) != "count" || j+1 >= len(c.args) || count != 1 && j > 0 {
			c.syntax()
			return nil, "", 0, false
		}
		cnt, ok := resp.ParseInt(c.args[j+1])
		if !ok || cnt <= 0 {
			c.errorMsg("ERR count should be greater than 0")
			return nil, "", 0, false
		}
		count = cnt
		j += 2
	}
	return keys, end, count, true
}

// mpopList pops up to count from the first non-empty list of keys and
// encodes the [key, [elements]] reply; nil when all are empty.
func mpopList(tt kv.TypedTx, keys [][]byte, left bool, count int64) ([]byte, error) {
	for _, k := range keys {
		v := tt.Value(k)
		if v == nil {
			continue
		}
		if v.Kind != kv.KindList {
			return nil, kv.ErrWrongType
		}
		n := min(count, int64(v.List.Len()))
		out := resp.AppendArray(nil, 2)
		out = resp.AppendBulk(out, k)
		out = resp.AppendArray(out, int(n))
		args := [][]byte{[]byte("RPOP"), k, itoa64(n)}
		if left {
			args[0] = []byte("LPOP")
		}
		for i := int64(0); i < n; i++ {
			out = resp.AppendBulk(out, popOne(v.List, left))
		}
		tt.Changed(k)
		tt.Propagate(args...)
		return out, nil
	}
	return nil, nil
}

func cmdLMPop(c *call) {
	keys, end, count, ok := c.mpopArgs(1, "left", "right")
	if !ok {
		return
	}
	out, err := mpopList(c.tt, keys, end == "left", count)
	if c.check(err) {
		return
	}
	if out == nil {
		c.nullArray()
		return
	}
	c.out = append(c.out, out...)
}

// popReply pops one element from the list at key for a blocked client;
// nil when the key holds no list elements.
func popReply(tt kv.TypedTx, key []byte, left bool) []byte {
	v := tt.Value(key)
	if v == nil || v.Kind != kv.KindList || v.List.Len() == 0 {
		return nil
	}
	elem := popOne(v.List, left)
	tt.Changed(key)
	if left {
		tt.Propagate([]byte("LPOP"), key)
	} else {
		tt.Propagate([]byte("RPOP"), key)
	}
	return keyReply(key, elem)
}

func cmdBPop(c *call) {
	left := lower(c.args[0]) == "blpop"
	timeout, e := parseTimeout(c.args[len(c.args)-1])
	if e != "" {
		c.errorMsg(e)
		return
	}
	keys := c.args[1 : len(c.args)-1]
	c.block(keys, timeout, func(tt kv.TypedTx) []byte {
		for _, k := range keys {
			if v := tt.Value(k); v != nil && v.Kind != kv.KindList {
				return resp.AppendError(nil, errWrongType)
			}
			if r := popReply(tt, k, left); r != nil {
				return r
			}
		}
		return nil
	}, func(tt kv.TypedTx, key []byte) []byte { return popReply(tt, key, left) }, "*-1\r\n")
}

func cmdBLMove(c *call) {
	fromLeft, toLeft := false, true // BRPOPLPUSH
	timeoutArg := c.args[3]
	if lower(c.args[0]) == "blmove" {
		var ok1, ok2 bool
		fromLeft, ok1 = moveEnd(c.args[3])
		toLeft, ok2 = moveEnd(c.args[4])
		if !ok1 || !ok2 {
			c.syntax()
			return
		}
		timeoutArg = c.args[5]
	}
	timeout, e := parseTimeout(timeoutArg)
	if e != "" {
		c.errorMsg(e)
		return
	}
	src, dst := cloneBytes(c.args[1]), cloneBytes(c.args[2])
	move := func(tt kv.TypedTx) []byte {
		elem, wrong := lmove(tt, src, dst, fromLeft, toLeft)
		if wrong {
			return resp.AppendError(nil, errWrongType)
		}
		if elem == nil {
			return nil
		}
		tt.Propagate([]byte("LMOVE"), src, dst, endName(fromLeft), endName(toLeft))
		return resp.AppendBulk(nil, elem)
	}
	c.block([][]byte{src}, timeout, move, func(tt kv.TypedTx, _ []byte) []byte { return move(tt) }, "$-1\r\n")
}

func cmdBLMPop(c *call) {
	timeout, e := parseTimeout(c.args[1])
	if e != "" {
		c.errorMsg(e)
		return
	}
	keys, end, count, ok := c.mpopArgs(2, "left", "right")
	if !ok {
		return
	}
	keys = cloneArgs(keys)
	left := end == "left"
	try := func(tt kv.TypedTx) []byte {
		out, err := mpopList(tt, keys, left, count)
		if err != nil {
			return resp.AppendError(nil, errWrongType)
		}
		return out
	}
	c.block(keys, timeout, try, func(tt kv.TypedTx, _ []byte) []byte { return try(tt) }, "*-1\r\n")
}
