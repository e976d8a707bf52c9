// Package apptest runs Mecha in-process for tests, with every module
// compiled in, on the addresses its configuration names (127.0.0.1:0 for
// a free port).
package apptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/embedded"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	_ "github.com/mecha-gateway/mecha/cmd/mecha/modules"
	"github.com/mecha-gateway/mecha/configs"
)

// Start parses yaml, starts Mecha and stops it when the test ends.
func Start(t testing.TB, yaml string) *app.Mecha {
	t.Helper()
	cfg, err := configs.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	m, err := app.Start(context.Background(), cfg, Logger(t), "test")
	if err != nil {
		t.Fatalf("start mecha: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	return m
}

// Logger logs to the test's output when MECHA_TEST_LOG is set, and
// nowhere otherwise.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("MECHA_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Addr returns the address of the named frontend.
func Addr(t testing.TB, m *app.Mecha, frontend string) string {
	t.Helper()
	a := m.FrontendAddr(frontend)
	if a == nil {
		t.Fatalf("no frontend %q", frontend)
	}
	return a.String()
}

// Eventually polls cond until it holds or the time is up.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Metrics fetches the Prometheus text of Mecha's admin endpoint.
func Metrics(t testing.TB, m *app.Mecha) string {
	t.Helper()
	a := m.AdminAddr()
	if a == nil {
		t.Fatal("admin endpoint not enabled")
	}
	resp, err := http.Get("http://" + a.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	sqlEngineOnce sync.Once
	sqlEngineErr  error
)

// SQLEngine builds mecha-sqlengine once per test process and points the
// embedded backend at it, for tests that serve MySQL from the embedded
// engine in-process (the test binary has no mecha-sqlengine beside it).
func SQLEngine(t testing.TB) {
	t.Helper()
	sqlEngineOnce.Do(func() {
		if os.Getenv(embedded.EnginePathEnv) != "" {
			return
		}
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			sqlEngineErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "mecha-sqlengine")
		if err != nil {
			sqlEngineErr = err
			return
		}
		bin := filepath.Join(dir, "mecha-sqlengine")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mecha-sqlengine")
		build.Dir = root
		if b, err := build.CombinedOutput(); err != nil {
			sqlEngineErr = fmt.Errorf("build mecha-sqlengine: %v\n%s", err, b)
			return
		}
		sqlEngineErr = os.Setenv(embedded.EnginePathEnv, bin)
	})
	if sqlEngineErr != nil {
		t.Fatal(sqlEngineErr)
	}
}
