package embedded

import (
	"context"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapLock, Type, DefaultLockConfig, NewLockStore)
}

// LockConfig is the configuration of an embedded lock store.
type LockConfig struct {
	component.Base `yaml:",inline"`
	Store          StoreOptions `yaml:",inline"`
}

// DefaultLockConfig returns the defaults.
func DefaultLockConfig() *LockConfig { return &LockConfig{Store: defaultStoreOptions()} }

// Validate checks the values.
func (c *LockConfig) Validate() error { return checkBase(&c.Base) }

// LockStore is the embedded lock store. A held lock is a record
// {owner, expiry (wall clock), token} under its resource; fencing tokens
// come from one counter for the whole store, so they increase for every
// resource without a record per resource that was ever locked. Records of
// released locks are deleted; expired ones are overwritten by the next
// TryLock and swept now and then.
type LockStore struct {
	*base
	now func() time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

var (
	bucketLocks    = []byte("locks")
	bucketLockMeta = []byte("meta")
	keyToken       = []byte("token")
)

// sweepEvery is how often expired lock records are deleted.
const sweepEvery = 10 * time.Minute

// NewLockStore builds an embedded lock store; Start opens its file.
func NewLockStore(c *LockConfig, env component.Env) (*LockStore, error) {
	b, err := newBase(component.CapLock, c.Store, env, string(bucketLocks), string(bucketLockMeta))
	if err != nil {
		return nil, err
	}
	return &LockStore{base: b, now: time.Now, stop: make(chan struct{})}, nil
}

// Start opens the file, deletes expired records and starts the sweeper.
func (s *LockStore) Start(ctx context.Context) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	s.sweep()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sweep()
			}
		}
	}()
	return nil
}

// Close stops the sweeper and closes the file.
func (s *LockStore) Close() error {
	s.base.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.base.mu.Unlock()
	s.wg.Wait()
	return s.close()
}

type lockRecord struct {
	owner   string
	expires int64 // unix nanoseconds
	token   uint64
}

func (r lockRecord) encode() []byte {
	b := appendString(nil, r.owner)
	b = appendVarint(b, r.expires)
	return appendUvarint(b, r.token)
}

func decodeLock(v []byte) (lockRecord, bool) {
	if v == nil {
		return lockRecord{}, false
	}
	r := reader{b: v}
	rec := lockRecord{owner: r.string(), expires: r.varint(), token: r.uvarint()}
	return rec, r.err == nil
}

// held returns resource's record if a lease on it is running at now.
func held(tx *bolt.Tx, resource string, now int64) (lockRecord, bool) {
	rec, ok := decodeLock(tx.Bucket(bucketLocks).Get([]byte(resource)))
	if !ok || rec.expires <= now {
		return lockRecord{}, false
	}
	return rec, true
}

// TryLock takes the lock if no lease on it is running. A lock that is
// held is refused from a read transaction, without a write.
func (s *LockStore) TryLock(ctx context.Context, resource, owner string, ttl time.Duration) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	busy := false
	err := s.view(func(tx *bolt.Tx) error {
		_, busy = held(tx, resource, s.now().UnixNano())
		return nil
	})
	if err != nil || busy {
		return 0, false, err
	}
	var token uint64
	var ok bool
	err = s.update(func(tx *bolt.Tx) error {
		now := s.now()
		token, ok = 0, false
		if _, busy := held(tx, resource, now.UnixNano()); busy {
			return nil
		}
		meta := tx.Bucket(bucketLockMeta)
		last, _ := fromBE8(meta.Get(keyToken))
		if err := meta.Put(keyToken, be8(last+1)); err != nil {
			return err
		}
		rec := lockRecord{owner: owner, expires: now.Add(ttl).UnixNano(), token: last + 1}
		if err := tx.Bucket(bucketLocks).Put([]byte(resource), rec.encode()); err != nil {
			return err
		}
		token, ok = rec.token, true
		return nil
	}, nil)
	if err != nil {
		return 0, false, err
	}
	return token, ok, nil
}

// status is what Unlock and Renew find.
func status(rec lockRecord, running bool, owner string) component.LockStatus {
	switch {
	case !running:
		return component.LockDoesNotExist
	case rec.owner != owner:
		return component.LockBelongsToOthers
	}
	return component.LockSuccess
}

// Unlock deletes owner's record.
func (s *LockStore) Unlock(ctx context.Context, resource, owner string) (component.LockStatus, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var st component.LockStatus
	err := s.view(func(tx *bolt.Tx) error {
		rec, running := held(tx, resource, s.now().UnixNano())
		st = status(rec, running, owner)
		return nil
	})
	if err != nil || st != component.LockSuccess {
		return st, err
	}
	err = s.update(func(tx *bolt.Tx) error {
		rec, running := held(tx, resource, s.now().UnixNano())
		if st = status(rec, running, owner); st != component.LockSuccess {
			return nil
		}
		return tx.Bucket(bucketLocks).Delete([]byte(resource))
	}, nil)
	return st, err
}

// Renew moves the expiry of owner's lease to ttl from now.
func (s *LockStore) Renew(ctx context.Context, resource, owner string, ttl time.Duration) (uint64, component.LockStatus, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	var st component.LockStatus
	err := s.view(func(tx *bolt.Tx) error {
		rec, running := held(tx, resource, s.now().UnixNano())
		st = status(rec, running, owner)
		return nil
	})
	if err != nil || st != component.LockSuccess {
		return 0, st, err
	}
	var token uint64
	err = s.update(func(tx *bolt.Tx) error {
		now := s.now()
		rec, running := held(tx, resource, now.UnixNano())
		if st = status(rec, running, owner); st != component.LockSuccess {
			return nil
		}
		token = rec.token
		rec.expires = now.Add(ttl).UnixNano()
		return tx.Bucket(bucketLocks).Put([]byte(resource), rec.encode())
	}, nil)
	if err != nil {
		return 0, 0, err
	}
	return token, st, nil
}

// sweep deletes the records of expired leases, a bounded number per
// transaction.
func (s *LockStore) sweep() {
	for {
		n := 0
		err := s.update(func(tx *bolt.Tx) error {
			n = 0
			now := s.now().UnixNano()
			b := tx.Bucket(bucketLocks)
			var expired [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil && len(expired) < 10000; k, v = c.Next() {
				if rec, ok := decodeLock(v); !ok || rec.expires <= now {
					expired = append(expired, append([]byte(nil), k...))
				}
			}
			for _, k := range expired {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(expired)
			return nil
		}, nil)
		if err != nil {
			s.log.Warn("embedded lock store: sweeping expired locks", "err", err)
			return
		}
		if n < 10000 {
			return
		}
	}
}

var _ component.LockStore = (*LockStore)(nil)
