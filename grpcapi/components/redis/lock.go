package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/dapr/components-contrib/lock"
	contriblock "github.com/dapr/components-contrib/lock/redis"
	contribmd "github.com/dapr/components-contrib/metadata"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapLock, "redis", DefaultLockConfig, NewLock)
}

// LockConfig is the `type: redis` lock's configuration: everything is in
// metadata, as contrib's lock/redis names it, plus keyPrefix.
type LockConfig struct {
	component.Base `yaml:",inline"`
}

// DefaultLockConfig returns the defaults.
func DefaultLockConfig() *LockConfig { return &LockConfig{} }

// Validate checks the metadata.
func (c *LockConfig) Validate() error {
	_, err := parseSettings(c.Metadata)
	return err
}

// Lock is a lock store on Redis. Unlock is contrib's; TryLock is Mecha's
// own script, because contrib's (SET NX with a lease in whole seconds)
// cannot hand out a fencing token in the same atomic step; Renew is
// Mecha's too (contrib has none).
//
// Keys: <keyPrefix>:lock:<resource> holds the owner while the lock is
// held (contrib's layout: the value is the owner), and
// <keyPrefix>:fence:<resource> holds the last fencing token handed out
// for the resource; it never expires.
type Lock struct {
	s    *settings
	link *link

	// contrib is contrib's lock once initialised (it needs Redis up);
	// mu keeps Close from closing it under a running Unlock.
	mu      sync.RWMutex
	contrib lock.Store
}

var _ component.LockStore = (*Lock)(nil)

// NewLock builds a lock store; nothing connects until Start.
func NewLock(c *LockConfig, env component.Env) (*Lock, error) {
	s, err := parseSettings(c.Metadata)
	if err != nil {
		return nil, err
	}
	l := &Lock{s: s}
	l.link = newLink(env, "lock", l.initContrib)
	return l, nil
}

// Start connects; when Redis is down it still succeeds, reporting DOWN
// until Redis answers.
func (l *Lock) Start(ctx context.Context) error { return l.link.start(ctx, l.s) }

// Health reports whether Redis answers and contrib's lock is initialised.
func (l *Lock) Health() backends.Health { return l.link.Health() }

// Close releases the connections.
func (l *Lock) Close() error {
	err := l.link.close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.contrib != nil {
		err = errors.Join(err, l.contrib.Close())
		l.contrib = nil
	}
	return err
}

// initContrib initialises contrib's lock; it refuses a Redis with
// replicas (failover aside), as locks on an asynchronously replicated
// primary can be lost.
func (l *Lock) initContrib(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.contrib != nil {
		return nil
	}
	st := contriblock.NewStandaloneRedisLock(kitLog{l.link.Logger()})
	md := lock.Metadata{Base: contribmd.Base{Name: l.link.Name(), Properties: maps.Clone(l.s.contrib)}}
	if err := st.InitLockStore(ctx, md); err != nil {
		st.Close()
		return fmt.Errorf("components-contrib lock/redis: %w", err)
	}
	l.contrib = st
	return nil
}

func (l *Lock) keys(resource string) []string {
	return []string{l.s.prefix + ":lock:" + resource, l.s.prefix + ":fence:" + resource}
}

// tryLockScript takes the lock (SET NX PX) and, in the same step, hands
// out the next fencing token: one more than the last, and at least the
// server's clock in microseconds, so that tokens keep increasing even if
// Redis lost the counter (a restart without persistence, a failover to a
// lagging replica) while it cannot have lost the clock.
var tryLockScript = goredis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
local tok = (tonumber(redis.call('get', KEYS[2]) or '0') or 0) + 1
local t = redis.call('time')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now > tok then tok = now end
local s = string.format('%.0f', tok)
redis.call('set', KEYS[2], s)
return s
`)

// renewScript extends the lease if owner still holds the lock and
// returns the lock's token (the last handed out, since the lock cannot
// have been acquired again while owner holds it).
var renewScript = goredis.NewScript(`
local v = redis.call('get', KEYS[1])
if not v then return {1, '0'} end
if v ~= ARGV[1] then return {2, '0'} end
redis.call('pexpire', KEYS[1], ARGV[2])
return {0, redis.call('get', KEYS[2]) or '0'}
`)

// millis rounds a lease up to whole milliseconds (at least 1).
func millis(ttl time.Duration) int64 {
	return max(1, int64((ttl+time.Millisecond-1)/time.Millisecond))
}

// notReady is the error of an operation before contrib's lock is
// initialised: a lock taken then could not be unlocked.
func (l *Lock) notReady(op string) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.link.client == nil {
		return errNotStarted
	}
	if l.contrib == nil {
		return component.Unavailable(fmt.Errorf("%s: lock store not ready: %s", op, l.link.Health().Detail))
	}
	return nil
}

// TryLock acquires resource for owner with a lease of ttl.
func (l *Lock) TryLock(ctx context.Context, resource, owner string, ttl time.Duration) (uint64, bool, error) {
	if err := l.notReady("try lock"); err != nil {
		return 0, false, err
	}
	res, err := tryLockScript.Run(ctx, l.link.client, l.keys(resource), owner, millis(ttl)).Text()
	if errors.Is(err, goredis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, l.link.Fail(ctx, "try lock", err)
	}
	tok, err := strconv.ParseUint(res, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("try lock: fencing token %q: %w", res, err)
	}
	return tok, true, nil
}

// Unlock releases resource if owner holds it (contrib's Unlock).
func (l *Lock) Unlock(ctx context.Context, resource, owner string) (component.LockStatus, error) {
	if err := l.notReady("unlock"); err != nil {
		return 0, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.contrib == nil {
		return 0, component.Unavailable(errors.New("unlock: lock store closed"))
	}
	resp, err := l.contrib.Unlock(ctx, &lock.UnlockRequest{ResourceID: l.keys(resource)[0], LockOwner: owner})
	if err != nil {
		return 0, l.link.Fail(ctx, "unlock", err)
	}
	switch resp.Status {
	case lock.Success:
		return component.LockSuccess, nil
	case lock.LockDoesNotExist:
		return component.LockDoesNotExist, nil
	case lock.LockBelongsToOthers:
		return component.LockBelongsToOthers, nil
	}
	return 0, fmt.Errorf("unlock: status %d from components-contrib", resp.Status)
}

// Renew sets the lease of a lock owner holds to ttl from now.
func (l *Lock) Renew(ctx context.Context, resource, owner string, ttl time.Duration) (uint64, component.LockStatus, error) {
	if err := l.notReady("renew"); err != nil {
		return 0, 0, err
	}
	res, err := renewScript.Run(ctx, l.link.client, l.keys(resource), owner, millis(ttl)).Slice()
	if err != nil {
		return 0, 0, l.link.Fail(ctx, "renew", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("renew: unexpected reply %v", res)
	}
	code, _ := res[0].(int64)
	switch code {
	case 1:
		return 0, component.LockDoesNotExist, nil
	case 2:
		return 0, component.LockBelongsToOthers, nil
	}
	s, _ := res[1].(string)
	tok, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("renew: fencing token %q: %w", s, err)
	}
	return tok, component.LockSuccess, nil
}
