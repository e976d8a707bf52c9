package redis

import (
	"context"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapSequencer, "redis", DefaultSequencerConfig, NewSequencer)
}

// SequencerConfig is the `type: redis` sequencer's configuration:
// everything is in metadata, with contrib's Redis key names, plus
// keyPrefix.
type SequencerConfig struct {
	component.Base `yaml:",inline"`
}

// DefaultSequencerConfig returns the defaults.
func DefaultSequencerConfig() *SequencerConfig { return &SequencerConfig{} }

// Validate checks the metadata.
func (c *SequencerConfig) Validate() error {
	_, err := parseSettings(c.Metadata)
	return err
}

// Sequencer is a sequencer on Redis: <keyPrefix>:seq:<key> holds the last
// id reserved for key, and a reservation of n ids is one INCRBY n.
type Sequencer struct {
	s    *settings
	link *link
}

var _ component.SequencerStore = (*Sequencer)(nil)

// NewSequencer builds a sequencer; nothing connects until Start.
func NewSequencer(c *SequencerConfig, env component.Env) (*Sequencer, error) {
	s, err := parseSettings(c.Metadata)
	if err != nil {
		return nil, err
	}
	return &Sequencer{s: s, link: newLink(env, "sequencer", nil)}, nil
}

// Start connects; when Redis is down it still succeeds, reporting DOWN
// until Redis answers.
func (q *Sequencer) Start(ctx context.Context) error { return q.link.start(ctx, q.s) }

// Health reports whether Redis answers.
func (q *Sequencer) Health() backends.Health { return q.link.Health() }

// Close releases the connections.
func (q *Sequencer) Close() error { return q.link.close() }

// Reserve reserves n consecutive ids of key and returns the first.
func (q *Sequencer) Reserve(ctx context.Context, key string, n int64) (int64, error) {
	if q.link.client == nil {
		return 0, errNotStarted
	}
	last, err := q.link.client.IncrBy(ctx, q.s.prefix+":seq:"+key, n).Result()
	if err != nil {
		return 0, q.link.Fail(ctx, "reserve ids", err)
	}
	return last - n + 1, nil
}
