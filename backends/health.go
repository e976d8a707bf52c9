package backends

import (
	"sync/atomic"
)

// State is a component's readiness.
type State int32

// States, as /readyz reports them.
const (
	StateInit State = iota
	StateUp
	StateDown
)

func (s State) String() string {
	switch s {
	case StateUp:
		return "UP"
	case StateDown:
		return "DOWN"
	}
	return "INIT"
}

// Health is a component's state and, when it is not UP, why.
type Health struct {
	State  State
	Detail string
}

// HealthCell holds a component's health for concurrent readers.
type HealthCell struct {
	v atomic.Pointer[Health]
}

// Set records h and reports whether the state changed.
func (c *HealthCell) Set(state State, detail string) bool {
	old := c.v.Swap(&Health{State: state, Detail: detail})
	return old == nil || old.State != state
}

// Get returns the current health.
func (c *HealthCell) Get() Health {
	if h := c.v.Load(); h != nil {
		return *h
	}
	return Health{State: StateInit}
}
