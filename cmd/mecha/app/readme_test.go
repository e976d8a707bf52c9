package app_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/configs"
)

// TestReadmeExamples validates every complete configuration shown in a
// README: each ```yaml block that has a `frontends:`, `backends:` or `grpc:` key.
// Documentation that drifts from the code fails here.
func TestReadmeExamples(t *testing.T) {
	root := "../../.."
	var readmes []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "README.md" && !strings.Contains(p, "testdata") {
			readmes = append(readmes, p)
		}
		return nil
	})
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	checked := 0
	for _, p := range readmes {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllSubmatch(b, -1) {
			src := string(m[1])
			if !regexp.MustCompile(`(?m)^(frontends|backends|grpc):`).MatchString(src) {
				continue // a fragment, not a whole configuration
			}
			name := p + " example " + string(rune('1'+i))
			cfg, err := configs.Parse(name, []byte(src))
			if err == nil {
				err = app.Validate(cfg)
			}
			if err != nil {
				t.Errorf("%s:\n%v", name, err)
			}
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("only %d README examples found", checked)
	}
}
