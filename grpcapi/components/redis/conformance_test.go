package redis

import (
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

func TestConformanceLock(t *testing.T) {
	md := metadata(redisAddr, testPrefix(t))
	conformance.LockStore(t, conformance.Harness[component.LockStore]{
		Open: func(t *testing.T) component.LockStore { return startLock(t, md) },
	})
}

func TestConformanceConfig(t *testing.T) {
	md := metadata(redisAddr, testPrefix(t))
	conformance.ConfigStore(t, conformance.Harness[component.ConfigStore]{
		Open: func(t *testing.T) component.ConfigStore { return startConfig(t, md) },
	})
}

func TestConformanceSequencer(t *testing.T) {
	md := metadata(redisAddr, testPrefix(t))
	conformance.Sequencer(t, conformance.Harness[component.SequencerStore]{
		Open: func(t *testing.T) component.SequencerStore { return startSequencer(t, md) },
	})
}
