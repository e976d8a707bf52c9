package postgresql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// pgAddr and pgConn reach the machine's shared PostgreSQL.
const (
	pgAddr = "127.0.0.1:5432"
	pgConn = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
)

func connString(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "host=" + host + " port=" + port + " user=postgres dbname=test sslmode=disable"
}

// testTable returns a table name of this test alone and drops the table
// (and the trigger function Mecha creates) when the test ends.
func testTable(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("mechatest_")
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
	name := b.String() + "_" + hex.EncodeToString(rnd[:])
	t.Cleanup(func() {
		exec(t, `DROP TABLE IF EXISTS `+quoteIdent(name)+` CASCADE`)
		exec(t, `DROP FUNCTION IF EXISTS `+quoteIdent(name+"_mecha_notify")+`() CASCADE`)
		exec(t, `DROP FUNCTION IF EXISTS `+quoteIdent(name+"_notify")+`() CASCADE`)
	})
	return name
}

// exec runs SQL on the shared server.
func exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgConn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func env(t *testing.T) component.Env { return component.Env{Name: t.Name()} }

func startConfig(t *testing.T, md map[string]string) *Config {
	t.Helper()
	c, err := NewConfig(&ConfigConfig{Base: component.Base{Type: "postgresql", Metadata: md}}, env(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func startSequencer(t *testing.T, md map[string]string) *Sequencer {
	t.Helper()
	q, err := NewSequencer(&SequencerConfig{Base: component.Base{Type: "postgresql", Metadata: md}}, env(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitState(t *testing.T, c component.Component, want backends.State) {
	t.Helper()
	waitFor(t, "health "+want.String(), func() bool { return c.Health().State == want })
}

func mustUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, component.ErrUnavailable) {
		t.Fatalf("%s: err %v, want one wrapping ErrUnavailable", what, err)
	}
}

// proxy is a TCP proxy to a server that a test can stop and start again
// on the same port, as if the server went down and came back.
type proxy struct {
	t      *testing.T
	target string
	port   int

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &proxy{t: t, target: target, port: port, conns: map[net.Conn]bool{}}
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *proxy) start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	waitFor(p.t, "the proxy's port", func() bool {
		ln, err = net.Listen("tcp", p.addr())
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

// stop closes the listener and every connection.
func (p *proxy) stop() {
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
