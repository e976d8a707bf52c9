package grpc

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mecha-gateway/mecha/cmd/mecha/app"
)

var (
	grpcurlOnce sync.Once
	grpcurlBin  string
	grpcurlErr  error
)

// grpcurl builds the pinned grpcurl (a `tool` of go.mod) once per run.
func grpcurl(t *testing.T) string {
	t.Helper()
	grpcurlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mecha-grpcurl")
		if err != nil {
			grpcurlErr = err
			return
		}
		grpcurlBin = filepath.Join(dir, "grpcurl")
		out, err := exec.Command("go", "build", "-o", grpcurlBin, "github.com/fullstorydev/grpcurl/cmd/grpcurl").CombinedOutput()
		if err != nil {
			grpcurlErr = err
			grpcurlBin = string(out)
		}
	})
	if grpcurlErr != nil {
		t.Fatalf("build grpcurl: %v\n%s", grpcurlErr, grpcurlBin)
	}
	return grpcurlBin
}

// runGrpcurl runs `grpcurl -plaintext [-d data] ADDRESS args...`.
func runGrpcurl(t *testing.T, m *app.Mecha, data string, args ...string) (string, error) {
	t.Helper()
	full := []string{"-plaintext"}
	if data != "" {
		full = append(full, "-d", data)
	}
	full = append(append(full, m.GRPCAddr().String()), args...)
	out, err := exec.Command(grpcurl(t), full...).CombinedOutput()
	return string(out), err
}

// TestGrpcurl drives the API as an operator would: discover it through
// reflection, call it with JSON, read errors.
func TestGrpcurl(t *testing.T) {
	m := startMecha(t, `
    lock:      { locks: { type: embedded } }
    sequencer: { ids:   { type: embedded } }
    pubsub:    { events: { type: embedded } }
    config:    { appcfg: { type: embedded } }`)
	out, err := runGrpcurl(t, m, "", "list")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	for _, svc := range []string{"mecha.runtime.v1.Configuration", "mecha.runtime.v1.Lock", "mecha.runtime.v1.PubSub", "mecha.runtime.v1.Sequencer", "grpc.health.v1.Health"} {
		if !strings.Contains(out, svc) {
			t.Fatalf("list lacks %s:\n%s", svc, out)
		}
	}
	out, err = runGrpcurl(t, m, "", "describe", "mecha.runtime.v1.Lock")
	if err != nil || !strings.Contains(out, "rpc Renew") {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	for want := 1; want <= 2; want++ {
		out, err = runGrpcurl(t, m, `{"key":"orders"}`, "mecha.runtime.v1.Sequencer/NextID")
		if err != nil {
			t.Fatalf("NextID: %v\n%s", err, out)
		}
		var r struct {
			NextID string `json:"nextId"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.NextID != []string{"", "1", "2"}[want] {
			t.Fatalf("NextID answer %q (%v), want %d", out, err, want)
		}
	}
	out, err = runGrpcurl(t, m, `{"resource_id":"r","lock_owner":"ops","ttl":"30s"}`, "mecha.runtime.v1.Lock/TryLock")
	if err != nil || !strings.Contains(out, `"success": true`) || !strings.Contains(out, `"fencingToken"`) {
		t.Fatalf("TryLock: %v\n%s", err, out)
	}
	out, err = runGrpcurl(t, m, `{"resource_id":"r","ttl":"30s"}`, "mecha.runtime.v1.Lock/TryLock")
	if err == nil || !strings.Contains(out, "Code: InvalidArgument") || !strings.Contains(out, "lock_owner is required") {
		t.Fatalf("TryLock without owner: %v\n%s", err, out)
	}
	out, err = runGrpcurl(t, m, `{"topic":"audit","data":"aGVsbG8="}`, "mecha.runtime.v1.PubSub/Publish")
	if err != nil || !strings.Contains(out, `"messageId"`) {
		t.Fatalf("Publish: %v\n%s", err, out)
	}
	out, err = runGrpcurl(t, m, `{"service":"mecha.runtime.v1.PubSub"}`, "grpc.health.v1.Health/Check")
	if err != nil || !strings.Contains(out, "SERVING") {
		t.Fatalf("health: %v\n%s", err, out)
	}
}
