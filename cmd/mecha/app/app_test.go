package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	"github.com/mecha-gateway/mecha/configs"
)

func parse(t *testing.T, yaml string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("mecha.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

func TestValidateErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"missing backend", `
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:6380", backend: nope}
backends:
  r: {type: redis, addr: "127.0.0.1:6379"}
`, `mecha.yaml:3:5: frontends[0].backend: no backend named "nope" (declared: r)`},
		{"unknown protocol", `
frontends:
  - {name: c, protocol: memcache, listen: "127.0.0.1:1", backend: r}
backends: {r: {type: redis}}
`, `frontends[0].protocol: unknown protocol "memcache"`},
		{"unknown type", `
frontends: []
backends:
  r: {type: rediss}
`, `backends.r.type: unknown backend type "rediss"`},
		{"missing type", `
backends:
  r: {addr: "127.0.0.1:1"}
`, `backends.r.type: is required`},
		{"grpc unknown component type", `
grpc:
  listen: 127.0.0.1:34904
  components:
    lock: {locks: {type: zookeeper}}
`, `mecha.yaml:5:19: grpc.components.lock.locks.type: unknown lock component type "zookeeper" (known: embedded, redis)`},
		{"grpc unknown capability", `
grpc:
  listen: 127.0.0.1:34904
  components:
    queue: {q: {type: embedded}}
`, `grpc.components.queue: unknown capability (known: config, lock, pubsub, sequencer)`},
		{"grpc component option", `
grpc:
  listen: 127.0.0.1:34904
  components:
    sequencer: {ids: {type: redis, metadata: {redisHost: "127.0.0.1:6379", redisHosts: x}}}
`, `grpc.components.sequencer.ids.metadata.redisHosts: unknown key`},
		{"grpc listen", `
grpc: {listen: "localhost"}
`, `grpc.listen: invalid address "localhost"`},
		{"unknown module key", `
frontends:
  - name: c
    protocol: redis
    listen: "127.0.0.1:1"
    backend: r
    limits: {max_client: 3}
backends: {r: {type: redis}}
`, `mecha.yaml:7:14: frontends[0].limits.max_client: unknown key (did you mean "max_clients"?)`},
		{"bad value", `
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:1", backend: r}
backends:
  r: {type: redis, addr: "no-port", conns: 0}
`, `backends.r.addr: invalid address "no-port"`},
		{"bad listen", `
frontends:
  - {name: c, protocol: redis, listen: "localhost", backend: r}
backends: {r: {type: redis}}
`, `frontends[0].listen: invalid address "localhost"`},
		{"duplicate name", `
frontends:
  - {name: c, protocol: redis, listen: "127.0.0.1:1", backend: r}
  - {name: c, protocol: redis, listen: "127.0.0.1:2", backend: r}
backends: {r: {type: redis}}
`, `frontends[1].name: frontend name "c" is used twice`},
		{"duplicate listen", `
frontends:
  - {name: a, protocol: redis, listen: "127.0.0.1:1", backend: r}
  - {name: b, protocol: redis, listen: "127.0.0.1:1", backend: r}
backends: {r: {type: redis}}
`, `frontends[1].listen: address 127.0.0.1:1 is already used by frontend "a"`},
		{"auth without credentials", `
frontends:
  - {name: a, protocol: redis, listen: "127.0.0.1:1", backend: r, auth: {}}
backends: {r: {type: redis}}
`, `frontends[0].auth.password: auth needs a password or users`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := configs.Parse("mecha.yaml", []byte(tt.yaml))
			if err == nil {
				err = app.Validate(cfg)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestExamplesValidate checks every example configuration against the
// modules compiled into Mecha.
func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("../../../configs/*.yaml")
	if len(files) < 2 {
		t.Fatalf("found %d example configurations", len(files))
	}
	for _, f := range files {
		cfg, err := configs.Load(f)
		if err == nil {
			err = app.Validate(cfg)
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t)
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: store}
backends:
  store: {type: redis, addr: "%s"}
  spare: {type: redis, addr: "127.0.0.1:1", health_interval: 50ms}
`, rs.Addr()))
	admin := "http://" + m.AdminAddr().String()
	if code, body := get(t, admin+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	// One backend is unreachable: not ready, and /readyz says which.
	var rd app.Readiness
	if code := getJSON(t, admin+"/readyz", &rd); code != 503 || rd.Status != "DOWN" {
		t.Fatalf("/readyz = %d %+v", code, rd)
	}
	states := map[string]string{}
	for _, c := range rd.Components {
		states[c.Kind+"/"+c.Name] = c.State
	}
	if states["frontend/cache"] != "UP" || states["backend/store"] != "UP" || states["backend/spare"] != "DOWN" {
		t.Fatalf("components = %v", states)
	}

	cl := redistest.Dial(t, apptest.Addr(t, m, "cache"))
	cl.Do("SET", "k", "v")
	cl.Do("GET", "k")
	cl.Do("GET", "k")
	cl.Do("NOSUCHCOMMAND")
	_, metrics := get(t, admin+"/metrics")
	for _, want := range []string{
		`mecha_frontend_requests_total{frontend="cache",protocol="redis",command="get"} 2`,
		`mecha_frontend_requests_total{frontend="cache",protocol="redis",command="set"} 1`,
		`mecha_frontend_errors_total{frontend="cache",protocol="redis",command="unknown"} 1`,
		`mecha_frontend_duration_seconds_bucket{frontend="cache",protocol="redis",command="get",le="+Inf"} 2`,
		`mecha_frontend_connections{frontend="cache",protocol="redis"} 1`,
		`mecha_backend_up{backend="store",type="redis"} 1`,
		`mecha_backend_up{backend="spare",type="redis"} 0`,
		`mecha_backend_state{backend="spare",type="redis",state="DOWN"} 1`,
		"# TYPE mecha_frontend_duration_seconds histogram",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestReload applies new configurations to a running Mecha: a backend
// switch reaches clients already connected, an invalid file is refused,
// frontends come and go.
func TestReload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r1, r2 := redistest.Start(t), redistest.Start(t)
	r1.Do("SET", "where", "r1")
	r2.Do("SET", "where", "r2")
	port := redistest.FreePort(t)
	cfgA := fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:%d", backend: store}
backends:
  store: {type: redis, addr: "%s"}
`, port, r1.Addr())
	m := apptest.Start(t, cfgA)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cl := redistest.Dial(t, addr)
	if r := cl.Do("GET", "where"); r != redistest.Bulk("r1") {
		t.Fatalf("before reload: %q", r)
	}

	// An invalid configuration is refused; the running one stays.
	bad := strings.Replace(cfgA, "type: redis", "type: redis, conns: -1", 1)
	if err := m.Reload(context.Background(), parse(t, bad), time.Second); err == nil || !strings.Contains(err.Error(), "conns") {
		t.Fatalf("invalid reload: %v", err)
	}
	if r := cl.Do("GET", "where"); r != redistest.Bulk("r1") {
		t.Fatalf("after refused reload: %q", r)
	}

	// The backend moves to r2: the same client connection follows.
	cfgB := strings.Replace(cfgA, r1.Addr(), r2.Addr(), 1) + fmt.Sprintf(`
  extra: {type: redis, addr: "%s"}
`, r1.Addr())
	cfgB = strings.Replace(cfgB, "frontends:\n", "frontends:\n  - {name: second, protocol: redis, listen: \"127.0.0.1:0\", backend: extra}\n", 1)
	if err := m.Reload(context.Background(), parse(t, cfgB), time.Second); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r := cl.Do("GET", "where"); r != redistest.Bulk("r2") {
		t.Fatalf("after reload, same connection: %q", r)
	}
	second := redistest.Dial(t, apptest.Addr(t, m, "second"))
	if r := second.Do("GET", "where"); r != redistest.Bulk("r1") {
		t.Fatalf("new frontend: %q", r)
	}

	// A frontend removed by a reload closes.
	if err := m.Reload(context.Background(), parse(t, cfgA), time.Second); err != nil {
		t.Fatalf("reload back: %v", err)
	}
	if !second.Closed() {
		t.Fatal("removed frontend's client still connected")
	}
	if r := cl.Do("GET", "where"); r != redistest.Bulk("r1") {
		t.Fatalf("after reloading back: %q", r)
	}
}

// TestShutdownDrains starts a slow command, shuts down, and expects the
// command's reply before the connection closes.
func TestShutdownDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t, "--enable-debug-command", "yes")
	cfg := parse(t, fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: store}
backends:
  store: {type: redis, addr: "%s"}
`, rs.Addr()))
	m, err := app.Start(context.Background(), cfg, apptest.Logger(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	addr := m.FrontendAddr("cache").String()
	cl := redistest.Dial(t, addr)
	cl.Do("PING")
	cl.Send("DEBUG", "SLEEP", "0.5")
	idle := redistest.Dial(t, addr)
	idle.Do("PING")
	time.Sleep(100 * time.Millisecond) // let the command reach the upstream
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Shutdown(ctx)
	}()
	if r := cl.Reply(); r != "+OK\r\n" {
		t.Fatalf("in-flight command during shutdown = %q", r)
	}
	if !cl.Closed() || !idle.Closed() {
		t.Fatal("connections left open after shutdown")
	}
	wg.Wait()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("listener still accepting after shutdown")
	}
}

// TestLogsHoldNoSecrets runs with passwords on both sides, fails a login,
// and checks that no password reaches the logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t, "--requirepass", "upstream-secret-1")
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := parse(t, fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: store, auth: {password: client-secret-2}}
backends:
  store: {type: redis, addr: "%s", password: upstream-secret-1}
  wrong: {type: redis, addr: "%s", password: wrong-secret-3}
`, rs.Addr(), rs.Addr()))
	m, err := app.Start(context.Background(), cfg, log, "test")
	if err != nil {
		t.Fatal(err)
	}
	cl := redistest.Dial(t, m.FrontendAddr("cache").String())
	cl.Do("AUTH", "guess-secret-4")
	cl.Do("AUTH", "client-secret-2")
	cl.Do("SET", "k", "v")
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Shutdown(ctx)
	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if !strings.Contains(out, "authentication failed") {
		t.Fatalf("the failed login was not logged:\n%s", out)
	}
	for _, secret := range []string{"upstream-secret-1", "client-secret-2", "wrong-secret-3", "guess-secret-4"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
