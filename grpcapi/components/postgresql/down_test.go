package postgresql

import (
	"context"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// TestStoreDown starts each component while nothing listens on its port:
// Start succeeds, Health is DOWN and operations fail with ErrUnavailable;
// when the server comes up (a proxy in front of it starts) the component
// recovers by itself, and again after the server goes away for a while.
func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	scope := component.ConfigScope{AppID: "app", Group: "g"}
	cases := []struct {
		name  string
		start func(t *testing.T, addr, table string) component.Component
		op    func(c component.Component) error
	}{
		{"config", func(t *testing.T, addr, table string) component.Component {
			return startConfig(t, map[string]string{"connectionString": connString(addr), "table": table, "createTable": "true"})
		}, func(c component.Component) error {
			s := c.(*Config)
			if _, err := s.Save(ctx, []component.ConfigItem{{AppID: "app", Group: "g", Key: "k", Content: "v"}}); err != nil {
				return err
			}
			if _, err := s.Get(ctx, scope, nil); err != nil {
				return err
			}
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if err := s.Subscribe(sctx, scope, nil, func([]component.ConfigChange) {}); err != nil {
				return err
			}
			_, err := s.Delete(ctx, scope, nil)
			return err
		}},
		{"sequencer", func(t *testing.T, addr, table string) component.Component {
			return startSequencer(t, map[string]string{"connectionString": connString(addr), "table": table})
		}, func(c component.Component) error {
			_, err := c.(*Sequencer).Reserve(ctx, "k", 1)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, pgAddr)
			c := tc.start(t, p.addr(), testTable(t))
			defer c.Close()
			if h := c.Health(); h.State != backends.StateDown || h.Detail == "" {
				t.Fatalf("health with nothing listening: %+v, want DOWN with a reason", h)
			}
			mustUnavailable(t, "operation with nothing listening", tc.op(c))

			p.start()
			waitState(t, c, backends.StateUp)
			if err := tc.op(c); err != nil {
				t.Fatalf("operation after the server came up: %v", err)
			}

			p.stop()
			mustUnavailable(t, "operation after the server went away", tc.op(c))
			waitState(t, c, backends.StateDown)

			p.start()
			waitState(t, c, backends.StateUp)
			waitFor(t, "operations to succeed after the server came back", func() bool { return tc.op(c) == nil })
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
