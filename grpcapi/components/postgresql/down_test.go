package postgresql

import (
	"context"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// TestStoreDown starts each component while nothing listens on its port:
// Start succeeds, Health is DOWN and operations fail with ErrUnavailable;
// when the server comes up (a proxy in front of it starts) the component
// recovers by itself, and again after the server goes away for a while.
func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		start func(t *testing.T, addr, table string) component.Component
		op    func(c component.Component) error
	}{
		{"config", func(t *testing.T, addr, table string) component.Component {
			return startConfig(t, map[string]string{"connectionString": connString(addr), "table": table, "createTable": "true"})
		}, func(c component.Component) error { return storetest.ConfigOps(ctx, c.(*Config)) }},
		{"sequencer", func(t *testing.T, addr, table string) component.Component {
			return startSequencer(t, map[string]string{"connectionString": connString(addr), "table": table})
		}, func(c component.Component) error {
			_, err := c.(*Sequencer).Reserve(ctx, "k", 1)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := storetest.NewProxy(t, pgAddr)
			c := tc.start(t, p.Addr(), testTable(t))
			defer c.Close()
			storetest.DownAndBack(t, c, p.Start, p.Stop, func() error { return tc.op(c) })
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		md   map[string]string
		seq  bool // the sequencer (schema-qualified tables allowed)
		want string
	}{
		{map[string]string{"connectionString": pgConn}, false, ""},
		{map[string]string{"url": pgConn, "table": "cfg", "timeoutInSeconds": "5", "createTable": "true", "keyPrefix": "p", "pgNotifyChannel": "c"}, false, ""},
		{map[string]string{"connectionString": "postgres://u@h/db", "table": "public.ids", "timeout": "3s", "maxConns": "4"}, true, ""},
		{map[string]string{}, false, "metadata.connectionString: is required"},
		{map[string]string{"connectionString": pgConn, "tabel": "x"}, false, "metadata.tabel: unknown key"},
		{map[string]string{"connectionString": pgConn, "table": "Config"}, false, "metadata.table"},
		{map[string]string{"connectionString": pgConn, "table": "public.cfg"}, false, "metadata.table"},
		{map[string]string{"connectionString": pgConn, "table": "a;drop"}, true, "metadata.table"},
		{map[string]string{"connectionString": pgConn, "timeout": "10ms"}, false, "metadata.timeout"},
		{map[string]string{"connectionString": pgConn, "createTable": "maybe"}, false, "metadata.createTable"},
		{map[string]string{"connectionString": pgConn, "keyPrefix": "x"}, true, "unknown key"},
		{map[string]string{"connectionString": "host=h port=notaport"}, true, "metadata.connectionString"},
	} {
		var err error
		if c.seq {
			err = (&SequencerConfig{Base: component.Base{Metadata: c.md}}).Validate()
		} else {
			err = (&ConfigConfig{Base: component.Base{Metadata: c.md}}).Validate()
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.md, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: err %v, want one containing %q", c.md, err, c.want)
		}
	}
}
