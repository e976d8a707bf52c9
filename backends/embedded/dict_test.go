package embedded

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mecha-gateway/mecha/backends/kv"
)

// check compares the dict with a model of its keys.
func check(t *testing.T, d *dict, model map[string]*entry) {
	t.Helper()
	if d.len() != len(model) {
		t.Fatalf("len %d, model %d", d.len(), len(model))
	}
	seen := 0
	d.each(func(e *entry) bool {
		if model[e.keyString()] != e {
			t.Fatalf("each: %q is not the model's", e.keyString())
		}
		seen++
		return true
	})
	if seen != len(model) {
		t.Fatalf("each saw %d of %d", seen, len(model))
	}
	for k, e := range model {
		if got := d.find([]byte(k)); got != e {
			t.Fatalf("find %q: %p, want %p", k, got, e)
		}
	}
}

func TestDictAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := newDict()
	model := map[string]*entry{}
	grew, shrank, rehashed := false, false, false
	for round := 0; round < 40; round++ {
		// Fill, then empty most of it: the table doubles and halves,
		// with operations in the middle of each rehash.
		target := 1 + rng.IntN(3000)
		if round%2 == 1 {
			target = rng.IntN(10)
		}
		for len(model) != target {
			size := len(d.t[0])
			if len(model) < target {
				k := fmt.Sprintf("k%d", rng.IntN(1_000_000))
				if model[k] != nil {
					continue
				}
				e := newStringEntry([]byte(k), []byte("v"+k))
				d.add(e)
				model[k] = e
			} else {
				for k, e := range model {
					d.remove(e)
					delete(model, k)
					break
				}
			}
			if d.find([]byte("absent")) != nil {
				t.Fatal("found a key never added")
			}
			rehashed = rehashed || d.rehashing()
			grew = grew || len(d.t[0]) > size
			shrank = shrank || (len(d.t[0]) < size && len(d.t[0]) > 0)
		}
		check(t, d, model)
	}
	if !grew || !shrank || !rehashed {
		t.Fatalf("grew %v shrank %v rehashed %v: the test missed a case", grew, shrank, rehashed)
	}
	for k, e := range model {
		if string(e.str()) != "v"+k {
			t.Fatalf("%q holds %q", k, e.str())
		}
	}
}

// TestDictScanGuarantee: a key present for a whole scan is returned,
// though the table grows and shrinks between the calls.
func TestDictScanGuarantee(t *testing.T) {
	for _, tc := range []struct {
		name       string
		start, mid int // keys before the scan, keys added (or removed, negative) during it
	}{{"grows", 100, 5000}, {"shrinks", 5000, -4900}, {"stable", 1000, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDict()
			var stable []string
			var churn []*entry
			for i := range tc.start {
				k := fmt.Sprintf("key%d", i)
				e := newStringEntry([]byte(k), nil)
				d.add(e)
				if i < 50 {
					stable = append(stable, k)
				} else {
					churn = append(churn, e)
				}
			}
			seen := map[string]bool{}
			cursor, calls := uint64(0), 0
			added := 0
			for {
				var batch []*entry
				batch, cursor = d.scan(cursor, batch)
				for _, e := range batch {
					seen[e.keyString()] = true
				}
				calls++
				// Between calls, change the table by a few percent.
				for i := 0; i < 100; i++ {
					switch {
					case tc.mid > 0 && added < tc.mid:
						d.add(newStringEntry([]byte(fmt.Sprintf("new%d", added)), nil))
						added++
					case tc.mid < 0 && len(churn) > 0:
						d.remove(churn[len(churn)-1])
						churn = churn[:len(churn)-1]
					}
				}
				if cursor == 0 {
					break
				}
				if calls > 1_000_000 {
					t.Fatal("scan does not end")
				}
			}
			for _, k := range stable {
				if !seen[k] {
					t.Fatalf("%q was present throughout and not returned (%d calls)", k, calls)
				}
			}
		})
	}
}

func TestDictRandom(t *testing.T) {
	d := newDict()
	if d.random(rand.IntN) != nil {
		t.Fatal("random on an empty dict")
	}
	counts := map[string]int{}
	for i := range 8 {
		d.add(newStringEntry([]byte(fmt.Sprint(i)), nil))
	}
	for range 8000 {
		counts[d.random(rand.IntN).keyString()]++
	}
	if len(counts) != 8 {
		t.Fatalf("random reached %d of 8 keys", len(counts))
	}
}

func TestEntryValues(t *testing.T) {
	e := newStringEntry([]byte("key"), []byte("ab"))
	held := e.str()
	e.appendStr([]byte("cdefghijklmnopqrstuvwxyz"))
	e.appendStr([]byte("!"))
	if string(held) != "ab" || string(e.str()) != "abcdefghijklmnopqrstuvwxyz!" || e.keyString() != "key" {
		t.Fatalf("after appends: held %q, value %q, key %q", held, e.str(), e.keyString())
	}
	if e.vcap <= e.vlen {
		t.Fatalf("append left no room (len %d cap %d)", e.vlen, e.vcap)
	}
	// What a reader holds never changes, even with room to append.
	held = e.str()
	e.appendStr([]byte("?"))
	if string(held) != "abcdefghijklmnopqrstuvwxyz!" || cap(held) != len(held) {
		t.Fatalf("held %q (cap %d)", held, cap(held))
	}
	e.setStr(nil)
	if v := e.str(); v == nil || len(v) != 0 {
		t.Fatalf("empty string is %#v", v)
	}
	empty := newStringEntry(nil, nil)
	if k := empty.keyBytes(); k == nil || len(k) != 0 || empty.str() == nil {
		t.Fatal("an empty key or value must be non-nil")
	}
	v := kv.NewValue(kv.KindSet)
	v.Set["m"] = struct{}{}
	e.setObj(v)
	if e.kind != kv.KindSet || e.obj() != v || e.keyString() != "key" {
		t.Fatal("setObj")
	}
	e.rekey([]byte("other"))
	if e.keyString() != "other" || e.obj() != v {
		t.Fatal("rekey of a collection")
	}
	s := newStringEntry([]byte("a"), []byte("value"))
	s.rekey([]byte("bb"))
	if s.keyString() != "bb" || string(s.str()) != "value" {
		t.Fatalf("rekey of a string: %q %q", s.keyString(), s.str())
	}
}
