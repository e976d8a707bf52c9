package embedded

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
)

// tx is the store's transaction. There is one, reused under the store's
// mutex.
type tx struct {
	s  *Store
	db int
	// now is read at most once per transaction, and only if needed: most
	// commands never look at the clock.
	now        time.Time
	changed    []kv.DBKey
	propagated []byte
	propCount  int // commands in propagated, SELECTs aside
}

var _ kv.TypedTx = (*tx)(nil)

func (t *tx) begin(db int, write bool) {
	t.db = db
	t.now = time.Time{}
	t.changed = t.changed[:0]
	t.propagated = t.propagated[:0]
	t.propCount = 0
}

func (t *tx) end() {
	clear(t.changed)
	t.changed = t.changed[:0]
	if cap(t.propagated) > 1<<20 {
		t.propagated = nil
	}
}

func (t *tx) DB() int { return t.db }

func (t *tx) Select(db int) error {
	if db < 0 || db >= len(t.s.dbs) {
		return errors.New("ERR DB index is out of range")
	}
	t.db = db
	return nil
}

func (t *tx) Now() time.Time {
	if t.now.IsZero() {
		t.now = time.Now()
	}
	return t.now
}

// nowMillis is Now in Unix milliseconds.
func (t *tx) nowMillis() int64 { return t.Now().UnixMilli() }

// changedKey records a write, for hooks and WATCH.
func (t *tx) changedKey(db int, key string) {
	t.changed = append(t.changed, kv.DBKey{DB: db, Key: key})
	t.s.touchWatched(db, key)
}

func (t *tx) Get(key []byte) ([]byte, error) {
	e := t.lookup(key)
	if e == nil {
		t.s.misses.Inc()
		return nil, kv.ErrNotFound
	}
	t.s.hits.Inc()
	if e.kind != kv.KindString {
		return nil, kv.ErrWrongType
	}
	return e.str, nil
}

func (t *tx) Set(key, value []byte, o kv.SetOptions) (kv.SetResult, error) {
	e := t.lookup(key)
	var r kv.SetResult
	if e != nil {
		r.HadOld = true
		if o.Get {
			if e.kind != kv.KindString {
				return r, kv.ErrWrongType
			}
			r.Old = e.str
		}
	}
	if (o.NX && e != nil) || (o.XX && e == nil) {
		return r, nil
	}
	k := string(key)
	val := bytes.Clone(value)
	if val == nil {
		val = []byte{}
	}
	if e != nil {
		// Replace in place: the key keeps its slot.
		e.str, e.obj, e.kind = val, nil, kv.KindString
		if !o.KeepTTL {
			t.setExpire(k, e, msOf(o.ExpireAt))
		}
	} else {
		e = &entry{str: val, kind: kv.KindString}
		k = string(key)
		t.s.addEntry(t.db, k, e)
		if !o.ExpireAt.IsZero() {
			t.setExpire(k, e, msOf(o.ExpireAt))
		}
	}
	t.changedKey(t.db, k)
	r.Done = true
	return r, nil
}

func msOf(at time.Time) int64 {
	if at.IsZero() {
		return 0
	}
	ms := at.UnixMilli()
	if ms == 0 {
		ms = -1 // the epoch itself: long past
	}
	return ms
}

// setExpire sets an entry's expiry (0: none).
func (t *tx) setExpire(key string, e *entry, at int64) {
	d := t.s.dbs[t.db]
	if at == 0 {
		if e.expireAt != 0 {
			delete(d.volatile, key)
		}
	} else if e.expireAt == 0 {
		d.volatile[key] = e
	}
	e.expireAt = at
}

func (t *tx) IncrBy(key []byte, delta int64) (int64, error) {
	e := t.lookup(key)
	var cur int64
	if e != nil {
		if e.kind != kv.KindString {
			return 0, kv.ErrWrongType
		}
		n, err := parseInt64(e.str)
		if err != nil {
			return 0, kv.ErrNotInteger
		}
		cur = n
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, kv.ErrOverflow
	}
	cur += delta
	val := strconv.AppendInt(nil, cur, 10)
	k := string(key)
	if e != nil {
		e.str = val
	} else {
		t.s.addEntry(t.db, k, &entry{str: val, kind: kv.KindString})
	}
	t.changedKey(t.db, k)
	return cur, nil
}

// parseInt64 parses a string value as Redis does for INCR: a canonical
// decimal that fits in int64.
func parseInt64(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, kv.ErrNotInteger
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != string(b) {
		return 0, kv.ErrNotInteger
	}
	return n, nil
}

func (t *tx) Append(key, value []byte) (int64, error) {
	e := t.lookup(key)
	k := string(key)
	if e == nil {
		t.s.addEntry(t.db, k, &entry{str: bytes.Clone(value), kind: kv.KindString})
		t.changedKey(t.db, k)
		return int64(len(value)), nil
	}
	if e.kind != kv.KindString {
		return 0, kv.ErrWrongType
	}
	// Appending into spare capacity leaves the bytes others may hold (the
	// old length) untouched.
	e.str = append(e.str, value...)
	t.changedKey(t.db, k)
	return int64(len(e.str)), nil
}

func (t *tx) Delete(keys ...[]byte) (int, error) {
	n := 0
	for _, key := range keys {
		if e := t.lookup(key); e != nil {
			k := string(key)
			t.s.removeEntry(t.db, k, e)
			t.changedKey(t.db, k)
			n++
		}
	}
	return n, nil
}

func (t *tx) Exists(keys ...[]byte) (int, error) {
	n := 0
	for _, key := range keys {
		if t.lookup(key) != nil {
			n++
		}
	}
	return n, nil
}

func (t *tx) Expire(key []byte, at time.Time, cond kv.ExpireCond) (bool, error) {
	e := t.lookup(key)
	if e == nil {
		return false, nil
	}
	ms := msOf(at)
	switch cond {
	case kv.ExpireNX:
		if e.expireAt != 0 {
			return false, nil
		}
	case kv.ExpireXX:
		if e.expireAt == 0 {
			return false, nil
		}
	case kv.ExpireGT:
		// A key without expiry counts as infinite.
		if e.expireAt == 0 || (ms != 0 && ms <= e.expireAt) {
			return false, nil
		}
	case kv.ExpireLT:
		if e.expireAt != 0 && (ms == 0 || ms >= e.expireAt) {
			return false, nil
		}
	}
	k := string(key)
	if ms != 0 && ms <= t.nowMillis() {
		// A time in the past deletes the key, as Redis does.
		t.s.removeEntry(t.db, k, e)
		t.changedKey(t.db, k)
		return true, nil
	}
	if ms == 0 && e.expireAt == 0 {
		return false, nil
	}
	t.setExpire(k, e, ms)
	t.changedKey(t.db, k)
	return true, nil
}

func (t *tx) TTL(key []byte) (time.Time, error) {
	e := t.lookup(key)
	if e == nil {
		return time.Time{}, kv.ErrNotFound
	}
	if e.expireAt == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(e.expireAt), nil
}

func (t *tx) Flush() error {
	d := t.s.dbs[t.db]
	for k := range d.keys {
		t.s.touchWatched(t.db, k)
	}
	t.s.dbs[t.db] = newDatabase()
	t.changed = append(t.changed, kv.DBKey{DB: t.db})
	return nil
}

func (t *tx) FlushAll() error {
	cur := t.db
	for db := range t.s.dbs {
		t.db = db
		t.Flush()
	}
	t.db = cur
	return nil
}

// Value returns the value at key, wrapping a string in a kv.Value.
func (t *tx) Value(key []byte) *kv.Value {
	e := t.lookup(key)
	if e == nil {
		return nil
	}
	if e.kind == kv.KindString {
		return &kv.Value{Kind: kv.KindString, Str: e.str}
	}
	return e.obj
}

func (t *tx) Put(key []byte, v *kv.Value, keepTTL bool) {
	e := t.lookup(key)
	k := string(key)
	if e == nil {
		e = &entry{}
		t.s.addEntry(t.db, k, e)
	} else if !keepTTL {
		t.setExpire(k, e, 0)
	}
	e.kind = v.Kind
	if v.Kind == kv.KindString {
		e.str, e.obj = v.Str, nil
	} else {
		e.str, e.obj = nil, v
	}
	// An empty collection stays until Changed: callers create one and
	// then fill it.
	t.changedKey(t.db, k)
}

func (t *tx) Changed(key []byte) {
	d := t.s.dbs[t.db]
	k := string(key)
	e := d.keys[k]
	if e == nil {
		return
	}
	t.changedKey(t.db, k)
	if e.kind != kv.KindString && e.obj.Len() == 0 {
		t.s.removeEntry(t.db, k, e)
	}
}

func (t *tx) Rename(src, dst []byte) error {
	e := t.lookup(src)
	if e == nil {
		return kv.ErrNotFound
	}
	if bytes.Equal(src, dst) {
		return nil
	}
	s, d := string(src), string(dst)
	if old := t.lookup(dst); old != nil {
		t.s.removeEntry(t.db, d, old)
	}
	expireAt := e.expireAt
	t.s.removeEntry(t.db, s, e)
	e.expireAt = expireAt
	t.s.addEntry(t.db, d, e)
	t.changedKey(t.db, s)
	t.changedKey(t.db, d)
	return nil
}

func (t *tx) CopyTo(key []byte, db int, dst []byte, replace bool) (bool, error) {
	e := t.lookup(key)
	if e == nil {
		return false, nil
	}
	src := t.db
	t.db = db
	old := t.lookup(dst)
	if old != nil && !replace {
		t.db = src
		return false, nil
	}
	d := string(dst)
	if old != nil {
		t.s.removeEntry(db, d, old)
	}
	c := &entry{kind: e.kind, expireAt: e.expireAt, str: e.str}
	if e.obj != nil {
		c.obj = cloneValue(e.obj)
	}
	t.s.addEntry(db, d, c)
	t.changedKey(db, d)
	t.db = src
	return true, nil
}

func (t *tx) MoveTo(key []byte, db int) (bool, error) {
	e := t.lookup(key)
	if e == nil {
		return false, nil
	}
	src := t.db
	t.db = db
	exists := t.lookup(key) != nil
	t.db = src
	if exists {
		return false, nil
	}
	k := string(key)
	expireAt := e.expireAt
	t.s.removeEntry(src, k, e)
	e.expireAt = expireAt
	t.s.addEntry(db, k, e)
	t.changedKey(src, k)
	t.changedKey(db, k)
	return true, nil
}

// cloneValue deep-copies a collection (COPY).
func cloneValue(v *kv.Value) *kv.Value {
	c := kv.NewValue(v.Kind)
	switch v.Kind {
	case kv.KindList:
		v.List.Each(0, v.List.Len()-1, func(_ int, b []byte) bool { c.List.PushBack(b); return true })
	case kv.KindHash:
		for f, val := range v.Hash {
			c.Hash[f] = val
		}
	case kv.KindSet:
		for m := range v.Set {
			c.Set[m] = struct{}{}
		}
	case kv.KindZSet:
		v.ZSet.Each(func(e kv.Entry) bool { c.ZSet.Add(e.Member, e.Score); return true })
	}
	return c
}

func (t *tx) Scan(cursor uint64, count int, visit func(key []byte, v *kv.Value)) uint64 {
	d := t.s.dbs[t.db]
	i := int(cursor)
	seen := 0
	for ; i < len(d.slots) && seen < count; i++ {
		k := d.slots[i]
		if k == "" {
			continue
		}
		seen++
		if e := t.lookup([]byte(k)); e != nil {
			visit([]byte(k), t.valueOf(e))
		}
	}
	if i >= len(d.slots) {
		return 0
	}
	return uint64(i)
}

func (t *tx) valueOf(e *entry) *kv.Value {
	if e.kind == kv.KindString {
		return &kv.Value{Kind: kv.KindString, Str: e.str}
	}
	return e.obj
}

func (t *tx) RandomKey() []byte {
	d := t.s.dbs[t.db]
	for tries := 0; tries < 100 && len(d.keys) > 0; tries++ {
		// Go's map iteration starts at a random place.
		for k, e := range d.keys {
			if e.expireAt != 0 && e.expireAt <= t.nowMillis() {
				t.s.expireKey(t.db, k, e, t)
				break
			}
			return []byte(k)
		}
	}
	return nil
}

func (t *tx) Size() int { return len(t.s.dbs[t.db].keys) }

func (t *tx) SwapDB(a, b int) error {
	if a < 0 || b < 0 || a >= len(t.s.dbs) || b >= len(t.s.dbs) {
		return errors.New("ERR DB index is out of range")
	}
	for _, db := range []int{a, b} {
		for k := range t.s.dbs[db].keys {
			t.s.touchWatched(db, k)
		}
	}
	t.s.dbs[a], t.s.dbs[b] = t.s.dbs[b], t.s.dbs[a]
	t.changed = append(t.changed, kv.DBKey{DB: a}, kv.DBKey{DB: b})
	return nil
}

func (t *tx) Watch(key []byte) uint64 {
	k := kv.DBKey{DB: t.db, Key: string(key)}
	w := t.s.watched[k]
	if w == nil {
		t.lookup(key) // an expired key counts as changed from now on
		w = &watch{version: t.s.clock}
		t.s.watched[k] = w
	}
	w.refs++
	return w.version
}

func (t *tx) Unwatch(key []byte) {
	k := kv.DBKey{DB: t.db, Key: string(key)}
	if w := t.s.watched[k]; w != nil {
		if w.refs--; w.refs <= 0 {
			delete(t.s.watched, k)
		}
	}
}

func (t *tx) Version(key []byte) uint64 {
	t.lookup(key) // expiring it now bumps the version
	if w := t.s.watched[kv.DBKey{DB: t.db, Key: string(key)}]; w != nil {
		return w.version
	}
	return 0
}

func (t *tx) Propagate(args ...[]byte) { t.propagateTo(t.db, args...) }

// propagateTo appends a command to the transaction's log records, with a
// SELECT when the database changes.
func (t *tx) propagateTo(db int, args ...[]byte) {
	if t.s.aof == nil {
		return
	}
	if db != t.s.aof.lastDB {
		t.propagated = encodeCommand(t.propagated, -1, [][]byte{[]byte("SELECT"), []byte(strconv.Itoa(db))})
		t.s.aof.lastDB = db
	}
	t.propagated = encodeCommand(t.propagated, -1, args)
	t.propCount++
}
