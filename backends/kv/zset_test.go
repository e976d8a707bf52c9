package kv

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestZSetAgainstModel drives the skip list and a sorted slice with the
// same random operations and compares ranks and ranges after each.
func TestZSetAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	z := NewZSet()
	model := map[string]float64{}
	sorted := func() []Entry {
		var es []Entry
		for m, s := range model {
			es = append(es, Entry{m, s})
		}
		sort.Slice(es, func(i, j int) bool { return less(es[i].Score, es[i].Member, es[j].Score, es[j].Member) })
		return es
	}
	for step := 0; step < 3000; step++ {
		m := fmt.Sprintf("m%d", r.IntN(200))
		switch r.IntN(3) {
		case 0, 1:
			s := float64(r.IntN(50))
			_, existed := model[m]
			if added := z.Add(m, s); added == existed {
				t.Fatalf("step %d: Add(%s) added=%v existed=%v", step, m, added, existed)
			}
			model[m] = s
		case 2:
			_, existed := model[m]
			if z.Remove(m) != existed {
				t.Fatalf("step %d: Remove(%s)", step, m)
			}
			delete(model, m)
		}
		if step%50 != 0 {
			continue
		}
		want := sorted()
		if z.Len() != len(want) {
			t.Fatalf("Len %d want %d", z.Len(), len(want))
		}
		var got []Entry
		z.RangeByRank(0, z.Len()-1, false, func(e Entry) bool { got = append(got, e); return true })
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("step %d rank %d: %v want %v", step, i, got[i], want[i])
			}
			if rk, _ := z.Rank(want[i].Member, false); rk != i {
				t.Fatalf("Rank(%s) = %d want %d", want[i].Member, rk, i)
			}
			if rk, _ := z.Rank(want[i].Member, true); rk != len(want)-1-i {
				t.Fatalf("reverse Rank(%s) = %d", want[i].Member, rk)
			}
		}
		var rev []Entry
		z.RangeByRank(0, z.Len()-1, true, func(e Entry) bool { rev = append(rev, e); return true })
		for i := range want {
			if rev[i] != want[len(want)-1-i] {
				t.Fatalf("reverse range differs at %d", i)
			}
		}
		sr := ScoreRange{Min: 10, Max: 20, MinEx: true}
		var inRange []Entry
		for _, e := range want {
			if e.Score > 10 && e.Score <= 20 {
				inRange = append(inRange, e)
			}
		}
		var gotRange []Entry
		z.RangeByScore(sr, false, 0, func(e Entry) bool { gotRange = append(gotRange, e); return true })
		if fmt.Sprint(gotRange) != fmt.Sprint(inRange) {
			t.Fatalf("score range: %v want %v", gotRange, inRange)
		}
	}
}

func TestList(t *testing.T) {
	var l List
	for i := 0; i < 100; i++ {
		l.PushBack([]byte{byte(i)})
		l.PushFront([]byte{byte(200 + i%50)})
	}
	if l.Len() != 200 || l.Index(0)[0] != 200+99%50 || l.Index(199)[0] != 99 {
		t.Fatalf("len %d", l.Len())
	}
	l.Insert(100, []byte("mid"))
	if string(l.Index(100)) != "mid" || l.Len() != 201 {
		t.Fatal("insert")
	}
	l.RemoveAt(100)
	for i := 0; i < 150; i++ {
		l.PopFront()
	}
	if l.Len() != 50 || l.Index(0)[0] != 50 {
		t.Fatalf("after pops len %d first %d", l.Len(), l.Index(0)[0])
	}
	l.Trim(10, 19)
	if l.Len() != 10 || l.Index(0)[0] != 60 {
		t.Fatal("trim")
	}
}
