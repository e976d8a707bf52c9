package embedded_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mecha-embedded")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mecha")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/mecha")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is `mecha run` on an embedded store in dir.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *strings.Builder
	mu   *sync.Mutex
	done chan struct{}
}

func startProcess(t *testing.T, dir, extra string) *process {
	t.Helper()
	port := redistest.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "mecha.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:%d", backend: store}
backends:
  store: {type: embedded, dir: %q %s}
`, port, dir, extra)), 0o644)
	cmd := exec.Command(binary, "run", "-c", cfg)
	stderr, _ := cmd.StderrPipe()
	p := &process{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	deadline := time.Now().Add(10 * time.Second)
	for !redistest.WaitPort(port, 100*time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("mecha exited:\n%s", p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mecha did not listen:\n%s", p.log())
		}
	}
	return p
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *process) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *process) stop(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("mecha did not stop")
	}
}

func TestPersistenceCleanShutdown(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir, "")
	cl := redistest.Dial(t, p.addr)
	cl.Do("SET", "s", "v")
	cl.Do("RPUSH", "l", "a", "b", "c")
	cl.Do("HSET", "h", "f", "v")
	cl.Do("SADD", "set", "x", "y")
	cl.Do("ZADD", "z", "1.5", "m", "inf", "top")
	cl.Do("SET", "ttl", "v", "EX", "1000")
	cl.Do("SELECT", "3")
	cl.Do("SET", "db3", "three")
	cl.Do("SELECT", "0")
	cl.Do("INCRBYFLOAT", "f", "0.1")
	cl.Do("INCRBYFLOAT", "f", "0.2")
	cl.Do("SPOP", "set")
	cl.Write("MULTI\r\nINCR tx\r\nINCR tx\r\nEXEC\r\n")
	cl.Reply()
	cl.Reply()
	cl.Reply()
	cl.Reply()
	before := snapshot(t, cl)
	p.stop(t)

	p = startProcess(t, dir, "")
	cl = redistest.Dial(t, p.addr)
	after := snapshot(t, cl)
	if after != before {
		t.Fatalf("after restart:\n%s\nbefore:\n%s", after, before)
	}
	if r := cl.Do("TTL", "ttl"); r == ":-1\r\n" || r == ":-2\r\n" {
		t.Fatalf("expiry lost: %q", r)
	}
	cl.Do("SELECT", "3")
	if r := cl.Do("GET", "db3"); r != redistest.Bulk("three") {
		t.Fatalf("db 3 after restart: %q", r)
	}
}

// snapshot renders every key of database 0 (sorted) for comparison.
func snapshot(t *testing.T, cl *redistest.Client) string {
	var b strings.Builder
	keys := cl.Do("KEYS", "*")
	var names []string
	for _, l := range strings.Split(keys, "\r\n") {
		if l != "" && l[0] != '*' && l[0] != '$' {
			names = append(names, l)
		}
	}
	sortStrings(names)
	for _, k := range names {
		typ := cl.Do("TYPE", k)
		b.WriteString(k + " " + typ)
		switch strings.TrimSpace(typ) {
		case "+string":
			b.WriteString(cl.Do("GET", k))
		case "+list":
			b.WriteString(cl.Do("LRANGE", k, "0", "-1"))
		case "+hash":
			b.WriteString(cl.Do("HGETALL", k))
		case "+set":
			b.WriteString(cl.Do("SCARD", k))
		case "+zset":
			b.WriteString(cl.Do("ZRANGE", k, "0", "-1", "WITHSCORES"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestPersistenceKill9 kills the process without warning: writes older
// than a second must survive (fsync everysec; the log is written to the
// OS as soon as it can be).
func TestPersistenceKill9(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir, "")
	cl := redistest.Dial(t, p.addr)
	for i := 0; i < 1000; i++ {
		cl.Do("SET", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	time.Sleep(1500 * time.Millisecond)
	p.kill9()
	p = startProcess(t, dir, "")
	cl = redistest.Dial(t, p.addr)
	if r := cl.Do("DBSIZE"); r != ":1000\r\n" {
		t.Fatalf("DBSIZE after kill -9 = %q", r)
	}
	if r := cl.Do("GET", "k999"); r != redistest.Bulk("v999") {
		t.Fatalf("k999 = %q", r)
	}
}

// TestTruncatedLog cuts the log in the middle of a command, as a crash
// while writing does: the incomplete tail is dropped with a warning.
func TestTruncatedLog(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir, "")
	cl := redistest.Dial(t, p.addr)
	cl.Do("SET", "a", "1")
	cl.Do("SET", "b", "2")
	p.stop(t)
	log := filepath.Join(dir, "appendonly.aof")
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(log, data[:len(data)-5], 0o644)
	p = startProcess(t, dir, "")
	cl = redistest.Dial(t, p.addr)
	if r := cl.Do("GET", "a"); r != redistest.Bulk("1") {
		t.Fatalf("a = %q", r)
	}
	if r := cl.Do("GET", "b"); r != "$-1\r\n" {
		t.Fatalf("b (cut off) = %q", r)
	}
	if !strings.Contains(p.log(), "incomplete command") {
		t.Fatalf("no warning about the cut tail:\n%s", p.log())
	}
	// New writes append after the cut.
	cl.Do("SET", "c", "3")
	p.stop(t)
	p = startProcess(t, dir, "")
	cl = redistest.Dial(t, p.addr)
	if r := cl.Do("GET", "c"); r != redistest.Bulk("3") {
		t.Fatalf("c = %q", r)
	}
}

// TestCorruptLog puts garbage in the middle of the log: the store refuses
// to start and says where.
func TestCorruptLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "appendonly.aof")
	os.WriteFile(log, []byte("*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\nxx\r\n*1\r\n$4\r\nPING\r\n"), 0o644)
	port := redistest.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "mecha.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
admin: {listen: ""}
frontends: [{name: c, protocol: redis, listen: "127.0.0.1:%d", backend: store}]
backends: {store: {type: embedded, dir: %q}}
`, port, dir)), 0o644)
	out, err := exec.Command(binary, "run", "-c", cfg).CombinedOutput()
	if err == nil {
		t.Fatal("mecha started on a corrupt log")
	}
	if !strings.Contains(string(out), "is corrupt at byte 27") || !strings.Contains(string(out), "truncate it to 27 bytes") {
		t.Fatalf("unclear error:\n%s", out)
	}
}

// TestLogRewrite grows the log past the rewrite threshold; the store
// compacts it and everything survives a restart.
func TestLogRewrite(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir, ", rewrite_min_size: 64kb")
	cl := redistest.Dial(t, p.addr)
	for i := 0; i < 3000; i++ {
		cl.Do("SET", "same", fmt.Sprint(i))
		cl.Do("INCR", "counter")
	}
	log := filepath.Join(dir, "appendonly.aof")
	apptest.Eventually(t, 10*time.Second, "the log to be compacted", func() bool {
		st, err := os.Stat(log)
		return err == nil && st.Size() < 64<<10
	})
	cl.Do("SET", "after", "rewrite")
	p.stop(t)
	p = startProcess(t, dir, "")
	cl = redistest.Dial(t, p.addr)
	if r := cl.Do("GET", "same"); r != redistest.Bulk("2999") {
		t.Fatalf("same = %q", r)
	}
	if r := cl.Do("GET", "counter"); r != redistest.Bulk("3000") {
		t.Fatalf("counter = %q", r)
	}
	if r := cl.Do("GET", "after"); r != redistest.Bulk("rewrite") {
		t.Fatalf("after = %q", r)
	}
}

func startEmbedded(t *testing.T) string {
	t.Helper()
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: ""}
frontends: [{name: c, protocol: redis, listen: "127.0.0.1:0", backend: store}]
backends: {store: {type: embedded, dir: %q}}
`, t.TempDir()))
	return apptest.Addr(t, m, "c")
}

// TestActiveExpiry checks that keys expire without being touched and
// INFO counts them.
func TestActiveExpiry(t *testing.T) {
	addr := startEmbedded(t)
	cl := redistest.Dial(t, addr)
	for i := 0; i < 100; i++ {
		cl.Do("SET", fmt.Sprintf("k%d", i), "v", "PX", "50")
	}
	cl.Do("SET", "stays", "v")
	apptest.Eventually(t, 5*time.Second, "expired keys to be removed", func() bool {
		return cl.Do("DBSIZE") == ":1\r\n"
	})
	if info := cl.Do("INFO", "stats"); !strings.Contains(info, "expired_keys:100") {
		t.Fatalf("INFO stats: %q", info)
	}
}

// TestBlockingFIFO blocks three clients on one list; pushes serve them in
// the order they blocked.
func TestBlockingFIFO(t *testing.T) {
	addr := startEmbedded(t)
	var clients []*redistest.Client
	for i := 0; i < 3; i++ {
		c := redistest.Dial(t, addr)
		c.Send("BLPOP", "q", "10")
		clients = append(clients, c)
		info := redistest.Dial(t, addr)
		apptest.Eventually(t, 5*time.Second, "the client to block", func() bool {
			return strings.Contains(info.Do("INFO", "clients"), fmt.Sprintf("blocked_clients:%d", i+1))
		})
	}
	p := redistest.Dial(t, addr)
	p.Do("RPUSH", "q", "first", "second", "third")
	for i, want := range []string{"first", "second", "third"} {
		if r := clients[i].Reply(); r != "*2\r\n"+redistest.Bulk("q")+redistest.Bulk(want) {
			t.Fatalf("client %d got %q", i, r)
		}
	}
	if r := p.Do("LLEN", "q"); r != ":0\r\n" {
		t.Fatalf("LLEN = %q", r)
	}
	// A client that leaves while blocked does not take the next element.
	gone := redistest.Dial(t, addr)
	gone.Send("BLPOP", "q", "0")
	info := redistest.Dial(t, addr)
	apptest.Eventually(t, 5*time.Second, "the client to block", func() bool {
		return strings.Contains(info.Do("INFO", "clients"), "blocked_clients:1")
	})
	gone.C.Close()
	apptest.Eventually(t, 5*time.Second, "the client to leave", func() bool {
		return strings.Contains(info.Do("INFO", "clients"), "blocked_clients:0")
	})
	p.Do("RPUSH", "q", "kept")
	if r := p.Do("LPOP", "q"); r != redistest.Bulk("kept") {
		t.Fatalf("element pushed after the client left: %q", r)
	}
	// BLMOVE wakes and feeds a BLPOP waiting on the destination.
	a, b := redistest.Dial(t, addr), redistest.Dial(t, addr)
	b.Send("BLPOP", "dst", "10")
	a.Send("BLMOVE", "src", "dst", "LEFT", "RIGHT", "10")
	apptest.Eventually(t, 5*time.Second, "both to block", func() bool {
		return strings.Contains(info.Do("INFO", "clients"), "blocked_clients:2")
	})
	p.Do("RPUSH", "src", "x")
	if r := a.Reply(); r != redistest.Bulk("x") {
		t.Fatalf("BLMOVE = %q", r)
	}
	if r := b.Reply(); r != "*2\r\n"+redistest.Bulk("dst")+redistest.Bulk("x") {
		t.Fatalf("BLPOP on the destination = %q", r)
	}
}

func TestPubSubEmbedded(t *testing.T) {
	addr := startEmbedded(t)
	sub := redistest.Dial(t, addr)
	sub.Write("SUBSCRIBE news\r\nPSUBSCRIBE n*\r\n")
	if r := sub.Reply(); r != "*3\r\n"+redistest.Bulk("subscribe")+redistest.Bulk("news")+":1\r\n" {
		t.Fatalf("SUBSCRIBE = %q", r)
	}
	sub.Reply()
	if r := sub.Do("GET", "x"); !strings.HasPrefix(r, "-ERR Can't execute 'get'") {
		t.Fatalf("GET while subscribed = %q", r)
	}
	pub := redistest.Dial(t, addr)
	if r := pub.Do("PUBLISH", "news", "hi"); r != ":2\r\n" {
		t.Fatalf("PUBLISH = %q", r)
	}
	got := sub.Reply() + sub.Reply()
	if !strings.Contains(got, redistest.Bulk("message")+redistest.Bulk("news")+redistest.Bulk("hi")) ||
		!strings.Contains(got, redistest.Bulk("pmessage")+redistest.Bulk("n*")) {
		t.Fatalf("pushes = %q", got)
	}
	if r := pub.Do("PUBSUB", "NUMSUB", "news", "other"); r != "*4\r\n"+redistest.Bulk("news")+":1\r\n"+redistest.Bulk("other")+":0\r\n" {
		t.Fatalf("PUBSUB NUMSUB = %q", r)
	}
	sub.Write("UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nPING\r\n")
	sub.Reply()
	sub.Reply()
	if r := sub.Reply(); r != "+PONG\r\n" {
		t.Fatalf("PING after unsubscribing = %q", r)
	}
}

// TestManyClientsEmbedded runs concurrent increments and transactions;
// with the race detector this checks the store's locking.
func TestManyClientsEmbedded(t *testing.T) {
	addr := startEmbedded(t)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := redistest.Dial(t, addr)
			for i := 0; i < 100; i++ {
				cl.Do("INCR", "shared")
				cl.Do("HINCRBY", "h", "f", "1")
				cl.Write("MULTI\r\nINCR tx\r\nLPUSH l x\r\nEXEC\r\n")
				cl.Reply()
				cl.Reply()
				cl.Reply()
				cl.Reply()
			}
		}()
	}
	wg.Wait()
	cl := redistest.Dial(t, addr)
	for _, c := range [][2]string{{"GET shared", "1600"}, {"HGET h f", "1600"}, {"GET tx", "1600"}} {
		args := strings.Fields(c[0])
		if r := cl.Do(args...); r != redistest.Bulk(c[1]) {
			t.Fatalf("%s = %q", c[0], r)
		}
	}
	if r := cl.Do("LLEN", "l"); r != ":1600\r\n" {
		t.Fatalf("LLEN = %q", r)
	}
}

func TestWatchSeesExpiry(t *testing.T) {
	addr := startEmbedded(t)
	cl := redistest.Dial(t, addr)
	cl.Do("SET", "w", "v", "PX", "100")
	cl.Do("WATCH", "w")
	time.Sleep(300 * time.Millisecond)
	cl.Do("MULTI")
	cl.Do("SET", "other", "1")
	if r := cl.Do("EXEC"); r != "*-1\r\n" {
		t.Fatalf("EXEC after the watched key expired = %q", r)
	}
}
