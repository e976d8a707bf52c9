package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// redisAddr is the machine's shared Redis.
const redisAddr = "127.0.0.1:6379"

// testPrefix returns a key prefix of this test alone and deletes its keys
// when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("mechatest-")
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	p := b.String() + "-" + hex.EncodeToString(rnd[:])
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

func env(t *testing.T) component.Env {
	return component.Env{Name: t.Name()}
}

func startLock(t *testing.T, md map[string]string) *Lock {
	t.Helper()
	l, err := NewLock(&LockConfig{Base: component.Base{Type: "redis", Metadata: md}}, env(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func startConfig(t *testing.T, md map[string]string) *Config {
	t.Helper()
	c, err := NewConfig(&ConfigConfig{Base: component.Base{Type: "redis", Metadata: md}}, env(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func startSequencer(t *testing.T, md map[string]string) *Sequencer {
	t.Helper()
	q, err := NewSequencer(&SequencerConfig{Base: component.Base{Type: "redis", Metadata: md}}, env(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q
}

// waitFor polls cond until it holds, failing the test after 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitState(t *testing.T, c component.Component, want backends.State) {
	t.Helper()
	waitFor(t, "health "+want.String(), func() bool { return c.Health().State == want })
}

// freePort returns a port nothing listens on (at the time of the call).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// privateRedis is a redis-server of one test, without persistence.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func newPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	p := &privateRedis{t: t, port: freePort(t), dir: t.TempDir()}
	t.Cleanup(p.stop)
	return p
}

func (p *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// start starts the server (with extra arguments) and waits until it
// answers.
func (p *privateRedis) start(args ...string) {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", p.dir}, args...)...)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: p.addr(), MaxRetries: -1})
	defer c.Close()
	waitFor(p.t, "private redis-server to answer", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// stop kills the server (its data is lost).
func (p *privateRedis) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

func mustUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, component.ErrUnavailable) {
		t.Fatalf("%s: err %v, want one wrapping ErrUnavailable", what, err)
	}
}

func randName(t *testing.T) string {
	var rnd [4]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("%s-%s", strings.ReplaceAll(t.Name(), "/", "-"), hex.EncodeToString(rnd[:]))
}
