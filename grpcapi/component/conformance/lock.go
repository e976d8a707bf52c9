package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// LockStore runs the lock suite: statuses, leases and their expiry,
// renewal, fencing tokens (also across a reopen) and a safety check of
// many owners contending for one resource.
func LockStore(t *testing.T, h Harness[component.LockStore]) {
	ls := &lockSuite{h: h, ttl: h.LockTTL}
	if ls.ttl <= 0 {
		ls.ttl = 250 * time.Millisecond
	}
	t.Run("Statuses", ls.statuses)
	t.Run("NotReentrant", ls.notReentrant)
	t.Run("LeaseExpiry", ls.leaseExpiry)
	t.Run("Renew", ls.renew)
	t.Run("TokensIncrease", ls.tokensIncrease)
	t.Run("SurvivesReopen", ls.reopen)
	t.Run("Safety", ls.safety)
}

type lockSuite struct {
	h   Harness[component.LockStore]
	ttl time.Duration
}

func tryLock(t *testing.T, c component.LockStore, resource, owner string, ttl time.Duration) (uint64, bool) {
	t.Helper()
	tok, ok, err := c.TryLock(context.Background(), resource, owner, ttl)
	if err != nil {
		t.Fatalf("TryLock(%s, %s): %v", resource, owner, err)
	}
	if ok && tok == 0 {
		t.Fatalf("TryLock(%s, %s) succeeded with fencing token 0", resource, owner)
	}
	return tok, ok
}

func mustLock(t *testing.T, c component.LockStore, resource, owner string, ttl time.Duration) uint64 {
	t.Helper()
	tok, ok := tryLock(t, c, resource, owner, ttl)
	if !ok {
		t.Fatalf("TryLock(%s, %s) failed, the lock should be free", resource, owner)
	}
	return tok
}

func mustNotLock(t *testing.T, c component.LockStore, resource, owner string, why string) {
	t.Helper()
	if tok, ok := tryLock(t, c, resource, owner, time.Minute); ok {
		t.Fatalf("TryLock(%s, %s) succeeded (token %d) though %s", resource, owner, tok, why)
	}
}

func unlock(t *testing.T, c component.LockStore, resource, owner string, want component.LockStatus) {
	t.Helper()
	st, err := c.Unlock(context.Background(), resource, owner)
	if err != nil {
		t.Fatalf("Unlock(%s, %s): %v", resource, owner, err)
	}
	if st != want {
		t.Fatalf("Unlock(%s, %s) = %v, want %v", resource, owner, st, want)
	}
}

func renew(t *testing.T, c component.LockStore, resource, owner string, ttl time.Duration, want component.LockStatus, wantToken uint64) {
	t.Helper()
	tok, st, err := c.Renew(context.Background(), resource, owner, ttl)
	if err != nil {
		t.Fatalf("Renew(%s, %s): %v", resource, owner, err)
	}
	if st != want {
		t.Fatalf("Renew(%s, %s) = %v, want %v", resource, owner, st, want)
	}
	if want == component.LockSuccess && tok != wantToken {
		t.Fatalf("Renew(%s, %s) returned token %d, want the lock's token %d (renew keeps the token)", resource, owner, tok, wantToken)
	}
}

func (ls *lockSuite) statuses(t *testing.T) {
	in := open(t, ls.h)
	r := name(t, "res")
	free := name(t, "free")
	unlock(t, in.c, free, "a", component.LockDoesNotExist)
	renew(t, in.c, free, "a", time.Minute, component.LockDoesNotExist, 0)

	tok := mustLock(t, in.c, r, "a", time.Minute)
	mustNotLock(t, in.c, r, "b", "a holds it")
	unlock(t, in.c, r, "b", component.LockBelongsToOthers)
	renew(t, in.c, r, "b", time.Minute, component.LockBelongsToOthers, 0)
	mustNotLock(t, in.c, r, "b", "a still holds it after b's unlock and renew")
	renew(t, in.c, r, "a", time.Minute, component.LockSuccess, tok)
	// Resources are independent; owner names are not special.
	other := mustLock(t, in.c, r+"-2", "b", time.Minute)
	mustLock(t, in.c, r+"-3", "a", time.Minute)
	unlock(t, in.c, r, "a", component.LockSuccess)
	unlock(t, in.c, r, "a", component.LockDoesNotExist)
	renew(t, in.c, r, "a", time.Minute, component.LockDoesNotExist, 0)
	tok2 := mustLock(t, in.c, r, "b", time.Minute)
	if tok2 <= tok {
		t.Errorf("token after re-acquisition %d, want > %d", tok2, tok)
	}
	unlock(t, in.c, r, "a", component.LockBelongsToOthers)
	unlock(t, in.c, r, "b", component.LockSuccess)
	unlock(t, in.c, r+"-2", "b", component.LockSuccess)
	unlock(t, in.c, r+"-3", "a", component.LockSuccess)
	if tok3 := mustLock(t, in.c, r+"-2", "a", time.Minute); tok3 <= other {
		t.Errorf("token of %s-2 after re-acquisition %d, want > %d", r, tok3, other)
	}
	unlock(t, in.c, r+"-2", "a", component.LockSuccess)
}

func (ls *lockSuite) notReentrant(t *testing.T) {
	in := open(t, ls.h)
	r := name(t, "res")
	tok := mustLock(t, in.c, r, "a", time.Minute)
	mustNotLock(t, in.c, r, "a", "a already holds it (locks are not reentrant)")
	// The failed second TryLock did not change the lock: one unlock frees it.
	renew(t, in.c, r, "a", time.Minute, component.LockSuccess, tok)
	unlock(t, in.c, r, "a", component.LockSuccess)
	unlock(t, in.c, r, "a", component.LockDoesNotExist)
	mustLock(t, in.c, r, "b", time.Minute)
	unlock(t, in.c, r, "b", component.LockSuccess)
}

func (ls *lockSuite) leaseExpiry(t *testing.T) {
	in := open(t, ls.h)
	r := name(t, "res")
	start := time.Now()
	tok := mustLock(t, in.c, r, "a", ls.ttl)
	mustNotLock(t, in.c, r, "b", "a's lease has not run out")
	var tokB uint64
	var got time.Time
	eventually(t, 10*time.Second+4*ls.ttl, func() bool {
		tk, ok := tryLock(t, in.c, r, "b", time.Minute)
		if ok {
			tokB, got = tk, time.Now()
		}
		return ok
	}, "b acquires the lock after a's lease of %v ran out", func() any { return ls.ttl })
	if held := got.Sub(start); held < ls.ttl {
		t.Fatalf("b acquired the lock %v after a acquired it with a lease of %v", held, ls.ttl)
	}
	if tokB <= tok {
		t.Fatalf("b's token %d after a's lease ran out, want > a's %d", tokB, tok)
	}
	unlock(t, in.c, r, "a", component.LockBelongsToOthers)
	renew(t, in.c, r, "a", time.Minute, component.LockBelongsToOthers, 0)
	unlock(t, in.c, r, "b", component.LockSuccess)

	// An expired lock that nobody took is not held any more.
	r2 := name(t, "res")
	mustLock(t, in.c, r2, "a", ls.ttl)
	time.Sleep(2 * ls.ttl)
	renew(t, in.c, r2, "a", time.Minute, component.LockDoesNotExist, 0)
	unlock(t, in.c, r2, "a", component.LockDoesNotExist)
	mustLock(t, in.c, r2, "a", time.Minute)
	unlock(t, in.c, r2, "a", component.LockSuccess)
}

func (ls *lockSuite) renew(t *testing.T) {
	in := open(t, ls.h)
	r := name(t, "res")
	ttl := max(4*ls.ttl, time.Second)
	start := time.Now()
	tok := mustLock(t, in.c, r, "a", ttl)
	time.Sleep(ttl / 4)
	if time.Since(start) >= ttl {
		t.Skip("the machine is too slow to renew within the lease")
	}
	renew(t, in.c, r, "a", 4*ttl, component.LockSuccess, tok)
	// Past the first lease, the lock is still a's.
	time.Sleep(time.Until(start.Add(ttl + ttl/4)))
	mustNotLock(t, in.c, r, "b", "a renewed its lease")
	renew(t, in.c, r, "a", 4*ttl, component.LockSuccess, tok)
	unlock(t, in.c, r, "a", component.LockSuccess)
	if tok2 := mustLock(t, in.c, r, "b", time.Minute); tok2 <= tok {
		t.Errorf("token %d after renewals and unlock, want > %d", tok2, tok)
	}
	unlock(t, in.c, r, "b", component.LockSuccess)

	// Renewing with a short lease shortens it.
	r2 := name(t, "res")
	tok = mustLock(t, in.c, r2, "a", time.Minute)
	renew(t, in.c, r2, "a", ls.ttl, component.LockSuccess, tok)
	eventually(t, 10*time.Second+4*ls.ttl, func() bool {
		_, ok := tryLock(t, in.c, r2, "b", time.Minute)
		return ok
	}, "the lease shortened by Renew runs out")
	unlock(t, in.c, r2, "b", component.LockSuccess)
}

func (ls *lockSuite) tokensIncrease(t *testing.T) {
	in := open(t, ls.h)
	r := name(t, "res")
	owners := []string{"a", "b", "c"}
	var last uint64
	for i := range 30 {
		o := owners[i%len(owners)]
		tok := mustLock(t, in.c, r, o, time.Minute)
		if tok <= last {
			t.Fatalf("acquisition %d by %s: token %d, want > %d", i, o, tok, last)
		}
		last = tok
		if i%5 == 4 {
			renew(t, in.c, r, o, time.Minute, component.LockSuccess, tok)
		}
		unlock(t, in.c, r, o, component.LockSuccess)
	}
	// Tokens of another resource do not have to follow, but must still be
	// non-zero and increase for that resource.
	r2 := name(t, "res")
	t1 := mustLock(t, in.c, r2, "a", time.Minute)
	unlock(t, in.c, r2, "a", component.LockSuccess)
	if t2 := mustLock(t, in.c, r2, "a", time.Minute); t2 <= t1 {
		t.Errorf("second resource: token %d then %d", t1, t2)
	}
	unlock(t, in.c, r2, "a", component.LockSuccess)
}

func (ls *lockSuite) reopen(t *testing.T) {
	in := open(t, ls.h)
	held := name(t, "held")
	freed := name(t, "freed")
	tokHeld := mustLock(t, in.c, held, "a", time.Minute)
	var tokFreed uint64
	for range 3 {
		tokFreed = mustLock(t, in.c, freed, "a", time.Minute)
		unlock(t, in.c, freed, "a", component.LockSuccess)
	}
	in.close()

	in = open(t, ls.h)
	// The lease survives the restart; so does the token counter.
	mustNotLock(t, in.c, held, "b", "a's lease was taken before the reopen and has not run out")
	renew(t, in.c, held, "a", time.Minute, component.LockSuccess, tokHeld)
	unlock(t, in.c, held, "a", component.LockSuccess)
	if tok := mustLock(t, in.c, held, "b", time.Minute); tok <= tokHeld {
		t.Errorf("token after reopen %d, want > %d from before", tok, tokHeld)
	}
	unlock(t, in.c, held, "b", component.LockSuccess)
	if tok := mustLock(t, in.c, freed, "b", time.Minute); tok <= tokFreed {
		t.Errorf("token after reopen %d, want > %d from before", tok, tokFreed)
	}
	unlock(t, in.c, freed, "b", component.LockSuccess)
}

// tenure is one acquisition in the safety check, as its holder saw it.
type tenure struct {
	owner    int
	token    uint64
	tryStart time.Time // TryLock called
	acquired time.Time // TryLock returned success
	validEnd time.Time // the lease the holder may rely on runs out (or it unlocked)
	stalled  bool
	writes   []write
}

type write struct {
	start, end time.Time
	accepted   bool
}

// fencedStorage accepts a write only with a token at least as large as
// every token it has seen: what a storage service does with fencing
// tokens.
type fencedStorage struct {
	mu       sync.Mutex
	highest  uint64
	accepted []uint64
}

func (s *fencedStorage) write(token uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return false
	}
	s.highest = token
	s.accepted = append(s.accepted, token)
	return true
}

// safety lets owners contend for one resource with short leases, some
// of them stalling past their lease, and checks that no two leases the
// holders relied on overlapped, that tokens follow acquisition order, and
// that every write made within a valid lease was accepted by a storage
// that fences with the tokens.
func (ls *lockSuite) safety(t *testing.T) {
	in := open(t, ls.h)
	r := name(t, "res")
	const owners = 8
	ttl := ls.ttl
	run := max(2500*time.Millisecond, 10*ttl)
	deadline := time.Now().Add(run)
	store := &fencedStorage{}
	var (
		mu      sync.Mutex
		tenures []*tenure
		errs    []error
		wg      sync.WaitGroup
	)
	for o := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(o), uint64(time.Now().UnixNano())))
			owner := fmt.Sprintf("owner-%d", o)
			first := true
			ctx := context.Background()
			for time.Now().Before(deadline) {
				tryStart := time.Now()
				tok, ok, err := in.c.TryLock(ctx, r, owner, ttl)
				acquired := time.Now()
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("TryLock by %s: %w", owner, err))
					mu.Unlock()
					return
				}
				if !ok {
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					continue
				}
				tn := &tenure{owner: o, token: tok, tryStart: tryStart, acquired: acquired, validEnd: tryStart.Add(ttl)}
				doWrite := func() {
					w := write{start: time.Now()}
					w.accepted = store.write(tok)
					w.end = time.Now()
					tn.writes = append(tn.writes, w)
				}
				// Owner 0 stalls on its first acquisition, others now and
				// then: they sleep past their lease, then write.
				if (o == 0 && first) || rng.IntN(8) == 0 {
					tn.stalled = true
					time.Sleep(ttl + ttl/2)
					doWrite()
				} else {
					time.Sleep(time.Duration(rng.Int64N(int64(ttl / 5))))
					doWrite()
					if rng.IntN(3) == 0 {
						renewStart := time.Now()
						rt, st, err := in.c.Renew(ctx, r, owner, ttl)
						if err == nil && st == component.LockSuccess {
							if rt != tok {
								mu.Lock()
								errs = append(errs, fmt.Errorf("Renew by %s returned token %d, it holds %d", owner, rt, tok))
								mu.Unlock()
							}
							// A renewal extends a lease only if the lease had not
							// run out meanwhile.
							if renewStart.Before(tn.validEnd) {
								tn.validEnd = renewStart.Add(ttl)
							}
						}
						time.Sleep(time.Duration(rng.Int64N(int64(ttl / 5))))
						doWrite()
					}
				}
				first = false
				unlockStart := time.Now()
				if unlockStart.Before(tn.validEnd) {
					tn.validEnd = unlockStart
				}
				if _, err := in.c.Unlock(ctx, r, owner); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("Unlock by %s: %w", owner, err))
					mu.Unlock()
					return
				}
				mu.Lock()
				tenures = append(tenures, tn)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(tenures) < owners {
		t.Fatalf("only %d acquisitions in %v by %d owners", len(tenures), run, owners)
	}
	slices.SortFunc(tenures, func(a, b *tenure) int { return a.acquired.Compare(b.acquired) })
	seen := map[uint64]int{}
	for i, a := range tenures {
		if j, dup := seen[a.token]; dup {
			t.Errorf("token %d handed out twice (owners %d and %d)", a.token, tenures[j].owner, a.owner)
		}
		seen[a.token] = i
	}
	// Leases relied upon never overlap.
	for i, a := range tenures {
		if !a.acquired.Before(a.validEnd) {
			continue // the lease ran out before the holder knew it had it
		}
		for _, b := range tenures[i+1:] {
			if b.acquired.Before(a.validEnd) && b.acquired.Before(b.validEnd) {
				t.Errorf("owners %d (token %d) and %d (token %d) both held the lock: %d's lease ran to %v after its acquisition, %d acquired %v after it",
					a.owner, a.token, b.owner, b.token, a.owner, a.validEnd.Sub(a.acquired), b.owner, b.acquired.Sub(a.acquired))
			}
		}
	}
	// Tokens follow the order of acquisitions that did not overlap in time.
	for _, a := range tenures {
		for _, b := range tenures {
			if a.acquired.Before(b.tryStart) && a.token >= b.token {
				t.Errorf("owner %d acquired token %d before owner %d tried and got token %d", a.owner, a.token, b.owner, b.token)
			}
		}
	}
	// A write within a valid lease is accepted by the fenced storage; the
	// storage accepted writes in token order.
	stalls, overtaken := 0, 0
	for _, a := range tenures {
		for _, w := range a.writes {
			if !w.start.Before(a.acquired) && w.end.Before(a.validEnd) && !w.accepted {
				t.Errorf("owner %d's write with token %d within its lease was refused: a larger token was handed out while it held the lock", a.owner, a.token)
			}
		}
		if a.stalled {
			stalls++
			for _, b := range tenures {
				if b.token > a.token && b.acquired.Before(a.writes[0].start) {
					overtaken++
					break
				}
			}
		}
	}
	for i := 1; i < len(store.accepted); i++ {
		if store.accepted[i] < store.accepted[i-1] {
			t.Fatalf("storage accepted token %d after %d", store.accepted[i], store.accepted[i-1])
		}
	}
	if overtaken == 0 {
		t.Errorf("of %d holders that stalled past their lease, none was overtaken by another owner: leases do not expire", stalls)
	}
	t.Logf("%d acquisitions by %d owners in %v, %d stalls (%d overtaken), %d writes accepted", len(tenures), owners, run, stalls, overtaken, len(store.accepted))
}
