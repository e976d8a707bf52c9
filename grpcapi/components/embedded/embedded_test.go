package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/component/conformance"
)

func TestDefaultPathPerCapability(t *testing.T) {
	dir := t.TempDir()
	// The same name under two capabilities gets two files.
	seq := build[SequencerConfig, *Sequencer](t, component.CapSequencer, dir, nil)
	defer seq.Close()
	locks := build[LockConfig, *LockStore](t, component.CapLock, dir, nil)
	defer locks.Close()
	for _, p := range []string{seq.Path(), locks.Path()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("database file: %v", err)
		}
	}
	if want := filepath.Join(dir, "grpc", "sequencer", "test.db"); seq.Path() != want {
		t.Errorf("sequencer file %s, want %s", seq.Path(), want)
	}
	if want := filepath.Join(dir, "grpc", "lock", "test.db"); locks.Path() != want {
		t.Errorf("lock file %s, want %s", locks.Path(), want)
	}
	// path overrides the default.
	custom := filepath.Join(dir, "elsewhere", "ids.db")
	s2 := build[SequencerConfig, *Sequencer](t, component.CapSequencer, t.TempDir(), func(c *SequencerConfig) { c.Store.Path = custom })
	defer s2.Close()
	if _, err := os.Stat(custom); err != nil || s2.Path() != custom {
		t.Errorf("path option: file %s: %v", s2.Path(), err)
	}
	// A name that is no file name needs a path.
	if _, err := NewSequencer(DefaultSequencerConfig(), env(dir, "../x")); err == nil || !strings.Contains(err.Error(), "set path") {
		t.Errorf("New with name ../x: %v, want an error asking for path", err)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	first := build[ConfigStoreConfig, *ConfigStore](t, component.CapConfig, dir, nil)
	defer first.Close()
	cfg := DefaultConfigStoreConfig()
	cfg.Store.OpenTimeout = configs.Duration(200 * time.Millisecond)
	second, err := NewConfigStore(cfg, env(dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start(context.Background())
	if err == nil {
		second.Close()
		t.Fatal("a second Start on the same file succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), first.Path()) {
		t.Errorf("error %q should name the file and say it is in use", err)
	}
	if h := second.Health(); h.State == backends.StateUp {
		t.Errorf("health of the component that failed to open: %v", h)
	}
	if err := second.Close(); err != nil {
		t.Errorf("Close after a failed Start: %v", err)
	}
	// Once the first closes, the file opens.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third := build[ConfigStoreConfig, *ConfigStore](t, component.CapConfig, dir, nil)
	third.Close()
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s, err := NewSequencer(DefaultSequencerConfig(), env(t.TempDir(), "ids"))
	if err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != backends.StateInit {
		t.Errorf("health before Start: %v", h)
	}
	if _, err := s.Reserve(ctx, "k", 1); !errors.Is(err, component.ErrUnavailable) {
		t.Errorf("Reserve before Start: %v, want ErrUnavailable", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != backends.StateUp {
		t.Errorf("health after Start: %v", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if h := s.Health(); h.State != backends.StateDown {
		t.Errorf("health after Close: %v", h)
	}
	if _, err := s.Reserve(ctx, "k", 1); !errors.Is(err, component.ErrUnavailable) {
		t.Errorf("Reserve after Close: %v, want ErrUnavailable", err)
	}

	// Every capability closes twice, and closes before Start.
	dir := t.TempDir()
	cs := []component.Component{
		build[ConfigStoreConfig, component.Component](t, component.CapConfig, dir, nil),
		build[LockConfig, component.Component](t, component.CapLock, dir, nil),
		build[PubSubConfig, component.Component](t, component.CapPubSub, dir, nil),
	}
	for _, c := range cs {
		for i := range 2 {
			if err := c.Close(); err != nil {
				t.Errorf("%T Close %d: %v", c, i+1, err)
			}
		}
	}
	for _, mod := range []component.Capability{component.CapConfig, component.CapLock, component.CapPubSub, component.CapSequencer} {
		m, _ := component.Lookup(mod, Type)
		c, err := m.New(m.NewConfig(), env(t.TempDir(), "never-started"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("%s Close before Start: %v", mod, err)
		}
	}
}

// TestSyncFalse runs suites with sync: false (bbolt without fsync): the
// data still survives a restart of the component.
func TestSyncFalse(t *testing.T) {
	noSync := func(o *StoreOptions) { o.Sync = false }
	t.Run("Config", func(t *testing.T) {
		dir := t.TempDir()
		conformance.ConfigStore(t, conformance.Harness[component.ConfigStore]{
			Open: func(t *testing.T) component.ConfigStore {
				c := build[ConfigStoreConfig, *ConfigStore](t, component.CapConfig, dir, func(c *ConfigStoreConfig) { noSync(&c.Store) })
				if _, db, _ := c.committer(); !db.NoSync {
					t.Error("sync: false did not turn off fsync")
				}
				return c
			},
		})
	})
	t.Run("Sequencer", func(t *testing.T) {
		dir := t.TempDir()
		conformance.Sequencer(t, conformance.Harness[component.SequencerStore]{
			Open: func(t *testing.T) component.SequencerStore {
				return build[SequencerConfig, component.SequencerStore](t, component.CapSequencer, dir, func(c *SequencerConfig) { noSync(&c.Store) })
			},
		})
	})
	t.Run("DefaultSyncs", func(t *testing.T) {
		c := build[SequencerConfig, *Sequencer](t, component.CapSequencer, t.TempDir(), nil)
		defer c.Close()
		if _, db, _ := c.committer(); db.NoSync {
			t.Error("fsync is off by default")
		}
	})
}

// TestGroupCommit checks that concurrent writers share transactions.
func TestGroupCommit(t *testing.T) {
	s := build[SequencerConfig, *Sequencer](t, component.CapSequencer, t.TempDir(), nil)
	defer s.Close()
	const workers, per = 32, 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range per {
				if _, err := s.Reserve(context.Background(), fmt.Sprint("k", w%4), 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	c, _, _ := s.committer()
	if n := c.commits.Load(); n >= workers*per {
		t.Errorf("%d reservations took %d transactions; concurrent writers should share them", workers*per, n)
	} else {
		t.Logf("%d reservations in %d transactions", workers*per, n)
	}
}

// countMsgs returns how many messages topic holds in the file.
func countMsgs(t *testing.T, ps *PubSub, topic string) int {
	t.Helper()
	n := 0
	err := ps.view(func(tx *bolt.Tx) error {
		tb, _ := topicBucket(tx, topic, false)
		if tb == nil {
			return nil
		}
		n = tb.Bucket(bucketMsgs).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	ps := build[PubSubConfig, *PubSub](t, component.CapPubSub, t.TempDir(), func(c *PubSubConfig) {
		c.Retention = configs.Duration(300 * time.Millisecond)
		c.SweepInterval = configs.Duration(time.Hour) // the test sweeps itself
	})
	defer ps.Close()
	publishN := func(topic string, n int) []string {
		msgs := make([]component.OutMessage, n)
		for i := range msgs {
			msgs[i] = component.OutMessage{Data: []byte(fmt.Sprint(i))}
		}
		var ids []string
		for _, r := range ps.Publish(ctx, topic, msgs) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}

	// A topic without groups keeps messages for the retention.
	publishN("lonely", 5)
	ps.Sweep()
	if n := countMsgs(t, ps, "lonely"); n != 5 {
		t.Fatalf("before the retention ran out the topic holds %d messages, want 5", n)
	}
	time.Sleep(400 * time.Millisecond)
	fresh := publishN("lonely", 2)
	ps.Sweep()
	if n := countMsgs(t, ps, "lonely"); n != 2 {
		t.Fatalf("after the retention ran out the topic holds %d messages, want the 2 newer ones", n)
	}
	// A group created now starts at the earliest retained message.
	sub, err := ps.Subscribe(ctx, component.SubscribeSpec{Topic: "lonely", Group: "late", MaxInFlight: 10, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range fresh {
		m := <-sub.Messages()
		if m.ID != want {
			t.Fatalf("late group got %q, want %q", m.ID, want)
		}
		if err := sub.Ack(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	sub.Close()
	// Ids keep increasing after messages are deleted.
	again := publishN("lonely", 1)
	if a, _ := strconv.Atoi(again[0]); a != 8 {
		t.Errorf("id after retention deleted messages 1-5 and 6-7 were acked: %q, want 8", again[0])
	}

	// With groups, a message goes once every group has settled it, not
	// before, whatever its age.
	spec := func(g string) component.SubscribeSpec {
		return component.SubscribeSpec{Topic: "busy", Group: g, MaxInFlight: 10, MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	}
	a, err := ps.Subscribe(ctx, spec("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ps.Subscribe(ctx, spec("b"))
	if err != nil {
		t.Fatal(err)
	}
	publishN("busy", 4)
	ackAll := func(sub component.Subscription, n int) {
		for range n {
			select {
			case m := <-sub.Messages():
				if err := sub.Ack(ctx, m.ID); err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no message")
			}
		}
	}
	ackAll(a, 4)
	time.Sleep(400 * time.Millisecond) // older than the retention
	ps.Sweep()
	if n := countMsgs(t, ps, "busy"); n != 4 {
		t.Fatalf("group b has not settled the messages, yet the topic holds %d of 4", n)
	}
	ackAll(b, 3)
	ps.Sweep()
	if n := countMsgs(t, ps, "busy"); n != 1 {
		t.Fatalf("after both groups settled 3 of 4 messages the topic holds %d, want 1", n)
	}
	ackAll(b, 1)
	ps.Sweep()
	if n := countMsgs(t, ps, "busy"); n != 0 {
		t.Fatalf("after every group settled every message the topic holds %d", n)
	}
	a.Close()
	b.Close()
}

// TestRetentionRunsBySchedule checks that the sweeper runs on its own.
func TestRetentionRunsBySchedule(t *testing.T) {
	ps := build[PubSubConfig, *PubSub](t, component.CapPubSub, t.TempDir(), func(c *PubSubConfig) {
		c.Retention = configs.Duration(50 * time.Millisecond)
		c.SweepInterval = configs.Duration(50 * time.Millisecond)
	})
	defer ps.Close()
	if r := ps.Publish(context.Background(), "t", []component.OutMessage{{Data: []byte("x")}}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for countMsgs(t, ps, "t") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message past retention was not deleted within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlowSubscriberCoalesces checks what a configuration subscriber that
// falls behind gets: the latest change of each key, in order.
func TestSlowSubscriberCoalesces(t *testing.T) {
	ctx := context.Background()
	cs := build[ConfigStoreConfig, *ConfigStore](t, component.CapConfig, t.TempDir(), func(c *ConfigStoreConfig) { c.SubscriberBuffer = 4 })
	defer cs.Close()
	scope := component.ConfigScope{AppID: "app", Group: "g"}
	release := make(chan struct{})
	var mu sync.Mutex
	var got []component.ConfigChange
	first := true
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := cs.Subscribe(sctx, scope, nil, func(ch []component.ConfigChange) {
		if first {
			first = false
			<-release // stuck while the changes below pile up
		}
		mu.Lock()
		got = append(got, ch...)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	save := func(key, content string) {
		if _, err := cs.Save(ctx, []component.ConfigItem{{AppID: "app", Group: "g", Key: key, Content: content}}); err != nil {
			t.Fatal(err)
		}
	}
	save("blocker", "0")
	time.Sleep(50 * time.Millisecond) // the subscriber is now inside fn
	for i := range 50 {
		save(fmt.Sprint("k", i%3), fmt.Sprint(i)) // k0, k1, k2 in turn
	}
	save("last", "end")
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		done := n > 0 && got[n-1].Item.Key == "last"
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow subscriber did not catch up: %d changes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) >= 52 {
		t.Errorf("a subscriber that fell behind by 51 changes of 4 keys got %d changes; they should have been merged", len(got))
	}
	latest := map[string]string{}
	for _, c := range got {
		latest[c.Item.Key] = c.Item.Content
	}
	for k, want := range map[string]string{"k0": "48", "k1": "49", "k2": "47", "last": "end", "blocker": "0"} {
		if latest[k] != want {
			t.Errorf("latest change of %s the subscriber saw: %q, want %q (all: %d changes)", k, latest[k], want, len(got))
		}
	}
}

func TestValidate(t *testing.T) {
	c := DefaultLockConfig()
	c.Metadata = map[string]string{"redisHost": "x"}
	if err := c.Validate(); err == nil {
		t.Error("metadata accepted")
	}
	p := DefaultPubSubConfig()
	p.Retention = 0
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "retention") {
		t.Errorf("retention 0: %v", err)
	}
	o := defaultStoreOptions()
	o.OpenTimeout = 0
	if err := o.Validate(); err == nil {
		t.Error("open_timeout 0 accepted")
	}
	cs := DefaultConfigStoreConfig()
	cs.SubscriberBuffer = 0
	if err := cs.Validate(); err == nil {
		t.Error("subscriber_buffer 0 accepted")
	}
	for _, v := range []configs.Validator{DefaultConfigStoreConfig(), DefaultLockConfig(), DefaultPubSubConfig(), DefaultSequencerConfig(), &o} {
		if o, ok := v.(*StoreOptions); ok {
			o.OpenTimeout = configs.Duration(time.Second)
		}
		if err := v.Validate(); err != nil {
			t.Errorf("defaults of %T: %v", v, err)
		}
	}
}

// TestLeaseSurvivesRestartThenExpires checks that a lease taken before a
// restart ends on time after it.
func TestLeaseSurvivesRestartThenExpires(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := build[LockConfig, *LockStore](t, component.CapLock, dir, nil)
	start := time.Now()
	tok, ok, err := l.TryLock(ctx, "r", "a", 500*time.Millisecond)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	l.Close()
	l = build[LockConfig, *LockStore](t, component.CapLock, dir, nil)
	defer l.Close()
	for {
		tok2, ok, err := l.TryLock(ctx, "r", "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if since := time.Since(start); since < 500*time.Millisecond {
				t.Fatalf("b acquired after %v, the lease was 500ms", since)
			}
			if tok2 <= tok {
				t.Fatalf("token %d after restart, want > %d", tok2, tok)
			}
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("lease taken before the restart never ran out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sweep at Start removes expired records.
	if _, ok, _ := l.TryLock(ctx, "short", "c", time.Millisecond); !ok {
		t.Fatal("TryLock short")
	}
	time.Sleep(5 * time.Millisecond)
	l.sweep()
	n := 0
	if err := l.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketLocks).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("after a sweep %d lock records remain, want 1 (r, still held)", n)
	}
}

// TestSettleBeforeReading checks that a client acking ids it has not read
// yet (ids are sequences, easy to guess) cannot block the dispatcher.
func TestSettleBeforeReading(t *testing.T) {
	ctx := context.Background()
	ps := build[PubSubConfig, *PubSub](t, component.CapPubSub, t.TempDir(), nil)
	defer ps.Close()
	sub, err := ps.Subscribe(ctx, component.SubscribeSpec{Topic: "t", Group: "g", MaxInFlight: 2, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]component.OutMessage, 6)
	for _, r := range ps.Publish(ctx, "t", msgs) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sub.Messages()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("two messages were not delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range []string{"1", "2"} {
		if err := sub.Ack(ctx, id); err != nil {
			t.Fatalf("Ack %s before reading it: %v", id, err)
		}
	}
	// The channel is full of settled messages; the dispatcher must wait,
	// not block, so that a publish and Close still go through.
	if r := ps.Publish(ctx, "t", msgs[:1]); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	if n := len(sub.Messages()); n > 2 {
		t.Fatalf("%d messages queued with MaxInFlight 2", n)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
}
