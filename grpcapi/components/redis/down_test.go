package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// TestStoreDown starts each component while nothing listens on its port:
// Start succeeds, Health is DOWN and operations fail with ErrUnavailable;
// when a server comes up the component recovers by itself, and it goes
// DOWN and recovers again when the server restarts.
func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		start func(t *testing.T, md map[string]string) component.Component
		op    func(c component.Component) error
	}{
		{"lock", func(t *testing.T, md map[string]string) component.Component { return startLock(t, md) },
			func(c component.Component) error {
				l := c.(*Lock)
				if _, _, err := l.TryLock(ctx, "r", "o", time.Minute); err != nil {
					return err
				}
				if _, _, err := l.Renew(ctx, "r", "o", time.Minute); err != nil {
					return err
				}
				_, err := l.Unlock(ctx, "r", "o")
				return err
			}},
		{"config", func(t *testing.T, md map[string]string) component.Component { return startConfig(t, md) },
			func(c component.Component) error { return storetest.ConfigOps(ctx, c.(*Config)) }},
		{"sequencer", func(t *testing.T, md map[string]string) component.Component { return startSequencer(t, md) },
			func(c component.Component) error {
				_, err := c.(*Sequencer).Reserve(ctx, "k", 1)
				return err
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPrivateRedis(t)
			c := tc.start(t, metadata(srv.addr(), "mecha", "dialTimeout", "200ms"))
			defer c.Close()
			storetest.DownAndBack(t, c, func() { srv.start() }, srv.stop, func() error { return tc.op(c) })
		})
	}
}

// TestClosedComponent checks operations after Close fail cleanly.
func TestClosedComponent(t *testing.T) {
	q := startSequencer(t, metadata(redisAddr, testPrefix(t)))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := q.Reserve(context.Background(), "k", 1); err == nil {
		t.Fatal("Reserve after Close succeeded")
	}
	// Close before Start is fine too.
	l, err := NewLock(&LockConfig{Base: component.Base{Metadata: metadata(redisAddr, "x")}}, component.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	if _, _, err := l.TryLock(context.Background(), "r", "o", time.Second); !errors.Is(err, component.ErrUnavailable) {
		t.Fatalf("TryLock before Start: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		md   map[string]string
		want string // "" for valid
	}{
		{map[string]string{"redisHost": "127.0.0.1:6379"}, ""},
		{map[string]string{"redisHost": "127.0.0.1:6379", "keyPrefix": "app1", "redisDB": "2", "redisPassword": "x", "enableTLS": "false"}, ""},
		{map[string]string{"redishost": "127.0.0.1:6379", "KEYPREFIX": "p"}, ""},
		{map[string]string{}, "metadata.redisHost: is required"},
		{map[string]string{"redisHost": "h:1", "redisHots": "x"}, "metadata.redisHots: unknown key"},
		{map[string]string{"redisHost": "h:1", "keyPrefix": ""}, "metadata.keyPrefix: must not be empty"},
		{map[string]string{"redisHost": "h:1", "redisType": "cluster"}, "metadata.redisType"},
		{map[string]string{"redisHost": "h:1", "redisDB": "zero"}, "metadata"},
		{map[string]string{"redisHost": "h:1", "failover": "true"}, "metadata.sentinelMasterName"},
		{map[string]string{"redisHost": "h:1", "queryIndexes": "x"}, "unknown key"}, // a state store key
	} {
		for _, v := range []interface{ Validate() error }{
			&LockConfig{Base: component.Base{Metadata: c.md}},
			&ConfigConfig{Base: component.Base{Metadata: c.md}},
			&SequencerConfig{Base: component.Base{Metadata: c.md}},
		} {
			err := v.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%T %v: %v", v, c.md, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%T %v: err %v, want one containing %q", v, c.md, err, c.want)
			}
		}
	}
}
