package memcached

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMapKey(t *testing.T) {
	hashed := func(prefix, k string) string {
		sum := sha256.Sum256([]byte(k))
		return prefix + "sha256:" + hex.EncodeToString(sum[:])
	}
	bin := func(n int) string { return strings.Repeat("\x01", n) }
	cases := []struct {
		name, prefix, key string
		token             string
		b                 bool
		stored            string
	}{
		{"plain", "", "user:1", "user:1", false, "user:1"},
		{"utf-8 is plain", "", "café", "café", false, "café"},
		{"prefix", "app:", "k", "app:k", false, "app:k"},
		{"space", "", "a b", base64.StdEncoding.EncodeToString([]byte("a b")), true, "a b"},
		{"control bytes", "", "a\x00\r\n", base64.StdEncoding.EncodeToString([]byte("a\x00\r\n")), true, "a\x00\r\n"},
		{"DEL byte", "", "a\x7f", base64.StdEncoding.EncodeToString([]byte("a\x7f")), true, "a\x7f"},
		{"250 plain bytes", "", strings.Repeat("k", 250), strings.Repeat("k", 250), false, strings.Repeat("k", 250)},
		{"251 plain bytes", "", strings.Repeat("k", 251), hashed("", strings.Repeat("k", 251)), false, hashed("", strings.Repeat("k", 251))},
		{"prefix makes it too long", "p:", strings.Repeat("k", 249), hashed("p:", strings.Repeat("k", 249)), false, hashed("p:", strings.Repeat("k", 249))},
		{"186 binary bytes", "", bin(186), base64.StdEncoding.EncodeToString([]byte(bin(186))), true, bin(186)},
		{"187 binary bytes", "", bin(187), hashed("", bin(187)), false, hashed("", bin(187))},
		{"empty", "", "", hashed("", ""), false, hashed("", "")},
		{"empty with prefix", "app:", "", "app:", false, "app:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := mapKey([]byte(c.prefix), []byte(c.key))
			if string(k.token) != c.token || k.b != c.b || string(k.stored) != c.stored {
				t.Fatalf("mapKey(%q, %q) = token %q b %v stored %q; want %q %v %q", c.prefix, c.key, k.token, k.b, k.stored, c.token, c.b, c.stored)
			}
			if len(k.token) > maxKeyLen {
				t.Fatalf("token of %d bytes", len(k.token))
			}
			if !plainKey(k.token) {
				t.Fatalf("token %q cannot go on a command line", k.token)
			}
		})
	}
	if a, b := mapKey(nil, bytes.Repeat([]byte("x"), 300)), mapKey(nil, bytes.Repeat([]byte("y"), 300)); bytes.Equal(a.stored, b.stored) {
		t.Fatal("two long keys hash to the same name")
	}
}

// memcachedTTL is what mg's t flag reports for an item stored with exptime
// at server time set (seconds, Memcached's clock), read at server time
// read.
func memcachedTTL(exptime, set, read int64) int64 {
	if exptime > maxRelative {
		return exptime - read
	}
	return set + exptime - read
}

func TestExpiryRoundTrip(t *testing.T) {
	const now = int64(1_750_000_000_123)
	rems := []int64{1, 999, 1000, 1001, 1500, 60_000, 86_400_000, maxRelative * 1000, maxRelative*1000 + 1, 40 * 86_400_000, 3 * 365 * 86_400_000}
	for i := 0; i < 200; i++ {
		rems = append(rems, 1+rand.Int64N(90*86_400_000))
	}
	for _, rem := range rems {
		at := now + rem
		exp, flags := encodeExpiry(at, now)
		if flags&expiryMark == 0 {
			t.Fatalf("rem %d: flags %x without the mark", rem, flags)
		}
		if exp <= 0 || exp > maxExptime {
			t.Fatalf("rem %d: exptime %d", rem, exp)
		}
		if rem/1000+1 <= maxRelative && exp > maxRelative {
			t.Fatalf("rem %d: absolute exptime %d for a short TTL", rem, exp)
		}
		// Memcached must keep the item at least until the deadline. Its
		// clock ticks whole seconds at a phase of its own: an item with
		// a relative exptime n lives more than n-1 seconds; one with an
		// absolute exptime lives until that second has begun (a second
		// is kept spare for clocks that disagree).
		setSec := now / 1000
		if exp > maxRelative {
			if exp*1000 < at+1000 || exp*1000 > at+2000 {
				t.Fatalf("rem %d: absolute exptime %d for deadline %d", rem, exp, at)
			}
		} else if (exp-1)*1000 < rem || exp*1000 > rem+2000 {
			t.Fatalf("rem %d: relative exptime %d", rem, exp)
		}
		// Read back at any time before the deadline, with Memcached's clock
		// a second ahead or behind.
		for _, after := range []int64{0, 1, 500, rem / 2, rem - 1} {
			if after < 0 || after >= rem {
				continue
			}
			readAt := now + after
			for _, skew := range []int64{-1, 0, 1} {
				ttl := memcachedTTL(exp, setSec, readAt/1000+skew)
				got, live := decodeExpiry(flags, ttl, readAt)
				if got != at || !live {
					t.Fatalf("rem %d read after %d (skew %d, ttl %d): deadline %d live %v; want %d", rem, after, skew, ttl, got, live, at)
				}
			}
		}
		// After the deadline, while Memcached still holds the item, the key
		// is gone.
		readAt := at + 1
		ttl := memcachedTTL(exp, setSec, readAt/1000)
		if ttl >= 0 {
			if _, live := decodeExpiry(flags, ttl, readAt); live {
				t.Fatalf("rem %d: live after its deadline", rem)
			}
		}
	}
}

func TestExpiryEdges(t *testing.T) {
	const now = int64(1_750_000_000_000)
	if exp, flags := encodeExpiry(0, now); exp != 0 || flags != 0 {
		t.Fatalf("no expiry: %d %d", exp, flags)
	}
	// Past 2038 Memcached cannot follow: the item gets its last exptime.
	if exp, _ := encodeExpiry(4102444800000, now); exp != maxExptime {
		t.Fatalf("year 2100: exptime %d", exp)
	}
	cases := []struct {
		name   string
		flags  uint32
		ttl    int64
		at     int64
		live   bool
		approx bool
	}{
		{"no TTL", 0, -1, 0, true, false},
		{"no TTL, marked flags", expiryMark | 12345, -1, 0, true, false},
		{"another client's TTL", 0, 100, now + 100_000, true, false},
		{"another client's flags", 7, 100, now + 100_000, true, false},
		{"TTL changed by another client", expiryMark | uint32((now+10_000)&(expirySpan-1)), 3600, now + 3_600_000, true, false},
		{"expired for Redis, held by Memcached", expiryMark | uint32((now-200)&(expirySpan-1)), 1, now - 200, false, false},
		{"TTL 0 of another client", 0, 0, now + 1, true, false},
	}
	for _, c := range cases {
		at, live := decodeExpiry(c.flags, c.ttl, now)
		if at != c.at || live != c.live {
			t.Errorf("%s: deadline %d live %v; want %d %v", c.name, at, live, c.at, c.live)
		}
	}
}

func TestEncoding(t *testing.T) {
	k := mapKey(nil, []byte("a b"))
	got := string(appendMS(nil, &k, []byte("v\r\n"), setArgs{mode: 'A', cas: 7, exptime: 10, flags: expiryMark | 5}))
	want := fmt.Sprintf("ms YSBi 3 b MA C7 T10 F%d\r\nv\r\n\r\n", expiryMark|5)
	if got != want {
		t.Fatalf("ms: %q, want %q", got, want)
	}
	if got := string(appendMG(nil, &k, "v c f t")); got != "mg YSBi b v c f t\r\n" {
		t.Fatalf("mg: %q", got)
	}
	p := mapKey(nil, []byte("k"))
	if got := string(appendMD(nil, &p, 0)); got != "md k\r\n" {
		t.Fatalf("md: %q", got)
	}
	if got := string(appendMS(nil, &p, nil, setArgs{})); got != "ms k 0\r\n\r\n" {
		t.Fatalf("empty ms: %q", got)
	}
}

func TestRingSpread(t *testing.T) {
	servers := []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"}
	r := newRing(servers, []int{1, 1, 1})
	if len(r.points) != 3*160 {
		t.Fatalf("%d points, want 160 per server", len(r.points))
	}
	counts := make([]int, 3)
	const n = 30000
	for i := 0; i < n; i++ {
		counts[r.pick([]byte(fmt.Sprintf("key:%d", i)))]++
	}
	for i, c := range counts {
		if share := float64(c) / n; share < 0.2 || share > 0.47 {
			t.Errorf("server %d holds %.2f of the keys: %v", i, share, counts)
		}
	}
	// Weights: twice the weight, about twice the keys.
	w := newRing(servers[:2], []int{1, 2})
	heavy := 0
	for i := 0; i < n; i++ {
		if w.pick([]byte(fmt.Sprintf("key:%d", i))) == 1 {
			heavy++
		}
	}
	if share := float64(heavy) / n; share < 0.55 || share > 0.78 {
		t.Errorf("weight 2 of 3 holds %.2f of the keys", share)
	}
}

func TestRingConsistency(t *testing.T) {
	three := []string{"a:1", "b:1", "c:1"}
	r3 := newRing(three, []int{1, 1, 1})
	r4 := newRing(append(three, "d:1"), []int{1, 1, 1, 1})
	moved := 0
	const n = 20000
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		a, b := r3.pick(k), r4.pick(k)
		if a != b {
			if b != 3 {
				t.Fatalf("key %s moved from %d to %d, not to the new server", k, a, b)
			}
			moved++
		}
	}
	if share := float64(moved) / n; share < 0.12 || share > 0.4 {
		t.Fatalf("adding a fourth server moved %.2f of the keys", share)
	}
	// pick is the first point clockwise from the key's hash.
	for i := 0; i < 2000; i++ {
		k := []byte(fmt.Sprintf("x%d", i))
		h := hashOf(k)
		best, owner := uint64(1<<33), -1
		for _, p := range r4.points {
			dist := (uint64(p.hash) - uint64(h) + 1<<32) % (1 << 32)
			if dist < best {
				best, owner = dist, p.srv
			}
		}
		if got := r4.pick(k); got != owner {
			t.Fatalf("key %s: pick %d, first point clockwise belongs to %d", k, got, owner)
		}
	}
}
