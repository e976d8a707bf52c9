package rediscluster_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/backends/rediscluster"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// startMecha serves the cluster on a Redis frontend and returns a plain
// (not cluster-aware) go-redis client to it.
func startMecha(t *testing.T, c *redistest.Cluster, extra string) (*app.Mecha, *goredis.Client, string) {
	t.Helper()
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: app, protocol: redis, listen: "127.0.0.1:0", backend: cluster}
backends:
  cluster: {type: redis-cluster, servers: ["%s"], health_interval: 100ms %s}
`, c.Nodes[0].Addr(), extra))
	addr := apptest.Addr(t, m, "app")
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return m, rdb, addr
}

// keysOnEveryNode returns n keys spread over all the cluster's masters.
func keysOnEveryNode(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "key:" + strconv.Itoa(i)
	}
	return out
}

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and redis-cli.
	for key, want := range map[string]int{
		"123456789": 0x31C3 & 16383, "foo": 12182, "bar": 5061, "{user1000}.following": 3443,
		"{user1000}.followers": 3443, "foo{}{bar}": rediscluster.Slot([]byte("foo{}{bar}")), "{}": 15257,
	} {
		if got := rediscluster.Slot([]byte(key)); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestSlotMatchesRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	c := redistest.StartCluster(t, 1, 0)
	cl := redistest.Dial(t, c.Nodes[0].Addr())
	for _, key := range []string{"a", "foo", "{user}x", "x{user}", "{}x", "{a", "a}b{", "\x00\xff", strings.Repeat("z", 300)} {
		want := cl.Do("CLUSTER", "KEYSLOT", key)
		if got := fmt.Sprintf(":%d\r\n", rediscluster.Slot([]byte(key))); got != want {
			t.Errorf("Slot(%q) = %q, redis says %q", key, got, want)
		}
	}
}

func TestClusterCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0)
	_, rdb, addr := startMecha(t, c, "")
	ctx := context.Background()

	keys := keysOnEveryNode(300)
	for i, k := range keys {
		if err := rdb.Set(ctx, k, "v"+strconv.Itoa(i), 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	// Every master got some of them.
	total := int64(0)
	for _, n := range c.Nodes {
		d := redistest.Do(t, n.Addr(), "DBSIZE")
		if d == ":0" {
			t.Fatalf("node %s holds no key: routing is not spreading keys", n.Addr())
		}
		v, _ := strconv.ParseInt(d[1:], 10, 64)
		total += v
	}
	if total != int64(len(keys)) {
		t.Fatalf("nodes hold %d keys, want %d", total, len(keys))
	}

	t.Run("mget across slots keeps key order", func(t *testing.T) {
		ask := append([]string{"missing"}, keys...)
		vals, err := rdb.MGet(ctx, ask...).Result()
		if err != nil {
			t.Fatal(err)
		}
		if vals[0] != nil {
			t.Fatalf("MGET missing = %v", vals[0])
		}
		for i, v := range vals[1:] {
			if v != "v"+strconv.Itoa(i) {
				t.Fatalf("MGET[%d] = %v", i, v)
			}
		}
	})
	t.Run("mset, del, exists, touch, unlink across slots", func(t *testing.T) {
		if err := rdb.MSet(ctx, "a", "1", "b", "2", "c", "3", "d", "4").Err(); err != nil {
			t.Fatal(err)
		}
		if n := rdb.Exists(ctx, "a", "b", "a", "nope", "d").Val(); n != 4 {
			t.Fatalf("EXISTS = %d, want 4 (a key named twice counts twice)", n)
		}
		if n := rdb.Touch(ctx, "a", "b", "x").Val(); n != 2 {
			t.Fatalf("TOUCH = %d", n)
		}
		if n := rdb.Del(ctx, "a", "b", "nope").Val(); n != 2 {
			t.Fatalf("DEL = %d", n)
		}
		if n := rdb.Unlink(ctx, "c", "d").Val(); n != 2 {
			t.Fatalf("UNLINK = %d", n)
		}
	})
	t.Run("malformed multi-key commands get Redis' errors", func(t *testing.T) {
		cl := redistest.Dial(t, addr)
		if r := cl.Do("MSET", "a", "1", "b"); r != "-ERR wrong number of arguments for 'mset' command\r\n" {
			t.Fatalf("MSET with a key and no value = %q", r)
		}
		if r := cl.Do("MGET"); r != "-ERR wrong number of arguments for 'mget' command\r\n" {
			t.Fatalf("MGET without keys = %q", r)
		}
	})
	t.Run("commands that cannot be split answer CROSSSLOT", func(t *testing.T) {
		rdb.SAdd(ctx, "s1", "x")
		rdb.SAdd(ctx, "s2", "y")
		err := rdb.SUnionStore(ctx, "dst", "s1", "s2").Err()
		if err == nil || err.Error() != "CROSSSLOT Keys in request don't hash to the same slot" {
			t.Fatalf("SUNIONSTORE across slots = %v", err)
		}
		if err := rdb.MSetNX(ctx, "n1", "1", "n2", "2").Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Fatalf("MSETNX across slots = %v (it cannot be atomic across slots)", err)
		}
		// Hash tags put keys in one slot: the command goes through.
		rdb.SAdd(ctx, "{u}s1", "x")
		rdb.SAdd(ctx, "{u}s2", "y")
		if n := rdb.SUnionStore(ctx, "{u}dst", "{u}s1", "{u}s2").Val(); n != 2 {
			t.Fatalf("SUNIONSTORE with hash tags = %d", n)
		}
		if err := rdb.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{"key:1"}).Err(); err != nil {
			t.Fatalf("EVAL routed by its key: %v", err)
		}
	})
	t.Run("pipelines spanning nodes answer in order", func(t *testing.T) {
		pipe := rdb.Pipeline()
		var cmds []*goredis.StringCmd
		for _, k := range keys[:100] {
			cmds = append(cmds, pipe.Get(ctx, k))
		}
		incr := pipe.Incr(ctx, "counter")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds {
			if cmd.Val() != "v"+strconv.Itoa(i) {
				t.Fatalf("pipelined GET %d = %q", i, cmd.Val())
			}
		}
		if incr.Val() != 1 {
			t.Fatalf("INCR = %d", incr.Val())
		}
	})
	t.Run("keyspace commands fan out", func(t *testing.T) {
		want := rdb.DBSize(ctx).Val()
		got := rdb.Keys(ctx, "*").Val()
		if int64(len(got)) != want || want < 300 {
			t.Fatalf("KEYS * = %d keys, DBSIZE = %d", len(got), want)
		}
		var scanned []string
		var cursor uint64
		for i := 0; ; i++ {
			ks, next, err := rdb.Scan(ctx, cursor, "key:*", 50).Result()
			if err != nil {
				t.Fatal(err)
			}
			scanned = append(scanned, ks...)
			cursor = next
			if cursor == 0 {
				break
			}
			if i > 1000 {
				t.Fatal("SCAN does not end")
			}
		}
		sort.Strings(scanned)
		scanned = slices.Compact(scanned)
		if len(scanned) != len(keys) {
			t.Fatalf("SCAN found %d distinct keys, want %d", len(scanned), len(keys))
		}
		if err := rdb.Scan(ctx, 1<<20|7, "", 0).Err(); err == nil || err.Error() != "ERR invalid cursor" {
			t.Fatalf("SCAN with a cursor naming no node = %v", err)
		}
		if k := rdb.RandomKey(ctx).Val(); k == "" {
			t.Fatal("RANDOMKEY found nothing")
		}
		sha, err := rdb.ScriptLoad(ctx, "return 7").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.Nodes {
			if r := redistest.Dial(t, n.Addr()).Do("SCRIPT", "EXISTS", sha); r != "*1\r\n:1\r\n" {
				t.Fatalf("SCRIPT EXISTS on %s = %q", n.Addr(), r)
			}
		}
		if v := rdb.EvalSha(ctx, sha, []string{"key:7"}).Val(); v != int64(7) {
			t.Fatalf("EVALSHA = %v", v)
		}
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if n := rdb.DBSize(ctx).Val(); n != 0 {
			t.Fatalf("DBSIZE after FLUSHALL = %d", n)
		}
	})
	t.Run("one database", func(t *testing.T) {
		cl := redistest.Dial(t, addr)
		if r := cl.Do("SELECT", "1"); r != "-ERR DB index is out of range\r\n" {
			t.Fatalf("SELECT 1 = %q", r)
		}
		if r := cl.Do("SELECT", "0"); r != "+OK\r\n" {
			t.Fatalf("SELECT 0 = %q", r)
		}
	})
}

// eventually retries f until it returns nil.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterConnectionState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0)
	_, rdb, addr := startMecha(t, c, "")
	ctx := context.Background()

	t.Run("transaction on the node of its keys", func(t *testing.T) {
		// MULTI names no key: Mecha binds the transaction to the node of
		// its first key, wherever MULTI went.
		for _, tag := range []string{"{a}", "{b}", "{c}", "{d}", "{e}"} {
			res, err := rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Ping(ctx)
				p.Set(ctx, tag+"x", "1", 0)
				p.Incr(ctx, tag+"y")
				p.MGet(ctx, tag+"x", tag+"y")
				return nil
			})
			if err != nil {
				t.Fatalf("%s: MULTI/EXEC: %v", tag, err)
			}
			if got := res[3].(*goredis.SliceCmd).Val(); fmt.Sprint(got) != "[1 1]" {
				t.Fatalf("%s: MGET in EXEC = %v", tag, got)
			}
		}
		// A key of another slot inside a transaction is refused and
		// aborts it, as in Redis Cluster.
		cl := redistest.Dial(t, addr)
		for _, step := range []struct{ args []string }{{[]string{"MULTI"}}, {[]string{"SET", "{a}k", "1"}}} {
			cl.Do(step.args...)
		}
		if r := cl.Do("SET", "{b}k", "1"); r != "-CROSSSLOT Keys in request don't hash to the same slot\r\n" {
			t.Fatalf("SET of another slot in MULTI = %q", r)
		}
		if r := cl.Do("EXEC"); !strings.HasPrefix(r, "-EXECABORT") {
			t.Fatalf("EXEC after CROSSSLOT = %q", r)
		}
		if r := cl.Do("GET", "{a}k"); r != "$-1\r\n" {
			t.Fatalf("aborted transaction wrote: GET = %q", r)
		}
	})
	t.Run("watch", func(t *testing.T) {
		key := "{w}counter"
		rdb.Set(ctx, key, "10", 0)
		cl := redistest.Dial(t, addr)
		if r := cl.Do("WATCH", key); r != "+OK\r\n" {
			t.Fatalf("WATCH = %q", r)
		}
		// While watching, keys of other nodes are still served.
		for i := range 20 {
			k := "other:" + strconv.Itoa(i)
			if r := cl.Do("SET", k, "v"); r != "+OK\r\n" {
				t.Fatalf("SET %s while watching = %q", k, r)
			}
		}
		rdb.Incr(ctx, key) // another client changes the watched key
		cl.Do("MULTI")
		cl.Do("INCR", key)
		if r := cl.Do("EXEC"); r != "*-1\r\n" {
			t.Fatalf("EXEC after the watched key changed = %q", r)
		}
		if v := rdb.Get(ctx, key).Val(); v != "11" {
			t.Fatalf("counter = %s", v)
		}
	})
	t.Run("blocking commands wait on the key's node", func(t *testing.T) {
		for _, key := range []string{"queue:1", "queue:2", "queue:3", "queue:4"} {
			done := make(chan []string, 1)
			go func() {
				b := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
				defer b.Close()
				v, _ := b.BLPop(ctx, 10*time.Second, key).Result()
				done <- v
			}()
			// Wait until the pop is blocked on some node, then push.
			eventually(t, 5*time.Second, "client blocked", func() error {
				for _, n := range c.Nodes {
					if strings.Contains(redistest.Do(t, n.Addr(), "INFO", "clients"), "blocked_clients:1") {
						return nil
					}
				}
				return fmt.Errorf("no node has a blocked client")
			})
			if err := rdb.RPush(ctx, key, "job").Err(); err != nil {
				t.Fatal(err)
			}
			select {
			case v := <-done:
				if fmt.Sprint(v) != "["+key+" job]" {
					t.Fatalf("BLPOP %s = %v", key, v)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("BLPOP %s not woken by a push to its key", key)
			}
		}
		// CLIENT UNBLOCK reaches the node the client is blocked on.
		blocked := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
		defer blocked.Close()
		id := blocked.ClientID(ctx).Val()
		errc := make(chan error, 1)
		go func() { errc <- blocked.BLPop(ctx, 0, "queue:never").Err() }()
		eventually(t, 5*time.Second, "CLIENT UNBLOCK", func() error {
			n, err := rdb.ClientUnblockWithError(ctx, id).Result()
			if err != nil || n != 1 {
				return fmt.Errorf("CLIENT UNBLOCK = %d, %v", n, err)
			}
			return nil
		})
		if err := <-errc; err == nil || !strings.HasPrefix(err.Error(), "UNBLOCKED") {
			t.Fatalf("unblocked BLPOP = %v", err)
		}
	})
	t.Run("pub/sub across nodes", func(t *testing.T) {
		sub := rdb.Subscribe(ctx, "news")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		psub := rdb.PSubscribe(ctx, "ne*")
		defer psub.Close()
		if _, err := psub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		// Published through Mecha, and straight to every node: the
		// cluster carries messages to every node's subscribers.
		rdb.Publish(ctx, "news", "via mecha")
		for _, n := range c.Nodes {
			redistest.Do(t, n.Addr(), "PUBLISH", "news", "via "+n.Addr())
		}
		for i := 0; i < 1+len(c.Nodes); i++ {
			m, err := sub.ReceiveMessage(ctx)
			if err != nil || m.Channel != "news" {
				t.Fatalf("message %d: %v %v", i, m, err)
			}
			pm, err := psub.ReceiveMessage(ctx)
			if err != nil || pm.Pattern != "ne*" {
				t.Fatalf("pattern message %d: %v %v", i, pm, err)
			}
		}
		// Shard channels are served by their slot's node.
		ssub := rdb.SSubscribe(ctx, "orders")
		defer ssub.Close()
		if _, err := ssub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if n := rdb.SPublish(ctx, "orders", "o1").Val(); n != 1 {
			t.Fatalf("SPUBLISH reached %d subscribers", n)
		}
		if m, err := ssub.ReceiveMessage(ctx); err != nil || m.Payload != "o1" {
			t.Fatalf("shard message: %v %v", m, err)
		}
	})
}

func TestClusterResharding(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0)
	m, rdb, _ := startMecha(t, c, "")
	ctx := context.Background()

	// Keys all in one slot, which is then moved to another master.
	const tag = "{moving}"
	slot := rediscluster.Slot([]byte(tag))
	for i := range 50 {
		rdb.Set(ctx, tag+strconv.Itoa(i), strconv.Itoa(i), 0)
	}
	from := c.MasterOf(slot)
	var to *redistest.Server
	for _, n := range c.Nodes {
		if n != from {
			to = n
			break
		}
	}
	check := func(when string) {
		t.Helper()
		for i := range 50 {
			k := tag + strconv.Itoa(i)
			if v, err := rdb.Get(ctx, k).Result(); err != nil || v != strconv.Itoa(i) {
				t.Fatalf("%s: GET %s = %q, %v", when, k, v, err)
			}
		}
	}

	// While the slot is migrating, its keys are on the target: Mecha
	// follows ASK; new keys are written there too.
	finish := c.BeginMove(slot, to)
	check("during the migration")
	if err := rdb.Set(ctx, tag+"new", "n", 0).Err(); err != nil {
		t.Fatalf("SET during the migration: %v", err)
	}
	if r := to.Do("CLUSTER", "COUNTKEYSINSLOT", strconv.Itoa(slot)); r != ":51" {
		t.Fatalf("target holds %s keys of the slot, want 51", r)
	}
	finish()
	// The slot now belongs to the target: Mecha follows MOVED and then
	// learns the new layout.
	check("after the move")
	if v := rdb.Get(ctx, tag+"new").Val(); v != "n" {
		t.Fatalf("GET of the key written during the migration = %q", v)
	}
	// Multi-key commands within the moved slot work too.
	if vals := rdb.MGet(ctx, tag+"1", tag+"2", "elsewhere").Val(); fmt.Sprint(vals) != "[1 2 <nil>]" {
		t.Fatalf("MGET after the move = %v", vals)
	}
	metrics := apptest.Metrics(t, m)
	if !strings.Contains(metrics, `mecha_cluster_redirects_total{backend="cluster"}`) || strings.Contains(metrics, `mecha_cluster_redirects_total{backend="cluster"} 0`) {
		t.Fatalf("redirects not counted:\n%s", grep(metrics, "mecha_cluster"))
	}
}

func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 1)
	m, rdb, _ := startMecha(t, c, "")
	ctx := context.Background()
	keys := keysOnEveryNode(200)
	for _, k := range keys {
		if err := rdb.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Let the replicas catch up before the master dies.
	for _, n := range c.Nodes[:3] {
		if r := redistest.Do(t, n.Addr(), "WAIT", "1", "5000"); r != ":1" {
			t.Fatalf("WAIT on %s = %s", n.Addr(), r)
		}
	}
	victim := c.MasterOf(rediscluster.Slot([]byte(keys[0])))
	c.Failover(victim)

	// After the failover every key is served again, by the promoted
	// replica, without restarting Mecha.
	eventually(t, 20*time.Second, "keys served after the failover", func() error {
		for _, k := range keys {
			v, err := rdb.Get(ctx, k).Result()
			if err != nil || v != k {
				return fmt.Errorf("GET %s = %q, %v", k, v, err)
			}
		}
		return nil
	})
	if err := rdb.Set(ctx, keys[0], "after", 0).Err(); err != nil {
		t.Fatalf("SET after the failover: %v", err)
	}
	apptest.Eventually(t, 10*time.Second, "backend UP", func() bool {
		return strings.Contains(apptest.Metrics(t, m), `mecha_backend_up{backend="cluster",type="redis-cluster"} 1`)
	})
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
