package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// TestLockKeyLayout checks the documented keys: the lock key holds the
// owner with the lease as its TTL (contrib's layout, so contrib's Unlock
// works on it), the fence key the token.
func TestLockKeyLayout(t *testing.T) {
	p := testPrefix(t)
	l := startLock(t, metadata(redisAddr, p))
	defer l.Close()
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rc.Close()

	tok, ok, err := l.TryLock(ctx, "res:1", "owner-a", 30*time.Second)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	if v := rc.Get(ctx, p+":lock:res:1").Val(); v != "owner-a" {
		t.Errorf("lock key holds %q, want the owner", v)
	}
	if ttl := rc.PTTL(ctx, p+":lock:res:1").Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("lock key TTL %v, want the lease (30s)", ttl)
	}
	if v := rc.Get(ctx, p+":fence:res:1").Val(); v != strconv.FormatUint(tok, 10) {
		t.Errorf("fence key holds %q, want the token %d", v, tok)
	}
	if ttl := rc.PTTL(ctx, p+":fence:res:1").Val(); ttl != -1 {
		t.Errorf("fence key TTL %v, want none", ttl)
	}
	st, err := l.Unlock(ctx, "res:1", "owner-a")
	if err != nil || st != component.LockSuccess {
		t.Fatalf("Unlock: %v %v", st, err)
	}
	if n := rc.Exists(ctx, p+":lock:res:1").Val(); n != 0 {
		t.Error("lock key still exists after Unlock")
	}
}

// TestLockTokensSurviveLostCounter checks that tokens keep increasing when
// Redis loses the fence counter (as a restart without persistence does):
// the next token is at least the server clock in microseconds.
func TestLockTokensSurviveLostCounter(t *testing.T) {
	p := testPrefix(t)
	l := startLock(t, metadata(redisAddr, p))
	defer l.Close()
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rc.Close()

	var last uint64
	for i := range 3 {
		tok, ok, err := l.TryLock(ctx, "r", "a", time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryLock #%d: %v %v", i, ok, err)
		}
		if tok <= last {
			t.Fatalf("token %d after %d", tok, last)
		}
		last = tok
		if _, err := l.Unlock(ctx, "r", "a"); err != nil {
			t.Fatal(err)
		}
	}
	now, err := rc.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if last < uint64(now.Add(-time.Hour).UnixMicro()) {
		t.Errorf("token %d is below the server clock in microseconds (%d)", last, now.UnixMicro())
	}
	rc.Del(ctx, p+":fence:r")
	tok, ok, err := l.TryLock(ctx, "r", "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock after the counter was lost: %v %v", ok, err)
	}
	if tok <= last {
		t.Errorf("token after the counter was lost %d, want > %d", tok, last)
	}
	got, st, err := l.Renew(ctx, "r", "b", time.Minute)
	if err != nil || st != component.LockSuccess || got != tok {
		t.Errorf("Renew = %d %v %v, want %d SUCCESS", got, st, err, tok)
	}
}

func TestLockLeaseRoundsUpToMillis(t *testing.T) {
	for _, c := range []struct {
		ttl  time.Duration
		want int64
	}{
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{1500 * time.Microsecond, 2},
		{250 * time.Millisecond, 250},
		{time.Minute, 60000},
	} {
		if got := millis(c.ttl); got != c.want {
			t.Errorf("millis(%v) = %d, want %d", c.ttl, got, c.want)
		}
	}
}

// TestLockRefusesReplicatedPrimary checks contrib's policy, which the lock
// keeps: a primary with replicas (without Sentinel failover) may lose
// locks, so the lock stays DOWN and refuses to lock.
func TestLockRefusesReplicatedPrimary(t *testing.T) {
	primary := newPrivateRedis(t)
	primary.start()
	replica := newPrivateRedis(t)
	replica.start("--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	rc := goredis.NewClient(&goredis.Options{Addr: primary.addr()})
	defer rc.Close()
	storetest.WaitFor(t, "the replica to connect", func() bool {
		return strings.Contains(rc.Info(context.Background(), "replication").Val(), "connected_slaves:1")
	})
	l := startLock(t, metadata(primary.addr(), "mecha"))
	defer l.Close()
	if h := l.Health(); h.State != backends.StateDown || !strings.Contains(h.Detail, "replication") {
		t.Fatalf("health on a replicated primary: %+v, want DOWN because of replication", h)
	}
	_, _, err := l.TryLock(context.Background(), "r", "o", time.Minute)
	storetest.MustUnavailable(t, "TryLock on a replicated primary", err)
}
