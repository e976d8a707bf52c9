package contribpubsub

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// TestReadmeExamples decodes every configuration shown in README.md (each
// ```yaml block with a top-level grpc key) as Mecha does, builds its
// components, starts them against the machine's brokers and waits for
// them to report UP.
func TestReadmeExamples(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1) {
		src := m[1]
		if !regexp.MustCompile(`(?m)^grpc:`).Match(src) {
			continue
		}
		cfg, err := configs.Parse("README.md", src)
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		g := grpcapi.DefaultConfig()
		if err := cfg.GRPC.Decode(g); err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		set, err := grpcapi.BuildSet(g, component.Env{Logger: slog.New(slog.DiscardHandler), DataDir: t.TempDir()}, nil)
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		if len(set.Entries()) == 0 {
			t.Fatalf("example %d builds no component", i+1)
		}
		for _, e := range set.Entries() {
			if err := e.C.Start(context.Background()); err != nil {
				t.Fatalf("example %d: start %s: %v", i+1, e.Name, err)
			}
			waitFor(t, 10*time.Second, "example "+e.Name+" UP", func() bool { return e.C.Health().State == backends.StateUp })
			if err := e.C.Close(); err != nil {
				t.Errorf("example %d: close %s: %v", i+1, e.Name, err)
			}
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d examples in README.md, want one per type and the overview", checked)
	}
}

// TestConfigErrors checks that bad entries fail with the key named.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"p: {type: redis, metadata: {redisHost: x}, health_interval: 0s}", "health_interval"},
		{"p: {type: redis, metadata: {redisHost: x}, max_hold: 10ms}", "max_hold"},
		{"p: {type: redis, metadata: {redisHost: x}, max_holds: 1s}", "max_holds"},
		{"p: {type: mqtt3, metadata: {url: x}, create_streams: true}", "create_streams"},
		{"p: {type: jetstream, create_streams: true, metadata: {natsURL: nats://x, streamName: S}}", "create_streams"},
	} {
		src := "grpc:\n  listen: 127.0.0.1:0\n  components:\n    pubsub:\n      " + tc.yaml + "\n"
		cfg, err := configs.Parse("test.yaml", []byte(src))
		if err == nil {
			g := grpcapi.DefaultConfig()
			if err = cfg.GRPC.Decode(g); err == nil {
				_, err = grpcapi.BuildSet(g, component.Env{}, nil)
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.yaml, err, tc.want)
		}
	}
	// Metadata without the broker's address fails when the component is
	// built, not when it starts.
	for _, typ := range []string{"redis", "jetstream", "mqtt3"} {
		mod, _ := component.Lookup(component.CapPubSub, typ)
		if _, err := mod.New(mod.NewConfig(), component.Env{Name: "p"}); err == nil {
			t.Errorf("%s without an address: built", typ)
		}
	}
}
