package memcached_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends/memcached/memcachedtest"
	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	"github.com/mecha-gateway/mecha/configs"
)

// gateway is Mecha with a Redis frontend ("cache") on a memcached backend
// ("memo") made of real memcached servers.
type gateway struct {
	m       *app.Mecha
	addr    string
	servers []*memcachedtest.Server
}

// start starts n memcached servers and Mecha in front of them; extra is
// added to the backend's options.
func start(t *testing.T, n int, extra string) *gateway {
	t.Helper()
	if testing.Short() {
		t.Skip("starts memcached")
	}
	g := &gateway{}
	var addrs []string
	for i := 0; i < n; i++ {
		s := memcachedtest.Start(t)
		g.servers = append(g.servers, s)
		addrs = append(addrs, s.Addr())
	}
	g.m = apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: memo}
backends:
  memo: {type: memcached, servers: [%s] %s}
`, strings.Join(addrs, ", "), extra))
	g.addr = apptest.Addr(t, g.m, "cache")
	return g
}

func (g *gateway) client(t *testing.T) *redistest.Client { return redistest.Dial(t, g.addr) }

// metrics returns the /metrics text.
func (g *gateway) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + g.m.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric reads one sample of /metrics.
func (g *gateway) metric(t *testing.T, name, server string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + `\{backend="memo",server="` + regexp.QuoteMeta(server) + `"\} (\S+)$`)
	m := re.FindStringSubmatch(g.metrics(t))
	if m == nil {
		t.Fatalf("no %s for %s", name, server)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// backendHealth is the memo backend's entry of /readyz.
func (g *gateway) backendHealth() app.Component {
	for _, c := range g.m.Readiness().Components {
		if c.Kind == "backend" && c.Name == "memo" {
			return c
		}
	}
	return app.Component{}
}

// raw sends one meta command straight to a memcached server and returns
// the reply: the line, and the value when there is one.
func raw(t *testing.T, s *memcachedtest.Server, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if strings.HasPrefix(line, "VA ") {
		n, _ := strconv.Atoi(strings.Fields(line)[1])
		buf := make([]byte, n+2)
		io.ReadFull(r, buf)
		return line + "|" + string(buf[:n])
	}
	return line
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func configsParse(src string) (*configs.Config, error) {
	return configs.Parse("test.yaml", []byte(src))
}

// step is a command and its exact reply.
type step struct {
	cmd  []string
	want string
}

func cmd(want string, args ...string) step { return step{args, want} }

const (
	ok     = "+OK\r\n"
	null   = "$-1\r\n"
	notInt = "-ERR value is not an integer or out of range\r\n"
	ovf    = "-ERR increment or decrement would overflow\r\n"
)

func bulk(s string) string { return redistest.Bulk(s) }
func num(n int64) string   { return ":" + strconv.FormatInt(n, 10) + "\r\n" }

func run(t *testing.T, c *redistest.Client, steps []step) {
	t.Helper()
	for i, s := range steps {
		if got := c.Do(s.cmd...); got != s.want {
			t.Fatalf("step %d %q: got %q, want %q", i, s.cmd, got, s.want)
		}
	}
}

func TestStringCommands(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	run(t, c, []step{
		cmd(null, "GET", "k"), cmd(ok, "SET", "k", "v"), cmd(bulk("v"), "GET", "k"),
		cmd(null, "SET", "k", "w", "NX"), cmd(ok, "SET", "k", "w", "XX"), cmd(null, "SET", "absent", "w", "XX"),
		cmd(null, "GET", "absent"), cmd(bulk("w"), "SET", "k", "x", "GET"), cmd(null, "SET", "new", "1", "GET"),
		cmd(bulk("x"), "SET", "k", "y", "NX", "GET"), cmd(bulk("x"), "GET", "k"), cmd(null, "SET", "nx", "1", "NX", "GET"),
		cmd(bulk("1"), "GET", "nx"), cmd(bulk("x"), "SET", "k", "z", "XX", "GET"), cmd(null, "SET", "nx2", "z", "XX", "GET"),
		cmd(num(0), "EXISTS", "nx2"), cmd("-ERR syntax error\r\n", "SET", "k", "v", "NX", "XX"),
		cmd(num(0), "SETNX", "k", "a"), cmd(num(1), "SETNX", "fresh", "a"), cmd(ok, "SETEX", "ex", "100", "v"),
		cmd(ok, "PSETEX", "px", "100000", "v"), cmd(bulk("z"), "GETSET", "k", "g"), cmd(bulk("g"), "GETDEL", "k"),
		cmd(null, "GETDEL", "k"), cmd(num(0), "EXISTS", "k"),
		cmd(ok, "MSET", "m1", "1", "m2", "2", "m3", "3"), cmd("*4\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n$1\r\n1\r\n", "MGET", "m1", "nope", "m3", "m1"),
		cmd(num(0), "MSETNX", "m1", "x", "m9", "9"), cmd(num(1), "MSETNX", "m8", "8", "m9", "9"),
		cmd(num(3), "EXISTS", "m1", "m1", "m9"), cmd(num(2), "DEL", "m1", "m2", "nope"), cmd(num(1), "UNLINK", "m3"),
		cmd(num(5), "APPEND", "ap", "hello"), cmd(num(11), "APPEND", "ap", " world"), cmd(bulk("hello world"), "GET", "ap"),
		cmd(num(11), "STRLEN", "ap"), cmd(num(0), "APPEND", "empty", ""), cmd(num(1), "EXISTS", "empty"), cmd(bulk(""), "GET", "empty"),
		cmd(num(1), "INCR", "n"), cmd(num(11), "INCRBY", "n", "10"), cmd(num(10), "DECR", "n"), cmd(num(-5), "DECRBY", "n", "15"),
		cmd(num(-6), "DECR", "n"), cmd(num(-106), "INCRBY", "n", "-100"), cmd(bulk("-106"), "GET", "n"),
		cmd(bulk("-105.5"), "INCRBYFLOAT", "n", "0.5"), cmd(notInt, "INCR", "n"), cmd(ok, "SET", "n", "10"),
		cmd(num(3), "APPEND", "n", "0"), cmd(num(101), "INCR", "n"),
		cmd(ok, "FLUSHDB"), cmd(num(0), "EXISTS", "n", "ap", "ex"), cmd(ok, "SET", "a", "1"), cmd(ok, "FLUSHALL"), cmd(null, "GET", "a"),
		cmd(ok, "SELECT", "0"), cmd("-ERR DB index is out of range\r\n", "SELECT", "1"),
		cmd("+PONG\r\n", "PING"),
	})
}

func TestCounters(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	run(t, c, []step{
		cmd(ok, "SET", "max", "9223372036854775806"), cmd(num(9223372036854775807), "INCR", "max"), cmd(ovf, "INCR", "max"),
		cmd(ovf, "INCRBY", "max", "1"), cmd(ovf, "DECRBY", "max", "-1"), cmd(bulk("9223372036854775807"), "GET", "max"),
		cmd(ok, "SET", "min", "-9223372036854775807"), cmd(num(-9223372036854775808), "DECR", "min"), cmd(ovf, "DECR", "min"),
		cmd(ovf, "INCRBY", "min", "-1"), cmd(num(-1), "INCRBY", "min", "9223372036854775807"),
		cmd(notInt, "INCRBY", "x", "9223372036854775808"), cmd("-ERR decrement would overflow\r\n", "DECRBY", "x", "-9223372036854775808"),
		cmd(num(0), "EXISTS", "x"), cmd(ok, "SET", "s", "abc"), cmd(notInt, "INCR", "s"), cmd(ok, "SET", "s", " 1"), cmd(notInt, "INCR", "s"),
		cmd(ok, "SET", "s", "01"), cmd(notInt, "INCR", "s"), cmd(ok, "SET", "s", "+1"), cmd(notInt, "INCR", "s"),
		cmd(ok, "SET", "s", ""), cmd(notInt, "INCR", "s"), cmd(ok, "SET", "s", "1.0"), cmd(notInt, "DECR", "s"),
		cmd(bulk("1.0"), "GET", "s"), cmd(notInt, "INCRBY", "s", "abc"),
		// A value written by another memcached client as a number.
		cmd(num(-1), "DECR", "neg"), cmd(num(-2), "DECR", "neg"), cmd(num(0), "INCRBY", "neg", "2"),
	})
	// memcached's own incr would refuse a negative value and wrap at 2^64:
	// the value stored is Redis' decimal.
	if got := raw(t, g.servers[0], "mg max v"); got != "VA 19|9223372036854775807" {
		t.Fatalf("memcached holds %q", got)
	}
	if got := raw(t, g.servers[0], "mg min v"); got != "VA 2|-1" {
		t.Fatalf("memcached holds %q", got)
	}
}

func TestBinarySafety(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	values := []string{"a\x00b", "\r\n", "\xff\xfe\x00\r\n\x80", "", strings.Repeat("\x00", 1000), "END\r\nVA 3\r\n"}
	for i, v := range values {
		k := fmt.Sprintf("bin%d", i)
		run(t, c, []step{cmd(ok, "SET", k, v), cmd(bulk(v), "GET", k)})
	}
	run(t, c, []step{cmd(num(4), "APPEND", "bin0", "\r"), cmd(bulk("a\x00b\r"), "GET", "bin0")})
	long := strings.Repeat("k", 300)
	keys := map[string]string{
		"space":          "a key with spaces",
		"control":        "k\x00\r\n\t",
		"utf-8":          "clé:ü",
		"high bytes":     "\xff\xfe",
		"250 plain":      strings.Repeat("p", 250),
		"300 plain":      long,
		"186 binary":     strings.Repeat(" ", 186),
		"187 binary":     strings.Repeat(" ", 187),
		"empty":          "",
		"looks like cmd": "x 5 T0",
	}
	for name, k := range keys {
		v := "value of " + name
		run(t, c, []step{
			cmd(ok, "SET", k, v), cmd(bulk(v), "GET", k), cmd(num(1), "EXISTS", k), cmd(num(int64(len(v))+1), "APPEND", k, "!"),
			cmd(num(1), "INCR", k+"#n"), cmd(ok, "MSET", k, v, k+"#2", "2"), cmd("*2\r\n"+bulk(v)+bulk("2"), "MGET", k, k+"#2"),
			cmd(num(1), "EXPIRE", k, "100"), cmd(num(100), "TTL", k), cmd(num(2), "DEL", k, k+"#2"), cmd(null, "GET", k),
		})
	}
	// Keys are stored as themselves (binary), so that other memcached
	// clients find them; keys too long for memcached as their SHA-256.
	c.Do("SET", "a key with spaces", "v1")
	if got := raw(t, g.servers[0], "mg "+b64("a key with spaces")+" b v"); got != "VA 2|v1" {
		t.Fatalf("binary key in memcached: %q", got)
	}
	c.Do("SET", long, "v2")
	if got := raw(t, g.servers[0], "mg sha256:"+sha256hex(long)+" v"); got != "VA 2|v2" {
		t.Fatalf("long key in memcached: %q", got)
	}
	c.Do("SET", "", "v3")
	if got := raw(t, g.servers[0], "mg sha256:"+sha256hex("")+" v"); got != "VA 2|v3" {
		t.Fatalf("empty key in memcached: %q", got)
	}
}

func TestKeyPrefix(t *testing.T) {
	g := start(t, 1, ", key_prefix: 'app1:'")
	c := g.client(t)
	run(t, c, []step{cmd(ok, "SET", "k", "v"), cmd(bulk("v"), "GET", "k")})
	if got := raw(t, g.servers[0], "mg app1:k v"); got != "VA 1|v" {
		t.Fatalf("prefixed key: %q", got)
	}
	if got := raw(t, g.servers[0], "mg k v"); got != "EN" {
		t.Fatalf("unprefixed key: %q", got)
	}
	// FLUSHDB flushes the servers, other prefixes included: Memcached
	// cannot flush by prefix.
	raw(t, g.servers[0], "ms other 1\r\nx")
	run(t, c, []step{cmd(ok, "FLUSHDB")})
	if got := raw(t, g.servers[0], "mg other v"); got != "EN" {
		t.Fatalf("after FLUSHDB: %q", got)
	}
}

func TestTTL(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	run(t, c, []step{
		cmd(ok, "SET", "k", "v", "EX", "100"), cmd(num(100), "TTL", "k"), cmd(ok, "SET", "p", "v", "PXAT", "2000000000123"),
		cmd(num(2000000000123), "PEXPIRETIME", "p"), cmd(num(2000000000), "EXPIRETIME", "p"),
		cmd(num(-2), "TTL", "missing"), cmd(num(-2), "PTTL", "missing"), cmd(num(-2), "EXPIRETIME", "missing"),
		cmd(ok, "SET", "plain", "v"), cmd(num(-1), "TTL", "plain"), cmd(num(-1), "PEXPIRETIME", "plain"),
		// INCR, APPEND and KEEPTTL keep the expiry; SET and GETSET drop it.
		cmd(ok, "SET", "n", "1", "PXAT", "2000000000456"), cmd(num(2), "INCR", "n"), cmd(num(2000000000456), "PEXPIRETIME", "n"),
		cmd(num(2), "APPEND", "n", "0"), cmd(num(2000000000456), "PEXPIRETIME", "n"), cmd(ok, "SET", "n", "5", "KEEPTTL"),
		cmd(num(2000000000456), "PEXPIRETIME", "n"), cmd(bulk("5"), "GETSET", "n", "6"), cmd(num(-1), "TTL", "n"),
		cmd(ok, "SET", "n", "1", "EX", "50"), cmd(ok, "SET", "n", "2"), cmd(num(-1), "TTL", "n"),
		// EXPIRE's conditions.
		cmd(num(1), "EXPIRE", "n", "100", "NX"), cmd(num(0), "EXPIRE", "n", "200", "NX"), cmd(num(1), "EXPIRE", "n", "200", "XX"),
		cmd(num(200), "TTL", "n"), cmd(num(0), "EXPIRE", "n", "100", "GT"), cmd(num(1), "EXPIRE", "n", "300", "GT"),
		cmd(num(0), "EXPIRE", "n", "400", "LT"), cmd(num(1), "EXPIRE", "n", "150", "LT"), cmd(num(150), "TTL", "n"),
		cmd(num(1), "PERSIST", "n"), cmd(num(0), "PERSIST", "n"), cmd(num(0), "EXPIRE", "n", "10", "XX"),
		cmd(num(0), "EXPIRE", "n", "10", "GT"), cmd(num(1), "EXPIRE", "n", "10", "LT"), cmd(num(0), "EXPIRE", "missing", "10"),
		// A deadline in the past deletes.
		cmd(num(1), "EXPIRE", "n", "-1"), cmd(num(0), "EXISTS", "n"), cmd(ok, "SET", "n", "v"), cmd(num(1), "PEXPIREAT", "n", "1"),
		cmd(null, "GET", "n"), cmd(ok, "SET", "n", "v", "EXAT", "1"), cmd(num(0), "EXISTS", "n"),
		cmd(bulk("v"), "GETEX", "k", "EX", "10"), cmd(num(10), "TTL", "k"), cmd(bulk("v"), "GETEX", "k", "PERSIST"), cmd(num(-1), "TTL", "k"),
	})
	// PTTL is exact to the millisecond Mecha keeps.
	c.Do("SET", "ms", "v", "PX", "100000")
	if n, _ := strconv.Atoi(strings.Trim(c.Do("PTTL", "ms"), ":\r\n")); n <= 99000 || n > 100000 {
		t.Fatalf("PTTL %d", n)
	}
	// memcached holds the item a little longer than the deadline (its
	// clock has whole seconds); Mecha hides it from the deadline on.
	line := raw(t, g.servers[0], "mg ms t f")
	var ttl, flags int64
	fmt.Sscanf(line, "HD t%d f%d", &ttl, &flags)
	if ttl < 100 || ttl > 102 || flags&(1<<31) == 0 {
		t.Fatalf("memcached: %q", line)
	}
}

func TestExpiryHappens(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	run(t, c, []step{cmd(ok, "SET", "k", "v", "PX", "1500"), cmd(bulk("v"), "GET", "k"), cmd(num(1), "EXISTS", "k")})
	apptest.Eventually(t, 10*time.Second, "the key to expire", func() bool { return c.Do("GET", "k") == null })
	run(t, c, []step{cmd(num(0), "EXISTS", "k"), cmd(num(-2), "TTL", "k"), cmd(num(1), "SETNX", "k", "again"), cmd(bulk("again"), "GET", "k")})

	// An item memcached still holds whose Redis deadline has passed (as
	// happens for up to two seconds after it) is gone for every command.
	past := time.Now().Add(-300 * time.Millisecond).UnixMilli()
	flags := uint32(1<<31) | uint32(past&(1<<31-1))
	for _, k := range []string{"e1", "e2", "e3", "e4", "e5", "e6"} {
		if got := raw(t, g.servers[0], fmt.Sprintf("ms %s 3 T3 F%d\r\nold", k, flags)); got != "HD" {
			t.Fatalf("ms: %q", got)
		}
	}
	run(t, c, []step{
		cmd(null, "GET", "e1"), cmd(num(0), "EXISTS", "e1"), cmd(num(-2), "TTL", "e1"), cmd("*1\r\n$-1\r\n", "MGET", "e1"),
		cmd(num(0), "DEL", "e1"), cmd(ok, "SET", "e2", "new", "NX"), cmd(bulk("new"), "GET", "e2"), cmd(num(-1), "TTL", "e2"),
		cmd(null, "SET", "e3", "new", "XX"), cmd(num(1), "INCR", "e4"), cmd(num(-1), "TTL", "e4"), cmd(num(3), "APPEND", "e5", "new"),
		cmd(bulk("new"), "GET", "e5"), cmd(null, "GETDEL", "e6"), cmd(num(0), "EXPIRE", "e6", "100"),
	})
	// Items other memcached clients wrote: memcached's TTL is the truth.
	raw(t, g.servers[0], "ms foreign 1 T100 F3\r\nx")
	raw(t, g.servers[0], "ms forever 1 F3\r\ny")
	run(t, c, []step{cmd(bulk("x"), "GET", "foreign"), cmd(num(100), "TTL", "foreign"), cmd(bulk("y"), "GET", "forever"), cmd(num(-1), "TTL", "forever")})
}

func TestLongTTL(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	// More than 30 days: memcached would read a relative exptime this
	// large as a Unix time in 1970 and drop the item at once.
	const days30, days40 = 30 * 24 * 3600, 40 * 24 * 3600
	run(t, c, []step{cmd(ok, "SET", "k", "v", "EX", strconv.Itoa(days40)), cmd(bulk("v"), "GET", "k"), cmd(num(days40), "TTL", "k")})
	line := raw(t, g.servers[0], "mg k t v")
	var ttl int64
	fmt.Sscanf(line, "VA 1 t%d", &ttl)
	if ttl < days40 || ttl > days40+3 {
		t.Fatalf("memcached: %q", line)
	}
	run(t, c, []step{
		cmd(ok, "SET", "j", "v"), cmd(num(1), "EXPIRE", "j", strconv.Itoa(days30)), cmd(num(days30), "TTL", "j"),
		cmd(num(1), "EXPIRE", "j", strconv.Itoa(days30+1)), cmd(num(days30+1), "TTL", "j"), cmd(bulk("v"), "GET", "j"),
		cmd(num(1), "EXPIRE", "j", strconv.Itoa(days30-1)), cmd(num(days30-1), "TTL", "j"), cmd(bulk("v"), "GET", "j"),
		cmd(num(1), "EXPIREAT", "j", "2000000000"), cmd(num(2000000000), "EXPIRETIME", "j"), cmd(bulk("v"), "GET", "j"),
	})
	// Past 2038 memcached has no exptime: the key lives until its last one.
	run(t, c, []step{cmd(ok, "SET", "far", "v", "EXAT", "4102444800"), cmd(bulk("v"), "GET", "far")})
	if got := c.Do("EXPIRETIME", "far"); got != num(2147483647) && got != num(2147483648) {
		t.Fatalf("EXPIRETIME past 2038: %q", got)
	}
}

func TestTooLarge(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	tooLarge := "-ERR value too large for backend 'memo'\r\n"
	big := strings.Repeat("x", 2<<20)
	almost := strings.Repeat("y", 1<<20-10) // under item_size_max, but not with the item's header
	run(t, c, []step{
		cmd(ok, "SET", "k", "small"), cmd(tooLarge, "SET", "k", big), cmd(bulk("small"), "GET", "k"), cmd(tooLarge, "SET", "k", almost),
		cmd(tooLarge, "SET", "k", almost, "NX"), cmd(tooLarge, "MSET", "a", "1", "k", big), cmd(bulk("small"), "GET", "k"),
		cmd(ok, "SET", "half", strings.Repeat("h", 600<<10)), cmd(tooLarge, "APPEND", "half", strings.Repeat("h", 600<<10)),
		cmd(num(600<<10), "STRLEN", "half"), cmd(tooLarge, "GETSET", "k", big), cmd(ok, "SET", "k", "fine"), cmd(bulk("fine"), "GET", "k"),
	})
	if n := g.metric(t, "mecha_memcached_connection_errors_total", g.servers[0].Addr()); n != 0 {
		t.Fatalf("%v connections lost", n)
	}
}

func TestUnsupportedCommands(t *testing.T) {
	g := start(t, 1, "")
	c := g.client(t)
	for _, args := range [][]string{
		{"HSET", "h", "f", "v"}, {"HGET", "h", "f"}, {"LPUSH", "l", "a"}, {"SADD", "s", "a"}, {"ZADD", "z", "1", "a"},
		{"KEYS", "*"}, {"SCAN", "0"}, {"RANDOMKEY"}, {"DBSIZE"}, {"TYPE", "k"}, {"RENAME", "a", "b"}, {"COPY", "a", "b"},
		{"MULTI"}, {"EXEC"}, {"WATCH", "k"}, {"SUBSCRIBE", "c"}, {"PUBLISH", "c", "m"}, {"BLPOP", "l", "0"},
		{"GETRANGE", "k", "0", "1"}, {"SETRANGE", "k", "0", "x"}, {"SETBIT", "k", "0", "1"}, {"BITCOUNT", "k"},
		{"EVAL", "return 1", "0"}, {"XADD", "s", "*", "f", "v"}, {"PFADD", "p", "a"}, {"SWAPDB", "0", "1"}, {"MOVE", "k", "1"},
	} {
		want := "-ERR command '" + args[0] + "' is not supported by backend 'memo'\r\n"
		if got := c.Do(args...); got != want {
			t.Errorf("%q: got %q, want %q", args, got, want)
		}
	}
}

// TestConcurrency has many clients change the same keys at once: every
// read-modify-write must count.
func TestConcurrency(t *testing.T) {
	g := start(t, 2, "")
	rdb := goredis.NewClient(&goredis.Options{Addr: g.addr, PoolSize: 64})
	defer rdb.Close()
	ctx := context.Background()
	const workers, each = 32, 50
	var wg sync.WaitGroup
	var setnxWins, getdelWins, errs sync.Map
	rdb.Set(ctx, "gd", "prize", 0)
	rdb.Set(ctx, "ttl-counter", "0", time.Hour)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				steps := []error{
					rdb.Incr(ctx, "counter").Err(),
					rdb.IncrBy(ctx, "mixed", int64(w%2*2-1)*3).Err(), // +3 from half the workers, -3 from the others
					rdb.Append(ctx, "log", "x").Err(),
					rdb.Incr(ctx, "ttl-counter").Err(),
					rdb.Set(ctx, fmt.Sprintf("k%d", (w*each+i)%97), "v", 0).Err(),
				}
				for _, err := range steps {
					if err != nil {
						errs.Store(err.Error(), true)
					}
				}
			}
			if ok, err := rdb.SetNX(ctx, "lock", w, 0).Result(); err == nil && ok {
				setnxWins.Store(w, true)
			}
			if v, err := rdb.GetDel(ctx, "gd").Result(); err == nil && v == "prize" {
				getdelWins.Store(w, true)
			}
		}()
	}
	wg.Wait()
	errs.Range(func(k, _ any) bool { t.Errorf("error: %v", k); return true })
	if n, _ := rdb.Get(ctx, "counter").Int(); n != workers*each {
		t.Errorf("counter %d, want %d", n, workers*each)
	}
	if n, _ := rdb.Get(ctx, "mixed").Int(); n != 0 {
		t.Errorf("mixed %d, want 0", n)
	}
	if n, _ := rdb.StrLen(ctx, "log").Result(); n != workers*each {
		t.Errorf("log length %d, want %d", n, workers*each)
	}
	if n, _ := rdb.Get(ctx, "ttl-counter").Int(); n != workers*each {
		t.Errorf("ttl-counter %d, want %d", n, workers*each)
	}
	if d, _ := rdb.TTL(ctx, "ttl-counter").Result(); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("ttl-counter lost its TTL: %v", d)
	}
	count := func(m *sync.Map) int {
		n := 0
		m.Range(func(_, _ any) bool { n++; return true })
		return n
	}
	if n := count(&setnxWins); n != 1 {
		t.Errorf("%d clients won SETNX", n)
	}
	if n := count(&getdelWins); n != 1 {
		t.Errorf("%d clients got the value from GETDEL", n)
	}
	if n, _ := rdb.Exists(ctx, "gd").Result(); n != 0 {
		t.Errorf("GETDEL left the key")
	}
}

// TestPipelining: multi-key commands cost one request per server, not
// one per key.
func TestPipelining(t *testing.T) {
	g := start(t, 2, ", health_interval: 1h")
	c := g.client(t)
	var keys []string
	var pairs []string
	for i := 0; i < 200; i++ {
		keys = append(keys, fmt.Sprintf("key%d", i))
		pairs = append(pairs, keys[i], strconv.Itoa(i))
	}
	requests := func() float64 {
		return g.metric(t, "mecha_memcached_requests_total", g.servers[0].Addr()) + g.metric(t, "mecha_memcached_requests_total", g.servers[1].Addr())
	}
	for _, tc := range []struct {
		args []string
		want string
		max  float64
	}{
		{append([]string{"MSET"}, pairs...), ok, 2},
		{append([]string{"EXISTS"}, keys...), num(200), 2},
		{append([]string{"MGET"}, keys...), "", 2},
		{append([]string{"DEL"}, keys...), num(200), 4}, // read, then delete
	} {
		before := requests()
		got := c.Do(tc.args...)
		if tc.want != "" && got != tc.want {
			t.Fatalf("%s: %q", tc.args[0], got)
		}
		if tc.args[0] == "MGET" && !strings.HasPrefix(got, "*200\r\n$1\r\n0\r\n$1\r\n1\r\n") {
			t.Fatalf("MGET: %q", got[:40])
		}
		if n := requests() - before; n > tc.max {
			t.Errorf("%s of 200 keys took %v requests", tc.args[0], n)
		}
	}
	// Both servers hold some of the keys.
	for _, s := range g.servers {
		if g.metric(t, "mecha_memcached_commands_total", s.Addr()) < 100 {
			t.Errorf("server %s got few commands", s.Addr())
		}
	}
}

// TestServerFailure: a server that goes away fails only its own keys;
// the others keep working, and the server is used again once it is back.
func TestServerFailure(t *testing.T) {
	g := start(t, 3, ", read_timeout: 500ms")
	c := g.client(t)
	// Where each key lives.
	owner := map[string]int{}
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("k%d", i)
		run(t, c, []step{cmd(ok, "SET", k, "v")})
		for j, s := range g.servers {
			if raw(t, s, "mg "+k) == "HD" {
				owner[k] = j
			}
		}
	}
	per := make([]int, 3)
	for _, j := range owner {
		per[j]++
	}
	for j, n := range per {
		if n == 0 {
			t.Fatalf("server %d holds none of 60 keys: %v", j, per)
		}
	}
	if h := g.backendHealth(); h.State != "UP" || h.Detail != "" {
		t.Fatalf("health %+v", h)
	}

	down := g.servers[1]
	down.Stop()
	unavailable := "-ERR backend 'memo' unavailable: memcached " + down.Addr() + ": "
	for k, j := range owner {
		got := c.Do("GET", k)
		if j == 1 {
			if !strings.HasPrefix(got, unavailable) {
				t.Fatalf("GET %s on the stopped server: %q", k, got)
			}
		} else if got != bulk("v") {
			t.Fatalf("GET %s on a running server: %q", k, got)
		}
	}
	var mixed []string
	for k := range owner {
		mixed = append(mixed, k)
	}
	if got := c.Do(append([]string{"MGET"}, mixed...)...); !strings.HasPrefix(got, unavailable) {
		t.Fatalf("MGET across servers: %q", got)
	}
	apptest.Eventually(t, 5*time.Second, "readiness to name the server", func() bool {
		h := g.backendHealth()
		return h.State == "UP" && strings.Contains(h.Detail, down.Addr())
	})
	if up := g.metric(t, "mecha_memcached_server_up", down.Addr()); up != 0 {
		t.Fatalf("server_up %v for the stopped server", up)
	}
	if up := g.metric(t, "mecha_memcached_server_up", g.servers[0].Addr()); up != 1 {
		t.Fatalf("server_up %v for a running server", up)
	}

	down.Restart()
	apptest.Eventually(t, 10*time.Second, "the restarted server to serve", func() bool {
		for k, j := range owner {
			if j == 1 {
				return c.Do("SET", k, "again") == ok
			}
		}
		return false
	})
	for k, j := range owner {
		want := bulk("v")
		if j == 1 {
			want = null // the restarted server is empty
			if c.Do("GET", k) == bulk("again") {
				continue
			}
		}
		if got := c.Do("GET", k); got != want {
			t.Fatalf("GET %s after restart: %q, want %q", k, got, want)
		}
	}
	apptest.Eventually(t, 5*time.Second, "readiness to clear", func() bool {
		h := g.backendHealth()
		return h.State == "UP" && h.Detail == ""
	})

	// Every server down: DOWN.
	for _, s := range g.servers {
		s.Stop()
	}
	apptest.Eventually(t, 5*time.Second, "readiness DOWN", func() bool { return g.backendHealth().State == "DOWN" })
	if got := c.Do("GET", "k1"); !strings.HasPrefix(got, "-ERR backend 'memo' unavailable: ") {
		t.Fatalf("GET with every server down: %q", got)
	}
}

// TestServerHangs: a server that stops answering times its requests out
// (and only its own); it is used again once it answers.
func TestServerHangs(t *testing.T) {
	g := start(t, 2, ", read_timeout: 300ms")
	c := g.client(t)
	owner := map[string]int{}
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("k%d", i)
		run(t, c, []step{cmd(ok, "SET", k, "v")})
		for j, s := range g.servers {
			if raw(t, s, "mg "+k) == "HD" {
				owner[k] = j
			}
		}
	}
	g.servers[0].Pause()
	defer g.servers[0].Resume()
	timedOut := "-ERR backend 'memo' timed out: memcached " + g.servers[0].Addr() + ": no reply within 300ms\r\n"
	for k, j := range owner {
		got := c.Do("GET", k)
		if j == 0 && got != timedOut {
			t.Fatalf("GET %s on the paused server: %q", k, got)
		}
		if j == 1 && got != bulk("v") {
			t.Fatalf("GET %s on the other server: %q", k, got)
		}
	}
	g.servers[0].Resume()
	apptest.Eventually(t, 10*time.Second, "the server to answer again", func() bool {
		for k, j := range owner {
			if j == 0 && c.Do("GET", k) != bulk("v") {
				return false
			}
		}
		return true
	})
}

// TestManyClients runs commands from many connections at once over the
// few pipelined connections to memcached.
func TestManyClients(t *testing.T) {
	g := start(t, 2, ", conns: 1")
	rdb := goredis.NewClient(&goredis.Options{Addr: g.addr, PoolSize: 100})
	defer rdb.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for w := 0; w < 100; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				k := fmt.Sprintf("c%d:%d", w, i)
				v := strings.Repeat(string(rune('a'+w%26)), 1+i*100)
				if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
					errc <- err
					return
				}
				got, err := rdb.Get(ctx, k).Result()
				if err != nil || got != v {
					errc <- fmt.Errorf("GET %s: %d bytes, %v", k, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for _, s := range g.servers {
		if n := g.metric(t, "mecha_memcached_connections", s.Addr()); n != 1 {
			t.Errorf("%v connections to %s, want 1", n, s.Addr())
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct{ backend, want string }{
		{`{type: memcached, servers: []}`, "servers: at least one server is needed"},
		{`{type: memcached, servers: [localhost]}`, `servers[0]: invalid address "localhost"`},
		{`{type: memcached, servers: [127.0.0.1:1, 127.0.0.1:1]}`, "servers[1]: 127.0.0.1:1 is listed twice"},
		{`{type: memcached, servers: [127.0.0.1:1], weights: {127.0.0.1:2: 2}}`, "weights.127.0.0.1:2: not one of servers"},
		{`{type: memcached, servers: [127.0.0.1:1], weights: {127.0.0.1:1: 0}}`, "weights.127.0.0.1:1: must be between 1 and 1000"},
		{`{type: memcached, servers: [127.0.0.1:1, 127.0.0.1:2], weights: {127.0.0.1:1: 1000}}`, "weighs too little"},
		{`{type: memcached, key_prefix: "a b"}`, "key_prefix: must be at most 100 printable ASCII characters without spaces"},
		{`{type: memcached, conns: 0}`, "conns: must be between 1 and 64"},
		{`{type: memcached, read_timeout: 0s}`, "read_timeout: must be positive"},
		{`{type: memcached, server: [127.0.0.1:1]}`, `unknown key (did you mean "servers"?)`},
	} {
		cfg, err := configsParse(`
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:0", backend: m}
backends:
  m: ` + tc.backend + "\n")
		if err == nil {
			err = app.Validate(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.backend, err, tc.want)
		}
	}
}
