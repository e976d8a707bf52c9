package redis

import (
	"context"
	"os/exec"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// redisAddr is the machine's shared Redis.
const redisAddr = "127.0.0.1:6379"

// testPrefix returns a key prefix of this test alone and deletes its keys
// when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	p := storetest.UniqueName(t, "-")
	t.Cleanup(func() { deleteKeys(t, redisAddr, p) })
	return p
}

// deleteKeys deletes every key under prefix.
func deleteKeys(t *testing.T, addr, prefix string) {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if iter.Err() != nil {
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		c.Del(ctx, keys[:n]...)
		keys = keys[n:]
	}
}

func metadata(addr, prefix string, extra ...string) map[string]string {
	md := map[string]string{"redisHost": addr, "keyPrefix": prefix}
	for i := 0; i+1 < len(extra); i += 2 {
		md[extra[i]] = extra[i+1]
	}
	return md
}

func startLock(t *testing.T, md map[string]string) *Lock {
	t.Helper()
	return storetest.Start(t, NewLock, &LockConfig{Base: component.Base{Type: "redis", Metadata: md}})
}

func startConfig(t *testing.T, md map[string]string) *Config {
	t.Helper()
	return storetest.Start(t, NewConfig, &ConfigConfig{Base: component.Base{Type: "redis", Metadata: md}})
}

func startSequencer(t *testing.T, md map[string]string) *Sequencer {
	t.Helper()
	return storetest.Start(t, NewSequencer, &SequencerConfig{Base: component.Base{Type: "redis", Metadata: md}})
}

// privateRedis is a redis-server of one test, without persistence, on a
// port chosen at once and started (again) when the test says.
type privateRedis struct {
	t    *testing.T
	port int
	srv  *redistest.Server
}

func newPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	return &privateRedis{t: t, port: redistest.FreePort(t)}
}

func (p *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// start starts the server (with extra arguments) and waits until it
// accepts connections.
func (p *privateRedis) start(args ...string) {
	p.t.Helper()
	p.srv = redistest.StartOn(p.t, p.port, args...)
}

// stop kills the server (its data is lost).
func (p *privateRedis) stop() {
	if p.srv != nil {
		p.srv.Stop()
		p.srv = nil
	}
}
