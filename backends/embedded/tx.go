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
	scanBuf    []*entry
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
	return e.str(), nil
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
			r.Old = e.str()
		}
	}
	if (o.NX && e != nil) || (o.XX && e == nil) {
		return r, nil
	}
	if e != nil {
		// Replace in place: the key keeps its bucket.
		e.setStr(value)
		if !o.KeepTTL {
			t.setExpire(e, kv.UnixMillis(o.ExpireAt))
		}
	} else {
		e = newStringEntry(key, value)
		t.s.addEntry(t.db, e)
		if !o.ExpireAt.IsZero() {
			t.setExpire(e, kv.UnixMillis(o.ExpireAt))
		}
	}
	t.changedKey(t.db, e.keyString())
	r.Done = true
	return r, nil
}

// setExpire sets an entry's expiry (0: none).
func (t *tx) setExpire(e *entry, at int64) {
	d := t.s.dbs[t.db]
	if at == 0 {
		if e.expireAt != 0 {
			delete(d.volatile, e)
		}
	} else if e.expireAt == 0 {
		d.volatile[e] = struct{}{}
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
		n, err := parseInt64(e.str())
		if err != nil {
			return 0, kv.ErrNotInteger
		}
		cur = n
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, kv.ErrOverflow
	}
	cur += delta
	var buf [20]byte
	val := strconv.AppendInt(buf[:0], cur, 10)
	if e != nil {
		e.setStr(val)
	} else {
		e = newStringEntry(key, val)
		t.s.addEntry(t.db, e)
	}
	t.changedKey(t.db, e.keyString())
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
	if e == nil {
		e = newStringEntry(key, value)
		t.s.addEntry(t.db, e)
	} else if e.kind != kv.KindString {
		return 0, kv.ErrWrongType
	} else {
		e.appendStr(value)
	}
	t.changedKey(t.db, e.keyString())
	return int64(e.vlen), nil
}

func (t *tx) Delete(keys ...[]byte) (int, error) {
	n := 0
	for _, key := range keys {
		if e := t.lookup(key); e != nil {
			t.s.removeEntry(t.db, e)
			t.changedKey(t.db, e.keyString())
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
	ms := kv.UnixMillis(at)
	if !cond.Allows(e.expireAt, ms) {
		return false, nil
	}
	if ms != 0 && ms <= t.nowMillis() {
		// A time in the past deletes the key, as Redis does.
		t.s.removeEntry(t.db, e)
		t.changedKey(t.db, e.keyString())
		return true, nil
	}
	if ms == 0 && e.expireAt == 0 {
		return false, nil
	}
	t.setExpire(e, ms)
	t.changedKey(t.db, e.keyString())
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
	t.s.touchWatchedIn(t.db, nil)
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
	return e.value()
}

func (t *tx) Put(key []byte, v *kv.Value, keepTTL bool) {
	e := t.lookup(key)
	switch {
	case e == nil && v.Kind == kv.KindString:
		e = newStringEntry(key, v.Str)
		t.s.addEntry(t.db, e)
	case e == nil:
		e = newEntry(key)
		e.setObj(v)
		t.s.addEntry(t.db, e)
	default:
		if !keepTTL {
			t.setExpire(e, 0)
		}
		if v.Kind == kv.KindString {
			e.setStr(v.Str)
		} else {
			e.setObj(v)
		}
	}
	// An empty collection stays until Changed: callers create one and
	// then fill it.
	t.changedKey(t.db, e.keyString())
}

func (t *tx) Changed(key []byte) {
	e := t.s.dbs[t.db].keys.find(key)
	if e == nil {
		return
	}
	t.changedKey(t.db, e.keyString())
	if e.kind != kv.KindString && e.obj().Len() == 0 {
		t.s.removeEntry(t.db, e)
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
	if old := t.lookup(dst); old != nil {
		t.s.removeEntry(t.db, old)
	}
	t.s.removeEntry(t.db, e)
	e.rekey(dst)
	t.s.addEntry(t.db, e)
	t.changedKey(t.db, string(src))
	t.changedKey(t.db, e.keyString())
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
	t.db = src
	if old != nil && !replace {
		return false, nil
	}
	if old != nil {
		t.s.removeEntry(db, old)
	}
	var c *entry
	if e.kind == kv.KindString {
		c = newStringEntry(dst, e.str())
	} else {
		c = newEntry(dst)
		c.setObj(cloneValue(e.obj()))
	}
	c.expireAt = e.expireAt
	t.s.addEntry(db, c)
	t.changedKey(db, c.keyString())
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
	t.s.removeEntry(src, e)
	t.s.addEntry(db, e)
	t.changedKey(src, e.keyString())
	t.changedKey(db, e.keyString())
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

// Scan visits the keys of the dict buckets at cursor, and of the next
// ones until count keys or 10×count buckets, as Redis' SCAN does.
func (t *tx) Scan(cursor uint64, count int, visit func(key []byte, v *kv.Value)) uint64 {
	d := t.s.dbs[t.db].keys
	batch := t.scanBuf[:0]
	for budget := 10 * max(count, 1); ; budget-- {
		batch, cursor = d.scan(cursor, batch)
		if cursor == 0 || budget <= 1 || len(batch) >= count {
			break
		}
	}
	// The buckets are read before any key is expired: expiring unlinks.
	for _, e := range batch {
		if e.expireAt != 0 && e.expireAt <= t.nowMillis() {
			t.s.expireKey(t.db, e, t)
			continue
		}
		visit(e.keyBytes(), e.value())
	}
	clear(batch)
	t.scanBuf = batch[:0]
	return cursor
}

func (t *tx) RandomKey() []byte {
	d := t.s.dbs[t.db].keys
	for tries := 0; tries < 100; tries++ {
		e := d.random(randIntN)
		if e == nil {
			return nil
		}
		if e.expireAt != 0 && e.expireAt <= t.nowMillis() {
			t.s.expireKey(t.db, e, t)
			continue
		}
		return e.keyBytes()
	}
	return nil
}

func (t *tx) Size() int { return t.s.dbs[t.db].keys.len() }

func (t *tx) SwapDB(a, b int) error {
	if a < 0 || b < 0 || a >= len(t.s.dbs) || b >= len(t.s.dbs) {
		return errors.New("ERR DB index is out of range")
	}
	t.s.touchWatchedIn(a, t.s.dbs[b])
	t.s.touchWatchedIn(b, t.s.dbs[a])
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
