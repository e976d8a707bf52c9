package configsub

import (
	"slices"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func TestNewer(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"10", "9", true}, // as numbers, not strings
		{"9", "10", false},
		{"5", "5", false},
		{"b", "a", true}, // not numbers: any difference
		{"a", "a", false},
	} {
		if got := Newer(c.a, c.b); got != c.want {
			t.Errorf("Newer(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestTrackerNews(t *testing.T) {
	scope := component.ConfigScope{AppID: "a", Group: "g"}
	tr := NewTracker(scope, []string{"y", "x", "y"})
	if got := tr.Keys(); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("Keys = %q, want x y", got)
	}
	if !tr.Wants("x") || tr.Wants("z") {
		t.Error("Wants does not follow the keys")
	}
	if !NewTracker(scope, nil).Wants("anything") {
		t.Error("a tracker of all keys does not want every key")
	}
	tr.Reset([]component.ConfigItem{{Key: "x", Version: "5"}})
	change := func(key, version string, deleted bool) component.ConfigChange {
		return component.ConfigChange{Deleted: deleted, Item: component.ConfigItem{Key: key, Version: version}}
	}
	for _, c := range []struct {
		ch   component.ConfigChange
		want bool
	}{
		{change("x", "4", false), false}, // older than known
		{change("x", "5", false), false}, // known
		{change("x", "6", false), true},
		{change("x", "6", false), false}, // reported already
		{change("x", "5", true), false},  // deletion of an older one
		{change("y", "1", true), false},  // deletion of an unknown one
		{change("x", "6", true), true},
		{change("x", "6", true), false}, // gone already
		{change("x", "7", false), true}, // back
	} {
		if got := tr.Accept(c.ch); got != c.want {
			t.Errorf("Accept(%+v) = %v, want %v", c.ch, got, c.want)
		}
	}
}

func TestTrackerResync(t *testing.T) {
	scope := component.ConfigScope{AppID: "a", Group: "g", Label: "l"}
	tr := NewTracker(scope, nil)
	tr.Reset([]component.ConfigItem{{Key: "same", Version: "1"}, {Key: "gone2", Version: "2"}, {Key: "gone1", Version: "3"}, {Key: "changed", Version: "4"}})
	deleted, updated := tr.Resync([]component.ConfigItem{
		{Key: "same", Version: "1"}, {Key: "new", Version: "10"}, {Key: "changed", Version: "9"},
	})
	var got []string
	for _, ch := range deleted {
		if !ch.Deleted || ch.Item.AppID != "a" || ch.Item.Label != "l" {
			t.Errorf("deletion %+v: not a deletion in the scope", ch)
		}
		got = append(got, "-"+ch.Item.Key)
	}
	for _, ch := range updated {
		got = append(got, ch.Item.Key+"@"+ch.Item.Version)
	}
	// Deletions by key, updates by version.
	if want := []string{"-gone1", "-gone2", "changed@9", "new@10"}; !slices.Equal(got, want) {
		t.Errorf("Resync = %q, want %q", got, want)
	}
	// What it read is now known.
	if tr.News("new", "10", false) || !tr.News("new", "11", false) || tr.News("gone1", "3", true) {
		t.Error("Resync did not record what it read")
	}
}

func TestGate(t *testing.T) {
	var g Gate
	if !g.Enter() {
		t.Fatal("Enter before Close refused")
	}
	closed := make(chan struct{})
	go func() {
		g.Close()
		close(closed)
	}()
	<-g.Closing()
	select {
	case <-closed:
		t.Fatal("Close returned with a subscription still in")
	case <-time.After(20 * time.Millisecond):
	}
	if g.Enter() {
		t.Error("Enter after Close began succeeded")
	}
	g.Leave()
	<-closed
	g.Close() // again: fine
}

func TestSleep(t *testing.T) {
	done := make(chan struct{})
	if !Sleep(done, time.Millisecond) {
		t.Error("Sleep reported done before done was closed")
	}
	close(done)
	if Sleep(done, time.Hour) {
		t.Error("Sleep did not end when done was closed")
	}
}
