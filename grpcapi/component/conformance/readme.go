package conformance

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// BuildGRPC decodes the grpc section of a whole configuration and builds
// its components, as Mecha does (nothing is started).
func BuildGRPC(name string, src []byte, env component.Env) (*grpcapi.Set, error) {
	cfg, err := configs.Parse(name, src)
	if err != nil {
		return nil, err
	}
	g := grpcapi.DefaultConfig()
	if err := cfg.GRPC.Decode(g); err != nil {
		return nil, err
	}
	return grpcapi.BuildSet(g, env, nil)
}

var (
	yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")
	grpcKey   = regexp.MustCompile(`(?m)^grpc:`)
)

// StartReadmeExamples builds every configuration shown in the README at
// path (each ```yaml block with a top-level grpc key), starts each of its
// components against the real stores, waits for it to report UP and
// closes it. It returns the components of each example. (Mecha's own
// tests validate every README example; this one also runs them.)
func StartReadmeExamples(t *testing.T, path string) [][]*grpcapi.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]*grpcapi.Entry
	for i, m := range yamlBlock.FindAllSubmatch(b, -1) {
		if !grpcKey.Match(m[1]) {
			continue
		}
		set, err := BuildGRPC(path, m[1], component.Env{Logger: slog.New(slog.DiscardHandler), DataDir: t.TempDir()})
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		if len(set.Entries()) == 0 {
			t.Fatalf("example %d builds no component", i+1)
		}
		for _, e := range set.Entries() {
			if err := e.C.Start(context.Background()); err != nil {
				t.Fatalf("example %d: start %s %s: %v", i+1, e.Capability, e.Name, err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for e.C.Health().State != backends.StateUp {
				if time.Now().After(deadline) {
					t.Fatalf("example %d: %s %s is %v after 10s", i+1, e.Capability, e.Name, e.C.Health())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := e.C.Close(); err != nil {
				t.Errorf("example %d: close %s: %v", i+1, e.Name, err)
			}
		}
		out = append(out, set.Entries())
	}
	if len(out) == 0 {
		t.Fatalf("no gRPC example in %s", path)
	}
	return out
}
