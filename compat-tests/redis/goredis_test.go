package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/redis/go-redis/v9"
)

// newClient returns a go-redis client with its defaults, which start each
// connection with HELLO 3: Mecha answers NOPROTO and go-redis falls back to
// RESP2 with AUTH and SELECT.
func newClient(t *testing.T, e *env, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: e.addr}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGoRedisHandshake(t *testing.T) {
	eachBackend(t, "auth: {password: pw, users: {app: app-pw}}", func(t *testing.T, e *env) {
		ctx := context.Background()
		db := 2
		if e.kind == "cluster" {
			db = 0 // a cluster has database 0 only
		}
		c := newClient(t, e, func(o *redis.Options) { o.Password = "pw"; o.DB = db; o.ClientName = "compat" })
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET after HELLO 3 fallback: %v", err)
		}
		if e.redis != nil {
			direct := redistest.Dial(t, e.redis.Addr())
			direct.Do("SELECT", "2")
			if got := direct.Do("GET", "k"); got != redistest.Bulk("v") {
				t.Fatalf("upstream db 2 holds %q", got)
			}
		}
		name, err := c.ClientGetName(ctx).Result()
		if err != nil || name != "compat" {
			t.Fatalf("client name = %q, %v", name, err)
		}
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("GET = %q, %v", v, err)
		}
		acl := newClient(t, e, func(o *redis.Options) { o.Username = "app"; o.Password = "app-pw" })
		if err := acl.Ping(ctx).Err(); err != nil {
			t.Fatalf("ACL user: %v", err)
		}
		bad := newClient(t, e, func(o *redis.Options) { o.Password = "nope"; o.MaxRetries = -1 })
		if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("wrong password: %v", err)
		}
		// Explicit RESP2 works the same.
		r2 := newClient(t, e, func(o *redis.Options) { o.Password = "pw"; o.Protocol = 2 })
		if err := r2.Ping(ctx).Err(); err != nil {
			t.Fatalf("RESP2: %v", err)
		}
	})
}

func TestGoRedisDataTypes(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		ctx := context.Background()
		c := newClient(t, e)

		// Strings and TTLs.
		must(t, c.Set(ctx, "s", "hello", 0).Err())
		must(t, c.Append(ctx, "s", " world").Err())
		if v := c.Get(ctx, "s").Val(); v != "hello world" {
			t.Fatalf("GET = %q", v)
		}
		if n := c.IncrBy(ctx, "n", 41).Val(); n != 41 {
			t.Fatalf("INCRBY = %d", n)
		}
		if f := c.IncrByFloat(ctx, "f", 1.5).Val(); f != 1.5 {
			t.Fatalf("INCRBYFLOAT = %v", f)
		}
		must(t, c.Set(ctx, "ttl", "x", 10*time.Second).Err())
		if ttl := c.TTL(ctx, "ttl").Val(); ttl <= 0 || ttl > 10*time.Second {
			t.Fatalf("TTL = %v", ttl)
		}
		must(t, c.PExpire(ctx, "ttl", 50*time.Millisecond).Err())
		waitFor(t, "key to expire", func() bool { return c.Exists(ctx, "ttl").Val() == 0 })
		if _, err := c.Get(ctx, "missing").Result(); err != redis.Nil {
			t.Fatalf("GET missing: %v", err)
		}
		vals := c.MGet(ctx, "s", "missing", "n").Val()
		if len(vals) != 3 || vals[0] != "hello world" || vals[1] != nil || vals[2] != "41" {
			t.Fatalf("MGET = %v", vals)
		}

		// Hashes.
		must(t, c.HSet(ctx, "h", "a", "1", "b", "2").Err())
		if m := c.HGetAll(ctx, "h").Val(); len(m) != 2 || m["a"] != "1" {
			t.Fatalf("HGETALL = %v", m)
		}
		if n := c.HIncrBy(ctx, "h", "a", 5).Val(); n != 6 {
			t.Fatalf("HINCRBY = %d", n)
		}

		// Lists.
		must(t, c.RPush(ctx, "l", "a", "b", "c").Err())
		if l := c.LRange(ctx, "l", 0, -1).Val(); strings.Join(l, ",") != "a,b,c" {
			t.Fatalf("LRANGE = %v", l)
		}
		if v := c.LPop(ctx, "l").Val(); v != "a" {
			t.Fatalf("LPOP = %q", v)
		}

		// Sets.
		must(t, c.SAdd(ctx, "set", "x", "y", "z").Err())
		members := c.SMembers(ctx, "set").Val()
		sort.Strings(members)
		if strings.Join(members, ",") != "x,y,z" {
			t.Fatalf("SMEMBERS = %v", members)
		}
		if ok := c.SIsMember(ctx, "set", "y").Val(); !ok {
			t.Fatal("SISMEMBER")
		}

		// Sorted sets.
		must(t, c.ZAdd(ctx, "z", redis.Z{Score: 2, Member: "two"}, redis.Z{Score: 1, Member: "one"}, redis.Z{Score: 3, Member: "three"}).Err())
		if r := c.ZRangeWithScores(ctx, "z", 0, -1).Val(); len(r) != 3 || r[0].Member != "one" || r[2].Score != 3 {
			t.Fatalf("ZRANGE WITHSCORES = %v", r)
		}
		if r := c.ZRangeByScore(ctx, "z", &redis.ZRangeBy{Min: "(1", Max: "3"}).Val(); strings.Join(r, ",") != "two,three" {
			t.Fatalf("ZRANGEBYSCORE = %v", r)
		}

		// Streams, including a consumer group: served by Redis; the
		// embedded store does not have streams and says so.
		if e.kind == "embedded" {
			err := c.XAdd(ctx, &redis.XAddArgs{Stream: "st", Values: map[string]any{"f": "v"}}).Err()
			if err == nil || err.Error() != "ERR command 'XADD' is not supported by backend 'store'" {
				t.Fatalf("XADD on the embedded store: %v", err)
			}
		} else {
			id := c.XAdd(ctx, &redis.XAddArgs{Stream: "st", Values: map[string]any{"f": "v"}}).Val()
			if id == "" {
				t.Fatal("XADD returned no id")
			}
			must(t, c.XGroupCreate(ctx, "st", "g", "0").Err())
			res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{"st", ">"}, Count: 10}).Result()
			if err != nil || len(res) != 1 || len(res[0].Messages) != 1 || res[0].Messages[0].Values["f"] != "v" {
				t.Fatalf("XREADGROUP = %v, %v", res, err)
			}
			if n := c.XAck(ctx, "st", "g", id).Val(); n != 1 {
				t.Fatalf("XACK = %d", n)
			}
		}

		// SCAN walks the whole keyspace.
		for i := 0; i < 300; i++ {
			must(t, c.Set(ctx, fmt.Sprintf("scan:%d", i), i, 0).Err())
		}
		seen := map[string]bool{}
		iter := c.Scan(ctx, 0, "scan:*", 50).Iterator()
		for iter.Next(ctx) {
			seen[iter.Val()] = true
		}
		must(t, iter.Err())
		if len(seen) != 300 {
			t.Fatalf("SCAN found %d keys", len(seen))
		}
		if typ := c.Type(ctx, "z").Val(); typ != "zset" {
			t.Fatalf("TYPE = %q", typ)
		}
	})
}

func TestGoRedisPipelinesAndTransactions(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		ctx := context.Background()
		c := newClient(t, e)

		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := 0; i < 100; i++ {
				p.Incr(ctx, "counter")
			}
			p.Get(ctx, "counter")
			return nil
		})
		must(t, err)
		if v := cmds[100].(*redis.StringCmd).Val(); v != "100" {
			t.Fatalf("pipeline result = %q", v)
		}

		// MULTI/EXEC through TxPipelined.
		cmds, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "tx")
			p.Incr(ctx, "tx")
			return nil
		})
		must(t, err)
		if v := cmds[1].(*redis.IntCmd).Val(); v != 2 {
			t.Fatalf("TxPipelined = %d", v)
		}

		// Optimistic locking with WATCH: concurrent increments all land.
		must(t, c.Set(ctx, "balance", 0, 0).Err())
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					for {
						err := c.Watch(ctx, func(tx *redis.Tx) error {
							n, err := tx.Get(ctx, "balance").Int()
							if err != nil {
								return err
							}
							_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
								p.Set(ctx, "balance", n+1, 0)
								return nil
							})
							return err
						}, "balance")
						if err == nil {
							break
						}
						if !errors.Is(err, redis.TxFailedErr) {
							t.Errorf("watch: %v", err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		if n, _ := c.Get(ctx, "balance").Int(); n != 80 {
			t.Fatalf("balance after 80 optimistic increments = %d", n)
		}
	})
}

func TestGoRedisBlockingPops(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		ctx := context.Background()
		c := newClient(t, e)
		done := make(chan []string, 1)
		go func() {
			v, err := c.BLPop(ctx, 5*time.Second, "jobs").Result()
			if err != nil {
				t.Errorf("BLPOP: %v", err)
			}
			done <- v
		}()
		waitFor(t, "the client to block", func() bool {
			return strings.Contains(e.data(t, "INFO", "clients"), "blocked_clients:1")
		})
		must(t, newClient(t, e).RPush(ctx, "jobs", "job-1").Err())
		if v := <-done; len(v) != 2 || v[1] != "job-1" {
			t.Fatalf("BLPOP = %v", v)
		}
		// BLMOVE, BZPOPMIN and XREAD BLOCK, each woken by another client.
		go func() {
			time.Sleep(100 * time.Millisecond)
			p := newClient(t, e)
			p.RPush(ctx, "{q}src", "m")
			p.ZAdd(ctx, "zq", redis.Z{Score: 1, Member: "z1"})
			p.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: []any{"k", "v"}})
		}()
		// Hash-tagged keys: a cluster can only move between keys of one
		// slot.
		if v, err := c.BLMove(ctx, "{q}src", "{q}dst", "LEFT", "RIGHT", 5*time.Second).Result(); err != nil || v != "m" {
			t.Fatalf("BLMOVE = %q, %v", v, err)
		}
		if v, err := c.BZPopMin(ctx, 5*time.Second, "zq").Result(); err != nil || v.Member != "z1" {
			t.Fatalf("BZPOPMIN = %v, %v", v, err)
		}
		if e.kind != "embedded" {
			if v, err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{"events", "0"}, Block: 5 * time.Second}).Result(); err != nil || len(v[0].Messages) != 1 {
				t.Fatalf("XREAD BLOCK = %v, %v", v, err)
			}
		}
		// A timeout answers nil, as Redis does.
		if _, err := c.BRPop(ctx, time.Second, "empty").Result(); err != redis.Nil {
			t.Fatalf("BRPOP timeout: %v", err)
		}
	})
}

func TestGoRedisPubSub(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		ctx := context.Background()
		c := newClient(t, e)
		sub := c.Subscribe(ctx, "chat")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		psub := c.PSubscribe(ctx, "chat.*")
		defer psub.Close()
		if _, err := psub.Receive(ctx); err != nil {
			t.Fatalf("psubscribe: %v", err)
		}
		pub := newClient(t, e)
		for i := 0; i < 10; i++ {
			must(t, pub.Publish(ctx, "chat", fmt.Sprintf("m%d", i)).Err())
			must(t, pub.Publish(ctx, "chat.room", fmt.Sprintf("p%d", i)).Err())
		}
		for i := 0; i < 10; i++ {
			m, err := sub.ReceiveMessage(ctx)
			if err != nil || m.Payload != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d = %v, %v", i, m, err)
			}
			pm, err := psub.ReceiveMessage(ctx)
			if err != nil || pm.Payload != fmt.Sprintf("p%d", i) || pm.Pattern != "chat.*" {
				t.Fatalf("pmessage %d = %v, %v", i, pm, err)
			}
		}
		// go-redis pings subscribed connections; the health check works
		// through the relay.
		must(t, sub.Ping(ctx))
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatalf("pong: %v", err)
		}
		// Unsubscribing returns the connection to the pool and it serves
		// normal commands again.
		must(t, sub.Unsubscribe(ctx, "chat"))
		if n := pub.PubSubNumSub(ctx, "chat").Val()["chat"]; n != 0 {
			waitFor(t, "the unsubscribe", func() bool { return pub.PubSubNumSub(ctx, "chat").Val()["chat"] == 0 })
		}
	})
}

func TestGoRedisLua(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		ctx := context.Background()
		c := newClient(t, e)
		if e.kind == "embedded" {
			// No scripting in the embedded store: a clear error, never a
			// wrong answer.
			if err := c.Eval(ctx, "return 1", nil).Err(); err == nil || err.Error() != "ERR command 'EVAL' is not supported by backend 'store'" {
				t.Fatalf("EVAL on the embedded store: %v", err)
			}
			return
		}
		script := redis.NewScript(`
	local v = redis.call('INCRBY', KEYS[1], ARGV[1])
	return {v, KEYS[1]}`)
		res, err := script.Run(ctx, c, []string{"lua:counter"}, 5).Slice()
		if err != nil || res[0].(int64) != 5 || res[1].(string) != "lua:counter" {
			t.Fatalf("EVALSHA/EVAL = %v, %v", res, err)
		}
		sha, err := c.ScriptLoad(ctx, "return redis.call('GET', KEYS[1])").Result()
		must(t, err)
		if v, err := c.EvalSha(ctx, sha, []string{"lua:counter"}).Result(); err != nil || v != "5" {
			t.Fatalf("EVALSHA = %v, %v", v, err)
		}
		if ok := c.ScriptExists(ctx, sha).Val(); !ok[0] {
			t.Fatal("SCRIPT EXISTS")
		}
		if _, err := c.Eval(ctx, "return redis.error_reply('custom failure')", nil).Result(); err == nil || err.Error() != "custom failure" {
			t.Fatalf("error from Lua: %v", err)
		}
	})
}

// TestGoRedisUpstreamRestart restarts the upstream under a client: calls
// fail while it is gone and work again, through the same client, once it
// is back.
func TestGoRedisUpstreamRestart(t *testing.T) {
	e := setup(t, "redis", "")
	ctx := context.Background()
	c := newClient(t, e, func(o *redis.Options) { o.MaxRetries = -1 })
	must(t, c.Set(ctx, "k", "v", 0).Err())
	e.redis.Stop()
	err := c.Get(ctx, "k").Err()
	if err == nil || !strings.Contains(err.Error(), "backend 'store' unavailable") {
		t.Fatalf("GET with the upstream down: %v", err)
	}
	e.redis.Restart()
	waitFor(t, "the gateway to reconnect", func() bool { return c.Set(ctx, "k", "again", 0).Err() == nil })
	if v := c.Get(ctx, "k").Val(); v != "again" {
		t.Fatalf("GET after restart = %q", v)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
