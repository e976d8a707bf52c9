package embedded

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

// env is the environment the runtime would give a component named name
// with data directory dir.
func env(dir, name string) component.Env {
	return component.Env{Name: name, DataDir: dir, Logger: slog.New(slog.DiscardHandler)}
}

// build builds a component of capability from the registry with its
// default configuration (changed by edit) and starts it.
func build[C any, T component.Component](t *testing.T, capability component.Capability, dir string, edit func(*C)) T {
	t.Helper()
	mod, ok := component.Lookup(capability, Type)
	if !ok {
		t.Fatalf("type %q is not registered for %s", Type, capability)
	}
	cfg := mod.NewConfig()
	if edit != nil {
		edit(cfg.(*C))
	}
	c, err := mod.New(cfg, env(dir, "test"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c.(T)
}

func TestConfigStoreConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.ConfigStore(t, conformance.Harness[component.ConfigStore]{
		Open: func(t *testing.T) component.ConfigStore {
			return build[ConfigStoreConfig, component.ConfigStore](t, component.CapConfig, dir, nil)
		},
	})
}

func TestLockStoreConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.LockStore(t, conformance.Harness[component.LockStore]{
		Open: func(t *testing.T) component.LockStore {
			return build[LockConfig, component.LockStore](t, component.CapLock, dir, nil)
		},
	})
}

func TestPubSubConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.PubSub(t, conformance.Harness[component.PubSub]{
		Open: func(t *testing.T) component.PubSub {
			return build[PubSubConfig, component.PubSub](t, component.CapPubSub, dir, nil)
		},
		SurvivesRestart: true,
	})
}

func TestSequencerConformance(t *testing.T) {
	dir := t.TempDir()
	conformance.Sequencer(t, conformance.Harness[component.SequencerStore]{
		Open: func(t *testing.T) component.SequencerStore {
			return build[SequencerConfig, component.SequencerStore](t, component.CapSequencer, dir, nil)
		},
	})
}
