package kv

import (
	"context"
	"time"
)

// Kind is the type of a value, as TYPE reports it.
type Kind uint8

// Value kinds.
const (
	KindNone Kind = iota
	KindString
	KindList
	KindHash
	KindSet
	KindZSet
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindList:
		return "list"
	case KindHash:
		return "hash"
	case KindSet:
		return "set"
	case KindZSet:
		return "zset"
	}
	return "none"
}

// Value is a typed value of a store with FeatureTypes. Exactly the field
// matching Kind is set.
type Value struct {
	Kind Kind
	Str  []byte
	List *List
	Hash map[string][]byte
	Set  map[string]struct{}
	ZSet *ZSet
}

// Len is the number of elements of a collection (the length of a string).
func (v *Value) Len() int {
	switch v.Kind {
	case KindString:
		return len(v.Str)
	case KindList:
		return v.List.Len()
	case KindHash:
		return len(v.Hash)
	case KindSet:
		return len(v.Set)
	case KindZSet:
		return v.ZSet.Len()
	}
	return 0
}

// NewValue returns an empty value of kind k.
func NewValue(k Kind) *Value {
	v := &Value{Kind: k}
	switch k {
	case KindList:
		v.List = &List{}
	case KindHash:
		v.Hash = map[string][]byte{}
	case KindSet:
		v.Set = map[string]struct{}{}
	case KindZSet:
		v.ZSet = NewZSet()
	}
	return v
}

// TypedTx is the transaction of a store with FeatureTypes. The
// translation layer reads values with Value and changes collections in
// place; it then calls Changed so that the store keeps its bookkeeping
// (WATCH, persistence, expiry of emptied collections).
type TypedTx interface {
	Tx
	// Value returns the value at key, or nil when absent.
	Value(key []byte) *Value
	// Put stores v at key, replacing what was there; the expiry is kept
	// when keepTTL is set and dropped otherwise. A collection may be put
	// empty and filled afterwards; Changed must follow.
	Put(key []byte, v *Value, keepTTL bool)
	// Changed records that the value at key was modified in place. A
	// collection left empty is deleted, as Redis does.
	Changed(key []byte)
	// Rename moves src to dst (replacing dst), keeping the expiry.
	Rename(src, dst []byte) error
	// CopyTo copies key to dst in database db; replace allows
	// overwriting an existing dst. It reports whether it copied.
	CopyTo(key []byte, db int, dst []byte, replace bool) (bool, error)
	// MoveTo moves key to database db unless the key exists there.
	MoveTo(key []byte, db int) (bool, error)
	// Scan returns keys from cursor on (0 starts), about count of them,
	// and the cursor to continue from (0 when done). Every key present
	// for the whole scan is returned at least once.
	Scan(cursor uint64, count int, visit func(key []byte, v *Value)) uint64
	// RandomKey returns a random key, or nil when the database is empty.
	RandomKey() []byte
	// Size is the number of keys.
	Size() int
	// SwapDB swaps two databases.
	SwapDB(a, b int) error
	// FlushAll empties every database.
	FlushAll() error

	// Watch starts tracking changes to key for WATCH; Version is then a
	// number that changes whenever the key is written, deleted or
	// expires. Unwatch stops tracking.
	Watch(key []byte) uint64
	Unwatch(key []byte)
	Version(key []byte) uint64

	// Propagate records a command's effect for persistence, in the form
	// that replays it exactly (absolute expiry times, results of random
	// choices). A store without persistence ignores it.
	Propagate(args ...[]byte)
	// Now is the transaction's clock: one instant for all of it.
	Now() time.Time
}

// Notifier is implemented by stores with FeatureBlocking: the translation
// layer keeps blocked clients and serves them from within the transaction
// that feeds their key. It is enough that the store tells it which keys a
// transaction wrote; the rest lives in the translation layer.
type Notifier interface {
	// OnCommit registers fn to run at the end of every read-write
	// transaction, still inside it, with the keys the transaction
	// changed.
	OnCommit(fn func(tx TypedTx, changed []DBKey))
}

// DBKey is a key in a database.
type DBKey struct {
	DB  int
	Key string
}

// Stats are counters INFO reports.
type Stats struct {
	Keys         []int // keys per database
	Expires      []int // keys with an expiry, per database
	AvgTTL       []int64
	ExpiredKeys  uint64
	EvictedKeys  uint64
	KeyspaceHits uint64
	KeyspaceMiss uint64
	UsedMemory   uint64
}

// Inspector is implemented by stores that report INFO statistics.
type Inspector interface {
	Stats(ctx context.Context) Stats
}

// Configurable is implemented by stores with parameters that CONFIG
// GET/SET reach.
type Configurable interface {
	// ConfigGet returns the parameters matching pattern.
	ConfigGet(match func(name string) bool) [][2]string
	// ConfigSet sets one parameter; an unknown name reports ok false.
	ConfigSet(name, value string) (ok bool, err error)
}
