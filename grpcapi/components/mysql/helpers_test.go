package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// mysqlAddr is the machine's shared MariaDB.
const mysqlAddr = "127.0.0.1:3306"

func dsn(addr string) string { return "root:@tcp(" + addr + ")/test" }

// testTable returns a table name of this test alone and drops the table
// when the test ends.
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
	t.Cleanup(func() { execSQL(t, "DROP TABLE IF EXISTS "+quoteIdent(name)) })
	return name
}

func execSQL(t *testing.T, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("mysql", dsn(mysqlAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func startSequencer(t *testing.T, md map[string]string) *Sequencer {
	t.Helper()
	q, err := NewSequencer(&SequencerConfig{Base: component.Base{Type: "mysql", Metadata: md}}, component.Env{Name: t.Name()})
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

// quiet keeps the driver's "unexpected EOF" logs of the down tests out of
// the output.
func init() { mysql.SetLogger(mysql.Logger(nopLogger{})) }

type nopLogger struct{}

func (nopLogger) Print(...any) {}

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
