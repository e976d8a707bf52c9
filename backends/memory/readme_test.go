package memory

import (
	"os"
	"regexp"
	"testing"

	"github.com/mecha-gateway/mecha/configs"
)

// TestReadmeConfig decodes every `type: memory` backend in the README's
// examples strictly into Config, as Mecha does, and validates it.
func TestReadmeConfig(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for i, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1) {
		cfg, err := configs.Parse("README.md example", m[1])
		if err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		for name, n := range cfg.Backends {
			if typ, _ := n.Scalar("type"); typ != "memory" {
				continue
			}
			c := DefaultConfig()
			if err := n.Decode(c); err != nil {
				t.Errorf("example %d, backend %s: %v", i+1, name, err)
			}
			found++
		}
	}
	if found == 0 {
		t.Fatal("no memory backend in the README's examples")
	}
}
