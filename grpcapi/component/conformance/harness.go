// Package conformance holds the suites every component of the gRPC API
// runs in its tests: one per capability (ConfigStore, LockStore, PubSub,
// Sequencer), each a set of subtests that checks the contract of
// package component as users rely on it. A component's test calls the
// suite with a Harness that opens instances of it:
//
//	func TestConformance(t *testing.T) {
//		dir := t.TempDir()
//		conformance.LockStore(t, conformance.Harness[component.LockStore]{
//			Open: func(t *testing.T) component.LockStore { return openStore(t, dir) },
//		})
//	}
//
// Subtests run one after another and never hold two instances open at
// once, so a store that locks its files can be reopened. Every subtest
// uses resource, key and topic names of its own (a random suffix), so
// harnesses may share a store with other tests.
package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Harness opens instances of the component under test, and says what the
// store cannot do.
type Harness[T component.Component] struct {
	// Open returns a started instance. Every call on one Harness returns
	// an instance over the same persistent state (the same data dir, the
	// same key prefix), so that a subtest can close one instance and open
	// another to check what survives a restart. The suite closes what it
	// opens, and never has two instances open at once.
	Open func(t *testing.T) T

	// ConfigContentOnly (configuration) says the store keeps only an
	// item's content and version: tags and metadata are not returned by
	// Get and Subscribe, and the suite does not compare them.
	ConfigContentOnly bool

	// LockTTL (lock) is the short lease the lock suite uses to test
	// expiry; the store must expire a lease of this length on time.
	// Default 250ms; a store that counts leases in whole seconds sets 1s
	// (its suite then takes longer).
	LockTTL time.Duration

	// SurvivesRestart (pub/sub) says that messages outlive the component:
	// published and unacknowledged messages of an existing group are
	// delivered again after the component is closed and opened again
	// (at-least-once across a restart). Without it the restart subtest
	// is skipped.
	SurvivesRestart bool
	// RedeliversAckedAfterRestart (pub/sub) says that a message acked
	// shortly before a restart may be delivered again after it (the store
	// settles acks asynchronously; documented by the store). Without it
	// an acked message must never come back.
	RedeliversAckedAfterRestart bool
	// NoGroupSharing (pub/sub) says that the members of one group do not
	// share messages: each member receives every message, as each group
	// does (MQTT 3 without shared subscriptions). The suite then checks
	// exactly that instead of sharing.
	NoGroupSharing bool
}

// instance is an opened component and its closing, done once.
type instance[T component.Component] struct {
	c    T
	once sync.Once
	t    *testing.T
}

// open opens an instance, waits for it to report UP and closes it when
// the test ends unless it was closed before.
func open[T component.Component](t *testing.T, h Harness[T]) *instance[T] {
	t.Helper()
	if h.Open == nil {
		t.Fatal("conformance: Harness.Open is nil")
	}
	in := &instance[T]{c: h.Open(t), t: t}
	t.Cleanup(in.close)
	eventually(t, 10*time.Second, func() bool { return in.c.Health().State == backends.StateUp },
		"component reports UP after Open (health %v)", func() any { return in.c.Health() })
	return in
}

// close closes the instance (once) and checks that Close succeeds.
func (in *instance[T]) close() {
	in.once.Do(func() {
		if err := in.c.Close(); err != nil {
			in.t.Errorf("Close: %v", err)
		}
	})
}

// name returns a name unique to this run of the test: a prefix, a short
// form of the test's name and a random suffix, in [a-z0-9-] only, so
// that it is valid as a topic, subject, queue, key or table name in
// every store.
func name(t *testing.T, prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('-')
	short := t.Name()
	if i := strings.LastIndexByte(short, '/'); i >= 0 {
		short = short[i+1:]
	}
	n := 0
	for _, r := range strings.ToLower(short) {
		if n == 16 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			n++
		}
	}
	b.WriteByte('-')
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// eventually polls cond until it holds or timeout passes, then fails the
// test with msg (formatted with the values args returns at that time).
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string, args ...func() any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			vals := make([]any, len(args))
			for i, a := range args {
				vals[i] = a()
			}
			t.Fatalf("timed out after %v waiting for: "+msg, append([]any{timeout}, vals...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
