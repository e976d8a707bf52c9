package mysql

import (
	"context"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// TestKeysAreBytes checks that keys differing in case or trailing spaces
// (equal under MySQL's default collations) are different sequences.
func TestKeysAreBytes(t *testing.T) {
	q := startSequencer(t, map[string]string{"connectionString": dsn(mysqlAddr), "table": testTable(t)})
	defer q.Close()
	ctx := context.Background()
	for _, k := range []string{"key", "KEY", "key ", "kéy", "ke\x00y"} {
		if first, err := q.Reserve(ctx, k, 5); err != nil || first != 1 {
			t.Errorf("first Reserve(%q) = %d, %v; want 1 (a key of its own)", k, first, err)
		}
	}
	if first, err := q.Reserve(ctx, "key", 1); err != nil || first != 6 {
		t.Errorf("Reserve(key) = %d, %v; want 6", first, err)
	}
}

// TestTableDropped checks that a table dropped under a running sequencer
// is created again (ids then start over: the table was the state).
func TestTableDropped(t *testing.T) {
	table := testTable(t)
	q := startSequencer(t, map[string]string{"connectionString": dsn(mysqlAddr), "table": table})
	defer q.Close()
	ctx := context.Background()
	if _, err := q.Reserve(ctx, "k", 10); err != nil {
		t.Fatal(err)
	}
	execSQL(t, "DROP TABLE "+quoteIdent(table))
	if first, err := q.Reserve(ctx, "k", 1); err != nil || first != 1 {
		t.Fatalf("Reserve after the table was dropped = %d, %v; want 1", first, err)
	}
}

// TestStoreDown starts the sequencer while nothing listens on its port:
// Start succeeds, Health is DOWN and Reserve fails with ErrUnavailable;
// when the server comes up (a proxy in front of it starts) the sequencer
// recovers by itself, and again after the server goes away for a while.
// The ids reserved meanwhile start at 1 and keep increasing.
func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	p := storetest.NewProxy(t, mysqlAddr)
	q := startSequencer(t, map[string]string{"connectionString": dsn(p.Addr()) + "?timeout=500ms", "table": testTable(t)})
	defer q.Close()
	var ids []int64
	storetest.DownAndBack(t, q, p.Start, p.Stop, func() error {
		first, err := q.Reserve(ctx, "k", 1)
		if err == nil {
			ids = append(ids, first)
		}
		return err
	})
	if len(ids) < 2 || ids[0] != 1 {
		t.Fatalf("ids reserved %v, want 1 and more", ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Errorf("ids reserved %v, want them increasing", ids)
			break
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		md   map[string]string
		want string
	}{
		{map[string]string{"connectionString": "root:@tcp(127.0.0.1:3306)/test"}, ""},
		{map[string]string{"connectionString": "u:p@tcp(db:3306)/app?tls=true", "table": "app.ids", "timeoutInSeconds": "5", "maxConns": "8"}, ""},
		{map[string]string{}, "metadata.connectionString: is required"},
		{map[string]string{"connectionString": "not a dsn"}, "metadata.connectionString: not a valid DSN"},
		{map[string]string{"connectionString": "root:@tcp(h:1)/d", "table": "a-b"}, "metadata.table"},
		{map[string]string{"connectionString": "root:@tcp(h:1)/d", "tabel": "x"}, "metadata.tabel: unknown key"},
		{map[string]string{"connectionString": "root:@tcp(h:1)/d", "timeout": "0"}, "metadata.timeout"},
		{map[string]string{"connectionString": "root:@tcp(h:1)/d", "maxConns": "-1"}, "metadata.maxConns"},
	} {
		err := (&SequencerConfig{Base: component.Base{Metadata: c.md}}).Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.md, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: err %v, want one containing %q", c.md, err, c.want)
		}
	}
	if _, err := NewSequencer(&SequencerConfig{}, component.Env{}); err == nil {
		t.Error("NewSequencer without metadata succeeded")
	}
}
