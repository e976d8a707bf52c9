package grpcapi

import (
	"context"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	pb "github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

type lockService struct {
	pb.UnimplementedLockServer
	s *Server
}

// lockArgs are the checked arguments of an acquisition.
type lockArgs struct {
	store              component.LockStore
	storeName          string
	resource, owner    string
	ttl                time.Duration
	releaseOnDisconect bool
}

func (s *Server) lockArgs(storeName, resource, owner string, ttlField string, ttl time.Duration) (lockArgs, error) {
	store, name, err := lookup[component.LockStore](s, component.CapLock, "store_name", storeName)
	if err != nil {
		return lockArgs{}, err
	}
	if err := checkName("resource_id", resource, true); err != nil {
		return lockArgs{}, err
	}
	if err := checkName("lock_owner", owner, true); err != nil {
		return lockArgs{}, err
	}
	if ttlField != "" && ttl < time.Millisecond {
		return lockArgs{}, invalid("%s must be at least 1ms", ttlField)
	}
	return lockArgs{store: store, storeName: name, resource: resource, owner: owner, ttl: ttl}, nil
}

func (l *lockService) TryLock(ctx context.Context, req *pb.TryLockRequest) (*pb.TryLockResponse, error) {
	ttl, err := duration("ttl", req.Ttl)
	if err != nil {
		return nil, err
	}
	a, err := l.s.lockArgs(req.StoreName, req.ResourceId, req.LockOwner, "ttl", ttl)
	if err != nil {
		return nil, err
	}
	a.releaseOnDisconect = req.ReleaseOnDisconnect
	return l.s.tryLock(ctx, a)
}

func (s *Server) tryLock(ctx context.Context, a lockArgs) (*pb.TryLockResponse, error) {
	tok, ok, err := a.store.TryLock(ctx, a.resource, a.owner, a.ttl)
	if err != nil {
		return nil, err
	}
	if ok {
		// This acquisition decides whether the lock goes with the
		// connection: a record left by an earlier, expired acquisition
		// by the same owner from another connection must not release
		// this one.
		h := heldLock{a.storeName, a.resource, a.owner}
		if a.releaseOnDisconect {
			s.owned.add(connID(ctx), h)
		} else {
			s.owned.remove(h)
		}
	}
	return &pb.TryLockResponse{Success: ok, FencingToken: tok}, nil
}

// Lock waits for the lock: it retries when this Mecha sees the lock
// released (Unlock, release on disconnect) and otherwise polls with a
// backoff of 2 ms doubling to 100 ms, for a lock freed elsewhere or by
// expiry.
func (l *lockService) Lock(ctx context.Context, req *pb.LockRequest) (*pb.TryLockResponse, error) {
	ttl, err := duration("ttl", req.Ttl)
	if err != nil {
		return nil, err
	}
	wait, err := duration("wait_timeout", req.WaitTimeout)
	if err != nil {
		return nil, err
	}
	a, err := l.s.lockArgs(req.StoreName, req.ResourceId, req.LockOwner, "ttl", ttl)
	if err != nil {
		return nil, err
	}
	a.releaseOnDisconect = req.ReleaseOnDisconnect
	deadline := time.Now().Add(wait)
	key := a.storeName + "\x00" + a.resource
	const minPoll, maxPoll = 2 * time.Millisecond, 100 * time.Millisecond
	poll := minPoll
	for {
		released, done := l.s.locks.watch(key)
		resp, err := l.s.tryLock(ctx, a)
		if err != nil || resp.Success {
			done()
			return resp, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			done()
			return resp, nil
		}
		t := time.NewTimer(min(poll, left))
		select {
		case <-released:
			poll = minPoll
		case <-t.C:
			poll = min(2*poll, maxPoll)
		case <-ctx.Done():
			t.Stop()
			done()
			return nil, ctx.Err()
		}
		t.Stop()
		done()
	}
}

func (l *lockService) Unlock(ctx context.Context, req *pb.UnlockRequest) (*pb.UnlockResponse, error) {
	a, err := l.s.lockArgs(req.StoreName, req.ResourceId, req.LockOwner, "", 0)
	if err != nil {
		return nil, err
	}
	st, err := l.s.unlock(ctx, a.store, heldLock{a.storeName, a.resource, a.owner})
	if err != nil {
		return nil, err
	}
	return &pb.UnlockResponse{Status: pb.LockStatus(st)}, nil
}

func (s *Server) unlock(ctx context.Context, store component.LockStore, h heldLock) (component.LockStatus, error) {
	st, err := store.Unlock(ctx, h.resource, h.owner)
	if err != nil {
		return st, err
	}
	s.owned.remove(h)
	if st == component.LockSuccess {
		s.locks.wake(h.store + "\x00" + h.resource)
	}
	return st, nil
}

func (l *lockService) Renew(ctx context.Context, req *pb.RenewRequest) (*pb.RenewResponse, error) {
	ttl, err := duration("ttl", req.Ttl)
	if err != nil {
		return nil, err
	}
	a, err := l.s.lockArgs(req.StoreName, req.ResourceId, req.LockOwner, "ttl", ttl)
	if err != nil {
		return nil, err
	}
	tok, st, err := a.store.Renew(ctx, a.resource, a.owner, a.ttl)
	if err != nil {
		return nil, err
	}
	return &pb.RenewResponse{Status: pb.LockStatus(st), FencingToken: tok}, nil
}

// lockWaiters lets blocked Lock calls wake when this Mecha releases the
// lock they wait for.
type lockWaiters struct {
	mu sync.Mutex
	m  map[string]*waiter
}

type waiter struct {
	ch   chan struct{}
	refs int
}

// watch returns a channel closed at the next release of key, and a
// function to call when no longer watching.
func (w *lockWaiters) watch(key string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]*waiter{}
	}
	wt, ok := w.m[key]
	if !ok {
		wt = &waiter{ch: make(chan struct{})}
		w.m[key] = wt
	}
	wt.refs++
	return wt.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		wt.refs--
		if wt.refs == 0 && w.m[key] == wt {
			delete(w.m, key)
		}
	}
}

func (w *lockWaiters) wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt, ok := w.m[key]; ok {
		close(wt.ch)
		delete(w.m, key)
	}
}

// heldLock is a lock taken with release_on_disconnect.
type heldLock struct{ store, resource, owner string }

// connLocks records which connection took which such lock.
type connLocks struct {
	mu     sync.Mutex
	m      map[string]map[heldLock]struct{}
	byLock map[heldLock]string
}

func (c *connLocks) add(conn string, h heldLock) {
	if conn == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byLock == nil {
		c.byLock = map[heldLock]string{}
	}
	if old, ok := c.byLock[h]; ok {
		delete(c.m[old], h)
	}
	if c.m[conn] == nil {
		c.m[conn] = map[heldLock]struct{}{}
	}
	c.m[conn][h] = struct{}{}
	c.byLock[h] = conn
}

func (c *connLocks) remove(h heldLock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn, ok := c.byLock[h]; ok {
		delete(c.m[conn], h)
		delete(c.byLock, h)
	}
}

func (c *connLocks) take(conn string) []heldLock {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []heldLock
	for h := range c.m[conn] {
		out = append(out, h)
		delete(c.byLock, h)
	}
	delete(c.m, conn)
	return out
}

// releaseConn unlocks what a closed connection took with
// release_on_disconnect (a lock it no longer holds is left alone: Unlock
// checks the owner).
func (s *Server) releaseConn(conn string) {
	held := s.owned.take(conn)
	if len(held) == 0 {
		return
	}
	go func() {
		for _, h := range held {
			store, _, err := lookup[component.LockStore](s, component.CapLock, "", h.store)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := s.unlock(ctx, store, h); err != nil {
				s.log.Warn("release of a disconnected client's lock failed; it is released when its lease runs out",
					"store", h.store, "resource", h.resource, "err", err)
			}
			cancel()
		}
	}()
}
