package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapConfig, Type, DefaultConfigStoreConfig, NewConfigStore)
}

// ConfigStoreConfig is the configuration of an embedded configuration
// store.
type ConfigStoreConfig struct {
	component.Base `yaml:",inline"`
	Store          StoreOptions `yaml:",inline"`
	// SubscriberBuffer is how many changes a subscriber may fall behind
	// before its pending changes are merged per key (it then receives only
	// the latest change of each key, in the order of those changes).
	SubscriberBuffer int `yaml:"subscriber_buffer"`
}

// DefaultConfigStoreConfig returns the defaults.
func DefaultConfigStoreConfig() *ConfigStoreConfig {
	return &ConfigStoreConfig{Store: defaultStoreOptions(), SubscriberBuffer: 1024}
}

// Validate checks the values.
func (c *ConfigStoreConfig) Validate() error {
	err := checkBase(&c.Base)
	if c.SubscriberBuffer < 1 {
		err = errors.Join(err, configs.Errorf("subscriber_buffer", "must be at least 1"))
	}
	return err
}

// ConfigStore is the embedded configuration store. Items are keyed by
// their scope (app id, group and label, each length-prefixed, so that no
// two scopes share a prefix) followed by their key, so that a scope is a
// range of keys in key order. Versions come from one counter per store.
// Subscriptions are watchers in memory: this store is the only writer of
// its file, so it sees every change as it commits it.
type ConfigStore struct {
	*base
	buffer int

	mu       sync.Mutex
	watchers map[*watcher]struct{}
	closed   bool
}

var (
	bucketItems      = []byte("items")
	bucketConfigMeta = []byte("meta")
	keyVersion       = []byte("version")
)

// NewConfigStore builds an embedded configuration store; Start opens its
// file.
func NewConfigStore(c *ConfigStoreConfig, env component.Env) (*ConfigStore, error) {
	b, err := newBase(component.CapConfig, c.Store, env, string(bucketItems), string(bucketConfigMeta))
	if err != nil {
		return nil, err
	}
	return &ConfigStore{base: b, buffer: c.SubscriberBuffer, watchers: map[*watcher]struct{}{}}, nil
}

// Start opens the file.
func (s *ConfigStore) Start(ctx context.Context) error { return s.start(ctx) }

// Close ends the subscriptions and closes the file. It does not wait for
// a subscriber's fn that is running: that call returns when fn does, and
// no other follows.
func (s *ConfigStore) Close() error {
	s.mu.Lock()
	s.closed = true
	for w := range s.watchers {
		w.stop()
	}
	s.watchers = map[*watcher]struct{}{}
	s.mu.Unlock()
	return s.close()
}

func scopePrefix(sc component.ConfigScope) []byte {
	b := appendString(nil, sc.AppID)
	b = appendString(b, sc.Group)
	return appendString(b, sc.Label)
}

func itemKey(sc component.ConfigScope, key string) []byte {
	return append(scopePrefix(sc), key...)
}

func encodeItem(it *component.ConfigItem, version uint64) []byte {
	b := appendUvarint(nil, version)
	b = appendString(b, it.Content)
	b = appendMap(b, it.Tags)
	return appendMap(b, it.Metadata)
}

func decodeItem(sc component.ConfigScope, key string, v []byte) (component.ConfigItem, error) {
	r := reader{b: v}
	it := component.ConfigItem{AppID: sc.AppID, Group: sc.Group, Label: sc.Label, Key: key}
	it.Version = strconv.FormatUint(r.uvarint(), 10)
	it.Content = r.string()
	it.Tags = r.stringMap()
	it.Metadata = r.stringMap()
	if r.err != nil {
		return it, fmt.Errorf("item %q: %w", key, r.err)
	}
	return it, nil
}

// Get reads the items of scope.
func (s *ConfigStore) Get(ctx context.Context, sc component.ConfigScope, keys []string) ([]component.ConfigItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var items []component.ConfigItem
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		if len(keys) > 0 {
			keys = slices.Clone(keys)
			slices.Sort(keys)
			keys = slices.Compact(keys)
			for _, k := range keys {
				if v := b.Get(itemKey(sc, k)); v != nil {
					it, err := decodeItem(sc, k, v)
					if err != nil {
						return err
					}
					items = append(items, it)
				}
			}
			return nil
		}
		prefix := scopePrefix(sc)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			it, err := decodeItem(sc, string(k[len(prefix):]), v)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	})
	return items, err
}

// Save checks every expected version, then writes every item, in one
// transaction.
func (s *ConfigStore) Save(ctx context.Context, items []component.ConfigItem) ([]component.ConfigItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		out      []component.ConfigItem
		mismatch error
	)
	err := s.update(func(tx *bolt.Tx) error {
		out, mismatch = nil, nil
		b := tx.Bucket(bucketItems)
		for _, it := range items {
			if it.Version == "" {
				continue
			}
			v := b.Get(itemKey(it.Scope(), it.Key))
			if v == nil {
				mismatch = fmt.Errorf("%w: item %q does not exist, expected version %s", component.ErrVersionMismatch, it.Key, it.Version)
				return nil
			}
			r := reader{b: v}
			if stored := strconv.FormatUint(r.uvarint(), 10); stored != it.Version {
				mismatch = fmt.Errorf("%w: item %q has version %s, expected %s", component.ErrVersionMismatch, it.Key, stored, it.Version)
				return nil
			}
		}
		meta := tx.Bucket(bucketConfigMeta)
		version, _ := fromBE8(meta.Get(keyVersion))
		out = make([]component.ConfigItem, len(items))
		for i, it := range items {
			version++
			if err := b.Put(itemKey(it.Scope(), it.Key), encodeItem(&it, version)); err != nil {
				return err
			}
			it.Version = strconv.FormatUint(version, 10)
			out[i] = it
		}
		return meta.Put(keyVersion, be8(version))
	}, func() {
		if mismatch == nil {
			changes := make([]component.ConfigChange, len(out))
			for i, it := range out {
				changes[i] = component.ConfigChange{Item: it}
			}
			s.notify(changes)
		}
	})
	if err != nil {
		return nil, err
	}
	if mismatch != nil {
		return nil, mismatch
	}
	return out, nil
}

// Delete removes keys of scope (all of scope's when keys is empty).
func (s *ConfigStore) Delete(ctx context.Context, sc component.ConfigScope, keys []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var deleted []component.ConfigChange
	err := s.update(func(tx *bolt.Tx) error {
		deleted = nil
		b := tx.Bucket(bucketItems)
		var doomed [][]byte
		if len(keys) > 0 {
			ks := slices.Clone(keys)
			slices.Sort(ks)
			for _, k := range slices.Compact(ks) {
				if v := b.Get(itemKey(sc, k)); v != nil {
					it, err := decodeItem(sc, k, v)
					if err != nil {
						return err
					}
					deleted = append(deleted, component.ConfigChange{Deleted: true, Item: it})
					doomed = append(doomed, itemKey(sc, k))
				}
			}
		} else {
			prefix := scopePrefix(sc)
			c := b.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				it, err := decodeItem(sc, string(k[len(prefix):]), v)
				if err != nil {
					return err
				}
				deleted = append(deleted, component.ConfigChange{Deleted: true, Item: it})
				doomed = append(doomed, bytes.Clone(k))
			}
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}, func() { s.notify(deleted) })
	if err != nil {
		return 0, err
	}
	return len(deleted), nil
}

// Subscribe registers a watcher; changes committed after it returns are
// reported.
func (s *ConfigStore) Subscribe(ctx context.Context, sc component.ConfigScope, keys []string, fn func([]component.ConfigChange)) error {
	if _, _, err := s.committer(); err != nil {
		return err
	}
	w := &watcher{scope: sc, fn: fn, limit: s.buffer, index: map[string]int{}, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	if len(keys) > 0 {
		w.keys = map[string]bool{}
		for _, k := range keys {
			w.keys[k] = true
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return component.Unavailable(errClosed)
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	go func() {
		w.run(ctx)
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
	}()
	return nil
}

// notify hands committed changes to the watchers they concern; it runs on
// the committer's goroutine, in commit order, and never blocks.
func (s *ConfigStore) notify(changes []component.ConfigChange) {
	if len(changes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		for _, c := range changes {
			if c.Item.Scope() == w.scope && (w.keys == nil || w.keys[c.Item.Key]) {
				w.push(c)
			}
		}
	}
}

// watcher is one subscription: a queue of changes and the goroutine that
// hands them to fn. When more than limit changes wait, a new change of a
// key replaces the one waiting for that key (moving to the end), so a
// slow subscriber costs memory in proportion to the keys that changed,
// not to the changes, and still ends up with every key's latest state.
type watcher struct {
	scope component.ConfigScope
	keys  map[string]bool
	fn    func([]component.ConfigChange)
	limit int

	mu    sync.Mutex
	queue []*component.ConfigChange // nil: replaced by a later change
	index map[string]int            // key → its latest change's place in queue
	live  int
	kick  chan struct{}
	quit  chan struct{}
	once  sync.Once
}

func (w *watcher) push(c component.ConfigChange) {
	w.mu.Lock()
	if i, ok := w.index[c.Item.Key]; ok && w.live >= w.limit {
		w.queue[i] = nil
		w.live--
	}
	w.queue = append(w.queue, &c)
	w.index[c.Item.Key] = len(w.queue) - 1
	w.live++
	if len(w.queue) > 2*w.live+w.limit {
		w.compact()
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *watcher) compact() {
	q := w.queue[:0]
	clear(w.index)
	for _, c := range w.queue {
		if c != nil {
			w.index[c.Item.Key] = len(q)
			q = append(q, c)
		}
	}
	clear(w.queue[len(q):])
	w.queue = q
}

func (w *watcher) stop() { w.once.Do(func() { close(w.quit) }) }

func (w *watcher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.quit:
			return
		case <-w.kick:
		}
		w.mu.Lock()
		batch := make([]component.ConfigChange, 0, w.live)
		for _, c := range w.queue {
			if c != nil {
				batch = append(batch, *c)
			}
		}
		w.queue, w.live = nil, 0
		clear(w.index)
		w.mu.Unlock()
		if len(batch) == 0 || ctx.Err() != nil {
			continue
		}
		select {
		case <-w.quit:
			return
		default:
		}
		w.fn(batch)
	}
}

var _ component.ConfigStore = (*ConfigStore)(nil)
