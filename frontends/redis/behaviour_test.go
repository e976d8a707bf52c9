package redis_test

import (
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

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

func TestAuth(t *testing.T) {
	g := startGateway(t, `auth: {password: s3cret, users: {alice: wonder}}`, "")
	cl := dial(t, g.addr)
	if r := cl.Do("GET", "k"); r != "-NOAUTH Authentication required.\r\n" {
		t.Fatalf("unauthenticated GET = %q", r)
	}
	if r := cl.Do("HELLO", "2"); !strings.HasPrefix(r, "-NOAUTH HELLO must be called with the client already authenticated") {
		t.Fatalf("unauthenticated HELLO = %q", r)
	}
	if r := cl.Do("AUTH", "wrong"); r != "-WRONGPASS invalid username-password pair or user is disabled.\r\n" {
		t.Fatalf("wrong password = %q", r)
	}
	if r := cl.Do("AUTH", "alice", "s3cret"); !strings.HasPrefix(r, "-WRONGPASS") {
		t.Fatalf("alice with default's password = %q", r)
	}
	if r := cl.Do("AUTH", "s3cret"); r != "+OK\r\n" {
		t.Fatalf("AUTH = %q", r)
	}
	if r := cl.Do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("authenticated SET = %q", r)
	}
	if r := cl.Do("CLIENT", "INFO"); !strings.Contains(r, " user=default ") {
		t.Fatalf("CLIENT INFO = %q", r)
	}

	// ACL user through HELLO, in one round trip.
	c2 := dial(t, g.addr)
	if r := c2.Do("HELLO", "2", "AUTH", "alice", "wonder", "SETNAME", "a1"); !strings.HasPrefix(r, "*14\r\n") {
		t.Fatalf("HELLO AUTH = %q", r)
	}
	if r := c2.Do("GET", "k"); r != bulk("v") {
		t.Fatalf("GET as alice = %q", r)
	}
	// RESET forgets the login.
	if r := c2.Do("RESET"); r != "+RESET\r\n" {
		t.Fatalf("RESET = %q", r)
	}
	if r := c2.Do("GET", "k"); r != "-NOAUTH Authentication required.\r\n" {
		t.Fatalf("GET after RESET = %q", r)
	}

	// Before AUTH, Redis' stricter limits apply; a pipelined AUTH lifts
	// them for the commands after it.
	c3 := dial(t, g.addr)
	c3.Write("*11\r\n")
	if r := c3.Reply(); r != "-ERR Protocol error: unauthenticated multibulk length\r\n" {
		t.Fatalf("unauthenticated multibulk = %q", r)
	}
	c4 := dial(t, g.addr)
	big := strings.Repeat("x", 20000)
	c4.Write("*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$20000\r\n" + big + "\r\n")
	if r := c4.Reply(); r != "+OK\r\n" {
		t.Fatalf("pipelined AUTH = %q", r)
	}
	if r := c4.Reply(); r != "+OK\r\n" {
		t.Fatalf("big SET after AUTH = %q", r)
	}
}

func TestUpstreamPasswordIsIndependent(t *testing.T) {
	// The upstream needs a password the client never sees; the frontend
	// needs none.
	g := startGateway(t, "", "password: upstream-pw", "--requirepass", "upstream-pw")
	cl := dial(t, g.addr)
	if r := cl.Do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET via authenticated upstream = %q", r)
	}
	// An ACL user upstream.
	rs := redistest.Start(t)
	rs.Do("ACL", "SETUSER", "mecha", "on", ">mecha-pw", "~*", "+@all")
	rs.Do("ACL", "SETUSER", "default", "off")
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: ""}
frontends: [{name: c, protocol: redis, listen: "127.0.0.1:0", backend: u}]
backends: {u: {type: redis, addr: %s, username: mecha, password: mecha-pw}}
`, rs.Addr()))
	c2 := dial(t, apptest.Addr(t, m, "c"))
	if r := c2.Do("SET", "acl", "1"); r != "+OK\r\n" {
		t.Fatalf("SET via ACL user = %q", r)
	}
}

func TestLimits(t *testing.T) {
	g := startGateway(t, `limits: {max_bulk_len: 1kb, max_multibulk_len: 4, max_inline_len: 64, max_clients: 3, max_query_buffer: 1mb}`, "")
	tests := []struct{ input, want string }{
		{"*1\r\n$1025\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"*5\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"PING " + strings.Repeat("a", 80), "-ERR Protocol error: too big inline request\r\n"},
		{"*1\r\n$" + strings.Repeat("1", 80), "-ERR Protocol error: too big bulk count string\r\n"},
	}
	for _, tt := range tests {
		if got := exchange(t, g.addr, tt.input); got != tt.want {
			t.Errorf("%.20q: got %q, want %q", tt.input, got, tt.want)
		}
	}
	// A bulk at the limit passes.
	v := strings.Repeat("v", 1024)
	if got := exchange(t, g.addr, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1024\r\n"+v+"\r\n"); got != "+OK\r\n" {
		t.Errorf("bulk at limit: %q", got)
	}

	// max_clients: the fourth client is refused with Redis' error. The
	// connections above must be gone first.
	apptest.Eventually(t, 5*time.Second, "earlier clients to be gone", func() bool {
		return metric(t, g, "mecha_frontend_connections") == 0
	})
	var held []*redistest.Client
	for i := 0; i < 3; i++ {
		cl := dial(t, g.addr)
		if r := cl.Do("PING"); r != "+PONG\r\n" {
			t.Fatalf("client %d: %q", i, r)
		}
		held = append(held, cl)
	}
	extra := dial(t, g.addr)
	if r := extra.Reply(); r != "-ERR max number of clients reached\r\n" {
		t.Fatalf("client over max_clients got %q", r)
	}
	held[0].C.Close()
	apptest.Eventually(t, 5*time.Second, "a slot to free up", func() bool {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.Write([]byte("PING\r\n"))
		buf := make([]byte, 64)
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := c.Read(buf)
		return string(buf[:n]) == "+PONG\r\n"
	})
}

// TestQueryBufferLimit checks that a client sending a command larger than
// max_query_buffer is disconnected.
func TestQueryBufferLimit(t *testing.T) {
	g := startGateway(t, `limits: {max_bulk_len: 8mb, max_query_buffer: 1mb}`, "")
	cl := dial(t, g.addr)
	cl.Write("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n")
	chunk := strings.Repeat("x", 64<<10)
	for i := 0; i < 30; i++ {
		cl.C.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := cl.C.Write([]byte(chunk)); err != nil {
			break // closed by the gateway
		}
	}
	if !cl.Closed() {
		t.Fatal("client past max_query_buffer was not disconnected")
	}
}

// TestPipelineOneFlush sends a batch of commands in one write and checks
// that they are answered in order with very few writes to the socket.
func TestPipelineOneFlush(t *testing.T) {
	g := startGateway(t, "", "")
	var b strings.Builder
	var want strings.Builder
	b.WriteString("SET pipe v\r\n")
	want.WriteString("+OK\r\n")
	for i := 0; i < 100; i++ {
		b.WriteString("GET pipe\r\n")
		want.WriteString(bulk("v"))
	}
	b.WriteString("PING\r\n")
	want.WriteString("+PONG\r\n")
	cl := dial(t, g.addr)
	cl.Do("PING") // connect and warm up
	before := metric(t, g, "mecha_frontend_flushes_total")
	cl.Write(b.String())
	got := ""
	for i := 0; i < 102; i++ {
		got += cl.Reply()
	}
	if got != want.String() {
		t.Fatalf("replies out of order or wrong:\n%q", got)
	}
	flushes := metric(t, g, "mecha_frontend_flushes_total") - before
	// One write for the upstream's answer to the run of GETs, one for
	// PING; a reply split across upstream reads may take another.
	if flushes < 1 || flushes > 4 {
		t.Fatalf("102 pipelined commands took %v writes", flushes)
	}
}

// metric reads one sample of a frontend metric from /metrics.
func metric(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.m.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		t.Fatalf("metric %s not found in:\n%s", name, body)
	}
	v, _ := strconv.ParseFloat(string(m[2]), 64)
	return v
}

func TestSelectIsolatesDatabases(t *testing.T) {
	g := startGateway(t, "", "")
	a, b := dial(t, g.addr), dial(t, g.addr)
	a.Do("SELECT", "3")
	a.Do("SET", "db-key", "three")
	b.Do("SET", "db-key", "zero")
	if r := a.Do("GET", "db-key"); r != bulk("three") {
		t.Fatalf("db 3 GET = %q", r)
	}
	if r := b.Do("GET", "db-key"); r != bulk("zero") {
		t.Fatalf("db 0 GET = %q", r)
	}
	if got := g.redis.Do("GET", "db-key"); got != "zero" {
		t.Fatalf("upstream db 0 holds %q", got)
	}
	// A transaction runs in the client's database too.
	a.Write("MULTI\r\nGET db-key\r\nEXEC\r\n")
	if r := a.Reply() + a.Reply() + a.Reply(); r != "+OK\r\n+QUEUED\r\n*1\r\n"+bulk("three") {
		t.Fatalf("transaction in db 3 = %q", r)
	}
}

func TestWatchAbortsOnConcurrentWrite(t *testing.T) {
	g := startGateway(t, "", "")
	a, b := dial(t, g.addr), dial(t, g.addr)
	a.Do("SET", "w", "1")
	if r := a.Do("WATCH", "w"); r != "+OK\r\n" {
		t.Fatalf("WATCH = %q", r)
	}
	b.Do("SET", "w", "2") // another client changes the watched key
	a.Do("MULTI")
	a.Do("SET", "w", "3")
	if r := a.Do("EXEC"); r != "*-1\r\n" {
		t.Fatalf("EXEC after a concurrent write = %q, want a null array", r)
	}
	if r := b.Do("GET", "w"); r != bulk("2") {
		t.Fatalf("w = %q", r)
	}
	// Without interference the transaction commits.
	a.Do("WATCH", "w")
	a.Do("MULTI")
	a.Do("SET", "w", "4")
	if r := a.Do("EXEC"); r != "*1\r\n+OK\r\n" {
		t.Fatalf("EXEC = %q", r)
	}
}

// TestBlockingPopAbandoned checks that a client that disconnects while
// blocked does not leave a pop waiting upstream that would take (and
// lose) the next element pushed.
func TestBlockingPopAbandoned(t *testing.T) {
	g := startGateway(t, "", "")
	cl := dial(t, g.addr)
	cl.Send("BLPOP", "queue", "0")
	apptest.Eventually(t, 5*time.Second, "the client to block", func() bool {
		return metric(t, g, "mecha_frontend_blocked_clients") == 1
	})
	cl.C.Close()
	apptest.Eventually(t, 5*time.Second, "the blocked client to go", func() bool {
		return metric(t, g, "mecha_frontend_blocked_clients") == 0
	})
	apptest.Eventually(t, 5*time.Second, "the upstream to unblock", func() bool {
		return strings.Contains(g.redis.Do("INFO", "clients"), "blocked_clients:0")
	})
	g.redis.Do("RPUSH", "queue", "precious")
	if got := g.redis.Do("LPOP", "queue"); got != "precious" {
		t.Fatalf("element pushed after the client left = %q, want it still queued", got)
	}
}

func TestBlockingPopWakes(t *testing.T) {
	g := startGateway(t, "", "")
	cl := dial(t, g.addr)
	cl.Send("BLPOP", "jobs", "5")
	apptest.Eventually(t, 5*time.Second, "the client to block", func() bool {
		return metric(t, g, "mecha_frontend_blocked_clients") == 1
	})
	// Other clients keep being served while one is blocked.
	other := dial(t, g.addr)
	if r := other.Do("RPUSH", "jobs", "j1"); r != ":1\r\n" {
		t.Fatalf("RPUSH = %q", r)
	}
	if r := cl.Reply(); r != "*2\r\n"+bulk("jobs")+bulk("j1") {
		t.Fatalf("BLPOP = %q", r)
	}
	// CLIENT UNBLOCK reaches the blocked client's upstream connection.
	cl.Send("BLPOP", "jobs", "0")
	apptest.Eventually(t, 5*time.Second, "the client to block again", func() bool {
		return metric(t, g, "mecha_frontend_blocked_clients") == 1
	})
	id := strings.Trim(cl2ID(t, g), ":\r\n")
	if r := other.Do("CLIENT", "UNBLOCK", id, "ERROR"); r != ":1\r\n" {
		t.Fatalf("CLIENT UNBLOCK = %q", r)
	}
	if r := cl.Reply(); !strings.HasPrefix(r, "-UNBLOCKED") {
		t.Fatalf("unblocked BLPOP = %q", r)
	}
}

// cl2ID returns the id of the blocked client from CLIENT LIST.
func cl2ID(t *testing.T, g *gateway) string {
	cl := dial(t, g.addr)
	list := cl.Do("CLIENT", "LIST")
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "flags=b") {
			f := strings.Fields(line)
			return strings.TrimPrefix(f[0], "id=")
		}
	}
	t.Fatalf("no blocked client in %q", list)
	return ""
}

func TestPubSubPushes(t *testing.T) {
	g := startGateway(t, "", "")
	sub := dial(t, g.addr)
	sub.Write("SUBSCRIBE news\r\nPSUBSCRIBE n*\r\n")
	if r := sub.Reply(); r != "*3\r\n"+bulk("subscribe")+bulk("news")+":1\r\n" {
		t.Fatalf("SUBSCRIBE = %q", r)
	}
	sub.Reply()
	pub := dial(t, g.addr)
	if r := pub.Do("PUBLISH", "news", "hello"); r != ":2\r\n" {
		t.Fatalf("PUBLISH = %q", r)
	}
	got := sub.Reply() + sub.Reply()
	if !strings.Contains(got, bulk("message")+bulk("news")+bulk("hello")) || !strings.Contains(got, bulk("pmessage")+bulk("n*")+bulk("news")+bulk("hello")) {
		t.Fatalf("pushes = %q", got)
	}
	// Leaving subscribed mode returns the client to normal commands,
	// with Mecha's local state (its name) intact.
	sub.Write("UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nCLIENT SETNAME back\r\nCLIENT GETNAME\r\nSET after sub\r\n")
	sub.Reply()
	sub.Reply()
	if r := sub.Reply() + sub.Reply() + sub.Reply(); r != "+OK\r\n"+bulk("back")+"+OK\r\n" {
		t.Fatalf("after unsubscribing: %q", r)
	}
}

// TestLargeValues moves values larger than any buffer through both the
// shared and the dedicated paths.
func TestLargeValues(t *testing.T) {
	g := startGateway(t, "", "")
	cl := dial(t, g.addr)
	for _, size := range []int{1 << 10, 300 << 10, 5 << 20} {
		v := strings.Repeat("abcdefghij", size/10)
		if r := cl.Do("SET", "big", v); r != "+OK\r\n" {
			t.Fatalf("SET %d bytes = %.40q", size, r)
		}
		if r := cl.Do("GET", "big"); r != bulk(v) {
			t.Fatalf("GET %d bytes: got %d bytes", size, len(r))
		}
		// The same value through a transaction (a dedicated connection).
		cl.Write("MULTI\r\nGET big\r\nEXEC\r\n")
		cl.Reply()
		cl.Reply()
		if r := cl.Reply(); r != "*1\r\n"+bulk(v) {
			t.Fatalf("EXEC GET %d bytes: got %d bytes", size, len(r))
		}
	}
}

// TestSlowClientDoesNotStallOthers has one client request a large value
// and not read it; everyone else sharing the upstream connection is still
// served.
func TestSlowClientDoesNotStallOthers(t *testing.T) {
	g := startGateway(t, "", "conns: 1")
	setup := dial(t, g.addr)
	v := strings.Repeat("x", 8<<20)
	setup.Do("SET", "huge", v)
	slow := dial(t, g.addr)
	for i := 0; i < 4; i++ {
		slow.Send("GET", "huge") // 32 MB of replies nobody reads
	}
	fast := dial(t, g.addr)
	for i := 0; i < 100; i++ {
		if r := fast.Do("INCR", "counter"); r != fmt.Sprintf(":%d\r\n", i+1) {
			t.Fatalf("INCR %d = %q", i, r)
		}
	}
	// The slow client still gets everything once it reads.
	for i := 0; i < 4; i++ {
		if r := slow.Reply(); len(r) != len(bulk(v)) {
			t.Fatalf("slow client reply %d: %d bytes", i, len(r))
		}
	}
}

func TestManyClientsConcurrently(t *testing.T) {
	g := startGateway(t, "", "")
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			key := fmt.Sprintf("w%d", w)
			buf := make([]byte, 128)
			for i := 0; i < 200; i++ {
				// Mixed traffic: shared commands alone, pipelined, and
				// with a local command between them.
				var want string
				switch i % 3 {
				case 0:
					fmt.Fprintf(c, "SET %s %d\r\nGET %s\r\n", key, i, key)
					want = fmt.Sprintf("+OK\r\n$%d\r\n%d\r\n", len(strconv.Itoa(i)), i)
				case 1:
					fmt.Fprintf(c, "SET %s %d\r\nPING\r\nGET %s\r\n", key, i, key)
					want = fmt.Sprintf("+OK\r\n+PONG\r\n$%d\r\n%d\r\n", len(strconv.Itoa(i)), i)
				default:
					fmt.Fprintf(c, "SET %s %d\r\n", key, i)
					want = "+OK\r\n"
				}
				got := ""
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				for len(got) < len(want) {
					n, err := c.Read(buf)
					if err != nil {
						errs <- err.Error()
						return
					}
					got += string(buf[:n])
				}
				if got != want {
					errs <- fmt.Sprintf("client %d: got %q want %q", w, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Every request went upstream as soon as its round of clients was
	// complete; none waited for the backend's watchdog.
	if late := metric(t, g, "mecha_backend_late_flushes_total"); late != 0 {
		t.Errorf("%v requests flushed late", late)
	}
}

func TestClientListKillInfo(t *testing.T) {
	g := startGateway(t, "", "")
	a, b := dial(t, g.addr), dial(t, g.addr)
	a.Do("CLIENT", "SETNAME", "alpha")
	a.Do("CLIENT", "SETINFO", "LIB-NAME", "mecha-test")
	b.Do("SELECT", "5")
	list := a.Do("CLIENT", "LIST")
	lines := strings.Split(strings.TrimSpace(list[strings.Index(list, "\r\n")+2:]), "\n")
	if len(lines) != 2 {
		t.Fatalf("CLIENT LIST has %d lines: %q", len(lines), list)
	}
	if !regexp.MustCompile(`^id=\d+ addr=127\.0\.0\.1:\d+ laddr=\S+ fd=\S+ name=alpha age=\d+ idle=\d+ flags=N db=0 .* cmd=client\|list user=default .*lib-name=mecha-test`).MatchString(lines[0]) {
		t.Fatalf("CLIENT LIST line: %q", lines[0])
	}
	if !strings.Contains(lines[1], " db=5 ") {
		t.Fatalf("second client: %q", lines[1])
	}
	info := a.Do("CLIENT", "INFO")
	if !strings.Contains(info, "name=alpha") || strings.Count(info, "id=") != 1 {
		t.Fatalf("CLIENT INFO = %q", info)
	}
	bid := strings.TrimPrefix(strings.Fields(lines[1])[0], "id=")
	if r := a.Do("CLIENT", "KILL", "ID", bid); r != ":1\r\n" {
		t.Fatalf("CLIENT KILL ID = %q", r)
	}
	if !b.Closed() {
		t.Fatal("killed client still connected")
	}
	// SKIPME yes (the default) spares the caller.
	if r := a.Do("CLIENT", "KILL", "TYPE", "normal"); r != ":0\r\n" {
		t.Fatalf("CLIENT KILL TYPE normal = %q", r)
	}
	if r := a.Do("PING"); r != "+PONG\r\n" {
		t.Fatalf("caller after KILL = %q", r)
	}
}

func TestIdleTimeout(t *testing.T) {
	g := startGateway(t, "idle_timeout: 300ms", "")
	idle := dial(t, g.addr)
	idle.Do("PING")
	if !idle.Closed() {
		t.Fatal("idle client not disconnected")
	}
	// A subscribed client is never idle.
	sub := dial(t, g.addr)
	sub.Do("SUBSCRIBE", "quiet")
	time.Sleep(600 * time.Millisecond)
	if r := sub.Do("PING"); r != "*2\r\n"+bulk("pong")+bulk("") {
		t.Fatalf("subscribed client after idle period: %q", r)
	}
}
