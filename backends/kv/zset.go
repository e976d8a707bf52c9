package kv

import (
	"bytes"
	"math/rand/v2"
)

// ZSet is a sorted set: members ordered by score, then by member bytes,
// with O(log n) rank and range queries (a skip list with spans) and O(1)
// score lookup.
type ZSet struct {
	dict  map[string]float64
	head  *znode
	tail  *znode
	level int
	n     int
}

const zMaxLevel = 32

type znode struct {
	member string
	score  float64
	back   *znode
	level  []zlevel
}

type zlevel struct {
	next *znode
	span int
}

// NewZSet returns an empty sorted set.
func NewZSet() *ZSet {
	return &ZSet{dict: map[string]float64{}, head: &znode{level: make([]zlevel, zMaxLevel)}, level: 1}
}

// Len is the number of members.
func (z *ZSet) Len() int { return z.n }

// Score returns member's score.
func (z *ZSet) Score(member string) (float64, bool) {
	s, ok := z.dict[member]
	return s, ok
}

func randomLevel() int {
	l := 1
	for l < zMaxLevel && rand.Uint32()&3 == 0 {
		l++
	}
	return l
}

func less(s1 float64, m1 string, s2 float64, m2 string) bool {
	return s1 < s2 || (s1 == s2 && m1 < m2)
}

// Add sets member's score; it reports whether the member is new.
func (z *ZSet) Add(member string, score float64) bool {
	if old, ok := z.dict[member]; ok {
		if old != score {
			z.remove(member, old)
			z.insert(member, score)
			z.dict[member] = score
		}
		return false
	}
	z.insert(member, score)
	z.dict[member] = score
	return true
}

// Remove deletes member and reports whether it was there.
func (z *ZSet) Remove(member string) bool {
	s, ok := z.dict[member]
	if !ok {
		return false
	}
	z.remove(member, s)
	delete(z.dict, member)
	return true
}

func (z *ZSet) insert(member string, score float64) {
	var update [zMaxLevel]*znode
	var rank [zMaxLevel]int
	x := z.head
	for i := z.level - 1; i >= 0; i-- {
		if i < z.level-1 {
			rank[i] = rank[i+1]
		}
		for x.level[i].next != nil && less(x.level[i].next.score, x.level[i].next.member, score, member) {
			rank[i] += x.level[i].span
			x = x.level[i].next
		}
		update[i] = x
	}
	lvl := randomLevel()
	if lvl > z.level {
		for i := z.level; i < lvl; i++ {
			rank[i] = 0
			update[i] = z.head
			update[i].level[i].span = z.n
		}
		z.level = lvl
	}
	x = &znode{member: member, score: score, level: make([]zlevel, lvl)}
	for i := 0; i < lvl; i++ {
		x.level[i].next = update[i].level[i].next
		update[i].level[i].next = x
		x.level[i].span = update[i].level[i].span - (rank[0] - rank[i])
		update[i].level[i].span = rank[0] - rank[i] + 1
	}
	for i := lvl; i < z.level; i++ {
		update[i].level[i].span++
	}
	if update[0] != z.head {
		x.back = update[0]
	}
	if x.level[0].next != nil {
		x.level[0].next.back = x
	} else {
		z.tail = x
	}
	z.n++
}

func (z *ZSet) remove(member string, score float64) {
	var update [zMaxLevel]*znode
	x := z.head
	for i := z.level - 1; i >= 0; i-- {
		for x.level[i].next != nil && less(x.level[i].next.score, x.level[i].next.member, score, member) {
			x = x.level[i].next
		}
		update[i] = x
	}
	x = x.level[0].next
	if x == nil || x.score != score || x.member != member {
		return
	}
	z.unlink(x, &update)
}

func (z *ZSet) unlink(x *znode, update *[zMaxLevel]*znode) {
	for i := 0; i < z.level; i++ {
		if update[i].level[i].next == x {
			update[i].level[i].span += x.level[i].span - 1
			update[i].level[i].next = x.level[i].next
		} else {
			update[i].level[i].span--
		}
	}
	if x.level[0].next != nil {
		x.level[0].next.back = x.back
	} else {
		z.tail = x.back
	}
	for z.level > 1 && z.head.level[z.level-1].next == nil {
		z.level--
	}
	z.n--
}

// Rank returns member's 0-based rank, ascending, or descending with
// reverse.
func (z *ZSet) Rank(member string, reverse bool) (int, bool) {
	score, ok := z.dict[member]
	if !ok {
		return 0, false
	}
	rank := 0
	x := z.head
	for i := z.level - 1; i >= 0; i-- {
		for x.level[i].next != nil && !less(score, member, x.level[i].next.score, x.level[i].next.member) {
			rank += x.level[i].span
			x = x.level[i].next
		}
		if x != z.head && x.member == member {
			break
		}
	}
	if reverse {
		return z.n - rank, true
	}
	return rank - 1, true
}

// byRank returns the node at 0-based rank.
func (z *ZSet) byRank(rank int) *znode {
	traversed := 0
	x := z.head
	target := rank + 1
	for i := z.level - 1; i >= 0; i-- {
		for x.level[i].next != nil && traversed+x.level[i].span <= target {
			traversed += x.level[i].span
			x = x.level[i].next
		}
		if traversed == target {
			return x
		}
	}
	return nil
}

// Entry is a member and its score.
type Entry struct {
	Member string
	Score  float64
}

// RangeByRank calls fn for ranks start..stop (inclusive, already clamped
// to 0..Len-1), ascending or descending.
func (z *ZSet) RangeByRank(start, stop int, reverse bool, fn func(Entry) bool) {
	if start > stop || start >= z.n {
		return
	}
	var x *znode
	if reverse {
		x = z.byRank(z.n - 1 - start)
	} else {
		x = z.byRank(start)
	}
	for i := start; i <= stop && x != nil; i++ {
		if !fn(Entry{x.member, x.score}) {
			return
		}
		if reverse {
			x = x.back
		} else {
			x = x.level[0].next
		}
	}
}

// ScoreRange is a score interval with Redis' exclusive bounds.
type ScoreRange struct {
	Min, Max     float64
	MinEx, MaxEx bool
}

func (r ScoreRange) aboveMin(s float64) bool {
	if r.MinEx {
		return s > r.Min
	}
	return s >= r.Min
}

func (r ScoreRange) belowMax(s float64) bool {
	if r.MaxEx {
		return s < r.Max
	}
	return s <= r.Max
}

// Empty reports whether no score can be in the range.
func (r ScoreRange) Empty() bool {
	return r.Min > r.Max || (r.Min == r.Max && (r.MinEx || r.MaxEx))
}

// firstInScore is the first node with a score in r.
func (z *ZSet) firstInScore(r ScoreRange) *znode {
	if r.Empty() {
		return nil
	}
	x := z.head
	for i := z.level - 1; i >= 0; i-- {
		for x.level[i].next != nil && !r.aboveMin(x.level[i].next.score) {
			x = x.level[i].next
		}
	}
	x = x.level[0].next
	if x == nil || !r.belowMax(x.score) {
		return nil
	}
	return x
}

// lastInScore is the last node with a score in r.
func (z *ZSet) lastInScore(r ScoreRange) *znode {
	if r.Empty() {
		return nil
	}
	x := z.head
	for i := z.level - 1; i >= 0; i-- {
		for x.level[i].next != nil && r.belowMax(x.level[i].next.score) {
			x = x.level[i].next
		}
	}
	if x == z.head || !r.aboveMin(x.score) {
		return nil
	}
	return x
}

// RangeByScore calls fn for members with scores in r, ascending or
// descending, skipping offset of them first.
func (z *ZSet) RangeByScore(r ScoreRange, reverse bool, offset int, fn func(Entry) bool) {
	var x *znode
	if reverse {
		x = z.lastInScore(r)
	} else {
		x = z.firstInScore(r)
	}
	for ; x != nil; offset-- {
		if reverse && !r.aboveMin(x.score) || !reverse && !r.belowMax(x.score) {
			return
		}
		if offset <= 0 && !fn(Entry{x.member, x.score}) {
			return
		}
		if reverse {
			x = x.back
		} else {
			x = x.level[0].next
		}
	}
}

// LexRange is a member interval in ZRANGEBYLEX's terms: Min/Max with
// inclusive or exclusive bounds, or unbounded (- and +).
type LexRange struct {
	Min, Max       []byte
	MinEx, MaxEx   bool
	MinInf, MaxInf bool // - and +
	MinPosInf      bool // min is + (nothing is above it)
	MaxNegInf      bool // max is - (nothing is below it)
}

func (r LexRange) aboveMin(m string) bool {
	switch {
	case r.MinPosInf:
		return false
	case r.MinInf:
		return true
	}
	c := bytes.Compare([]byte(m), r.Min)
	if r.MinEx {
		return c > 0
	}
	return c >= 0
}

func (r LexRange) belowMax(m string) bool {
	switch {
	case r.MaxNegInf:
		return false
	case r.MaxInf:
		return true
	}
	c := bytes.Compare([]byte(m), r.Max)
	if r.MaxEx {
		return c < 0
	}
	return c <= 0
}

// RangeByLex calls fn for members in r (assuming equal scores, as
// ZRANGEBYLEX does), ascending or descending, after skipping offset.
func (z *ZSet) RangeByLex(r LexRange, reverse bool, offset int, fn func(Entry) bool) {
	var x *znode
	if reverse {
		x = z.head
		for i := z.level - 1; i >= 0; i-- {
			for x.level[i].next != nil && r.belowMax(x.level[i].next.member) {
				x = x.level[i].next
			}
		}
		if x == z.head {
			return
		}
	} else {
		x = z.head
		for i := z.level - 1; i >= 0; i-- {
			for x.level[i].next != nil && !r.aboveMin(x.level[i].next.member) {
				x = x.level[i].next
			}
		}
		x = x.level[0].next
	}
	for ; x != nil; offset-- {
		if !r.aboveMin(x.member) || !r.belowMax(x.member) {
			return
		}
		if offset <= 0 && !fn(Entry{x.member, x.score}) {
			return
		}
		if reverse {
			x = x.back
		} else {
			x = x.level[0].next
		}
	}
}

// Each calls fn for every member in ascending order.
func (z *ZSet) Each(fn func(Entry) bool) {
	for x := z.head.level[0].next; x != nil; x = x.level[0].next {
		if !fn(Entry{x.member, x.score}) {
			return
		}
	}
}
