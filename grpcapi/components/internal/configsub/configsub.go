// Package configsub holds what the configuration stores on Redis and on
// PostgreSQL share in their subscriptions, whatever carries the changes
// (Redis pub/sub, PostgreSQL LISTEN/NOTIFY): the gate that lets a store's
// Close end its subscriptions and wait for them, and the Tracker of the
// versions a subscriber knows, which turns notifications into the changes
// to report and, after a lost connection, reads of the scope into a
// summary of what changed meanwhile.
package configsub

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// KeepAlive is how long a subscription's connection may stay silent
// before it is pinged; a ping unanswered means the connection is lost.
const KeepAlive = 15 * time.Second

// Gate counts a store's running subscriptions so that Close can end them
// and wait for them. The zero Gate is ready to use.
type Gate struct {
	mu      sync.Mutex
	closing chan struct{}
	subs    sync.WaitGroup
}

// closingLocked returns the channel Close closes; g.mu is held.
func (g *Gate) closingLocked() chan struct{} {
	if g.closing == nil {
		g.closing = make(chan struct{})
	}
	return g.closing
}

// Enter counts a new subscription in; it reports false (and counts
// nothing) once Close has begun. A subscription that entered calls Leave
// when it ends.
func (g *Gate) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closingLocked():
		return false
	default:
	}
	g.subs.Add(1)
	return true
}

// Leave counts a subscription out.
func (g *Gate) Leave() { g.subs.Done() }

// Closing is closed when Close begins: subscriptions end when it is.
func (g *Gate) Closing() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closingLocked()
}

// Close closes Closing and waits until every subscription has left; it
// may be called more than once.
func (g *Gate) Close() {
	g.mu.Lock()
	c := g.closingLocked()
	select {
	case <-c:
	default:
		close(c)
	}
	g.mu.Unlock()
	g.subs.Wait()
}

// Sleep waits for d; it reports false, at once, when done is closed
// first.
func Sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// Newer reports whether version a is newer than b: as numbers when both
// are, otherwise whenever they differ.
func Newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return x > y
	}
	return a != b
}

// Tracker is what one subscription knows: the scope and keys it watches
// and the version of each item the subscriber knows of, so that a change
// is reported once, and never after a newer one. It is used by one
// goroutine at a time.
type Tracker struct {
	scope component.ConfigScope
	keys  []string
	only  map[string]bool
	known map[string]string
}

// NewTracker returns the tracker of a subscription to keys of scope (all
// of its keys when keys is empty).
func NewTracker(scope component.ConfigScope, keys []string) *Tracker {
	t := &Tracker{scope: scope, known: map[string]string{}}
	if len(keys) > 0 {
		t.keys = slices.Compact(slices.Sorted(slices.Values(keys)))
		t.only = make(map[string]bool, len(t.keys))
		for _, k := range t.keys {
			t.only[k] = true
		}
	}
	return t
}

// Keys are the watched keys, sorted and unique; nil means all of them.
func (t *Tracker) Keys() []string { return t.keys }

// Wants reports whether key is watched.
func (t *Tracker) Wants(key string) bool { return t.only == nil || t.only[key] }

// Reset makes items what the subscriber knows (the first read of the
// scope).
func (t *Tracker) Reset(items []component.ConfigItem) {
	t.known = make(map[string]string, len(items))
	for _, it := range items {
		t.known[it.Key] = it.Version
	}
}

// News reports whether a change of key to version (its deletion when
// deleted) is news to the subscriber: an update newer than what it
// knows, or the deletion of an item it knows of at that version or an
// older one. A deletion of an item the subscriber does not know of, or
// of an older one than it knows (read again after a lost connection),
// is not news.
func (t *Tracker) News(key, version string, deleted bool) bool {
	known, had := t.known[key]
	if deleted {
		return had && !Newer(known, version)
	}
	return !had || Newer(version, known)
}

// Note records that the subscriber now knows key at version.
func (t *Tracker) Note(key, version string) { t.known[key] = version }

// Forget records that the subscriber knows key is gone.
func (t *Tracker) Forget(key string) { delete(t.known, key) }

// Accept reports whether ch is news (see News) and, if so, records it.
func (t *Tracker) Accept(ch component.ConfigChange) bool {
	if !t.News(ch.Item.Key, ch.Item.Version, ch.Deleted) {
		return false
	}
	if ch.Deleted {
		t.Forget(ch.Item.Key)
	} else {
		t.Note(ch.Item.Key, ch.Item.Version)
	}
	return true
}

// Resync compares items, the watched items read again after a lost
// connection, with what the subscriber knows, records them, and returns
// what changed meanwhile, as a summary: the deletions (items it knew
// that are gone, by key) and the updates (items that are new or of
// another version, in the order of their versions). Report the
// deletions first.
func (t *Tracker) Resync(items []component.ConfigItem) (deleted, updated []component.ConfigChange) {
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		seen[it.Key] = true
		if v, had := t.known[it.Key]; had && v == it.Version {
			continue
		}
		t.known[it.Key] = it.Version
		updated = append(updated, component.ConfigChange{Item: it})
	}
	var gone []string
	for k := range t.known {
		if !seen[k] {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	for _, k := range gone {
		delete(t.known, k)
		deleted = append(deleted, component.ConfigChange{Deleted: true, Item: component.ConfigItem{
			AppID: t.scope.AppID, Group: t.scope.Group, Label: t.scope.Label, Key: k}})
	}
	slices.SortStableFunc(updated, func(a, b component.ConfigChange) int {
		x, errA := strconv.ParseUint(a.Item.Version, 10, 64)
		y, errB := strconv.ParseUint(b.Item.Version, 10, 64)
		if errA != nil || errB != nil {
			return 0
		}
		return cmp.Compare(x, y)
	})
	return deleted, updated
}
