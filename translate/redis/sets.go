package redis

import (
	"sort"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	for name, fn := range map[string]func(*call){
		"sadd": cmdSAdd, "srem": cmdSRem, "smembers": cmdSMembers, "sismember": cmdSIsMember,
		"smismember": cmdSMIsMember, "scard": cmdSCard, "spop": cmdSPop, "srandmember": cmdSRandMember,
		"smove": cmdSMove, "sinter": cmdSetOp, "sunion": cmdSetOp, "sdiff": cmdSetOp,
		"sinterstore": cmdSetOp, "sunionstore": cmdSetOp, "sdiffstore": cmdSetOp,
		"sintercard": cmdSInterCard, "sscan": cmdSScan,
	} {
		reg(name, fn, typed)
	}
}

// set returns the set at key: (nil, true) when absent, (nil, false)
// after replying WRONGTYPE.
func (c *call) set(key []byte) (*kv.Value, bool) {
	v := c.tt.Value(key)
	if v == nil {
		return nil, true
	}
	if v.Kind != kv.KindSet {
		c.wrongType()
		return nil, false
	}
	return v, true
}

func cmdSAdd(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		v = kv.NewValue(kv.KindSet)
		c.tt.Put(c.args[1], v, false)
	}
	added := 0
	for _, m := range c.args[2:] {
		if _, exists := v.Set[string(m)]; !exists {
			v.Set[string(m)] = struct{}{}
			added++
		}
	}
	c.tt.Changed(c.args[1])
	if added > 0 {
		c.propagateSelf()
	}
	c.int(int64(added))
}

func cmdSRem(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	n := 0
	if v != nil {
		for _, m := range c.args[2:] {
			if _, exists := v.Set[string(m)]; exists {
				delete(v.Set, string(m))
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

func cmdSMembers(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	c.array(len(v.Set))
	for m := range v.Set {
		c.bulkStr(m)
	}
}

func cmdSIsMember(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	_, exists := v.Set[string(c.args[2])]
	c.bool(exists)
}

func cmdSMIsMember(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	c.array(len(c.args) - 2)
	for _, m := range c.args[2:] {
		exists := false
		if v != nil {
			_, exists = v.Set[string(m)]
		}
		c.bool(exists)
	}
}

func cmdSCard(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	c.int(int64(len(v.Set)))
}

// members lists a set's members.
func members(v *kv.Value) []string {
	out := make([]string, 0, len(v.Set))
	for m := range v.Set {
		out = append(out, m)
	}
	return out
}

func cmdSPop(c *call) {
	count := int64(-1)
	if len(c.args) == 3 {
		n, ok := resp.ParseInt(c.args[2])
		if !ok || n < 0 {
			c.errorMsg("ERR value is out of range, must be positive")
			return
		}
		count = n
	}
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		if count >= 0 {
			c.array(0)
		} else {
			c.null()
		}
		return
	}
	all := members(v)
	picks := randomPicks(len(all), max(count, 1))
	if count < 0 {
		picks = picks[:1]
	} else {
		c.array(len(picks))
	}
	if len(picks) == 0 {
		return
	}
	srem := [][]byte{[]byte("SREM"), c.args[1]}
	for _, i := range picks {
		delete(v.Set, all[i])
		c.bulkStr(all[i])
		srem = append(srem, []byte(all[i]))
	}
	c.tt.Changed(c.args[1])
	// Logged as the SREM of what was chosen: a replay must not choose
	// again.
	c.propagate(srem...)
}

func cmdSRandMember(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if len(c.args) == 2 {
		if v == nil {
			c.null()
			return
		}
		for m := range v.Set {
			c.bulkStr(m)
			return
		}
	}
	n, ok := c.argInt(2)
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	all := members(v)
	picks := randomPicks(len(all), n)
	c.array(len(picks))
	for _, i := range picks {
		c.bulkStr(all[i])
	}
}

func cmdSMove(c *call) {
	src, ok := c.set(c.args[1])
	if !ok {
		return
	}
	if src == nil {
		// Before the destination's type is checked, as in Redis.
		c.int(0)
		return
	}
	dst, ok := c.set(c.args[2])
	if !ok {
		return
	}
	m := string(c.args[3])
	if _, exists := src.Set[m]; !exists {
		c.int(0)
		return
	}
	if src == dst {
		c.int(1)
		return
	}
	delete(src.Set, m)
	if dst == nil {
		dst = kv.NewValue(kv.KindSet)
		c.tt.Put(c.args[2], dst, false)
	}
	dst.Set[m] = struct{}{}
	c.tt.Changed(c.args[1])
	c.tt.Changed(c.args[2])
	c.propagateSelf()
	c.int(1)
}

// setOperands loads the sets of keys (missing keys are empty sets); ok
// false after a WRONGTYPE reply.
func (c *call) setOperands(keys [][]byte) ([]map[string]struct{}, bool) {
	out := make([]map[string]struct{}, len(keys))
	for i, k := range keys {
		v, ok := c.set(k)
		if !ok {
			return nil, false
		}
		if v != nil {
			out[i] = v.Set
		}
	}
	return out, true
}

// combine computes inter/union/diff of sets.
func combine(op string, sets []map[string]struct{}, limit int) map[string]struct{} {
	res := map[string]struct{}{}
	switch op {
	case "inter":
		if len(sets) == 0 || sets[0] == nil {
			return res
		}
		// Start from the smallest set, as Redis does.
		sorted := append([]map[string]struct{}(nil), sets...)
		sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) < len(sorted[j]) })
		if sorted[0] == nil {
			return res
		}
	outer:
		for m := range sorted[0] {
			for _, s := range sorted[1:] {
				if _, ok := s[m]; !ok {
					continue outer
				}
			}
			res[m] = struct{}{}
			if limit > 0 && len(res) >= limit {
				break
			}
		}
	case "union":
		for _, s := range sets {
			for m := range s {
				res[m] = struct{}{}
			}
		}
	case "diff":
		if sets[0] == nil {
			return res
		}
	next:
		for m := range sets[0] {
			for _, s := range sets[1:] {
				if _, ok := s[m]; ok {
					continue next
				}
			}
			res[m] = struct{}{}
		}
	}
	return res
}

func cmdSetOp(c *call) {
	name := lower(c.args[0])
	store := len(name) > 5 && name[len(name)-5:] == "store"
	op := name[1:]
	keys := c.args[1:]
	if store {
		op = name[1 : len(name)-5]
		keys = c.args[2:]
	}
	sets, ok := c.setOperands(keys)
	if !ok {
		return
	}
	res := combine(op, sets, 0)
	if !store {
		c.array(len(res))
		for m := range res {
			c.bulkStr(m)
		}
		return
	}
	dst := c.args[1]
	existed := c.tt.Value(dst) != nil
	if len(res) == 0 {
		if existed {
			c.tt.Delete(dst)
			c.propagate([]byte("DEL"), dst)
		}
		c.int(0)
		return
	}
	v := kv.NewValue(kv.KindSet)
	v.Set = res
	c.tt.Put(dst, v, false)
	c.tt.Changed(dst)
	c.propagateSelf()
	c.int(int64(len(res)))
}

func cmdSInterCard(c *call) {
	n, ok := resp.ParseInt(c.args[1])
	if !ok || n <= 0 {
		c.errorMsg("ERR numkeys should be greater than 0")
		return
	}
	if int64(len(c.args)) < 2+n {
		c.errorMsg("ERR Number of keys can't be greater than number of args")
		return
	}
	limit := int64(0)
	rest := c.args[2+n:]
	if len(rest) > 0 {
		if len(rest) != 2 || lower(rest[0]) != "limit" {
			c.syntax()
			return
		}
		l, ok := resp.ParseInt(rest[1])
		if !ok || l < 0 {
			c.errorMsg("ERR LIMIT can't be negative")
			return
		}
		limit = l
	}
	sets, ok := c.setOperands(c.args[2 : 2+n])
	if !ok {
		return
	}
	c.int(int64(len(combine("inter", sets, int(limit)))))
}

func cmdSScan(c *call) {
	v, ok := c.set(c.args[1])
	if !ok {
		return
	}
	var items [][2][]byte
	if v != nil {
		for m := range v.Set {
			items = append(items, [2][]byte{[]byte(m), nil})
		}
	}
	c.scanCollection(items, false)
}
