package postgresql

import (
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

func TestConformanceConfig(t *testing.T) {
	md := map[string]string{"connectionString": pgConn, "table": testTable(t), "createTable": "true"}
	conformance.ConfigStore(t, conformance.Harness[component.ConfigStore]{
		Open: func(t *testing.T) component.ConfigStore { return startConfig(t, md) },
	})
}

func TestConformanceSequencer(t *testing.T) {
	md := map[string]string{"connectionString": pgConn, "table": testTable(t)}
	conformance.Sequencer(t, conformance.Harness[component.SequencerStore]{
		Open: func(t *testing.T) component.SequencerStore { return startSequencer(t, md) },
	})
}
