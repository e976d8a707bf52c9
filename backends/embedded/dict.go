package embedded

import (
	"hash/maphash"
	"math/bits"
	"unsafe"

	"github.com/mecha-gateway/mecha/backends/kv"
)

// entry is one key and its value, linked in a dict bucket's chain. It is
// kept to 48 bytes, and a string key and its value share one allocation:
// with a Go map, a separate key string and a value slice, a small string
// key cost half as much again (see docs/performance.md).
//
// The key's bytes never change once written: a string value that changes
// gets a new allocation (key copied along), so the key can be handed out
// as a string without copying it.
type entry struct {
	next     *entry
	key      unsafe.Pointer // klen bytes
	val      unsafe.Pointer // kind string: vlen bytes, room for vcap; otherwise a *kv.Value
	expireAt int64          // Unix milliseconds; 0 without expiry
	klen     uint32
	vlen     uint32
	vcap     uint32
	kind     kv.Kind
}

// maxLen is the largest key or string value an entry holds; Redis' own
// limit is 512 MB.
const maxLen = 1<<32 - 1

// newStringEntry returns an entry holding a copy of key and val, in one
// allocation.
func newStringEntry(key, val []byte) *entry {
	e := &entry{}
	e.store(key, val, len(val))
	return e
}

// newEntry returns an entry for key holding an empty string; callers set
// its value.
func newEntry(key []byte) *entry { return newStringEntry(key, nil) }

// store allocates key and val together, with room for capacity bytes of
// value, and makes them the entry's.
func (e *entry) store(key, val []byte, capacity int) {
	buf := make([]byte, len(key)+capacity)
	copy(buf, key)
	copy(buf[len(key):], val)
	e.key, e.klen = unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(key))
	e.val = unsafe.Pointer(unsafe.SliceData(buf[len(key):]))
	e.vlen, e.vcap, e.kind = uint32(len(val)), uint32(capacity), kv.KindString
}

// keyBytes is the key; callers must not modify it.
func (e *entry) keyBytes() []byte { return unsafe.Slice((*byte)(e.key), e.klen) }

// keyString is the key as a string, without a copy.
func (e *entry) keyString() string { return unsafe.String((*byte)(e.key), e.klen) }

// str is a string entry's value. Callers may keep it: the bytes up to its
// length never change.
func (e *entry) str() []byte {
	return unsafe.Slice((*byte)(e.val), e.vcap)[:e.vlen:e.vlen]
}

// obj is a collection entry's value.
func (e *entry) obj() *kv.Value { return (*kv.Value)(e.val) }

// setStr makes the entry a string holding a copy of v.
func (e *entry) setStr(v []byte) { e.store(e.keyBytes(), v, len(v)) }

// appendStr appends v to a string entry's value: in place when there is
// room (the bytes before the old length, which readers may hold, do not
// change), into a new allocation twice the size otherwise, as Redis' sds
// grows.
func (e *entry) appendStr(v []byte) {
	n := int(e.vlen) + len(v)
	if n <= int(e.vcap) {
		copy(unsafe.Slice((*byte)(e.val), e.vcap)[e.vlen:], v)
		e.vlen = uint32(n)
		return
	}
	old := e.str()
	grown := min(max(2*n, 16), maxLen)
	e.store(e.keyBytes(), old, grown)
	copy(unsafe.Slice((*byte)(e.val), e.vcap)[len(old):], v)
	e.vlen = uint32(n)
}

// setObj makes the entry hold a collection.
func (e *entry) setObj(v *kv.Value) {
	if e.kind == kv.KindString && e.vcap > 0 {
		// The key shares an allocation with the string it had: copy it
		// out, so that the string can be collected.
		k := make([]byte, e.klen)
		copy(k, e.keyBytes())
		e.key = unsafe.Pointer(unsafe.SliceData(k))
	}
	e.val, e.vlen, e.vcap, e.kind = unsafe.Pointer(v), 0, 0, v.Kind
}

// rekey gives the entry another key (RENAME); it must not be in a dict.
func (e *entry) rekey(key []byte) {
	if e.kind == kv.KindString {
		e.store(key, e.str(), int(e.vlen))
		return
	}
	k := make([]byte, len(key))
	copy(k, key)
	e.key, e.klen = unsafe.Pointer(unsafe.SliceData(k)), uint32(len(k))
}

// value is the entry's value as a kv.Value.
func (e *entry) value() *kv.Value {
	if e.kind == kv.KindString {
		return &kv.Value{Kind: kv.KindString, Str: e.str()}
	}
	return e.obj()
}

// dict is a database's keyspace: a hash table with chained buckets that
// grows and shrinks by powers of two and moves its entries to the new
// table a few buckets at a time (incremental rehashing, as Redis' dict),
// so that no command pays for a whole resize. Its SCAN cursor is Redis':
// a key present for a whole scan is returned at least once, whatever the
// resizes in between.
type dict struct {
	seed   maphash.Seed
	t      [2][]*entry // t[1] is the new table while rehashing
	used   [2]int
	rehash int // next bucket of t[0] to move; -1 when not rehashing
}

// Resizing: grow when there are as many keys as buckets, shrink when
// fewer than one bucket in eight is used, as Redis does.
const (
	dictMinSize  = 4
	dictShrinkAt = 8
)

func newDict() *dict { return &dict{seed: maphash.MakeSeed(), rehash: -1} }

// len is the number of keys.
func (d *dict) len() int { return d.used[0] + d.used[1] }

func (d *dict) rehashing() bool { return d.rehash >= 0 }

func (d *dict) hash(key []byte) uint64 { return maphash.Bytes(d.seed, key) }

// find returns the entry of key, nil when absent.
func (d *dict) find(key []byte) *entry {
	if d.len() == 0 {
		return nil
	}
	if d.rehashing() {
		d.step(1)
	}
	h := d.hash(key)
	for i := range 2 {
		t := d.t[i]
		if len(t) == 0 {
			continue
		}
		for e := t[h&uint64(len(t)-1)]; e != nil; e = e.next {
			if int(e.klen) == len(key) && string(e.keyBytes()) == string(key) {
				return e
			}
		}
		if !d.rehashing() {
			break
		}
	}
	return nil
}

// add inserts e, whose key must be absent.
func (d *dict) add(e *entry) {
	if d.rehashing() {
		d.step(1)
	} else if d.used[0] >= len(d.t[0]) {
		d.resize(max(dictMinSize, 2*d.used[0]))
	}
	i := 0
	if d.rehashing() {
		i = 1
	}
	t := d.t[i]
	b := d.hash(e.keyBytes()) & uint64(len(t)-1)
	e.next = t[b]
	t[b] = e
	d.used[i]++
}

// remove unlinks e, which must be in the dict.
func (d *dict) remove(e *entry) {
	h := d.hash(e.keyBytes())
	for i := range 2 {
		t := d.t[i]
		if len(t) == 0 {
			continue
		}
		for p := &t[h&uint64(len(t)-1)]; *p != nil; p = &(*p).next {
			if *p == e {
				*p = e.next
				e.next = nil
				d.used[i]--
				d.maybeShrink()
				return
			}
		}
	}
	panic("embedded: removing an entry that is not in the dict")
}

func (d *dict) maybeShrink() {
	if d.rehashing() || len(d.t[0]) <= dictMinSize || d.used[0]*dictShrinkAt >= len(d.t[0]) {
		return
	}
	d.resize(max(dictMinSize, d.used[0]))
}

// resize starts moving the entries to a table of at least n buckets.
func (d *dict) resize(n int) {
	size := 1 << bits.Len(uint(n-1))
	if size == len(d.t[0]) {
		return
	}
	if len(d.t[0]) == 0 || d.used[0] == 0 {
		d.t[0], d.used[0] = make([]*entry, size), 0
		return
	}
	d.t[1], d.used[1] = make([]*entry, size), 0
	d.rehash = 0
}

// step moves up to n buckets to the new table, looking at no more than
// 10n empty ones, and finishes the rehash when t[0] is empty.
func (d *dict) step(n int) {
	empty := 10 * n
	for ; n > 0 && d.used[0] > 0; n-- {
		for d.t[0][d.rehash] == nil {
			d.rehash++
			if empty--; empty == 0 {
				return
			}
		}
		to := d.t[1]
		mask := uint64(len(to) - 1)
		for e := d.t[0][d.rehash]; e != nil; {
			next := e.next
			b := d.hash(e.keyBytes()) & mask
			e.next = to[b]
			to[b] = e
			d.used[0]--
			d.used[1]++
			e = next
		}
		d.t[0][d.rehash] = nil
		d.rehash++
	}
	if d.used[0] == 0 {
		d.t[0], d.t[1] = d.t[1], nil
		d.used[0], d.used[1] = d.used[1], 0
		d.rehash = -1
	}
}

// rehashFor moves buckets until the rehash is done or budget buckets
// have moved: the store's background work calls it, so that a dict no
// command touches does not keep two tables.
func (d *dict) rehashFor(budget int) {
	for d.rehashing() && budget > 0 {
		d.step(100)
		budget -= 100
	}
}

// each calls fn for every entry until fn returns false. fn must not add
// or remove entries.
func (d *dict) each(fn func(e *entry) bool) {
	for i := range 2 {
		for _, e := range d.t[i] {
			for ; e != nil; e = e.next {
				if !fn(e) {
					return
				}
			}
		}
	}
}

// scan appends to dst the entries of the bucket(s) at cursor and returns
// them with the next cursor (0 when the scan is complete). The cursor
// counts with its bits reversed, so that a table that doubled or halved
// since the last call still visits every bucket it has not yet visited:
// Redis' dictScan.
func (d *dict) scan(cursor uint64, dst []*entry) ([]*entry, uint64) {
	if d.len() == 0 {
		return dst, 0
	}
	chain := func(e *entry) {
		for ; e != nil; e = e.next {
			dst = append(dst, e)
		}
	}
	v := cursor
	if !d.rehashing() {
		m := uint64(len(d.t[0]) - 1)
		chain(d.t[0][v&m])
		v |= ^m
		return dst, bits.Reverse64(bits.Reverse64(v) + 1)
	}
	small, large := d.t[0], d.t[1]
	if len(small) > len(large) {
		small, large = large, small
	}
	m0, m1 := uint64(len(small)-1), uint64(len(large)-1)
	chain(small[v&m0])
	for {
		chain(large[v&m1])
		v |= ^m1
		v = bits.Reverse64(bits.Reverse64(v) + 1)
		if v&(m0^m1) == 0 {
			break
		}
	}
	return dst, v
}

// random returns an entry picked at random (uniform over buckets, then
// over the chain), nil when the dict is empty.
func (d *dict) random(intn func(int) int) *entry {
	if d.len() == 0 {
		return nil
	}
	if d.rehashing() {
		d.step(1)
	}
	var e *entry
	for e == nil {
		if d.rehashing() {
			// t[0] below rehash is empty.
			n0, n1 := len(d.t[0]), len(d.t[1])
			i := d.rehash + intn(n0+n1-d.rehash)
			if i < n0 {
				e = d.t[0][i]
			} else {
				e = d.t[1][i-n0]
			}
		} else {
			e = d.t[0][intn(len(d.t[0]))]
		}
	}
	n := 0
	for c := e; c != nil; c = c.next {
		n++
	}
	for i := intn(n); i > 0; i-- {
		e = e.next
	}
	return e
}
