package memcached

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/mecha-gateway/mecha/backends/kv"
)

// tx is one command's access to the store. Memcached has no transactions:
// each method is atomic by itself — a read-modify-write reads the item's
// CAS and writes only if it is unchanged, and starts again otherwise.
type tx struct {
	s   *Store
	ctx context.Context
}

var (
	_ kv.Tx         = (*tx)(nil)
	_ kv.BatchTx    = (*tx)(nil)
	_ kv.GetDeleter = (*tx)(nil)
)

// item is what Memcached holds at a key.
type item struct {
	found bool // Memcached holds an item
	live  bool // ... and its Redis deadline has not passed
	cas   uint64
	at    int64 // deadline in Unix milliseconds; 0: none
	value []byte
	size  int64
}

// maxRetries bounds a read-modify-write that keeps losing the race.
const maxRetries = 10000

func (t *tx) DB() int { return 0 }

func (t *tx) Select(db int) error {
	if db != 0 {
		return errDBRange
	}
	return nil
}

func (t *tx) key(k []byte) key { return mapKey(t.s.prefix, k) }

// one sends a single command for k and returns its reply.
func (t *tx) one(k *key, enc func(b []byte) []byte) (reply, error) {
	sv := t.s.server(k)
	req := getRequest()
	req.buf = enc(req.buf)
	req.n = 1
	if err := sv.do(t.ctx, req); err != nil {
		if !errors.As(err, new(errAbandoned)) {
			req.release()
		}
		return reply{}, err
	}
	r := req.replies[0]
	req.release()
	return r, nil
}

// batch sends one command per index in idx, built by enc, to each key's
// server — one pipelined request per server, all servers at once — and
// returns the replies in the order of idx.
func (t *tx) batch(ks []key, idx []int, enc func(b []byte, i int) []byte) ([]reply, error) {
	out := make([]reply, len(idx))
	groups := make([][]int, len(t.s.servers)) // positions in idx, by server
	for j, i := range idx {
		n := 0
		if len(t.s.servers) > 1 {
			n = t.s.ring.pick(ks[i].stored)
		}
		groups[n] = append(groups[n], j)
	}
	reqs := make([]*request, len(groups))
	var firstErr error
	for n, g := range groups {
		if len(g) == 0 {
			continue
		}
		req := getRequest()
		for _, j := range g {
			req.buf = enc(req.buf, idx[j])
		}
		req.n = len(g)
		if err := t.s.servers[n].send(t.ctx, req); err != nil {
			req.release()
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		reqs[n] = req
	}
	for n, req := range reqs {
		if req == nil {
			continue
		}
		if err := t.s.servers[n].wait(t.ctx, req); err != nil {
			if errors.As(err, new(errAbandoned)) {
				return nil, err // the other requests may still be written to
			}
			req.release()
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		for k, j := range groups[n] {
			out[j] = req.replies[k]
		}
		req.release()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// retry runs op until it reports done: op returns false when another
// client changed the key between its read and its write.
func (t *tx) retry(op func() (bool, error)) error {
	for i := 0; ; i++ {
		done, err := op()
		if err != nil || done {
			return err
		}
		t.s.casRetries.Inc()
		if i >= maxRetries {
			return fmt.Errorf("memcached: the key changed under %d attempts in a row; gave up", i+1)
		}
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if i >= 2 {
			// Many writers on one key: spread them out a little.
			time.Sleep(time.Duration(rand.Int64N(int64(min(i, 100)) * int64(20*time.Microsecond))))
		}
	}
}

// itemOf reads an mg reply at time now.
func (t *tx) itemOf(k *key, r reply, now int64) (item, error) {
	switch r.status {
	case stEN:
		return item{}, nil
	case stVA, stHD:
	default:
		return item{}, t.unexpected(k, r)
	}
	if r.cas == 0 {
		return item{}, fmt.Errorf("memcached %s runs without CAS (-C): Mecha needs it", t.s.server(k).addr)
	}
	it := item{found: true, cas: r.cas, size: r.size}
	it.at, it.live = decodeExpiry(r.flags, r.ttl, now)
	if r.status == stVA {
		it.value = r.value
		if it.value == nil {
			it.value = []byte{}
		}
		it.size = int64(len(it.value))
	}
	return it, nil
}

// unexpected turns a reply no command expects into an error.
func (t *tx) unexpected(k *key, r reply) error {
	switch r.status {
	case stTooLarge:
		return kv.ErrTooLarge
	case stServerError:
		return fmt.Errorf("memcached %s: %s", t.s.server(k).addr, r.msg)
	}
	return t.s.server(k).protocolError("unexpected " + statusText(r))
}

// Flags mg asks for: with the value, or with only its size.
const (
	mgValue = "v c f t"
	mgMeta  = "c f t s"
)

// read returns the item at k.
func (t *tx) read(k *key, value bool) (item, error) {
	flags := mgMeta
	if value {
		flags = mgValue
	}
	r, err := t.one(k, func(b []byte) []byte { return appendMG(b, k, flags) })
	if err != nil {
		return item{}, err
	}
	return t.itemOf(k, r, nowMS())
}

// readMany returns the items at ks[i] for every i in idx, in one request
// per server.
func (t *tx) readMany(ks []key, idx []int, value bool) ([]item, error) {
	flags := mgMeta
	if value {
		flags = mgValue
	}
	rs, err := t.batch(ks, idx, func(b []byte, i int) []byte { return appendMG(b, &ks[i], flags) })
	if err != nil {
		return nil, err
	}
	now := nowMS()
	items := make([]item, len(idx))
	for j, i := range idx {
		if items[j], err = t.itemOf(&ks[i], rs[j], now); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// put stores val at k with deadline at: over it (if its CAS is
// unchanged) when Memcached holds it, as a new item (add) otherwise. It
// reports false when another client got there first.
func (t *tx) put(k *key, val []byte, it item, at, now int64) (bool, error) {
	exp, flags := encodeExpiry(at, now)
	a := setArgs{exptime: exp, flags: flags}
	if it.found {
		a.cas = it.cas
	} else {
		a.mode = 'E'
	}
	r, err := t.one(k, func(b []byte) []byte { return appendMS(b, k, val, a) })
	if err != nil {
		return false, err
	}
	switch r.status {
	case stHD:
		return true, nil
	case stEX, stNF, stNS:
		return false, nil
	}
	return false, t.unexpected(k, r)
}

// remove deletes the item at k if its CAS is still cas; it returns the
// reply's status (HD deleted, NF gone already, EX changed).
func (t *tx) remove(k *key, cas uint64) (status, error) {
	r, err := t.one(k, func(b []byte) []byte { return appendMD(b, k, cas) })
	if err != nil {
		return 0, err
	}
	switch r.status {
	case stHD, stNF, stEX:
		return r.status, nil
	}
	return 0, t.unexpected(k, r)
}

// itemOverhead is what an item takes in Memcached besides its key and
// value (1.6 on 64 bits: a 48-byte header, 8 bytes of CAS, 4 of client
// flags, the key's terminating NUL and the value's CRLF), measured
// against item_size_max.
const itemOverhead = 48 + 8 + 4 + 1 + 2

// checkSize refuses a value of n bytes that the server of k cannot hold.
// Checking here matters: a plain set that Memcached refuses for its size
// also drops the value the key had.
func (t *tx) checkSize(k *key, n int64) error {
	if n+int64(len(k.stored))+itemOverhead > t.s.server(k).itemMax.Load() {
		return kv.ErrTooLarge
	}
	return nil
}

func (t *tx) Get(key []byte) ([]byte, error) {
	k := t.key(key)
	it, err := t.read(&k, true)
	if err != nil {
		return nil, err
	}
	if !it.live {
		return nil, kv.ErrNotFound
	}
	return it.value, nil
}

func (t *tx) GetMany(keys [][]byte) ([][]byte, error) {
	ks, idx := t.keys(keys)
	items, err := t.readMany(ks, idx, true)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, it := range items {
		if it.live {
			out[i] = it.value
		}
	}
	return out, nil
}

func (t *tx) keys(keys [][]byte) ([]key, []int) {
	ks := make([]key, len(keys))
	idx := make([]int, len(keys))
	for i, k := range keys {
		ks[i] = t.key(k)
		idx[i] = i
	}
	return ks, idx
}

func (t *tx) Set(key, value []byte, o kv.SetOptions) (kv.SetResult, error) {
	k := t.key(key)
	if err := t.checkSize(&k, int64(len(value))); err != nil {
		return kv.SetResult{}, err
	}
	at := kv.UnixMillis(o.ExpireAt)
	now := nowMS()
	if !o.NX && !o.XX && !o.Get && !o.KeepTTL {
		// A plain SET: one ms, whatever was there.
		if at != 0 && at <= now {
			// Set and expired at once, as Redis does for a deadline in
			// the past: the key is gone.
			if _, err := t.remove(&k, 0); err != nil {
				return kv.SetResult{}, err
			}
			return kv.SetResult{Done: true}, nil
		}
		exp, flags := encodeExpiry(at, now)
		r, err := t.one(&k, func(b []byte) []byte {
			return appendMS(b, &k, value, setArgs{exptime: exp, flags: flags})
		})
		if err != nil {
			return kv.SetResult{}, err
		}
		if r.status != stHD {
			return kv.SetResult{}, t.unexpected(&k, r)
		}
		return kv.SetResult{Done: true}, nil
	}
	if o.NX && !o.XX && !o.Get && !o.KeepTTL && (at == 0 || at > now) {
		// SET NX: an add stores unless Memcached holds the key; when it
		// does, the key may still be expired for Redis (below).
		exp, flags := encodeExpiry(at, now)
		r, err := t.one(&k, func(b []byte) []byte {
			return appendMS(b, &k, value, setArgs{mode: 'E', exptime: exp, flags: flags})
		})
		if err != nil {
			return kv.SetResult{}, err
		}
		switch r.status {
		case stHD:
			return kv.SetResult{Done: true}, nil
		case stNS:
		default:
			return kv.SetResult{}, t.unexpected(&k, r)
		}
	}
	var res kv.SetResult
	err := t.retry(func() (bool, error) {
		res = kv.SetResult{}
		it, err := t.read(&k, o.Get)
		if err != nil {
			return false, err
		}
		res.HadOld = it.live
		if o.Get && it.live {
			res.Old = it.value
		}
		if (o.NX && it.live) || (o.XX && !it.live) {
			return true, nil
		}
		deadline := at
		if o.KeepTTL && it.live {
			deadline = it.at
		}
		now := nowMS()
		if deadline != 0 && deadline <= now {
			res.Done = true
			if !it.found {
				return true, nil
			}
			st, err := t.remove(&k, it.cas)
			return st != stEX, err
		}
		ok, err := t.put(&k, value, it, deadline, now)
		res.Done = ok
		return ok, err
	})
	return res, err
}

func (t *tx) SetMany(pairs [][]byte) error {
	n := len(pairs) / 2
	ks := make([]key, n)
	idx := make([]int, n)
	for i := range n {
		ks[i] = t.key(pairs[2*i])
		idx[i] = i
		if err := t.checkSize(&ks[i], int64(len(pairs[2*i+1]))); err != nil {
			return err
		}
	}
	rs, err := t.batch(ks, idx, func(b []byte, i int) []byte { return appendMS(b, &ks[i], pairs[2*i+1], setArgs{}) })
	if err != nil {
		return err
	}
	for j, r := range rs {
		if r.status != stHD {
			return t.unexpected(&ks[idx[j]], r)
		}
	}
	return nil
}

// parseInt64 parses a value as Redis does for INCR: a canonical decimal
// that fits in 64 bits.
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

// IncrBy is a compare-and-swap loop: Memcached's own arithmetic (ma) is
// unsigned, saturates at zero and wraps at 2^64, which is not Redis'.
// The key keeps its expiry.
func (t *tx) IncrBy(key []byte, delta int64) (int64, error) {
	k := t.key(key)
	var n int64
	err := t.retry(func() (bool, error) {
		it, err := t.read(&k, true)
		if err != nil {
			return false, err
		}
		var cur int64
		deadline := int64(0)
		if it.live {
			if cur, err = parseInt64(it.value); err != nil {
				return false, err
			}
			deadline = it.at
		}
		if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
			return false, kv.ErrOverflow
		}
		n = cur + delta
		return t.put(&k, strconv.AppendInt(nil, n, 10), it, deadline, nowMS())
	})
	return n, err
}

// Append appends in place (ms in append mode, conditional on the CAS just
// read), so that only the new bytes travel; the key keeps its expiry. A
// key that is absent (or expired) is created.
func (t *tx) Append(key, value []byte) (int64, error) {
	k := t.key(key)
	if err := t.checkSize(&k, int64(len(value))); err != nil {
		return 0, err
	}
	var n int64
	err := t.retry(func() (bool, error) {
		it, err := t.read(&k, false)
		if err != nil {
			return false, err
		}
		if !it.live {
			n = int64(len(value))
			return t.put(&k, value, it, 0, nowMS())
		}
		if err := t.checkSize(&k, it.size+int64(len(value))); err != nil {
			return false, err
		}
		r, err := t.one(&k, func(b []byte) []byte {
			return appendMS(b, &k, value, setArgs{mode: 'A', cas: it.cas})
		})
		if err != nil {
			return false, err
		}
		switch r.status {
		case stHD:
			n = it.size + int64(len(value))
			return true, nil
		case stEX, stNF:
			return false, nil
		case stNS:
			// Not stored: the item went away, or the result would be
			// larger than the server takes.
			again, err := t.read(&k, false)
			if err != nil {
				return false, err
			}
			if again.found && again.cas == it.cas {
				return false, kv.ErrTooLarge
			}
			return false, nil
		}
		return false, t.unexpected(&k, r)
	})
	return n, err
}

// Delete reads every key (one request per server) and then deletes the
// items it found if they are unchanged, counting those that were live; a
// key changed in between is read again.
func (t *tx) Delete(keys ...[]byte) (int, error) {
	ks, idx := t.keys(keys)
	count := 0
	for attempt := 0; len(idx) > 0; attempt++ {
		items, err := t.readMany(ks, idx, false)
		if err != nil {
			return count, err
		}
		var found []int
		var cas []uint64
		var live []bool
		for j, i := range idx {
			if items[j].found {
				found = append(found, i)
				cas = append(cas, items[j].cas)
				live = append(live, items[j].live)
			}
		}
		if len(found) == 0 {
			break
		}
		pos := make(map[int]int, len(found)) // key index → position in found
		for j, i := range found {
			pos[i] = j
		}
		rs, err := t.batch(ks, found, func(b []byte, i int) []byte { return appendMD(b, &ks[i], cas[pos[i]]) })
		if err != nil {
			return count, err
		}
		idx = idx[:0]
		for j, r := range rs {
			switch r.status {
			case stHD:
				if live[j] {
					count++
				}
			case stNF: // deleted by another client first
			case stEX:
				idx = append(idx, found[j]) // changed meanwhile: again
			default:
				return count, t.unexpected(&ks[found[j]], r)
			}
		}
		if len(idx) > 0 {
			t.s.casRetries.Inc()
			if attempt >= maxRetries {
				return count, fmt.Errorf("memcached: keys changed under %d attempts in a row; gave up", attempt+1)
			}
		}
	}
	return count, nil
}

func (t *tx) GetDel(key []byte) ([]byte, error) {
	k := t.key(key)
	var v []byte
	err := t.retry(func() (bool, error) {
		v = nil
		it, err := t.read(&k, true)
		if err != nil || !it.live {
			return err == nil, err
		}
		st, err := t.remove(&k, it.cas)
		if st == stHD {
			v = it.value
		}
		return st != stEX, err
	})
	if err == nil && v == nil {
		err = kv.ErrNotFound
	}
	return v, err
}

func (t *tx) Exists(keys ...[]byte) (int, error) {
	ks, idx := t.keys(keys)
	items, err := t.readMany(ks, idx, false)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, it := range items {
		if it.live {
			n++
		}
	}
	return n, nil
}

// Expire rewrites the item with its new deadline (the deadline lives in
// the item's flags, which only a store changes), conditional on its CAS.
func (t *tx) Expire(key []byte, at time.Time, cond kv.ExpireCond) (bool, error) {
	k := t.key(key)
	ms := kv.UnixMillis(at)
	var done bool
	err := t.retry(func() (bool, error) {
		done = false
		it, err := t.read(&k, true)
		if err != nil || !it.live {
			return err == nil, err
		}
		if !cond.Allows(it.at, ms) {
			return true, nil
		}
		now := nowMS()
		if ms != 0 && ms <= now {
			// A time in the past deletes the key, as in Redis.
			st, err := t.remove(&k, it.cas)
			done = st == stHD
			return st != stEX, err
		}
		if ms == 0 && it.at == 0 {
			return true, nil
		}
		ok, err := t.put(&k, it.value, it, ms, now)
		done = ok
		return ok, err
	})
	return done, err
}

func (t *tx) TTL(key []byte) (time.Time, error) {
	k := t.key(key)
	r, err := t.one(&k, func(b []byte) []byte { return appendMG(b, &k, "c f t") })
	if err != nil {
		return time.Time{}, err
	}
	it, err := t.itemOf(&k, r, nowMS())
	if err != nil {
		return time.Time{}, err
	}
	if !it.live {
		return time.Time{}, kv.ErrNotFound
	}
	if it.at == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(it.at), nil
}

// Flush empties every server (flush_all): FLUSHDB and FLUSHALL are the
// same on Memcached. A server that fails is reported; the others are
// flushed all the same.
func (t *tx) Flush() error {
	errs := make(chan error, len(t.s.servers))
	for _, sv := range t.s.servers {
		go func() { errs <- sv.flush(t.ctx) }()
	}
	var first error
	for range t.s.servers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
