// Package component holds the contracts of the gRPC API's capabilities:
// one interface per capability (configuration, lock, pub/sub, sequencer)
// that every component implements, whether Mecha's embedded store or an
// adapter around a github.com/dapr/components-contrib component, and the
// registry that maps a configuration `type` to a component module.
//
// The gRPC services (package grpcapi) validate requests and turn errors
// into status codes; components see only valid arguments. Behaviour the
// API promises on top of what stores offer (blocking lock waits, segment
// caching of ids, release of locks on disconnect) lives in the services,
// once for every component.
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mecha-gateway/mecha/backends"
)

// Capability names a kind of component, as grpc.components spells it.
type Capability string

// The capabilities of the gRPC API.
const (
	CapConfig    Capability = "config"
	CapLock      Capability = "lock"
	CapPubSub    Capability = "pubsub"
	CapSequencer Capability = "sequencer"
)

// Capabilities lists every capability in configuration order.
var Capabilities = []Capability{CapConfig, CapLock, CapPubSub, CapSequencer}

// Component is the lifecycle every component has; it is the same as a
// backend's: constructors have no side effects, Start connects (and
// succeeds with Health DOWN when the store is unreachable, recovering by
// itself), Close releases everything.
type Component = backends.Backend

// Errors components return; the services map them to gRPC codes.
var (
	// ErrUnavailable wraps a failure to reach the store (UNAVAILABLE).
	ErrUnavailable = errors.New("store unavailable")
	// ErrVersionMismatch is a Save whose expected version is not the
	// stored one (ABORTED).
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrUnknownMessage is an ack, nack or drop of a message id the
	// subscription did not deliver or already settled (NOT_FOUND).
	ErrUnknownMessage = errors.New("unknown message id")
	// ErrNotSupported is an operation the component cannot do
	// (UNIMPLEMENTED), such as Save on a read-only configuration store.
	ErrNotSupported = errors.New("not supported by this component")
)

// Unavailable wraps err as ErrUnavailable.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// ---- configuration ----

// ConfigScope addresses a group of configuration items.
type ConfigScope struct {
	AppID, Group, Label string
}

// ConfigItem is one configuration item.
type ConfigItem struct {
	AppID, Group, Label, Key string
	Content                  string
	Tags                     map[string]string
	// Version is set by the store on every save and increases per item.
	// On Save a non-empty Version is the expected stored version.
	Version  string
	Metadata map[string]string
}

// Scope returns the item's scope.
func (it *ConfigItem) Scope() ConfigScope {
	return ConfigScope{AppID: it.AppID, Group: it.Group, Label: it.Label}
}

// ConfigChange is one change a subscription reports.
type ConfigChange struct {
	Deleted bool
	Item    ConfigItem
}

// ConfigStore is a configuration component.
type ConfigStore interface {
	Component
	// Get returns the items of scope named in keys, or all of scope's
	// items when keys is empty, sorted by key. Missing keys are left out.
	Get(ctx context.Context, scope ConfigScope, keys []string) ([]ConfigItem, error)
	// Save stores items atomically: if any item's Version is set and
	// differs from the stored one, nothing is saved and the error wraps
	// ErrVersionMismatch. It returns the items with their new versions.
	Save(ctx context.Context, items []ConfigItem) ([]ConfigItem, error)
	// Delete removes keys of scope (every item of scope when keys is
	// empty) and returns how many existed.
	Delete(ctx context.Context, scope ConfigScope, keys []string) (int, error)
	// Subscribe reports changes to scope (to keys only, when not empty;
	// otherwise to every key, keys created later included) by calling fn
	// from one goroutine, in order, until ctx ends. It returns once the
	// subscription is in place, so a change made after it returns is
	// reported.
	Subscribe(ctx context.Context, scope ConfigScope, keys []string, fn func([]ConfigChange)) error
}

// ---- lock ----

// LockStatus is the outcome of Unlock and Renew.
type LockStatus int

// Lock statuses, as the API reports them.
const (
	LockSuccess LockStatus = iota
	LockDoesNotExist
	LockBelongsToOthers
)

func (s LockStatus) String() string {
	switch s {
	case LockSuccess:
		return "SUCCESS"
	case LockDoesNotExist:
		return "LOCK_DOES_NOT_EXIST"
	case LockBelongsToOthers:
		return "LOCK_BELONGS_TO_OTHERS"
	}
	return fmt.Sprintf("LockStatus(%d)", int(s))
}

// LockStore is a lock component. A lock is held by one owner until it
// unlocks or its lease runs out; no two owners may hold a resource at
// once.
type LockStore interface {
	Component
	// TryLock acquires resource for owner with a lease of ttl if nobody
	// holds it (an owner that already holds it does not acquire it
	// again). On success it returns a fencing token larger than every
	// token returned earlier for resource by this store.
	TryLock(ctx context.Context, resource, owner string, ttl time.Duration) (token uint64, ok bool, err error)
	// Unlock releases resource if owner holds it.
	Unlock(ctx context.Context, resource, owner string) (LockStatus, error)
	// Renew sets the lease of a lock owner holds to ttl from now and
	// returns its fencing token, unchanged.
	Renew(ctx context.Context, resource, owner string, ttl time.Duration) (uint64, LockStatus, error)
}

// ---- pub/sub ----

// OutMessage is a message to publish.
type OutMessage struct {
	Data        []byte
	ContentType string
	Metadata    map[string]string
	// DeliverAt holds the message back until then (zero: at once).
	DeliverAt time.Time
}

// PublishResult is the outcome of publishing one message.
type PublishResult struct {
	ID  string
	Err error
}

// Message is a message delivered to a subscription.
type Message struct {
	ID          string
	Topic       string
	Data        []byte
	ContentType string
	Metadata    map[string]string
	PublishTime time.Time
	// Attempt counts deliveries of this message to the group, from 1.
	Attempt int
}

// SubscribeSpec describes a subscription; the service fills defaults
// before a component sees it.
type SubscribeSpec struct {
	Topic string
	// Group is the consumer group: every group gets every message, the
	// subscriptions of one group share them.
	Group string
	// MaxInFlight bounds the messages delivered and not yet settled.
	MaxInFlight int
	// MaxAttempts is how many deliveries a message gets; after the last
	// one fails it goes to DeadLetterTopic, or is dropped if that is
	// empty.
	MaxAttempts     int
	DeadLetterTopic string
	// MinBackoff and MaxBackoff bound the exponential wait before a
	// nacked message is delivered again.
	MinBackoff, MaxBackoff time.Duration
	Metadata               map[string]string
}

// Backoff is the wait before delivery number attempt+1 of a message
// whose delivery number attempt was nacked: MinBackoff doubled per
// earlier attempt, at most MaxBackoff.
func (s *SubscribeSpec) Backoff(attempt int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < attempt && d < s.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.MaxBackoff)
}

// Subscription is one member of a consumer group.
type Subscription interface {
	// Messages delivers messages; it is closed when the subscription
	// ends (Close, or a failure reported by Err).
	Messages() <-chan *Message
	// Ack settles a delivered message as processed.
	Ack(ctx context.Context, id string) error
	// Nack asks for the message again after retryAfter (0: the spec's
	// backoff); past MaxAttempts it is dead-lettered instead.
	Nack(ctx context.Context, id string, retryAfter time.Duration) error
	// Drop settles a message as never to be delivered again; it goes to
	// the dead letter topic when there is one.
	Drop(ctx context.Context, id string) error
	// Close ends the subscription; messages it had delivered and not
	// settled are delivered again (to another member, or later).
	Close() error
	// Err is why Messages was closed, nil after Close.
	Err() error
}

// PubSub is a pub/sub component.
type PubSub interface {
	Component
	// Publish stores msgs on topic, each on its own: results has one
	// element per message, with its id or its error. A message is
	// acknowledged (has an id) only once it is durable in the store.
	Publish(ctx context.Context, topic string, msgs []OutMessage) []PublishResult
	// Subscribe joins spec.Group on spec.Topic.
	Subscribe(ctx context.Context, spec SubscribeSpec) (Subscription, error)
}

// ---- sequencer ----

// SequencerStore is a sequencer component.
type SequencerStore interface {
	Component
	// Reserve reserves n consecutive ids of key and returns the first:
	// every id of the block is larger than every id reserved before for
	// key in this store. The first id of a new key is 1.
	Reserve(ctx context.Context, key string, n int64) (first int64, err error)
}

// ---- registry ----

// Env is what the runtime gives a component module.
type Env struct {
	// Name is the component's name in the configuration.
	Name string
	// Logger is tagged with the component's name.
	Logger *slog.Logger
	// DataDir is where the component may keep files.
	DataDir string
}

// Module registers one component type for one capability.
type Module struct {
	Capability Capability
	// Type is the value of `type:` that selects the module.
	Type string
	// NewConfig returns a pointer to the module's configuration struct,
	// filled with defaults; the runtime decodes the entry into it.
	NewConfig func() any
	// New builds the component (a ConfigStore, LockStore, PubSub or
	// SequencerStore, by Capability) from its decoded configuration.
	New func(cfg any, env Env) (Component, error)
}

var registries = map[Capability]*backends.Registry[Module]{
	CapConfig:    backends.NewRegistry[Module]("config component type"),
	CapLock:      backends.NewRegistry[Module]("lock component type"),
	CapPubSub:    backends.NewRegistry[Module]("pubsub component type"),
	CapSequencer: backends.NewRegistry[Module]("sequencer component type"),
}

// Register adds a component module; it is called from init.
func Register(m Module) {
	r, ok := registries[m.Capability]
	if !ok {
		panic(fmt.Sprintf("component: unknown capability %q", m.Capability))
	}
	r.Register(m.Type, m)
}

// RegisterType registers a module with a typed configuration.
func RegisterType[C any, T Component](capability Capability, typ string, defaults func() *C, build func(*C, Env) (T, error)) {
	Register(Module{
		Capability: capability,
		Type:       typ,
		NewConfig:  func() any { return defaults() },
		New: func(cfg any, env Env) (Component, error) {
			c, err := build(cfg.(*C), env)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
	})
}

// Lookup returns the module registered for typ under capability.
func Lookup(capability Capability, typ string) (Module, bool) {
	r, ok := registries[capability]
	if !ok {
		return Module{}, false
	}
	return r.Lookup(typ)
}

// Types lists the types registered for capability.
func Types(capability Capability) []string {
	r, ok := registries[capability]
	if !ok {
		return nil
	}
	return r.Names()
}

// Base holds the keys every component entry has.
type Base struct {
	// Type selects the component module.
	Type string `yaml:"type"`
	// Metadata are the component's string settings, named as the
	// components-contrib component names them.
	Metadata map[string]string `yaml:"metadata"`
}
