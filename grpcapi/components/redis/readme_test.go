package redis

import (
	"os"
	"regexp"
	"testing"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// TestReadmeExamples decodes and builds every gRPC configuration shown in
// README.md (each ```yaml block with a top-level grpc key), as Mecha does.
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
		set, err := grpcapi.BuildSet(g, component.Env{}, nil)
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		if len(set.Entries()) == 0 {
			t.Fatalf("example %d builds no component", i+1)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no example in README.md")
	}
}
