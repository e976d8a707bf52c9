package embedded_test

import (
	"regexp"
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
	_ "github.com/mecha-gateway/mecha/grpcapi/components/embedded"
)

// TestReadmeExamples starts every configuration shown in README.md; the
// first configures all four capabilities.
func TestReadmeExamples(t *testing.T) {
	examples := conformance.StartReadmeExamples(t, "README.md")
	caps := map[component.Capability]bool{}
	for _, e := range examples[0] {
		caps[e.Capability] = true
	}
	if len(caps) != 4 {
		t.Errorf("the first example configures %d capabilities, want all 4", len(caps))
	}
}

// TestConfigErrors checks that bad entries fail with the key named.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"grpc:\n  listen: 127.0.0.1:0\n  components:\n    lock:\n      l: {type: embedded, metadata: {redisHost: x}}\n", "metadata"},
		{"grpc:\n  listen: 127.0.0.1:0\n  components:\n    pubsub:\n      p: {type: embedded, retention: 0s}\n", "retention"},
		{"grpc:\n  listen: 127.0.0.1:0\n  components:\n    sequencer:\n      s: {type: embedded, fsync: always}\n", "unknown key"},
	} {
		_, err := conformance.BuildGRPC("test.yaml", []byte(tc.yaml), component.Env{DataDir: t.TempDir()})
		if err == nil || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(err.Error()) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
		t.Log(err)
	}
}
