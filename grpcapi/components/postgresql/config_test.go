package postgresql

import (
	"context"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dapr/components-contrib/configuration"
	contribpg "github.com/dapr/components-contrib/configuration/postgres"
	contribmd "github.com/dapr/components-contrib/metadata"
	kitlogger "github.com/dapr/kit/logger"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

func TestEscape(t *testing.T) {
	alphabet := regexp.MustCompile(`^[a-zA-Z0-9./_]*$`) // contrib's key check
	for _, s := range []string{"", "plain.Name09", "a/b", "a_b", "_5F", "配置", "a b%c\x00", "k:1"} {
		e := esc(s)
		if !alphabet.MatchString(e) || strings.Contains(e, "/") {
			t.Errorf("esc(%q) = %q, outside contrib's alphabet or with the separator", s, e)
		}
		if got, ok := unesc(e); !ok || got != s {
			t.Errorf("unesc(esc(%q)) = %q, %v", s, got, ok)
		}
	}
	for _, bad := range []string{"_", "_4", "_ZZ", "a_4"} {
		if _, ok := unesc(bad); ok {
			t.Errorf("unesc(%q) succeeded", bad)
		}
	}
}

// TestConfigUserTable runs on a table made as contrib's documentation
// shows (no primary key, upper-case column names, its trigger function),
// without createTable: the store is DOWN until the table exists.
func TestConfigUserTable(t *testing.T) {
	table := testTable(t)
	channel := table + "_ch"
	c := startConfig(t, map[string]string{"connectionString": pgConn, "table": table, "pgNotifyChannel": channel})
	defer c.Close()
	if h := c.Health(); h.State != backends.StateDown || !strings.Contains(h.Detail, "createTable") {
		t.Fatalf("health without the table: %+v, want DOWN saying how to create it", h)
	}
	exec(t, `CREATE TABLE `+table+` (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON)`)
	exec(t, `CREATE OR REPLACE FUNCTION `+table+`_notify() RETURNS TRIGGER AS $$
		DECLARE
			data json;
			notification json;
		BEGIN
			IF (TG_OP = 'DELETE') THEN
				data = row_to_json(OLD);
			ELSE
				data = row_to_json(NEW);
			END IF;
			notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
			PERFORM pg_notify('`+channel+`', notification::text);
			RETURN NULL;
		END;
		$$ LANGUAGE plpgsql`)
	exec(t, `CREATE TRIGGER `+table+`_trg AFTER INSERT OR UPDATE OR DELETE ON `+table+` FOR EACH ROW EXECUTE PROCEDURE `+table+`_notify()`)
	storetest.WaitState(t, c, backends.StateUp)

	ctx := context.Background()
	scope := component.ConfigScope{AppID: "app", Group: "g"}
	rec := &storetest.Changes{}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Subscribe(sctx, scope, nil, rec.Add); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2"} {
		if _, err := c.Save(ctx, []component.ConfigItem{{AppID: "app", Group: "g", Key: "k", Content: v}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := c.Delete(ctx, scope, nil); err != nil || n != 1 {
		t.Fatalf("Delete: %d %v", n, err)
	}
	storetest.WaitFor(t, "three changes", func() bool { return len(rec.Get()) == 3 })
	if got, want := rec.Summary(), []string{"k=1", "k=2", "-k"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
}

// TestConfigReadByContrib checks that contrib's configuration/postgres
// (what a Dapr sidecar runs) reads what Mecha saves, tags included in its
// metadata, and that its subscription sees Mecha's saves.
func TestConfigReadByContrib(t *testing.T) {
	table := testTable(t)
	c := startConfig(t, map[string]string{"connectionString": pgConn, "table": table, "createTable": "true"})
	defer c.Close()
	storetest.WaitState(t, c, backends.StateUp)
	ctx := context.Background()
	scope := component.ConfigScope{AppID: "orders", Group: "db/main", Label: "prod"}
	saved, err := c.Save(ctx, []component.ConfigItem{{AppID: "orders", Group: "db/main", Label: "prod", Key: "url",
		Content: "postgres://db/orders", Tags: map[string]string{"owner": "team"}, Metadata: map[string]string{"format": "url"}}})
	if err != nil {
		t.Fatal(err)
	}

	store := contribpg.NewPostgresConfigurationStore(kitlogger.NewLogger("test"))
	if err := store.Init(ctx, configuration.Metadata{Base: contribmd.Base{Properties: map[string]string{
		"connectionString": pgConn, "table": table}}}); err != nil {
		t.Fatal(err)
	}
	defer store.(interface{ Close() error }).Close()
	key := c.RowKey(scope, "url")
	res, err := store.Get(ctx, &configuration.GetRequest{Keys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Items[key]
	if got == nil || got.Value != "postgres://db/orders" || got.Version != saved[0].Version ||
		got.Metadata["mecha.tag.owner"] != "team" || got.Metadata["format"] != "url" {
		t.Fatalf("contrib Get %q = %+v, want the content, version %q and metadata", key, got, saved[0].Version)
	}

	var mu sync.Mutex
	var seen []string
	if _, err := store.Subscribe(ctx, &configuration.SubscribeRequest{Keys: []string{key}, Metadata: map[string]string{"pgNotifyChannel": table}},
		func(_ context.Context, e *configuration.UpdateEvent) error {
			mu.Lock()
			defer mu.Unlock()
			if it := e.Items[key]; it != nil {
				seen = append(seen, it.Value+"@"+it.Version)
			}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	// contrib listens in the background: save until it reports.
	storetest.WaitFor(t, "contrib's subscription to report a Mecha save", func() bool {
		s, err := c.Save(ctx, []component.ConfigItem{{AppID: "orders", Group: "db/main", Label: "prod", Key: "url", Content: "new"}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seen, "new@"+s[0].Version)
	})
}

// TestConfigLargeItem saves content too large for a notification: the
// trigger sends the key alone and the subscription reads the row.
func TestConfigLargeItem(t *testing.T) {
	c := startConfig(t, map[string]string{"connectionString": pgConn, "table": testTable(t), "createTable": "true"})
	defer c.Close()
	storetest.WaitState(t, c, backends.StateUp)
	ctx := context.Background()
	scope := component.ConfigScope{AppID: "a", Group: "g"}
	rec := &storetest.Changes{}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Subscribe(sctx, scope, nil, rec.Add); err != nil {
		t.Fatal(err)
	}
	// Quotes, backslashes, newlines and multi-byte characters across the
	// parts' boundaries.
	big := strings.Repeat("0123456789\"\\\n配置", 1500)
	saved, err := c.Save(ctx, []component.ConfigItem{{AppID: "a", Group: "g", Key: "big", Content: big, Tags: map[string]string{"t": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, scope, []string{"big"}); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, "two changes", func() bool { return len(rec.Get()) == 2 })
	chs := rec.Get()
	if chs[0].Deleted || chs[0].Item.Content != big || chs[0].Item.Version != saved[0].Version || chs[0].Item.Tags["t"] != "v" {
		t.Errorf("first change: deleted=%v %d bytes version %q tags %v, want the saved item", chs[0].Deleted, len(chs[0].Item.Content), chs[0].Item.Version, chs[0].Item.Tags)
	}
	if !chs[1].Deleted || chs[1].Item.Key != "big" {
		t.Errorf("second change %+v, want the deletion", chs[1])
	}
}

// TestConfigSubscribeReconnects ends the subscription's connection on the
// server and checks that changes made around the loss are reported, in
// order: the subscription connects again and reads the scope again.
func TestConfigSubscribeReconnects(t *testing.T) {
	table := testTable(t)
	logs := &storetest.LogCounter{}
	c, err := NewConfig(&ConfigConfig{Base: component.Base{Metadata: map[string]string{
		"connectionString": pgConn, "table": table, "createTable": "true"}}}, component.Env{Name: "cfg", Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	storetest.WaitState(t, c, backends.StateUp)
	storetest.SubscribeReconnects(t, c, logs, func() {
		exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`, `LISTEN "`+table+`"`)
	})
}
