package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/grpcapi/runtimev1"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mecha-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mecha")
	// mecha and, next to it as make build puts it, the embedded SQL engine.
	for _, b := range [][2]string{{binary, "."}, {filepath.Join(dir, "mecha-sqlengine"), "../mecha-sqlengine"}} {
		build := exec.Command("go", "build", "-o", b[0], b[1])
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionAndUsage(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "mecha ") {
		t.Fatalf("version: %d %q", code, out)
	}
	_, errOut, code := runCLI(t, "frobnicate")
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
}

func TestValidateCommand(t *testing.T) {
	good := writeFile(t, "good.yaml", `
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:6380", backend: r}
backends:
  r: {type: redis, addr: "127.0.0.1:6379"}
`)
	out, _, code := runCLI(t, "validate", "-c", good)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("valid file: %d %q", code, out)
	}
	bad := writeFile(t, "bad.yaml", `
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:6380", backend: r, lisen: x}
backends:
  r: {type: redis, addr: "127.0.0.1:6379"}
`)
	_, errOut, code := runCLI(t, "validate", "-c", bad)
	if code != 1 || !strings.Contains(errOut, "bad.yaml:3:70: frontends[0].lisen: unknown key") {
		t.Fatalf("invalid file: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "validate")
	if code != 2 || !strings.Contains(errOut, "-c FILE is required") {
		t.Fatalf("no file: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "validate", "-c", "/nonexistent/mecha.yaml")
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("missing file: %d %q", code, errOut)
	}
}

// process is a running `mecha run`, its log lines collected.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []string
	done chan struct{}
}

func startMecha(t *testing.T, args ...string) *process {
	t.Helper()
	return startMechaIn(t, "", args...)
}

// startMechaIn runs mecha in dir (where ./mecha-data goes).
func startMechaIn(t *testing.T, dir string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *process) waitLog(t *testing.T, substr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.logs {
			if strings.Contains(l, substr) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Fatalf("no log line with %q in:\n%s", substr, strings.Join(p.logs, "\n"))
	return ""
}

func TestRunReloadAndStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t)
	port, port2 := redistest.FreePort(t), redistest.FreePort(t)
	cfg := func(extra string) string {
		return fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:%d", backend: r}
%s
backends:
  r: {type: redis, addr: "%s"}
`, port, extra, rs.Addr())
	}
	path := writeFile(t, "mecha.yaml", cfg(""))
	p := startMecha(t, "run", "-c", path)
	p.waitLog(t, "mecha ready")
	cl := redistest.Dial(t, fmt.Sprintf("127.0.0.1:%d", port))
	if r := cl.Do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET = %q", r)
	}

	// SIGHUP with an invalid file: refused, still serving.
	os.WriteFile(path, []byte(cfg("  - {name: broken, protocol: redis}")), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "reload refused")
	if r := cl.Do("GET", "k"); r != redistest.Bulk("v") {
		t.Fatalf("after refused reload: %q", r)
	}
	// SIGHUP with a valid file adding a frontend: applied, the first
	// client's connection untouched.
	os.WriteFile(path, []byte(cfg(fmt.Sprintf(`  - {name: more, protocol: redis, listen: "127.0.0.1:%d", backend: r}`, port2))), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded")
	c2 := redistest.Dial(t, fmt.Sprintf("127.0.0.1:%d", port2))
	if r := c2.Do("GET", "k"); r != redistest.Bulk("v") {
		t.Fatalf("new frontend: %q", r)
	}
	if r := cl.Do("GET", "k"); r != redistest.Bulk("v") {
		t.Fatalf("old connection after reload: %q", r)
	}

	// SIGTERM: clean exit.
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("mecha did not exit after SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	p.waitLog(t, "stopped")
	if !cl.Closed() {
		t.Fatal("client connection open after exit")
	}
}

// TestRunDefaults starts Mecha without a configuration: the Redis frontend
// on 6380, the S3 frontend on 9000 and the admin endpoint on 34999, all
// on 127.0.0.1. It is skipped when those ports are taken (a developer's
// own Mecha, say).
func TestRunDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("binds default ports")
	}
	for _, port := range []int{6380, 9000, 3307, 34999, 34904, 50001} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Skipf("port %d busy", port)
		}
		l.Close()
	}
	dir := t.TempDir()
	p := startMechaIn(t, dir, "run")
	line := p.waitLog(t, "listening")
	if !strings.Contains(line, "addr=127.0.0.1:6380") || !strings.Contains(line, `login="no password"`) {
		t.Fatalf("listening line: %s", line)
	}
	if line := p.waitLog(t, "frontend=s3"); !strings.Contains(line, "addr=127.0.0.1:9000") || !strings.Contains(line, "access key mecha, secret mecha-secret") {
		t.Fatalf("S3 listening line: %s", line)
	}
	if line := p.waitLog(t, "frontend=mysql"); !strings.Contains(line, "addr=127.0.0.1:3307") || !strings.Contains(line, `login="user root, empty password"`) {
		t.Fatalf("MySQL listening line: %s", line)
	}
	if line := p.waitLog(t, "frontend=grpc"); !strings.Contains(line, "addr=127.0.0.1:34904") || !strings.Contains(line, `login="no token"`) {
		t.Fatalf("gRPC listening line: %s", line)
	}
	if line := p.waitLog(t, "frontend=dapr"); !strings.Contains(line, "addr=127.0.0.1:50001") {
		t.Fatalf("Dapr listening line: %s", line)
	}
	p.waitLog(t, "admin endpoint")
	p.waitLog(t, "mecha ready")
	// The gRPC API answers on 34904 from the embedded components.
	gc, err := grpc.NewClient("127.0.0.1:34904", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := runtimev1.NewSequencerClient(gc).NextID(ctx, &runtimev1.NextIDRequest{Key: "k"}); err != nil || r.NextId != 1 {
		t.Fatalf("gRPC NextID on the defaults: %v %v", r, err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:34999")
	if err != nil {
		t.Fatalf("admin endpoint: %v", err)
	}
	c.Close()
	// The embedded store answers on 6380, with no Redis anywhere.
	cl := redistest.Dial(t, "127.0.0.1:6380")
	if r := cl.Do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET on the default store = %q", r)
	}
	// The S3 frontend answers on 9000, files under the data directory.
	resp, err := http.Get("http://127.0.0.1:9000/")
	if err != nil {
		t.Fatalf("S3 endpoint: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "<Code>AccessDenied</Code>") {
		t.Fatalf("unsigned S3 request: %d %s", resp.StatusCode, body)
	}
	// The MySQL frontend answers on 3307 from the embedded engine, with no
	// database server anywhere, and keeps its data under the directory.
	db, err := sql.Open("mysql", "root:@tcp(127.0.0.1:3307)/test")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil || !strings.Contains(v, "mecha") {
		t.Fatalf("MySQL endpoint: %q, %v", v, err)
	}
	if _, err := db.Exec("CREATE TABLE kept (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	p.cmd.Process.Signal(syscall.SIGINT)
	<-p.done
	if _, err := os.Stat(filepath.Join(dir, "mecha-data", "embedded-sql", "sql", "snapshot.sql")); err != nil {
		t.Fatalf("SQL snapshot: %v", err)
	}
}
