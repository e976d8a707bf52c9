// Package redis runs unmodified Redis clients (go-redis v9, redis-cli,
// redis-benchmark) against Mecha: in front of a real redis-server, on its
// embedded store, and in front of a Redis Cluster (which the clients see
// as one Redis).
package redis

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/backends/rediscluster"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// env is Mecha with one Redis frontend and its backend.
type env struct {
	kind    string             // "redis" (passthrough), "embedded" or "cluster"
	redis   *redistest.Server  // the upstream, for "redis"
	cluster *redistest.Cluster // the upstream, for "cluster"
	m       *app.Mecha
	addr    string
	port    string
}

// backendKinds are the backends every client test runs against.
var backendKinds = []string{"redis", "embedded", "cluster"}

// eachBackend runs fn against every backend kind.
func eachBackend(t *testing.T, frontendExtra string, fn func(t *testing.T, e *env)) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) { fn(t, setup(t, kind, frontendExtra)) })
	}
}

func setup(t *testing.T, kind, frontendExtra string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("compatibility tests start redis-server")
	}
	if frontendExtra != "" {
		frontendExtra = ", " + frontendExtra
	}
	e := &env{kind: kind}
	backend := fmt.Sprintf("{type: embedded, dir: %q}", t.TempDir())
	switch kind {
	case "redis":
		e.redis = redistest.Start(t)
		backend = fmt.Sprintf(`{type: redis, addr: "%s", health_interval: 100ms}`, e.redis.Addr())
	case "cluster":
		e.cluster = redistest.StartCluster(t, 3, 0)
		backend = fmt.Sprintf(`{type: redis-cluster, servers: ["%s"], health_interval: 100ms}`, e.cluster.Nodes[0].Addr())
	}
	e.m = apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: store %s}
backends:
  store: %s
`, frontendExtra, backend))
	e.addr = apptest.Addr(t, e.m, "cache")
	_, e.port, _ = cutLast(e.addr, ':')
	return e
}

// data runs a command on the backend's data directly (the upstream for
// passthrough, the node of the key for a cluster, Mecha itself for the
// embedded store) and returns the reply, loosely decoded. On a cluster,
// DBSIZE is summed and INFO joined over the nodes.
func (e *env) data(t *testing.T, args ...string) string {
	t.Helper()
	switch {
	case e.redis != nil:
		return e.redis.Do(args...)
	case e.cluster != nil:
		switch strings.ToUpper(args[0]) {
		case "DBSIZE":
			total := 0
			for _, n := range e.cluster.Nodes {
				v, _ := strconv.Atoi(strings.TrimPrefix(n.Do("DBSIZE"), ":"))
				total += v
			}
			return fmt.Sprintf(":%d", total)
		case "INFO":
			var all []string
			for _, n := range e.cluster.Nodes {
				all = append(all, n.Do(args...))
			}
			return strings.Join(all, "\n")
		}
		return e.cluster.MasterOf(rediscluster.Slot([]byte(args[1]))).Do(args...)
	}
	return redistest.Do(t, e.addr, args...)
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
		if e.kind == "redis" {
			t.Fatalf("no late flush metric in:\n%s", body)
		}
		return 0 // only the passthrough defers requests
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
