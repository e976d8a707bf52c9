package mysql

import (
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

func TestConformanceSequencer(t *testing.T) {
	md := map[string]string{"connectionString": dsn(mysqlAddr), "table": testTable(t)}
	conformance.Sequencer(t, conformance.Harness[component.SequencerStore]{
		Open: func(t *testing.T) component.SequencerStore { return startSequencer(t, md) },
	})
}
