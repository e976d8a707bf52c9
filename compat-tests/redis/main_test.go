// Package redis runs unmodified Redis clients (go-redis v9, redis-cli,
// redis-benchmark) against Mecha in front of a real redis-server.
package redis

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// env is a redis-server with Mecha in front of it.
type env struct {
	redis *redistest.Server
	m     *app.Mecha
	addr  string
	port  string
}

func setup(t *testing.T, frontendExtra string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("compatibility tests start redis-server")
	}
	rs := redistest.Start(t)
	if frontendExtra != "" {
		frontendExtra = ", " + frontendExtra
	}
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: store %s}
backends:
  store: {type: redis, addr: "%s", health_interval: 100ms}
`, frontendExtra, rs.Addr()))
	addr := apptest.Addr(t, m, "cache")
	_, port, _ := cutLast(addr, ':')
	return &env{redis: rs, m: m, addr: addr, port: port}
}

func cutLast(s string, sep byte) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// need skips (in -short) or fails when a client tool is missing.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if testing.Short() || os.Getenv("MECHA_COMPAT_OPTIONAL") != "" {
			t.Skipf("%s not installed", tool)
		}
		t.Fatalf("%s not installed (apt-get install redis-tools)", tool)
	}
	return p
}

// lateFlushes reads mecha_backend_late_flushes_total from /metrics.
func lateFlushes(t *testing.T, e *env) float64 {
	t.Helper()
	resp, err := http.Get("http://" + e.m.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^mecha_backend_late_flushes_total\{[^}]*\} (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no late flush metric in:\n%s", body)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
