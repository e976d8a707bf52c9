package memcached

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/backends/memcached/memcachedtest"
	"github.com/mecha-gateway/mecha/configs"
)

// newStore starts a Store on the given servers.
func newStore(t *testing.T, cfg *Config) *Store {
	t.Helper()
	s, err := New(cfg, backends.Env{Name: "memo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func config(servers ...string) *Config {
	cfg := DefaultConfig()
	cfg.Servers = servers
	return cfg
}

func update(s *Store, fn func(tx kv.Tx) error) error {
	return s.Update(context.Background(), 0, fn)
}

// TestServerRefusesLargeValue drives the path where memcached itself
// refuses a value (a server whose item size Mecha misjudged): the error
// is kv.ErrTooLarge and the connection stays usable.
func TestServerRefusesLargeValue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached")
	}
	mc := memcachedtest.Start(t)
	s := newStore(t, config(mc.Addr()))
	if got := s.servers[0].itemMax.Load(); got != 1<<20 {
		t.Fatalf("item_size_max %d, want memcached's default", got)
	}
	s.servers[0].itemMax.Store(8 << 20) // pretend the server takes more than it does
	big := bytes.Repeat([]byte("x"), 2<<20)
	err := update(s, func(tx kv.Tx) error {
		_, err := tx.Set([]byte("k"), big, kv.SetOptions{})
		return err
	})
	if !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("SET: %v", err)
	}
	half := bytes.Repeat([]byte("h"), 600<<10)
	err = update(s, func(tx kv.Tx) error {
		if _, err := tx.Set([]byte("a"), half, kv.SetOptions{}); err != nil {
			return err
		}
		_, err := tx.Append([]byte("a"), half)
		return err
	})
	if !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("APPEND: %v", err)
	}
	err = update(s, func(tx kv.Tx) error {
		if v, err := tx.Get([]byte("a")); err != nil || len(v) != len(half) {
			t.Fatalf("GET after a refused APPEND: %d bytes, %v", len(v), err)
		}
		_, err := tx.Set([]byte("k"), []byte("small"), kv.SetOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.servers[0].connErrors.Load(); n != 0 {
		t.Fatalf("%d connections lost", n)
	}
}

// TestRefusedCommand: a command memcached does not understand fails, and
// the connection (whose stream may be out of step) is replaced.
func TestRefusedCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached")
	}
	mc := memcachedtest.Start(t)
	cfg := config(mc.Addr())
	cfg.Conns = 1
	s := newStore(t, cfg)
	sv := s.servers[0]
	req := getRequest()
	req.buf = append(req.buf, "mg\r\n"...)
	req.n = 1
	err := sv.do(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "memcached "+mc.Addr()+" refused a command: ERROR") {
		t.Fatalf("bad command: %v", err)
	}
	err = update(s, func(tx kv.Tx) error {
		_, err := tx.Set([]byte("k"), []byte("v"), kv.SetOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("after a refused command: %v", err)
	}
	if n := sv.dials.Load(); n != 2 {
		t.Fatalf("%d dials, want 2 (the connection replaced)", n)
	}
}

// TestAbandonedRequest: a client that gives up waiting leaves its request
// to the reader, which must not trip over it.
func TestAbandonedRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached")
	}
	mc := memcachedtest.Start(t)
	cfg := config(mc.Addr())
	cfg.ReadTimeout = configs.Duration(5 * time.Second)
	s := newStore(t, cfg)
	mc.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := s.Update(ctx, 0, func(tx kv.Tx) error {
		_, err := tx.Get([]byte("k"))
		return err
	})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GET on a paused server: %v", err)
	}
	mc.Resume()
	for i := 0; i < 10; i++ {
		err := update(s, func(tx kv.Tx) error {
			_, err := tx.Set([]byte("k"), []byte("v"), kv.SetOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestStartWithServersDown: Start succeeds and reports DOWN; the store
// recovers by itself when the server comes.
func TestStartWithServersDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached")
	}
	mc := memcachedtest.Start(t)
	mc.Stop()
	cfg := config(mc.Addr())
	cfg.HealthInterval = configs.Duration(50 * time.Millisecond)
	s := newStore(t, cfg)
	if h := s.Health(); h.State != backends.StateDown {
		t.Fatalf("health %+v", h)
	}
	err := update(s, func(tx kv.Tx) error {
		_, err := tx.Get([]byte("k"))
		return err
	})
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("GET: %v", err)
	}
	mc.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for s.Health().State != backends.StateUp {
		if time.Now().After(deadline) {
			t.Fatalf("still %+v", s.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = update(s, func(tx kv.Tx) error {
		_, err := tx.Get([]byte("k"))
		return err
	})
	if err != kv.ErrNotFound {
		t.Fatalf("GET after recovery: %v", err)
	}
}

func TestConstructorHasNoSideEffects(t *testing.T) {
	s, err := New(config("127.0.0.1:1"), backends.Env{Name: "memo"})
	if err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != backends.StateInit {
		t.Fatalf("health before Start: %+v", h)
	}
	if n := s.servers[0].dials.Load(); n != 0 {
		t.Fatalf("%d dials before Start", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
