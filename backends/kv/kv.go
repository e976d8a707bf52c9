// Package kv is the contract between the Redis translation layer
// (translate/redis) and the stores that serve Redis commands without
// speaking RESP themselves: the embedded store, Memcached.
//
// A store is used through transactions. Every command runs inside one
// (Store.Update or Store.View), and MULTI/EXEC runs all its commands inside
// one, so a command's reads and writes are atomic with respect to other
// clients. Strings and keys use the few operations every store has; a store
// with FeatureTypes also hands out its typed values (hashes, lists, sets,
// sorted sets), which the translation layer reads and changes in place.
package kv

import (
	"context"
	"errors"
	"time"

	"github.com/mecha-gateway/mecha/backends"
)

// Feature is an optional ability of a store.
type Feature uint32

// Features a store may have. A command that needs one its backend lacks is
// refused with "command 'X' is not supported by backend 'Y'".
const (
	// FeatureTTL: keys can expire (EXPIRE, SET EX).
	FeatureTTL Feature = 1 << iota
	// FeatureTTLRead: a key's remaining time can be read (TTL, PTTL).
	FeatureTTLRead
	// FeatureTypes: hashes, lists, sets and sorted sets (Tx.Value).
	FeatureTypes
	// FeatureScan: the keyspace can be enumerated (KEYS, SCAN, RANDOMKEY).
	FeatureScan
	// FeatureTransactions: MULTI/EXEC and WATCH (atomic multi-command
	// transactions and key versions).
	FeatureTransactions
	// FeaturePubSub: SUBSCRIBE, PUBLISH and patterns (Store.PubSub).
	FeaturePubSub
	// FeatureBlocking: blocking pops wake when a key changes
	// (Store.Notify).
	FeatureBlocking
	// FeatureMultiDB: SELECT, MOVE, SWAPDB over several databases.
	FeatureMultiDB
	// FeatureRenames: RENAME, COPY, MOVE.
	FeatureRenames
	// FeatureStringRanges: GETRANGE, SETRANGE, bit operations.
	FeatureStringRanges
)

// Store is a Redis-semantics store.
type Store interface {
	backends.Backend
	// Features lists what the store can do.
	Features() Feature
	// Databases is the number of logical databases (SELECT's range).
	Databases() int
	// Update runs fn as one atomic read-write transaction on database db.
	// Changes fn makes are visible to others only once it returns; when
	// fn returns an error, a store that can undo (FeatureTransactions)
	// does, others keep what was done.
	Update(ctx context.Context, db int, fn func(tx Tx) error) error
	// View runs fn as a read-only transaction.
	View(ctx context.Context, db int, fn func(tx Tx) error) error
}

// Tx is one database of a store, inside a transaction. Keys and values
// passed in may alias the caller's buffers and must be copied if kept;
// values returned may be shared with the store and must not be changed
// except through the methods (or, for typed values, while the transaction
// holds them).
type Tx interface {
	// DB is the database the transaction is on.
	DB() int
	// Select switches the transaction to another database (MULTI with
	// SELECT inside).
	Select(db int) error

	// Get returns the string at key; ErrNotFound if absent, ErrWrongType
	// if it holds another type.
	Get(key []byte) ([]byte, error)
	// Set stores a string with Redis' SET options and returns the old
	// value when o.Get is set.
	Set(key, value []byte, o SetOptions) (SetResult, error)
	// IncrBy adds delta to the integer at key (0 when absent).
	IncrBy(key []byte, delta int64) (int64, error)
	// Append appends to the string at key (created when absent) and
	// returns its new length.
	Append(key, value []byte) (int64, error)
	// Delete removes keys and reports how many existed.
	Delete(keys ...[]byte) (int, error)
	// Exists counts the keys that exist (a key named twice counts twice).
	Exists(keys ...[]byte) (int, error)
	// Expire sets key's expiry to at (zero: persist) under cond, and
	// reports whether it did. An at in the past deletes the key.
	Expire(key []byte, at time.Time, cond ExpireCond) (bool, error)
	// TTL returns when key expires: (zero, nil) without expiry,
	// ErrNotFound when absent. With FeatureTTL but not FeatureTTLRead it
	// returns ErrTTLUnknown for a key that exists.
	TTL(key []byte) (time.Time, error)
	// Flush removes every key of the database.
	Flush() error
}

// BatchTx is implemented by the transactions of stores that reach their
// data over the network (Memcached): MGET and MSET then cost one round
// trip per server rather than one per key.
type BatchTx interface {
	// GetMany returns the string at each key, nil where a key is absent
	// or holds another type (an empty string is a non-nil empty slice).
	GetMany(keys [][]byte) ([][]byte, error)
	// SetMany stores each pair (pairs alternates keys and values) as SET
	// without options does.
	SetMany(pairs [][]byte) error
}

// GetDeleter is implemented by the transactions of stores whose Update is
// not atomic by itself: GETDEL then reads and deletes in one atomic step.
type GetDeleter interface {
	// GetDel returns the string at key and deletes it; ErrNotFound when
	// absent.
	GetDel(key []byte) ([]byte, error)
}

// SetOptions are SET's options.
type SetOptions struct {
	NX, XX bool // only if absent / only if present
	Get    bool // return the old value
	// KeepTTL keeps an existing expiry; otherwise ExpireAt (zero: none)
	// replaces it.
	KeepTTL  bool
	ExpireAt time.Time
}

// SetResult is what Set did.
type SetResult struct {
	Done   bool   // the value was stored
	Old    []byte // the previous value, when asked for
	HadOld bool   // whether there was a previous value
}

// ExpireCond is EXPIRE's NX/XX/GT/LT.
type ExpireCond uint8

// Expiry conditions.
const (
	ExpireAlways ExpireCond = iota
	ExpireNX                // only when the key has no expiry
	ExpireXX                // only when it has one
	ExpireGT                // only to a later time
	ExpireLT                // only to an earlier time
)

// Allows reports whether EXPIRE with condition c may move a key's
// deadline from cur to next (Unix milliseconds, 0: none). A key without
// expiry counts as expiring never: GT never applies to it, LT always.
func (c ExpireCond) Allows(cur, next int64) bool {
	switch c {
	case ExpireNX:
		return cur == 0
	case ExpireXX:
		return cur != 0
	case ExpireGT:
		return cur != 0 && (next == 0 || next > cur)
	case ExpireLT:
		return cur == 0 || (next != 0 && next < cur)
	}
	return true
}

// UnixMillis is a deadline as stores keep it: Unix milliseconds, 0 for
// none (the zero time), and the epoch itself -1, long past.
func UnixMillis(at time.Time) int64 {
	if at.IsZero() {
		return 0
	}
	if ms := at.UnixMilli(); ms != 0 {
		return ms
	}
	return -1
}

// Errors stores return; the translation layer turns them into Redis'
// replies and error texts.
var (
	ErrNotFound    = errors.New("no such key")
	ErrWrongType   = errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")
	ErrNotInteger  = errors.New("ERR value is not an integer or out of range")
	ErrOverflow    = errors.New("ERR increment or decrement would overflow")
	ErrTTLUnknown  = errors.New("expiry unknown")
	ErrUnsupported = errors.New("not supported by this backend")
	// ErrTooLarge: a value over the store's size limit (Memcached's
	// item size, say).
	ErrTooLarge = errors.New("value too large for the backend")
)
