package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// ConfigStore runs the configuration suite: Get, Save with versions and
// optimistic concurrency, Delete, Subscribe, and what survives a reopen.
func ConfigStore(t *testing.T, h Harness[component.ConfigStore]) {
	cs := &configSuite{h: h}
	t.Run("RoundTrip", cs.roundTrip)
	t.Run("GetNamedKeys", cs.getNamedKeys)
	t.Run("ScopesIsolated", cs.scopesIsolated)
	t.Run("Versions", cs.versions)
	t.Run("StaleVersionSavesNothing", cs.staleVersion)
	t.Run("Delete", cs.delete)
	t.Run("SubscribeGroup", cs.subscribeGroup)
	t.Run("SubscribeKeys", cs.subscribeKeys)
	t.Run("SubscribeCancel", cs.subscribeCancel)
	t.Run("SurvivesReopen", cs.reopen)
}

type configSuite struct {
	h Harness[component.ConfigStore]
}

func (cs *configSuite) open(t *testing.T) *instance[component.ConfigStore] {
	t.Helper()
	return open(t, cs.h)
}

func scopeFor(t *testing.T) component.ConfigScope {
	return component.ConfigScope{AppID: name(t, "app"), Group: "grp", Label: "prod"}
}

func itemIn(s component.ConfigScope, key, content string) component.ConfigItem {
	return component.ConfigItem{AppID: s.AppID, Group: s.Group, Label: s.Label, Key: key, Content: content}
}

// save saves items and checks the returned copies.
func save(t *testing.T, c component.ConfigStore, items ...component.ConfigItem) []component.ConfigItem {
	t.Helper()
	got, err := c.Save(context.Background(), items)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	if len(got) != len(items) {
		t.Fatalf("Save returned %d items for %d", len(got), len(items))
	}
	for i := range got {
		if got[i].Key != items[i].Key || got[i].Scope() != items[i].Scope() {
			t.Fatalf("Save result %d is %s/%q, want %s/%q (results in request order)", i, fmtScope(got[i].Scope()), got[i].Key, fmtScope(items[i].Scope()), items[i].Key)
		}
		if got[i].Version == "" {
			t.Fatalf("Save returned item %q without a version", got[i].Key)
		}
		if got[i].Content != items[i].Content {
			t.Fatalf("Save returned item %q with content %q, saved %q", got[i].Key, got[i].Content, items[i].Content)
		}
	}
	return got
}

func get(t *testing.T, c component.ConfigStore, s component.ConfigScope, keys ...string) []component.ConfigItem {
	t.Helper()
	got, err := c.Get(context.Background(), s, keys)
	if err != nil {
		t.Fatalf("Get %s %q: %v", fmtScope(s), keys, err)
	}
	for i, it := range got {
		if it.Scope() != s {
			t.Fatalf("Get %s returned item %q of scope %s", fmtScope(s), it.Key, fmtScope(it.Scope()))
		}
		if i > 0 && got[i-1].Key >= it.Key {
			t.Fatalf("Get %s: items not sorted by key (or duplicated): %q before %q", fmtScope(s), got[i-1].Key, it.Key)
		}
	}
	return got
}

func fmtScope(s component.ConfigScope) string {
	return fmt.Sprintf("{app=%q group=%q label=%q}", s.AppID, s.Group, s.Label)
}

func keysOf(items []component.ConfigItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

// sameItem compares what the store must keep of an item.
func (cs *configSuite) sameItem(t *testing.T, what string, got, want component.ConfigItem) {
	t.Helper()
	if got.Scope() != want.Scope() || got.Key != want.Key || got.Content != want.Content {
		t.Errorf("%s: got %s/%q content %q, want %s/%q content %q", what, fmtScope(got.Scope()), got.Key, got.Content,
			fmtScope(want.Scope()), want.Key, want.Content)
	}
	if want.Version != "" && got.Version != want.Version {
		t.Errorf("%s: item %q has version %q, want %q (the version Save returned)", what, got.Key, got.Version, want.Version)
	}
	if cs.h.ConfigContentOnly {
		return
	}
	if !equalMaps(got.Tags, want.Tags) {
		t.Errorf("%s: item %q has tags %v, want %v", what, got.Key, got.Tags, want.Tags)
	}
	if !equalMaps(got.Metadata, want.Metadata) {
		t.Errorf("%s: item %q has metadata %v, want %v", what, got.Key, got.Metadata, want.Metadata)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// versionLess reports whether version a is older than b: numerically when
// both are decimal integers, otherwise by string order.
func versionLess(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

func (cs *configSuite) roundTrip(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	a := itemIn(s, "alpha", "value of alpha, with unicode: 配置 and newline\n")
	a.Tags = map[string]string{"owner": "team-a", "env": "prod"}
	a.Metadata = map[string]string{"format": "text"}
	b := itemIn(s, "beta", `{"json": true}`)
	b.Tags = map[string]string{"kind": "json"}
	empty := itemIn(s, "gamma", "")
	saved := save(t, in.c, b, a, empty)
	if saved[0].Version == "" || saved[1].Version == "" {
		t.Fatal("no versions")
	}
	got := get(t, in.c, s)
	if want := []string{"alpha", "beta", "gamma"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("Get all of %s: keys %q, want %q", fmtScope(s), keysOf(got), want)
	}
	a.Version, b.Version, empty.Version = saved[1].Version, saved[0].Version, saved[2].Version
	cs.sameItem(t, "Get", got[0], a)
	cs.sameItem(t, "Get", got[1], b)
	cs.sameItem(t, "Get", got[2], empty)
	if !cs.h.ConfigContentOnly {
		cs.sameItem(t, "Save result", saved[1], a)
	}
	// A scope with an empty label is a scope of its own.
	noLabel := s
	noLabel.Label = ""
	if got := get(t, in.c, noLabel); len(got) != 0 {
		t.Errorf("Get %s (empty label) returned %q, saved only under label %q", fmtScope(noLabel), keysOf(got), s.Label)
	}
	c := itemIn(noLabel, "alpha", "no label")
	save(t, in.c, c)
	got = get(t, in.c, noLabel)
	if len(got) != 1 || got[0].Content != "no label" {
		t.Errorf("Get %s: %+v, want alpha=%q", fmtScope(noLabel), got, "no label")
	}
}

func (cs *configSuite) getNamedKeys(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	save(t, in.c, itemIn(s, "k1", "one"), itemIn(s, "k2", "two"), itemIn(s, "k3", "three"), itemIn(s, "k10", "ten"))
	got := get(t, in.c, s, "k3", "missing", "k1")
	if want := []string{"k1", "k3"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("Get keys k3, missing, k1: got %q, want %q (sorted, missing left out)", keysOf(got), want)
	}
	if got[0].Content != "one" || got[1].Content != "three" {
		t.Errorf("Get keys: contents %q, %q", got[0].Content, got[1].Content)
	}
	if got := get(t, in.c, s, "missing", "k"); len(got) != 0 {
		t.Errorf("Get of missing keys (and of a prefix of existing ones) returned %q", keysOf(got))
	}
	if got := get(t, in.c, s, "k1"); len(got) != 1 || got[0].Key != "k1" {
		t.Errorf("Get k1 returned %q (a key must not match keys it is a prefix of)", keysOf(got))
	}
	all := get(t, in.c, s)
	if want := []string{"k1", "k10", "k2", "k3"}; !slices.Equal(keysOf(all), want) {
		t.Errorf("Get all: %q, want %q", keysOf(all), want)
	}
}

func (cs *configSuite) scopesIsolated(t *testing.T) {
	in := cs.open(t)
	base := name(t, "app")
	// Scopes that a store joining names with a separator could confuse.
	scopes := []component.ConfigScope{
		{AppID: base, Group: "g", Label: "l"},
		{AppID: base + "-2", Group: "g", Label: "l"},
		{AppID: base, Group: "g2", Label: "l"},
		{AppID: base, Group: "g", Label: "l2"},
		{AppID: base, Group: "g", Label: ""},
		{AppID: base, Group: "g.l", Label: ""},
		{AppID: base + ".g", Group: "l", Label: ""},
		{AppID: base, Group: "g_l", Label: ""},
		{AppID: base, Group: "g-l", Label: ""},
		{AppID: base, Group: "g", Label: "l.k"},
	}
	for i, s := range scopes {
		save(t, in.c, itemIn(s, "k", fmt.Sprintf("scope %d", i)), itemIn(s, fmt.Sprintf("only-%d", i), "x"))
	}
	for i, s := range scopes {
		got := get(t, in.c, s)
		if want := []string{"k", fmt.Sprintf("only-%d", i)}; !slices.Equal(keysOf(got), want) {
			t.Errorf("Get all of scope %d %s: keys %q, want %q", i, fmtScope(s), keysOf(got), want)
			continue
		}
		if got[0].Content != fmt.Sprintf("scope %d", i) {
			t.Errorf("scope %d %s: k = %q", i, fmtScope(s), got[0].Content)
		}
	}
	// Deleting a whole scope leaves the others alone.
	n, err := in.c.Delete(context.Background(), scopes[0], nil)
	if err != nil || n != 2 {
		t.Fatalf("Delete all of scope 0: %d, %v; want 2", n, err)
	}
	for i, s := range scopes[1:] {
		if got := get(t, in.c, s); len(got) != 2 {
			t.Errorf("after deleting scope 0, scope %d %s has %q", i+1, fmtScope(s), keysOf(got))
		}
	}
	for _, s := range scopes {
		if _, err := in.c.Delete(context.Background(), s, nil); err != nil {
			t.Errorf("cleanup Delete: %v", err)
		}
	}
}

func (cs *configSuite) versions(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	v1 := save(t, in.c, itemIn(s, "k", "1"))[0].Version
	v2 := save(t, in.c, itemIn(s, "k", "2"))[0].Version
	if !versionLess(v1, v2) {
		t.Fatalf("versions of two saves: %q then %q; want increasing", v1, v2)
	}
	// Saving the same content again is a save too.
	v3 := save(t, in.c, itemIn(s, "k", "2"))[0].Version
	if !versionLess(v2, v3) {
		t.Fatalf("versions: %q then %q (same content saved again); want increasing", v2, v3)
	}
	// Saving with the current version succeeds.
	it := itemIn(s, "k", "4")
	it.Version = v3
	v4 := save(t, in.c, it)[0].Version
	if !versionLess(v3, v4) {
		t.Fatalf("version after a conditional save: %q then %q", v3, v4)
	}
	if got := get(t, in.c, s, "k"); len(got) != 1 || got[0].Version != v4 || got[0].Content != "4" {
		t.Fatalf("Get after conditional save: %+v, want content 4 version %q", got, v4)
	}
	// Other items' saves between two saves of k do not break its order.
	for i := range 5 {
		save(t, in.c, itemIn(s, fmt.Sprintf("other-%d", i), "x"))
	}
	v5 := save(t, in.c, itemIn(s, "k", "5"))[0].Version
	if !versionLess(v4, v5) {
		t.Fatalf("versions: %q then %q; want increasing", v4, v5)
	}
	// A delete and a new save of the key still give a newer version.
	if n, err := in.c.Delete(context.Background(), s, []string{"k"}); err != nil || n != 1 {
		t.Fatalf("Delete k: %d, %v", n, err)
	}
	v6 := save(t, in.c, itemIn(s, "k", "6"))[0].Version
	if !versionLess(v5, v6) {
		t.Errorf("version after delete and save: %q then %q; want increasing", v5, v6)
	}
}

func (cs *configSuite) staleVersion(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	ctx := context.Background()
	first := save(t, in.c, itemIn(s, "a", "a1"), itemIn(s, "b", "b1"))
	cur := save(t, in.c, itemIn(s, "a", "a2"))[0]

	stale := itemIn(s, "a", "a3")
	stale.Version = first[0].Version
	if _, err := in.c.Save(ctx, []component.ConfigItem{stale}); !errors.Is(err, component.ErrVersionMismatch) {
		t.Fatalf("Save with stale version %q (stored %q): err %v, want ErrVersionMismatch", stale.Version, cur.Version, err)
	}
	// All or nothing: b is saved with its right version, a with a stale one.
	okB := itemIn(s, "b", "b2")
	okB.Version = first[1].Version
	newC := itemIn(s, "c", "c1")
	if _, err := in.c.Save(ctx, []component.ConfigItem{newC, okB, stale}); !errors.Is(err, component.ErrVersionMismatch) {
		t.Fatalf("multi-item Save with one stale version: err %v, want ErrVersionMismatch", err)
	}
	// An expected version on a missing item never matches.
	ghost := itemIn(s, "ghost", "g")
	ghost.Version = cur.Version
	if _, err := in.c.Save(ctx, []component.ConfigItem{ghost}); !errors.Is(err, component.ErrVersionMismatch) {
		t.Fatalf("Save of a missing item with an expected version: err %v, want ErrVersionMismatch", err)
	}
	got := get(t, in.c, s)
	if want := []string{"a", "b"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("after failed saves, keys %q, want %q (nothing of a failed save is kept)", keysOf(got), want)
	}
	if got[0].Content != "a2" || got[0].Version != cur.Version {
		t.Errorf("after failed saves a = %q version %q, want a2 version %q", got[0].Content, got[0].Version, cur.Version)
	}
	if got[1].Content != "b1" || got[1].Version != first[1].Version {
		t.Errorf("after a failed multi-item save b = %q version %q, want b1 version %q (all or nothing)", got[1].Content, got[1].Version, first[1].Version)
	}
	// With every version right, the multi-item save goes through.
	okA := itemIn(s, "a", "a3")
	okA.Version = cur.Version
	res := save(t, in.c, okA, okB, newC)
	got = get(t, in.c, s)
	if want := []string{"a", "b", "c"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("after a good multi-item save: keys %q, want %q", keysOf(got), want)
	}
	for i, it := range []component.ConfigItem{res[0], res[1], res[2]} {
		if got[i].Content != it.Content || got[i].Version != it.Version {
			t.Errorf("after a good multi-item save %q = %q version %q, want %q version %q", it.Key, got[i].Content, got[i].Version, it.Content, it.Version)
		}
	}
}

func (cs *configSuite) delete(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	other := s
	other.Group = "grp-other"
	ctx := context.Background()
	save(t, in.c, itemIn(s, "k1", "1"), itemIn(s, "k2", "2"), itemIn(s, "k3", "3"))
	save(t, in.c, itemIn(other, "k1", "other"))
	n, err := in.c.Delete(ctx, s, []string{"k1", "missing"})
	if err != nil || n != 1 {
		t.Fatalf("Delete k1, missing: %d, %v; want 1", n, err)
	}
	if got := get(t, in.c, s); !slices.Equal(keysOf(got), []string{"k2", "k3"}) {
		t.Fatalf("after Delete k1: %q", keysOf(got))
	}
	if got := get(t, in.c, other); len(got) != 1 || got[0].Content != "other" {
		t.Fatalf("Delete in %s touched %s: %+v", fmtScope(s), fmtScope(other), got)
	}
	n, err = in.c.Delete(ctx, s, nil)
	if err != nil || n != 2 {
		t.Fatalf("Delete all of scope: %d, %v; want 2", n, err)
	}
	if got := get(t, in.c, s); len(got) != 0 {
		t.Fatalf("after Delete all: %q", keysOf(got))
	}
	n, err = in.c.Delete(ctx, s, nil)
	if err != nil || n != 0 {
		t.Fatalf("Delete all of an empty scope: %d, %v; want 0", n, err)
	}
	n, err = in.c.Delete(ctx, s, []string{"k1"})
	if err != nil || n != 0 {
		t.Fatalf("Delete of a missing key: %d, %v; want 0, nil", n, err)
	}
	if got := get(t, in.c, other); len(got) != 1 {
		t.Fatalf("other scope after deletes: %q", keysOf(got))
	}
	if _, err := in.c.Delete(ctx, other, nil); err != nil {
		t.Fatal(err)
	}
}

// recorder collects the changes a subscription reports.
type recorder struct {
	mu      sync.Mutex
	changes []component.ConfigChange
	calls   int
	active  int
	overlap bool
}

func (r *recorder) fn(ch []component.ConfigChange) {
	r.mu.Lock()
	r.active++
	if r.active > 1 {
		r.overlap = true
	}
	r.calls++
	r.changes = append(r.changes, ch...)
	r.mu.Unlock()
	time.Sleep(time.Millisecond) // widen the window for overlapping calls
	r.mu.Lock()
	r.active--
	r.mu.Unlock()
}

func (r *recorder) snapshot() []component.ConfigChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]component.ConfigChange(nil), r.changes...)
}

// waitFor waits until a change of key with content (an update) arrives.
func (r *recorder) waitFor(t *testing.T, key, content string) []component.ConfigChange {
	t.Helper()
	var got []component.ConfigChange
	eventually(t, 10*time.Second, func() bool {
		got = r.snapshot()
		for _, c := range got {
			if !c.Deleted && c.Item.Key == key && c.Item.Content == content {
				return true
			}
		}
		return false
	}, "change %s=%q; changes so far: %s", func() any { return key }, func() any { return content }, func() any { return fmtChanges(got) })
	return got
}

func fmtChanges(chs []component.ConfigChange) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, c := range chs {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.Deleted {
			fmt.Fprintf(&b, "-%s", c.Item.Key)
		} else {
			fmt.Fprintf(&b, "%s=%q@%s", c.Item.Key, c.Item.Content, c.Item.Version)
		}
	}
	b.WriteByte(']')
	return b.String()
}

type wantChange struct {
	deleted bool
	item    component.ConfigItem // key, content (for deletes: the content it had) and version (updates)
}

func (cs *configSuite) checkChanges(t *testing.T, s component.ConfigScope, got []component.ConfigChange, want []wantChange) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("changes: got %s, want %d changes", fmtChanges(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Deleted != w.deleted || g.Item.Key != w.item.Key {
			t.Fatalf("change %d: got %s, want key %q deleted=%v (all: %s)", i, fmtChanges(got[i:i+1]), w.item.Key, w.deleted, fmtChanges(got))
		}
		if g.Item.Scope() != s {
			t.Errorf("change %d (%q) has scope %s, want %s", i, g.Item.Key, fmtScope(g.Item.Scope()), fmtScope(s))
		}
		if w.deleted {
			// A store may not report what a deleted item held.
			if g.Item.Content != "" && g.Item.Content != w.item.Content {
				t.Errorf("change %d: deleted %q reports content %q, it held %q", i, g.Item.Key, g.Item.Content, w.item.Content)
			}
			continue
		}
		if g.Item.Content != w.item.Content || g.Item.Version != w.item.Version {
			t.Errorf("change %d: %q = %q version %q, want %q version %q (as saved, in order)", i, g.Item.Key, g.Item.Content, g.Item.Version, w.item.Content, w.item.Version)
		}
		if !cs.h.ConfigContentOnly && !equalMaps(g.Item.Tags, w.item.Tags) {
			t.Errorf("change %d: %q tags %v, want %v", i, g.Item.Key, g.Item.Tags, w.item.Tags)
		}
	}
}

func (cs *configSuite) subscribeGroup(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	other := s
	other.Label = "other"
	save(t, in.c, itemIn(s, "k0", "before"))
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := in.c.Subscribe(ctx, s, nil, rec.fn); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	// Changes made at once after Subscribe returns are reported, in
	// order, keys created after subscribing included; other scopes' are
	// not.
	tagged := itemIn(s, "k1", "new key")
	tagged.Tags = map[string]string{"t": "1"}
	var want []wantChange
	up := func(it component.ConfigItem) {
		saved := save(t, in.c, it)[0]
		it.Version = saved.Version
		want = append(want, wantChange{item: it})
	}
	up(itemIn(s, "k0", "after"))
	save(t, in.c, itemIn(other, "k0", "other scope"))
	up(tagged)
	if n, err := in.c.Delete(context.Background(), s, []string{"k0"}); err != nil || n != 1 {
		t.Fatalf("Delete k0: %d, %v", n, err)
	}
	want = append(want, wantChange{deleted: true, item: itemIn(s, "k0", "after")})
	up(itemIn(s, "k1", "updated"))
	up(itemIn(s, "k2", "another new key"))
	for i := range 20 {
		up(itemIn(s, fmt.Sprintf("burst-%02d", i), strconv.Itoa(i)))
	}
	if _, err := in.c.Delete(context.Background(), other, nil); err != nil {
		t.Fatal(err)
	}
	up(itemIn(s, "zz-end", "end"))
	got := rec.waitFor(t, "zz-end", "end")
	cs.checkChanges(t, s, got, want)
	rec.mu.Lock()
	overlap := rec.overlap
	rec.mu.Unlock()
	if overlap {
		t.Error("Subscribe called fn concurrently; it must call it from one goroutine")
	}
}

func (cs *configSuite) subscribeKeys(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := in.c.Subscribe(ctx, s, []string{"k1", "k3"}, rec.fn); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var want []wantChange
	for _, it := range []component.ConfigItem{itemIn(s, "k2", "x"), itemIn(s, "k1", "one"), itemIn(s, "k10", "x"), itemIn(s, "k", "x"), itemIn(s, "k3", "three")} {
		saved := save(t, in.c, it)[0]
		if it.Key == "k1" || it.Key == "k3" {
			it.Version = saved.Version
			want = append(want, wantChange{item: it})
		}
	}
	if n, err := in.c.Delete(context.Background(), s, []string{"k2", "k1"}); err != nil || n != 2 {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	want = append(want, wantChange{deleted: true, item: itemIn(s, "k1", "one")})
	end := save(t, in.c, itemIn(s, "k3", "end"))[0]
	want = append(want, wantChange{item: end})
	got := rec.waitFor(t, "k3", "end")
	cs.checkChanges(t, s, got, want)
}

func (cs *configSuite) subscribeCancel(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	if err := in.c.Subscribe(ctx, s, nil, rec.fn); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	save(t, in.c, itemIn(s, "k", "seen"))
	rec.waitFor(t, "k", "seen")
	cancel()
	time.Sleep(100 * time.Millisecond) // a call already under way may finish
	n := len(rec.snapshot())
	save(t, in.c, itemIn(s, "k", "not seen"), itemIn(s, "new", "not seen"))
	// A second subscription sees later changes, so the store has handled
	// these; the cancelled one must not report them.
	rec2 := &recorder{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	if err := in.c.Subscribe(ctx2, s, nil, rec2.fn); err != nil {
		t.Fatal(err)
	}
	save(t, in.c, itemIn(s, "k", "second"))
	rec2.waitFor(t, "k", "second")
	time.Sleep(300 * time.Millisecond)
	if got := rec.snapshot(); len(got) != n {
		t.Errorf("a cancelled subscription reported %s", fmtChanges(got[n:]))
	}
	// Subscribing with a context that is already cancelled reports nothing.
	dead, cancelDead := context.WithCancel(context.Background())
	cancelDead()
	rec3 := &recorder{}
	if err := in.c.Subscribe(dead, s, nil, rec3.fn); err == nil {
		save(t, in.c, itemIn(s, "k", "third"))
		rec2.waitFor(t, "k", "third")
		time.Sleep(100 * time.Millisecond)
		if got := rec3.snapshot(); len(got) != 0 {
			t.Errorf("a subscription with a cancelled context reported %s", fmtChanges(got))
		}
	}
}

func (cs *configSuite) reopen(t *testing.T) {
	in := cs.open(t)
	s := scopeFor(t)
	a := itemIn(s, "a", "kept")
	a.Tags = map[string]string{"x": "y"}
	a.Metadata = map[string]string{"m": "n"}
	saved := save(t, in.c, a, itemIn(s, "b", "deleted"))
	if _, err := in.c.Delete(context.Background(), s, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	in.close()

	in = cs.open(t)
	got := get(t, in.c, s)
	if len(got) != 1 {
		t.Fatalf("after reopen: keys %q, want [a]", keysOf(got))
	}
	a.Version = saved[0].Version
	cs.sameItem(t, "Get after reopen", got[0], a)
	next := save(t, in.c, itemIn(s, "a", "again"))[0]
	if !versionLess(saved[0].Version, next.Version) {
		t.Errorf("version after reopen %q is not newer than %q from before", next.Version, saved[0].Version)
	}
	stale := itemIn(s, "a", "stale")
	stale.Version = saved[0].Version
	if _, err := in.c.Save(context.Background(), []component.ConfigItem{stale}); !errors.Is(err, component.ErrVersionMismatch) {
		t.Errorf("stale save after reopen: %v, want ErrVersionMismatch", err)
	}
}
