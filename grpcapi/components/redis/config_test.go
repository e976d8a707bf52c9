package redis

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dapr/components-contrib/configuration"
	contribcfg "github.com/dapr/components-contrib/configuration/redis"
	contribmd "github.com/dapr/components-contrib/metadata"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// TestConfigKeyLayout checks the documented keys, names with the
// separator and the escape character included.
func TestConfigKeyLayout(t *testing.T) {
	p := testPrefix(t)
	c := startConfig(t, metadata(redisAddr, p))
	defer c.Close()
	ctx := context.Background()
	rc := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rc.Close()

	scope := component.ConfigScope{AppID: "app:1", Group: "g%2", Label: ""}
	saved, err := c.Save(ctx, []component.ConfigItem{{AppID: "app:1", Group: "g%2", Key: "db:url", Content: "postgres://x",
		Tags: map[string]string{"t": "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	itemKey := p + ":cfg:app%3A1:g%252::db%3Aurl"
	if got := c.ItemKey(scope, "db:url"); got != itemKey {
		t.Errorf("ItemKey = %q, want %q", got, itemKey)
	}
	if v := rc.Get(ctx, itemKey).Val(); v != "postgres://x||"+saved[0].Version {
		t.Errorf("item key holds %q, want content||version", v)
	}
	if v := rc.Get(ctx, p+":cfgmeta:app%3A1:g%252::db%3Aurl").Val(); v != `{"tags":{"t":"1"}}` {
		t.Errorf("meta key holds %q", v)
	}
	if m := rc.SMembers(ctx, p+":cfgindex:app%3A1:g%252:").Val(); !slices.Equal(m, []string{"db%3Aurl"}) {
		t.Errorf("index holds %q", m)
	}
	// A value written without a version (as contrib's docs show) reads
	// with an empty version, and a conditional save against it fails.
	rc.Set(ctx, itemKey, "plain", 0)
	got, err := c.Get(ctx, scope, []string{"db:url"})
	if err != nil || len(got) != 1 || got[0].Content != "plain" || got[0].Version != "" {
		t.Fatalf("Get of a value without version: %+v %v", got, err)
	}
}

// TestConfigContentWithSeparator checks content holding "||" (contrib's
// separator) and "|" round-trips through Get and Subscribe.
func TestConfigContentWithSeparator(t *testing.T) {
	c := startConfig(t, metadata(redisAddr, testPrefix(t)))
	defer c.Close()
	ctx := context.Background()
	scope := component.ConfigScope{AppID: "a", Group: "g", Label: "l"}
	rec := &storetest.Changes{}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Subscribe(sctx, scope, nil, rec.Add); err != nil {
		t.Fatal(err)
	}
	contents := []string{"a||b||", "x|", "||", "|||", "end"}
	var items []component.ConfigItem
	for i, s := range contents {
		items = append(items, component.ConfigItem{AppID: "a", Group: "g", Label: "l", Key: string(rune('a' + i)), Content: s})
	}
	saved, err := c.Save(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, scope, nil)
	if err != nil || len(got) != len(contents) {
		t.Fatalf("Get: %d items, %v", len(got), err)
	}
	for i, it := range got {
		if it.Content != contents[i] || it.Version != saved[i].Version {
			t.Errorf("item %q: %q version %q, want %q version %q", it.Key, it.Content, it.Version, contents[i], saved[i].Version)
		}
	}
	storetest.WaitFor(t, "changes", func() bool { return len(rec.Get()) == len(contents) })
	for i, ch := range rec.Get() {
		if ch.Item.Content != contents[i] || ch.Item.Version != saved[i].Version {
			t.Errorf("change %d: %q version %q, want %q version %q", i, ch.Item.Content, ch.Item.Version, contents[i], saved[i].Version)
		}
	}
}

// TestConfigSubscribeReconnects kills the subscription's connection and
// checks that changes made around the loss are reported, in order: the
// subscription reconnects and reads the scope again.
func TestConfigSubscribeReconnects(t *testing.T) {
	srv := newPrivateRedis(t)
	srv.start()
	logs := &storetest.LogCounter{}
	c, err := NewConfig(&ConfigConfig{Base: component.Base{Metadata: metadata(srv.addr(), "mecha")}},
		component.Env{Name: "cfg", Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc := goredis.NewClient(&goredis.Options{Addr: srv.addr()})
	defer rc.Close()
	storetest.SubscribeReconnects(t, c, logs, func() {
		if err := rc.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConfigReadByContrib checks that contrib's configuration/redis (what
// a Dapr sidecar runs) reads what Mecha saves, and that its subscription
// (keyspace notifications) sees Mecha's saves. It runs on a private
// server: contrib's Subscribe rewrites notify-keyspace-events.
func TestConfigReadByContrib(t *testing.T) {
	srv := newPrivateRedis(t)
	srv.start()
	c := startConfig(t, metadata(srv.addr(), "mecha"))
	defer c.Close()
	ctx := context.Background()
	scope := component.ConfigScope{AppID: "orders", Group: "db", Label: "prod"}
	saved, err := c.Save(ctx, []component.ConfigItem{{AppID: "orders", Group: "db", Label: "prod", Key: "url", Content: "postgres://db/orders 配置"}})
	if err != nil {
		t.Fatal(err)
	}

	store := contribcfg.NewRedisConfigurationStore(kitLog{slog.New(slog.DiscardHandler)})
	if err := store.Init(ctx, configuration.Metadata{Base: contribmd.Base{Properties: map[string]string{"redisHost": srv.addr()}}}); err != nil {
		t.Fatal(err)
	}
	defer store.(interface{ Close() error }).Close()
	key := c.ItemKey(scope, "url")
	res, err := store.Get(ctx, &configuration.GetRequest{Keys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Items[key]
	if got == nil || got.Value != "postgres://db/orders 配置" || got.Version != saved[0].Version {
		t.Fatalf("contrib Get %q = %+v, want the content and version %q", key, got, saved[0].Version)
	}

	var mu sync.Mutex
	var seen []string
	if _, err := store.Subscribe(ctx, &configuration.SubscribeRequest{Keys: []string{key}}, func(_ context.Context, e *configuration.UpdateEvent) error {
		mu.Lock()
		defer mu.Unlock()
		if it := e.Items[key]; it != nil {
			seen = append(seen, it.Value+"@"+it.Version)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// contrib subscribes in the background: save until it reports.
	var last string
	storetest.WaitFor(t, "contrib's subscription to report a Mecha save", func() bool {
		s, err := c.Save(ctx, []component.ConfigItem{{AppID: "orders", Group: "db", Label: "prod", Key: "url", Content: "new"}})
		if err != nil {
			t.Fatal(err)
		}
		last = "new@" + s[0].Version
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seen, last)
	})
}
