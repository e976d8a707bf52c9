package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type sample struct {
	Name    string   `yaml:"name"`
	Port    int      `yaml:"port"`
	Timeout Duration `yaml:"timeout"`
	Max     Size     `yaml:"max"`
	Secret  Secret   `yaml:"password"`
	Tags    []string `yaml:"tags"`
	Nested  struct {
		On bool `yaml:"on"`
	} `yaml:"nested"`
}

func (s *sample) Validate() error {
	if s.Port < 0 {
		return Errorf("port", "must not be negative")
	}
	return nil
}

func decode(t *testing.T, src string) (*sample, error) {
	t.Helper()
	cfg, err := Parse("t.yaml", []byte("frontends:\n  - "+strings.ReplaceAll(strings.TrimSpace(src), "\n", "\n    ")+"\n"))
	if err != nil {
		return nil, err
	}
	s := &sample{}
	return s, cfg.Frontends[0].Decode(s)
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, src, err string
	}{
		{"ok", "name: a\nport: 1\ntimeout: 5s\nmax: 64kb\npassword: x\ntags: [a, b]\nnested: {on: true}", ""},
		{"unknown key", "name: a\nprot: 1", "t.yaml:3:5: frontends[0].prot: unknown key (did you mean \"port\"?)"},
		{"unknown nested key", "nested: {of: true}", "t.yaml:2:14: frontends[0].nested.of: unknown key (did you mean \"on\"?)"},
		{"far-off key", "zzzzzz: 1", "frontends[0].zzzzzz: unknown key (known keys: max, name, nested, password, port, tags, timeout)"},
		{"bad int", "port: many", "t.yaml:2:11: frontends[0].port: expected an integer, got \"many\""},
		{"bad duration", "timeout: 5", "frontends[0].timeout: invalid duration \"5\""},
		{"bad size", "max: lots", "frontends[0].max: invalid size \"lots\""},
		{"list for scalar", "name: [a]", "frontends[0].name: expected a single value, got a list"},
		{"validate", "port: -1", "t.yaml:2:5: frontends[0].port: must not be negative"},
		{"duplicate", "name: a\nname: b", "frontends[0].name: duplicate key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.src)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.err)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	t.Setenv("MECHA_TEST_PW", "from-env")
	s, err := decode(t, "name: ${MECHA_TEST_NAME:-fallback}\ntimeout: 1m30s\nmax: 1kb\npassword: ${MECHA_TEST_PW}")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "fallback" || s.Timeout.D().Seconds() != 90 || s.Max != 1024 || s.Secret.Reveal() != "from-env" {
		t.Fatalf("decoded %+v", s)
	}
	if s.Secret.String() != "******" {
		t.Fatalf("a secret prints as %q", s.Secret.String())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "1k": 1000, "1kb": 1024, "2MB": 2 << 20, "1g": 1e9, "1gb": 1 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1tb", "x"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestTopLevel(t *testing.T) {
	_, err := Parse("m.yaml", []byte("admin: {listen: 127.0.0.1:1}\nlogs: {}\n"))
	var errs Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "m.yaml:2:1: logs: unknown key (did you mean \"log\"?)") {
		t.Fatalf("error = %v", err)
	}
	_, err = Parse("m.yaml", []byte("log: {level: loud}\nadmin: {listen: nowhere}\n"))
	if err == nil || !strings.Contains(err.Error(), "log.level: must be debug, info, warn or error") || !strings.Contains(err.Error(), "admin.listen: invalid address") {
		t.Fatalf("error = %v", err)
	}
	cfg, err := Parse("empty.yaml", nil)
	if err != nil || cfg.Admin.Listen != "127.0.0.1:34999" || cfg.DataDir != "./mecha-data" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	if _, err := Parse("two.yaml", []byte("a: 1\n---\nb: 2\n")); err == nil {
		t.Fatal("two documents accepted")
	}
}

// TestExamplesParse loads every example configuration shipped here. The
// runtime's tests validate them against the registered modules.
func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configurations")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if Default().Frontends == nil {
		t.Fatal("built-in defaults have no frontends")
	}
	if _, err := os.Stat("default.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		cpus int
		want int
	}{
		{"frontends: [{name: r, protocol: redis, listen: 127.0.0.1:1, backend: b}]", 8, 4},
		{"frontends: [{name: r, protocol: redis, listen: 127.0.0.1:1, backend: b}]", 1, 1},
		{"frontends: [{name: r, protocol: redis, listen: 127.0.0.1:1, backend: b}, {name: s, protocol: s3, listen: 127.0.0.1:2, backend: b}]", 2, 2},
		{"max_procs: 3\nfrontends: [{name: s, protocol: s3, listen: 127.0.0.1:2, backend: b}]", 8, 3},
	} {
		cfg, err := Parse("p.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Procs(tc.cpus); got != tc.want {
			t.Errorf("%s on %d CPUs: %d procs, want %d", tc.yaml, tc.cpus, got, tc.want)
		}
	}
}
