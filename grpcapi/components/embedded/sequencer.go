package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapSequencer, Type, DefaultSequencerConfig, NewSequencer)
}

// SequencerConfig is the configuration of an embedded sequencer.
type SequencerConfig struct {
	component.Base `yaml:",inline"`
	Store          StoreOptions `yaml:",inline"`
}

// DefaultSequencerConfig returns the defaults.
func DefaultSequencerConfig() *SequencerConfig {
	return &SequencerConfig{Store: defaultStoreOptions()}
}

// Validate checks the values.
func (c *SequencerConfig) Validate() error { return checkBase(&c.Base) }

// Sequencer is the embedded sequencer: the last id reserved per key, in
// one bucket.
type Sequencer struct {
	*base
}

var bucketSeq = []byte("sequences")

// NewSequencer builds an embedded sequencer; Start opens its file.
func NewSequencer(c *SequencerConfig, env component.Env) (*Sequencer, error) {
	b, err := newBase(component.CapSequencer, c.Store, env, string(bucketSeq))
	if err != nil {
		return nil, err
	}
	return &Sequencer{base: b}, nil
}

// Start opens the file.
func (s *Sequencer) Start(ctx context.Context) error { return s.start(ctx) }

// Close closes the file.
func (s *Sequencer) Close() error { return s.close() }

var errSequenceExhausted = errors.New("sequence exhausted: ids would pass 2^63-1")

// Reserve reserves n ids of key in one (shared) transaction.
func (s *Sequencer) Reserve(ctx context.Context, key string, n int64) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("reserve %d ids: n must be positive", n)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var first int64
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeq)
		var last uint64
		if v := b.Get([]byte(key)); v != nil {
			var ok bool
			if last, ok = fromBE8(v); !ok {
				return fmt.Errorf("sequence %q: %w", key, errCorrupt)
			}
		}
		if last > uint64(math.MaxInt64-n) {
			return errSequenceExhausted
		}
		first = int64(last) + 1
		return b.Put([]byte(key), be8(last+uint64(n)))
	}, nil)
	if err != nil {
		return 0, err
	}
	return first, nil
}

var _ component.SequencerStore = (*Sequencer)(nil)
