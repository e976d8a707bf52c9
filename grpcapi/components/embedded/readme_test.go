package embedded_test

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"testing"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/embedded"
)

// TestReadmeExamples loads every YAML example of README.md as a Mecha
// configuration, builds its components and starts them.
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("no yaml examples in README.md")
	}
	for i, b := range blocks {
		cfg, err := configs.Parse("README.md", b[1])
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		gcfg := grpcapi.DefaultConfig()
		if err := cfg.GRPC.Decode(gcfg); err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		set, err := grpcapi.BuildSet(gcfg, component.Env{Logger: slog.New(slog.DiscardHandler), DataDir: t.TempDir()}, nil)
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		caps := map[component.Capability]bool{}
		for _, e := range set.Entries() {
			if err := e.C.Start(context.Background()); err != nil {
				t.Fatalf("example %d: start %s %s: %v", i+1, e.Capability, e.Name, err)
			}
			caps[e.Capability] = true
			if err := e.C.Close(); err != nil {
				t.Errorf("example %d: close %s: %v", i+1, e.Name, err)
			}
		}
		if i == 0 && len(caps) != 4 {
			t.Errorf("the first example configures %d capabilities, want all 4", len(caps))
		}
	}
}

// TestConfigErrors checks that bad entries fail with the key named.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"grpc:\n  listen: 127.0.0.1:0\n  components:\n    lock:\n      l: {type: embedded, metadata: {redisHost: x}}\n", "metadata"},
		{"grpc:\n  listen: 127.0.0.1:0\n  components:\n    pubsub:\n      p: {type: embedded, retention: 0s}\n", "retention"},
		{"grpc:\n  listen: 127.0.0.1:0\n  components:\n    sequencer:\n      s: {type: embedded, fsync: always}\n", "unknown key"},
	} {
		cfg, err := configs.Parse("test.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		gcfg := grpcapi.DefaultConfig()
		if err := cfg.GRPC.Decode(gcfg); err != nil {
			t.Fatal(err)
		}
		_, err = grpcapi.BuildSet(gcfg, component.Env{DataDir: t.TempDir()}, nil)
		if err == nil || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(err.Error()) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
		t.Log(err)
	}
}
