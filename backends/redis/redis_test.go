package redis_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"github.com/mecha-gateway/mecha/configs/tlstest"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

func start(t *testing.T, upstream, backendExtra, frontendExtra string) (*app.Mecha, string) {
	t.Helper()
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: cache, protocol: redis, listen: "127.0.0.1:0", backend: up %s}
backends:
  up: {type: redis, addr: "%s", health_interval: 100ms %s}
`, frontendExtra, upstream, backendExtra))
	return m, apptest.Addr(t, m, "cache")
}

// readiness fetches /readyz: the HTTP status and the backend's state.
func readiness(t *testing.T, m *app.Mecha) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + m.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r app.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Components {
		if c.Kind == "backend" {
			return resp.StatusCode, c.State
		}
	}
	t.Fatalf("no backend in %+v", r)
	return 0, ""
}

func TestUpstreamRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t)
	m, addr := start(t, rs.Addr(), "", "")
	cl := redistest.Dial(t, addr)
	if r := cl.Do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET = %q", r)
	}
	if code, state := readiness(t, m); code != 200 || state != "UP" {
		t.Fatalf("readyz = %d %s", code, state)
	}

	rs.Stop()
	// Clients get an error at once rather than hanging.
	began := time.Now()
	cl.Send("GET", "k")
	r, err := cl.TryReply(10 * time.Second)
	if err != nil || !strings.HasPrefix(r, "-ERR backend 'up' unavailable") {
		t.Fatalf("GET with upstream down = %q, %v", r, err)
	}
	if waited := time.Since(began); waited > 3*time.Second {
		t.Errorf("the error took %s", waited)
	}
	apptest.Eventually(t, 5*time.Second, "readyz to report DOWN", func() bool {
		code, state := readiness(t, m)
		return code == 503 && state == "DOWN"
	})

	rs.Restart()
	apptest.Eventually(t, 10*time.Second, "the gateway to reconnect", func() bool {
		cl.Send("SET", "k", "again")
		r, err := cl.TryReply(5 * time.Second)
		return err == nil && r == "+OK\r\n"
	})
	apptest.Eventually(t, 5*time.Second, "readyz to report UP", func() bool {
		code, state := readiness(t, m)
		return code == 200 && state == "UP"
	})
	// Transactions and blocking commands use fresh connections too.
	cl.Write("MULTI\r\nINCR n\r\nEXEC\r\n")
	if r := cl.Reply() + cl.Reply() + cl.Reply(); r != "+OK\r\n+QUEUED\r\n*1\r\n:1\r\n" {
		t.Fatalf("transaction after restart = %q", r)
	}
}

func TestUpstreamStallTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t)
	_, addr := start(t, rs.Addr(), ", read_timeout: 300ms", "")
	cl := redistest.Dial(t, addr)
	if r := cl.Do("SET", "k", "v"); r != "+OK\r\n" {
		t.Fatalf("SET = %q", r)
	}
	rs.Pause()
	cl.Send("GET", "k")
	r, err := cl.TryReply(10 * time.Second)
	rs.Resume()
	if err != nil || !strings.HasPrefix(r, "-ERR backend 'up' timed out") {
		t.Fatalf("GET with upstream frozen = %q, %v", r, err)
	}
	apptest.Eventually(t, 10*time.Second, "recovery", func() bool {
		cl.Send("GET", "k")
		r, err := cl.TryReply(5 * time.Second)
		return err == nil && r == redistest.Bulk("v")
	})
}

func TestDedicatedConnectionsArePooled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	rs := redistest.Start(t)
	_, addr := start(t, rs.Addr(), ", max_idle: 2", "")
	for i := 0; i < 20; i++ {
		cl := redistest.Dial(t, addr)
		cl.Write("MULTI\r\nINCR n\r\nEXEC\r\n")
		if r := cl.Reply() + cl.Reply() + cl.Reply(); r != fmt.Sprintf("+OK\r\n+QUEUED\r\n*1\r\n:%d\r\n", i+1) {
			t.Fatalf("transaction %d = %q", i, r)
		}
		cl.C.Close()
	}
	// Sequential transactions reuse one pooled connection: the upstream
	// sees few clients (health checks, shared connections, the pool).
	info := rs.Do("INFO", "clients")
	var n int
	for _, l := range strings.Split(info, "\r\n") {
		fmt.Sscanf(l, "connected_clients:%d", &n)
	}
	if n == 0 || n > 6 {
		t.Fatalf("upstream has %d clients after 20 sequential transactions", n)
	}
}

// TestTLS runs TLS on both sides: the client to Mecha, and Mecha to a
// redis-server that only speaks TLS.
func TestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	certs := tlstest.Make(t, "redis", "mecha")
	tlsPort := redistest.FreePort(t)
	redistest.Start(t, "--tls-port", fmt.Sprint(tlsPort), "--tls-cert-file", certs.Cert["redis"],
		"--tls-key-file", certs.Key["redis"], "--tls-ca-cert-file", certs.CA,
		"--tls-auth-clients", "no")
	if !redistest.WaitPort(tlsPort, 5*time.Second) {
		t.Fatal("redis TLS port not open")
	}
	_, addr := start(t, fmt.Sprintf("127.0.0.1:%d", tlsPort),
		fmt.Sprintf(", tls: {ca_file: %q, server_name: localhost}", certs.CA),
		fmt.Sprintf(", tls: {cert_file: %q, key_file: %q}", certs.Cert["mecha"], certs.Key["mecha"]))
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: certs.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS dial to mecha: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "SET secure yes\r\nGET secure\r\nMULTI\r\nGET secure\r\nEXEC\r\n")
	want := "+OK\r\n$3\r\nyes\r\n+OK\r\n+QUEUED\r\n*1\r\n$3\r\nyes\r\n"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 256)
	for len(got) < len(want) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("over TLS: %q", got)
	}
	// A plain-text client is refused by the TLS listener.
	plain, err := net.Dial("tcp", addr)
	if err == nil {
		defer plain.Close()
		plain.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(plain, "PING\r\n")
		if n, _ := plain.Read(buf); n > 0 && strings.Contains(string(buf[:n]), "PONG") {
			t.Fatal("TLS frontend answered plain text")
		}
	}
}
