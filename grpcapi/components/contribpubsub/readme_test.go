package contribpubsub

import (
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

// TestReadmeExamples starts every configuration shown in README.md
// against the machine's brokers and waits for each component to report
// UP.
func TestReadmeExamples(t *testing.T) {
	if n := len(conformance.StartReadmeExamples(t, "README.md")); n < 5 {
		t.Fatalf("only %d examples in README.md, want one per type and the overview", n)
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
		_, err := conformance.BuildGRPC("test.yaml", []byte(src), component.Env{})
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
