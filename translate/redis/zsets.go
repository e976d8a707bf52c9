package redis

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

func init() {
	for name, fn := range map[string]func(*call){
		"zadd": cmdZAdd, "zincrby": cmdZIncrBy, "zrem": cmdZRem, "zscore": cmdZScore, "zmscore": cmdZMScore,
		"zcard": cmdZCard, "zcount": cmdZCount, "zlexcount": cmdZLexCount, "zrank": cmdZRank, "zrevrank": cmdZRank,
		"zrange": cmdZRange, "zrangebyscore": cmdZRange, "zrevrangebyscore": cmdZRange, "zrangebylex": cmdZRange,
		"zrevrangebylex": cmdZRange, "zrevrange": cmdZRange, "zrangestore": cmdZRange,
		"zremrangebyrank": cmdZRemRange, "zremrangebyscore": cmdZRemRange, "zremrangebylex": cmdZRemRange,
		"zpopmin": cmdZPop, "zpopmax": cmdZPop, "zmpop": cmdZMPop, "zrandmember": cmdZRandMember,
		"zunionstore": cmdZSetOp, "zinterstore": cmdZSetOp, "zdiffstore": cmdZSetOp,
		"zunion": cmdZSetOp, "zinter": cmdZSetOp, "zdiff": cmdZSetOp, "zintercard": cmdZInterCard, "zscan": cmdZScan,
	} {
		reg(name, fn, typed)
	}
	reg("bzpopmin", cmdBZPop, typed, needs(kv.FeatureBlocking), noTx)
	reg("bzpopmax", cmdBZPop, typed, needs(kv.FeatureBlocking), noTx)
	reg("bzmpop", cmdBZMPop, typed, needs(kv.FeatureBlocking), noTx)
}

// zset returns the sorted set at key: (nil, true) when absent, (nil,
// false) after replying WRONGTYPE.
func (c *call) zset(key []byte) (*kv.Value, bool) {
	v := c.tt.Value(key)
	if v == nil {
		return nil, true
	}
	if v.Kind != kv.KindZSet {
		c.wrongType()
		return nil, false
	}
	return v, true
}

func (c *call) zsetForWrite(key []byte) (*kv.Value, bool) {
	v, ok := c.zset(key)
	if !ok {
		return nil, false
	}
	if v == nil {
		v = kv.NewValue(kv.KindZSet)
		c.tt.Put(key, v, false)
	}
	return v, true
}

func cmdZAdd(c *call) {
	var nx, xx, gt, lt, ch, incr bool
	i := 2
loop:
	for ; i < len(c.args); i++ {
		switch lower(c.args[i]) {
		case "nx":
			nx = true
		case "xx":
			xx = true
		case "gt":
			gt = true
		case "lt":
			lt = true
		case "ch":
			ch = true
		case "incr":
			incr = true
		default:
			break loop
		}
	}
	pairs := c.args[i:]
	switch {
	case len(pairs) == 0 || len(pairs)%2 != 0:
		c.syntax()
		return
	case nx && xx:
		c.errorMsg("ERR XX and NX options at the same time are not compatible")
		return
	case (gt && nx) || (lt && nx) || (gt && lt):
		c.errorMsg("ERR GT, LT, and/or NX options at the same time are not compatible")
		return
	case incr && len(pairs) > 2:
		c.errorMsg("ERR INCR option supports a single increment-element pair")
		return
	}
	scores := make([]float64, len(pairs)/2)
	for j := range scores {
		f, ok := parseFloat(pairs[2*j])
		if !ok {
			c.errorMsg(errNotFloat)
			return
		}
		scores[j] = f
	}
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	if v == nil && xx {
		if incr {
			c.null()
		} else {
			c.int(0)
		}
		return
	}
	if v == nil {
		v, _ = c.zsetForWrite(c.args[1])
	}
	added, changed := 0, 0
	var result float64
	performed := false
	for j, score := range scores {
		m := string(pairs[2*j+1])
		old, exists := v.ZSet.Score(m)
		if exists && nx || !exists && xx {
			continue
		}
		if incr {
			if exists {
				score += old
			}
			if math.IsNaN(score) {
				c.tt.Changed(c.args[1])
				c.errorMsg("ERR resulting score is not a number (NaN)")
				return
			}
		}
		if exists && (gt && score <= old || lt && score >= old) {
			continue
		}
		performed = true
		result = score
		if !exists {
			added++
			v.ZSet.Add(m, score)
		} else if score != old {
			changed++
			v.ZSet.Add(m, score)
		}
	}
	c.tt.Changed(c.args[1])
	if added+changed > 0 {
		c.propagateSelf()
	}
	switch {
	case incr && !performed:
		c.null()
	case incr:
		c.double(result)
	case ch:
		c.int(int64(added + changed))
	default:
		c.int(int64(added))
	}
}

func cmdZIncrBy(c *call) {
	incr, ok := c.argFloat(2)
	if !ok {
		return
	}
	v, ok := c.zsetForWrite(c.args[1])
	if !ok {
		return
	}
	m := string(c.args[3])
	old, _ := v.ZSet.Score(m)
	score := old + incr
	if math.IsNaN(score) {
		c.tt.Changed(c.args[1])
		c.errorMsg("ERR resulting score is not a number (NaN)")
		return
	}
	v.ZSet.Add(m, score)
	c.tt.Changed(c.args[1])
	c.propagateSelf()
	c.double(score)
}

func cmdZRem(c *call) {
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	n := 0
	if v != nil {
		for _, m := range c.args[2:] {
			if v.ZSet.Remove(string(m)) {
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

func cmdZScore(c *call) {
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.null()
		return
	}
	s, exists := v.ZSet.Score(string(c.args[2]))
	if !exists {
		c.null()
		return
	}
	c.double(s)
}

func cmdZMScore(c *call) {
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	c.array(len(c.args) - 2)
	for _, m := range c.args[2:] {
		if v == nil {
			c.null()
			continue
		}
		if s, exists := v.ZSet.Score(string(m)); exists {
			c.double(s)
		} else {
			c.null()
		}
	}
}

func cmdZCard(c *call) {
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	c.int(int64(v.ZSet.Len()))
}

// parseScoreBound parses a ZRANGEBYSCORE bound: a float, "(" for
// exclusive, -inf/+inf.
func parseScoreBound(b []byte) (float64, bool, bool) {
	ex := false
	if len(b) > 0 && b[0] == '(' {
		ex = true
		b = b[1:]
	}
	f, ok := parseFloat(b)
	if !ok {
		return 0, false, false
	}
	return f, ex, true
}

func (c *call) scoreRange(min, max []byte) (kv.ScoreRange, bool) {
	lo, loEx, ok1 := parseScoreBound(min)
	hi, hiEx, ok2 := parseScoreBound(max)
	if !ok1 || !ok2 {
		c.errorMsg(errMinMaxFloat)
		return kv.ScoreRange{}, false
	}
	return kv.ScoreRange{Min: lo, Max: hi, MinEx: loEx, MaxEx: hiEx}, true
}

// parseLexBound parses a ZRANGEBYLEX bound: [x, (x, - or +.
func parseLexBound(b []byte) (val []byte, ex, neg, pos, ok bool) {
	if len(b) == 0 {
		return nil, false, false, false, false
	}
	switch b[0] {
	case '-':
		return nil, false, true, false, len(b) == 1
	case '+':
		return nil, false, false, true, len(b) == 1
	case '[':
		return b[1:], false, false, false, true
	case '(':
		return b[1:], true, false, false, true
	}
	return nil, false, false, false, false
}

func (c *call) lexRange(min, max []byte) (kv.LexRange, bool) {
	lo, loEx, loNeg, loPos, ok1 := parseLexBound(min)
	hi, hiEx, hiNeg, hiPos, ok2 := parseLexBound(max)
	if !ok1 || !ok2 {
		c.errorMsg(errMinMaxLex)
		return kv.LexRange{}, false
	}
	return kv.LexRange{Min: lo, Max: hi, MinEx: loEx, MaxEx: hiEx, MinInf: loNeg, MaxInf: hiPos, MinPosInf: loPos, MaxNegInf: hiNeg}, true
}

func cmdZCount(c *call) {
	r, ok := c.scoreRange(c.args[2], c.args[3])
	if !ok {
		return
	}
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	n := 0
	if v != nil {
		v.ZSet.RangeByScore(r, false, 0, func(kv.Entry) bool { n++; return true })
	}
	c.int(int64(n))
}

func cmdZLexCount(c *call) {
	r, ok := c.lexRange(c.args[2], c.args[3])
	if !ok {
		return
	}
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	n := 0
	if v != nil {
		v.ZSet.RangeByLex(r, false, 0, func(kv.Entry) bool { n++; return true })
	}
	c.int(int64(n))
}

func cmdZRank(c *call) {
	withScore := false
	if len(c.args) == 4 {
		if lower(c.args[3]) != "withscore" {
			c.syntax()
			return
		}
		withScore = true
	} else if len(c.args) > 4 {
		c.syntax()
		return
	}
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	rev := lower(c.args[0]) == "zrevrank"
	if v == nil {
		if withScore {
			c.nullArray()
		} else {
			c.null()
		}
		return
	}
	r, exists := v.ZSet.Rank(string(c.args[2]), rev)
	if !exists {
		if withScore {
			c.nullArray()
		} else {
			c.null()
		}
		return
	}
	if withScore {
		s, _ := v.ZSet.Score(string(c.args[2]))
		c.array(2)
		c.int(int64(r))
		c.double(s)
		return
	}
	c.int(int64(r))
}

// zrangeSpec is what a ZRANGE-family command asks for.
type zrangeSpec struct {
	by         string // rank, score, lex
	rev        bool
	start      int64
	stop       int64
	sr         kv.ScoreRange
	lr         kv.LexRange
	offset     int64
	count      int64 // -1: no limit
	withScores bool
}

// collect returns the entries the spec selects.
func (sp *zrangeSpec) collect(z *kv.ZSet) []kv.Entry {
	var out []kv.Entry
	add := func(e kv.Entry) bool {
		out = append(out, e)
		return sp.count < 0 || int64(len(out)) < sp.count
	}
	if sp.count == 0 {
		return nil
	}
	switch sp.by {
	case "rank":
		s, e, ok := rangeIndexes(sp.start, sp.stop, int64(z.Len()))
		if ok {
			z.RangeByRank(int(s), int(e), sp.rev, add)
		}
	case "score":
		if sp.offset >= 0 {
			z.RangeByScore(sp.sr, sp.rev, int(sp.offset), add)
		}
	case "lex":
		if sp.offset >= 0 {
			z.RangeByLex(sp.lr, sp.rev, int(sp.offset), add)
		}
	}
	return out
}

// parseZRange parses the arguments of the ZRANGE family from args[i]
// (start/min, stop/max, options) for command name.
func (c *call) parseZRange(name string, i int) (*zrangeSpec, bool) {
	sp := &zrangeSpec{by: "rank", count: -1}
	a, b := c.args[i], c.args[i+1]
	opts := c.args[i+2:]
	switch name {
	case "zrangebyscore", "zrevrangebyscore":
		sp.by = "score"
		sp.rev = name == "zrevrangebyscore"
	case "zrangebylex", "zrevrangebylex":
		sp.by = "lex"
		sp.rev = name == "zrevrangebylex"
	case "zrevrange":
		sp.rev = true
	}
	limit := false
	for j := 0; j < len(opts); j++ {
		switch lower(opts[j]) {
		case "withscores":
			if name == "zrangebylex" || name == "zrevrangebylex" || name == "zrangestore" {
				c.syntax()
				return nil, false
			}
			sp.withScores = true
		case "limit":
			if j+2 >= len(opts) || name == "zrevrange" {
				c.syntax()
				return nil, false
			}
			off, ok1 := resp.ParseInt(opts[j+1])
			cnt, ok2 := resp.ParseInt(opts[j+2])
			if !ok1 || !ok2 {
				c.errorMsg(errNotInt)
				return nil, false
			}
			sp.offset, sp.count = off, cnt
			if cnt < 0 {
				sp.count = -1
			}
			limit = true
			j += 2
		case "byscore":
			if name != "zrange" && name != "zrangestore" || sp.by == "lex" {
				c.syntax()
				return nil, false
			}
			sp.by = "score"
		case "bylex":
			if name != "zrange" && name != "zrangestore" || sp.by == "score" {
				c.syntax()
				return nil, false
			}
			sp.by = "lex"
		case "rev":
			if name != "zrange" && name != "zrangestore" {
				c.syntax()
				return nil, false
			}
			sp.rev = true
		default:
			c.syntax()
			return nil, false
		}
	}
	if limit && sp.by == "rank" {
		c.errorMsg("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
		return nil, false
	}
	if sp.withScores && sp.by == "lex" {
		c.errorMsg("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
		return nil, false
	}
	// With REV, the first bound is the high one.
	if sp.rev && sp.by != "rank" {
		a, b = b, a
	}
	switch sp.by {
	case "rank":
		var ok bool
		if sp.start, ok = resp.ParseInt(a); !ok {
			c.errorMsg(errNotInt)
			return nil, false
		}
		if sp.stop, ok = resp.ParseInt(b); !ok {
			c.errorMsg(errNotInt)
			return nil, false
		}
	case "score":
		r, ok := c.scoreRange(a, b)
		if !ok {
			return nil, false
		}
		sp.sr = r
	case "lex":
		r, ok := c.lexRange(a, b)
		if !ok {
			return nil, false
		}
		sp.lr = r
	}
	return sp, true
}

func cmdZRange(c *call) {
	name := lower(c.args[0])
	store := name == "zrangestore"
	src, first := c.args[1], 2
	if store {
		src, first = c.args[2], 3
	}
	sp, ok := c.parseZRange(name, first)
	if !ok {
		return
	}
	v, ok := c.zset(src)
	if !ok {
		return
	}
	var es []kv.Entry
	if v != nil {
		es = sp.collect(v.ZSet)
	}
	if store {
		dst := c.args[1]
		existed := c.tt.Value(dst) != nil
		if len(es) == 0 {
			if existed {
				c.tt.Delete(dst)
				c.propagate([]byte("DEL"), dst)
			}
			c.int(0)
			return
		}
		nv := kv.NewValue(kv.KindZSet)
		for _, e := range es {
			nv.ZSet.Add(e.Member, e.Score)
		}
		c.tt.Put(dst, nv, false)
		c.tt.Changed(dst)
		c.propagateSelf()
		c.int(int64(len(es)))
		return
	}
	c.replyEntries(es, sp.withScores)
}

func (c *call) replyEntries(es []kv.Entry, withScores bool) {
	if withScores {
		c.array(2 * len(es))
	} else {
		c.array(len(es))
	}
	for _, e := range es {
		c.bulkStr(e.Member)
		if withScores {
			c.double(e.Score)
		}
	}
}

func cmdZRemRange(c *call) {
	name := lower(c.args[0])
	sp := &zrangeSpec{count: -1}
	switch name {
	case "zremrangebyrank":
		sp.by = "rank"
		var ok bool
		if sp.start, ok = c.argInt(2); !ok {
			return
		}
		if sp.stop, ok = c.argInt(3); !ok {
			return
		}
	case "zremrangebyscore":
		sp.by = "score"
		r, ok := c.scoreRange(c.args[2], c.args[3])
		if !ok {
			return
		}
		sp.sr = r
	default:
		sp.by = "lex"
		r, ok := c.lexRange(c.args[2], c.args[3])
		if !ok {
			return
		}
		sp.lr = r
	}
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.int(0)
		return
	}
	es := sp.collect(v.ZSet)
	for _, e := range es {
		v.ZSet.Remove(e.Member)
	}
	if len(es) > 0 {
		c.tt.Changed(c.args[1])
		c.propagateSelf()
	}
	c.int(int64(len(es)))
}

// zpop removes up to count members from the low (min) or high end.
func zpop(v *kv.Value, min bool, count int64) []kv.Entry {
	var es []kv.Entry
	n := int(count)
	if n > v.ZSet.Len() {
		n = v.ZSet.Len()
	}
	if n == 0 {
		return nil
	}
	v.ZSet.RangeByRank(0, n-1, !min, func(e kv.Entry) bool { es = append(es, e); return true })
	for _, e := range es {
		v.ZSet.Remove(e.Member)
	}
	return es
}

func cmdZPop(c *call) {
	min := lower(c.args[0]) == "zpopmin"
	count := int64(1)
	if len(c.args) == 3 {
		n, ok := resp.ParseInt(c.args[2])
		if !ok || n < 0 {
			c.errorMsg("ERR value is out of range, must be positive")
			return
		}
		count = n
	} else if len(c.args) > 3 {
		c.syntax()
		return
	}
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	if v == nil {
		c.array(0)
		return
	}
	es := zpop(v, min, count)
	if len(es) > 0 {
		c.tt.Changed(c.args[1])
		c.propagateSelf()
	}
	c.replyEntries(es, true)
}

// mpopZSet pops from the first non-empty sorted set of keys and encodes
// [key, [[member, score]...]]; nil when all are empty.
func mpopZSet(tt kv.TypedTx, keys [][]byte, min bool, count int64) ([]byte, error) {
	for _, k := range keys {
		v := tt.Value(k)
		if v == nil {
			continue
		}
		if v.Kind != kv.KindZSet {
			return nil, kv.ErrWrongType
		}
		es := zpop(v, min, count)
		tt.Changed(k)
		name := "ZPOPMAX"
		if min {
			name = "ZPOPMIN"
		}
		tt.Propagate([]byte(name), k, itoa64(int64(len(es))))
		out := resp.AppendArray(nil, 2)
		out = resp.AppendBulk(out, k)
		out = resp.AppendArray(out, len(es))
		for _, e := range es {
			out = resp.AppendArray(out, 2)
			out = resp.AppendBulkString(out, e.Member)
			out = resp.AppendBulkString(out, formatDouble(e.Score))
		}
		return out, nil
	}
	return nil, nil
}

func cmdZMPop(c *call) {
	keys, end, count, ok := c.mpopArgs(1, "min", "max")
	if !ok {
		return
	}
	out, err := mpopZSet(c.tt, keys, end == "min", count)
	if c.check(err) {
		return
	}
	if out == nil {
		c.nullArray()
		return
	}
	c.out = append(c.out, out...)
}

// bzpopReply pops one member for BZPOPMIN/BZPOPMAX: [key, member, score].
func bzpopReply(tt kv.TypedTx, key []byte, min bool) []byte {
	v := tt.Value(key)
	if v == nil || v.Kind != kv.KindZSet || v.ZSet.Len() == 0 {
		return nil
	}
	es := zpop(v, min, 1)
	tt.Changed(key)
	name := "ZPOPMAX"
	if min {
		name = "ZPOPMIN"
	}
	tt.Propagate([]byte(name), key)
	out := resp.AppendArray(nil, 3)
	out = resp.AppendBulk(out, key)
	out = resp.AppendBulkString(out, es[0].Member)
	return resp.AppendBulkString(out, formatDouble(es[0].Score))
}

func cmdBZPop(c *call) {
	min := lower(c.args[0]) == "bzpopmin"
	timeout, e := parseTimeout(c.args[len(c.args)-1])
	if e != "" {
		c.errorMsg(e)
		return
	}
	keys := c.args[1 : len(c.args)-1]
	c.block(keys, timeout, func(tt kv.TypedTx) []byte {
		for _, k := range keys {
			if v := tt.Value(k); v != nil && v.Kind != kv.KindZSet {
				return resp.AppendError(nil, errWrongType)
			}
			if r := bzpopReply(tt, k, min); r != nil {
				return r
			}
		}
		return nil
	}, func(tt kv.TypedTx, key []byte) []byte { return bzpopReply(tt, key, min) }, "*-1\r\n")
}

func cmdBZMPop(c *call) {
	timeout, e := parseTimeout(c.args[1])
	if e != "" {
		c.errorMsg(e)
		return
	}
	keys, end, count, ok := c.mpopArgs(2, "min", "max")
	if !ok {
		return
	}
	keys = cloneArgs(keys)
	try := func(tt kv.TypedTx) []byte {
		out, err := mpopZSet(tt, keys, end == "min", count)
		if err != nil {
			return resp.AppendError(nil, errWrongType)
		}
		return out
	}
	c.block(keys, timeout, try, func(tt kv.TypedTx, _ []byte) []byte { return try(tt) }, "*-1\r\n")
}

func cmdZRandMember(c *call) {
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	if len(c.args) == 2 {
		if v == nil {
			c.null()
			return
		}
		var pick string
		r := rand.IntN(v.ZSet.Len())
		v.ZSet.RangeByRank(r, r, false, func(e kv.Entry) bool { pick = e.Member; return false })
		c.bulkStr(pick)
		return
	}
	n, ok := c.argInt(2)
	if !ok {
		return
	}
	withScores := false
	if len(c.args) == 4 {
		if lower(c.args[3]) != "withscores" {
			c.syntax()
			return
		}
		withScores = true
	} else if len(c.args) > 4 {
		c.syntax()
		return
	}
	var all []kv.Entry
	if v != nil {
		v.ZSet.Each(func(e kv.Entry) bool { all = append(all, e); return true })
	}
	picks := randomPicks(len(all), n)
	es := make([]kv.Entry, len(picks))
	for i, p := range picks {
		es[i] = all[p]
	}
	c.replyEntries(es, withScores)
}

// zsetOperands reads ZUNION/ZINTER/ZDIFF's keys (sorted sets or plain
// sets, whose members score 1), WEIGHTS and AGGREGATE from args[i]
// (numkeys).
func (c *call) zsetOperands(i int, allowWithScores bool) (sets []map[string]float64, weights []float64, agg string, withScores, ok bool) {
	n, okN := resp.ParseInt(c.args[i])
	if !okN {
		c.errorMsg(errNotInt)
		return
	}
	if n < 1 {
		c.errorMsg("ERR at least 1 input key is needed for '" + lower(c.args[0]) + "' command")
		return
	}
	if int64(len(c.args)) < int64(i)+1+n {
		c.syntax()
		return
	}
	keys := c.args[i+1 : i+1+int(n)]
	agg = "sum"
	weights = make([]float64, n)
	for j := range weights {
		weights[j] = 1
	}
	opts := c.args[i+1+int(n):]
	isDiff := strings.HasPrefix(lower(c.args[0]), "zdiff")
	for j := 0; j < len(opts); j++ {
		switch lower(opts[j]) {
		case "weights":
			if isDiff || j+int(n) >= len(opts) {
				c.syntax()
				return
			}
			for w := 0; w < int(n); w++ {
				f, okF := parseFloat(opts[j+1+w])
				if !okF {
					c.errorMsg("ERR weight value is not a float")
					return
				}
				weights[w] = f
			}
			j += int(n)
		case "aggregate":
			if isDiff || j+1 >= len(opts) {
				c.syntax()
				return
			}
			switch a := lower(opts[j+1]); a {
			case "sum", "min", "max":
				agg = a
			default:
				c.syntax()
				return
			}
			j++
		case "withscores":
			if !allowWithScores {
				c.syntax()
				return
			}
			withScores = true
		default:
			c.syntax()
			return
		}
	}
	sets = make([]map[string]float64, n)
	for j, k := range keys {
		v := c.tt.Value(k)
		if v == nil {
			continue
		}
		m := map[string]float64{}
		switch v.Kind {
		case kv.KindZSet:
			v.ZSet.Each(func(e kv.Entry) bool { m[e.Member] = e.Score; return true })
		case kv.KindSet:
			for x := range v.Set {
				m[x] = 1
			}
		default:
			c.wrongType()
			return
		}
		sets[j] = m
	}
	return sets, weights, agg, withScores, true
}

func aggregate(agg string, a, b float64) float64 {
	switch agg {
	case "min":
		return math.Min(a, b)
	case "max":
		return math.Max(a, b)
	}
	s := a + b
	if math.IsNaN(s) {
		return 0 // +inf + -inf, as Redis does
	}
	return s
}

func weighted(s, w float64) float64 {
	r := s * w
	if math.IsNaN(r) {
		return 0
	}
	return r
}

// zcombine computes a union, intersection or difference.
func zcombine(op string, sets []map[string]float64, weights []float64, agg string) []kv.Entry {
	res := map[string]float64{}
	switch op {
	case "union":
		for i, s := range sets {
			for m, sc := range s {
				v := weighted(sc, weights[i])
				if old, ok := res[m]; ok {
					res[m] = aggregate(agg, old, v)
				} else {
					res[m] = v
				}
			}
		}
	case "inter":
		if sets[0] == nil {
			break
		}
	outer:
		for m, sc := range sets[0] {
			v := weighted(sc, weights[0])
			for i, s := range sets[1:] {
				o, ok := s[m]
				if !ok {
					continue outer
				}
				v = aggregate(agg, v, weighted(o, weights[i+1]))
			}
			res[m] = v
		}
	case "diff":
		if sets[0] == nil {
			break
		}
	next:
		for m, sc := range sets[0] {
			for _, s := range sets[1:] {
				if _, ok := s[m]; ok {
					continue next
				}
			}
			res[m] = sc
		}
	}
	out := make([]kv.Entry, 0, len(res))
	for m, s := range res {
		out = append(out, kv.Entry{Member: m, Score: s})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Score < out[j].Score || out[i].Score == out[j].Score && out[i].Member < out[j].Member
	})
	return out
}

func cmdZSetOp(c *call) {
	name := lower(c.args[0])
	store := strings.HasSuffix(name, "store")
	op := strings.TrimSuffix(name[1:], "store")
	first := 1
	if store {
		first = 2
	}
	sets, weights, agg, withScores, ok := c.zsetOperands(first, !store)
	if !ok {
		return
	}
	es := zcombine(op, sets, weights, agg)
	if !store {
		c.replyEntries(es, withScores)
		return
	}
	dst := c.args[1]
	existed := c.tt.Value(dst) != nil
	if len(es) == 0 {
		if existed {
			c.tt.Delete(dst)
			c.propagate([]byte("DEL"), dst)
		}
		c.int(0)
		return
	}
	v := kv.NewValue(kv.KindZSet)
	for _, e := range es {
		v.ZSet.Add(e.Member, e.Score)
	}
	c.tt.Put(dst, v, false)
	c.tt.Changed(dst)
	c.propagateSelf()
	c.int(int64(len(es)))
}

func cmdZInterCard(c *call) {
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
	if rest := c.args[2+n:]; len(rest) > 0 {
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
	sets := make([]map[string]float64, n)
	w := make([]float64, n)
	for i, k := range c.args[2 : 2+n] {
		w[i] = 1
		v := c.tt.Value(k)
		if v == nil {
			continue
		}
		m := map[string]float64{}
		switch v.Kind {
		case kv.KindZSet:
			v.ZSet.Each(func(e kv.Entry) bool { m[e.Member] = e.Score; return true })
		case kv.KindSet:
			for x := range v.Set {
				m[x] = 1
			}
		default:
			c.wrongType()
			return
		}
		sets[i] = m
	}
	cnt := int64(len(zcombine("inter", sets, w, "sum")))
	if limit > 0 && cnt > limit {
		cnt = limit
	}
	c.int(cnt)
}

func cmdZScan(c *call) {
	v, ok := c.zset(c.args[1])
	if !ok {
		return
	}
	var items [][2][]byte
	if v != nil {
		v.ZSet.Each(func(e kv.Entry) bool {
			items = append(items, [2][]byte{[]byte(e.Member), []byte(formatDouble(e.Score))})
			return true
		})
	}
	c.scanCollection(items, true)
}
