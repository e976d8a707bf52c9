package contribpubsub

import (
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

// TestConformance runs the pub/sub suite against each type on the
// machine's brokers.
func TestConformance(t *testing.T) {
	for _, bc := range cases() {
		t.Run(bc.typ, func(t *testing.T) {
			t.Parallel()
			o := newOpener(t, bc, nil)
			conformance.PubSub(t, conformance.Harness[component.PubSub]{
				Open:            func(t *testing.T) component.PubSub { return o.open(t) },
				SurvivesRestart: true,
			})
		})
	}
}
