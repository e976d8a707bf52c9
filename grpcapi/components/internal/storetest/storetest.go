// Package storetest holds the test helpers that the gRPC API's components
// on external stores (Redis, PostgreSQL, MySQL) share: polling for a
// condition or a health state, the check that a component follows its
// server down and back up, the check that a configuration subscription
// survives lost connections, unique names for a test's keys and tables, a
// TCP proxy that plays a server going away and coming back, a recorder
// of configuration changes and a log handler that counts messages.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// WaitFor polls cond until it holds, failing the test after 15 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitState waits until c reports want.
func WaitState(t testing.TB, c component.Component, want backends.State) {
	t.Helper()
	WaitFor(t, "health "+want.String(), func() bool { return c.Health().State == want })
}

// MustUnavailable fails the test unless err wraps
// component.ErrUnavailable.
func MustUnavailable(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, component.ErrUnavailable) {
		t.Fatalf("%s: err %v, want one wrapping ErrUnavailable", what, err)
	}
}

// Start builds a component with build (named after the test) and starts
// it, failing the test on an error.
func Start[C any, T component.Component](t testing.TB, build func(C, component.Env) (T, error), cfg C) T {
	t.Helper()
	c, err := build(cfg, component.Env{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// DownAndBack checks how c, started while its server is down, follows
// the server: Health is DOWN with a reason and op fails with
// ErrUnavailable; after up the component turns UP by itself and op
// succeeds; after down op fails with ErrUnavailable and the component
// turns DOWN; after up again it turns UP and op succeeds again.
func DownAndBack(t testing.TB, c component.Component, up, down func(), op func() error) {
	t.Helper()
	if h := c.Health(); h.State != backends.StateDown || h.Detail == "" {
		t.Fatalf("health with nothing listening: %+v, want DOWN with a reason", h)
	}
	MustUnavailable(t, "operation with nothing listening", op())

	up()
	WaitState(t, c, backends.StateUp)
	if err := op(); err != nil {
		t.Fatalf("operation after the server came up: %v", err)
	}

	down()
	MustUnavailable(t, "operation after the server went away", op())
	WaitState(t, c, backends.StateDown)

	up()
	WaitState(t, c, backends.StateUp)
	WaitFor(t, "operations to succeed after the server came back", func() bool { return op() == nil })
}

// ConfigOps runs an operation of every kind on s in scope app/g: Save,
// Get, Subscribe (ended at once) and Delete, and returns the first error.
func ConfigOps(ctx context.Context, s component.ConfigStore) error {
	scope := component.ConfigScope{AppID: "app", Group: "g"}
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
}

// SubscribeReconnects checks that a subscription to scope a/g of c
// reports the changes made around lost connections, in order, once
// each: kill ends the subscription's connection on the server, and the
// subscription connects again and reads the scope again, which c logs
// to logs as "configuration subscription reconnected".
func SubscribeReconnects(t testing.TB, c component.ConfigStore, logs *LogCounter, kill func()) {
	t.Helper()
	ctx := context.Background()
	scope := component.ConfigScope{AppID: "a", Group: "g"}
	it := func(k, v string) component.ConfigItem {
		return component.ConfigItem{AppID: "a", Group: "g", Key: k, Content: v}
	}
	if _, err := c.Save(ctx, []component.ConfigItem{it("gone", "x"), it("kept", "x")}); err != nil {
		t.Fatal(err)
	}
	rec := &Changes{}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Subscribe(sctx, scope, nil, rec.Add); err != nil {
		t.Fatal(err)
	}
	last := func(want string) func() bool {
		return func() bool {
			s := rec.Summary()
			return len(s) > 0 && s[len(s)-1] == want
		}
	}
	for round := range 3 {
		kill()
		v := string(rune('1' + round))
		if _, err := c.Save(ctx, []component.ConfigItem{it("new", v)}); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, "new="+v, last("new="+v))
	}
	kill()
	if _, err := c.Delete(ctx, scope, []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, "the deletion", last("-gone"))
	if _, err := c.Save(ctx, []component.ConfigItem{it("last", "x")}); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, "the last change", last("last=x"))
	if got, want := rec.Summary(), []string{"new=1", "new=2", "new=3", "-gone", "last=x"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	// The changes made while the connection was lost came from reading
	// the scope again (at least some of them: the subscription may have
	// been back before a save).
	if n := logs.Count("configuration subscription reconnected"); n == 0 {
		t.Error("the subscription never reconnected")
	}
}

// UniqueName returns a name of this test alone: "mechatest", the test's
// name in lower-case letters and digits (cut so that the name stays
// short enough for a table) and a random suffix, joined by sep.
func UniqueName(t testing.TB, sep string) string {
	var b strings.Builder
	b.WriteString("mechatest" + sep)
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	var rnd [5]byte
	rand.Read(rnd[:])
	return b.String() + sep + hex.EncodeToString(rnd[:])
}

// Proxy is a TCP proxy to a server that a test can stop and start again
// on the same port, as if the server went down and came back.
type Proxy struct {
	t      testing.TB
	target string
	port   int

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewProxy returns a proxy to target on a free port, not started; it is
// stopped when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &Proxy{t: t, target: target, port: port, conns: map[net.Conn]bool{}}
	t.Cleanup(p.Stop)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Start listens and forwards every connection to the target.
func (p *Proxy) Start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	WaitFor(p.t, "the proxy's port", func() bool {
		ln, err = net.Listen("tcp", p.Addr())
		return err == nil
	})
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close(); c.Close() }()
			go func() { io.Copy(c, u); u.Close(); c.Close() }()
		}
	}()
}

// Stop closes the listener and every connection.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	p.wg.Wait()
}

// Changes records the changes a configuration subscription reports; Add
// is the subscription's callback.
type Changes struct {
	mu  sync.Mutex
	chs []component.ConfigChange
}

// Add records chs.
func (c *Changes) Add(chs []component.ConfigChange) {
	c.mu.Lock()
	c.chs = append(c.chs, chs...)
	c.mu.Unlock()
}

// Get returns the changes so far.
func (c *Changes) Get() []component.ConfigChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.chs)
}

// Summary returns the changes so far as "key=content" for an update and
// "-key" for a deletion.
func (c *Changes) Summary() []string {
	var out []string
	for _, ch := range c.Get() {
		if ch.Deleted {
			out = append(out, "-"+ch.Item.Key)
		} else {
			out = append(out, ch.Item.Key+"="+ch.Item.Content)
		}
	}
	return out
}

// LogCounter is a slog handler that counts messages.
type LogCounter struct {
	mu   sync.Mutex
	msgs []string
}

// Enabled says every level is.
func (l *LogCounter) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs drops the attributes.
func (l *LogCounter) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup drops the group.
func (l *LogCounter) WithGroup(string) slog.Handler { return l }

// Handle records the message.
func (l *LogCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

// Count returns how many times msg was logged.
func (l *LogCounter) Count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}
