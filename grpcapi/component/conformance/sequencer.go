package conformance

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Sequencer runs the sequencer suite: ids start at 1, blocks are
// consecutive and never overlap, keys are independent, concurrent
// reservations are unique, and a reopened store continues above the last
// id.
func Sequencer(t *testing.T, h Harness[component.SequencerStore]) {
	t.Run("FirstIsOne", func(t *testing.T) {
		in := open(t, h)
		key := name(t, "seq")
		for want := int64(1); want <= 3; want++ {
			if got := reserve(t, in.c, key, 1); got != want {
				t.Fatalf("Reserve(%s, 1) #%d = %d, want %d", key, want, got, want)
			}
		}
	})
	t.Run("Blocks", func(t *testing.T) {
		in := open(t, h)
		key := name(t, "seq")
		next := int64(1)
		for _, n := range []int64{10, 1, 5, 1, 1, 1000, 3, 1 << 20, 1} {
			first := reserve(t, in.c, key, n)
			if first != next {
				t.Fatalf("Reserve(%s, %d) = %d, want %d (the block after the last one)", key, n, first, next)
			}
			next = first + n
		}
	})
	t.Run("KeysIndependent", func(t *testing.T) {
		in := open(t, h)
		a, b := name(t, "seq"), name(t, "seq")
		reserve(t, in.c, a, 100)
		if got := reserve(t, in.c, b, 1); got != 1 {
			t.Errorf("first id of a new key after another key's reservations = %d, want 1", got)
		}
		// Keys that share a prefix are still different keys.
		if got := reserve(t, in.c, a+"x", 1); got != 1 {
			t.Errorf("first id of key %sx = %d, want 1", a, got)
		}
		if got := reserve(t, in.c, a, 1); got != 101 {
			t.Errorf("Reserve(%s, 1) after 100 = %d, want 101", a, got)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		in := open(t, h)
		key := name(t, "seq")
		const workers, per = 16, 40
		var (
			mu   sync.Mutex
			all  []int64
			errs []error
			wg   sync.WaitGroup
		)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last int64
				var mine []int64
				for i := range per {
					n := int64(1 + (w+i)%3)
					first, err := in.c.Reserve(context.Background(), key, n)
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("worker %d: Reserve: %w", w, err))
						mu.Unlock()
						return
					}
					if first <= last {
						mu.Lock()
						errs = append(errs, fmt.Errorf("worker %d: Reserve returned %d after it had reserved up to %d", w, first, last))
						mu.Unlock()
					}
					for id := first; id < first+n; id++ {
						mine = append(mine, id)
					}
					last = first + n - 1
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		slices.Sort(all)
		for i, id := range all {
			if id != int64(i+1) {
				t.Fatalf("ids reserved concurrently: position %d holds %d, want %d (ids must be unique and without gaps)", i, id, i+1)
			}
		}
		if got, want := reserve(t, in.c, key, 1), int64(len(all)+1); got != want {
			t.Errorf("Reserve after the concurrent ones = %d, want %d", got, want)
		}
	})
	t.Run("SurvivesReopen", func(t *testing.T) {
		in := open(t, h)
		key := name(t, "seq")
		reserve(t, in.c, key, 41)
		if got := reserve(t, in.c, key, 1); got != 42 {
			t.Fatalf("Reserve = %d, want 42", got)
		}
		in.close()
		in = open(t, h)
		if got := reserve(t, in.c, key, 1); got != 43 {
			t.Fatalf("Reserve after reopen = %d, want 43", got)
		}
	})
}

func reserve(t *testing.T, c component.SequencerStore, key string, n int64) int64 {
	t.Helper()
	first, err := c.Reserve(context.Background(), key, n)
	if err != nil {
		t.Fatalf("Reserve(%s, %d): %v", key, n, err)
	}
	return first
}
