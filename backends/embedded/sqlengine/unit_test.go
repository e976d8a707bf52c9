package sqlengine

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestMayWrite(t *testing.T) {
	for _, tc := range []struct {
		query string
		write bool
	}{
		{"SELECT * FROM t", false},
		{"  select 1", false},
		{"(SELECT 1) UNION (SELECT 2)", false},
		{"/* comment */ SELECT 1", false},
		{"-- comment\nSHOW TABLES", false},
		{"# comment\nDESCRIBE t", false},
		{"SET autocommit = 0", false},
		{"BEGIN", false},
		{"COMMIT", false},
		{"USE test", false},
		{"KILL QUERY 3", false},
		{"INSERT INTO t VALUES (1)", true},
		{"update t set a = 1", true},
		{"DELETE FROM t", true},
		{"REPLACE INTO t VALUES (1)", true},
		{"CREATE TABLE t (a INT)", true},
		{"ALTER TABLE t ADD b INT", true},
		{"DROP DATABASE d", true},
		{"TRUNCATE t", true},
		{"CALL p()", true},
		{"EXECUTE stmt", true},
		{"WITH x AS (SELECT 1) UPDATE t SET a = 1", true},
		{"/*!40101 SET NAMES utf8 */", true},
		{"/* unterminated comment", true},
		{"", true},
		{"123", true},
	} {
		if got := mayWrite(tc.query); got != tc.write {
			t.Errorf("mayWrite(%q) = %v, want %v", tc.query, got, tc.write)
		}
	}
	for _, q := range []string{"KILL 5", "/* x */ kill query 7", "Kill Connection 1"} {
		if !isKill(q) {
			t.Errorf("isKill(%q) = false", q)
		}
	}
	for _, q := range []string{"SELECT 'KILL'", "killer", "SHOW PROCESSLIST"} {
		if isKill(q) {
			t.Errorf("isKill(%q) = true", q)
		}
	}
}

func TestMemListener(t *testing.T) {
	l := newMemListener()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := l.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	go server.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := client.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if a := server.RemoteAddr(); a.Network() != "unix" {
		t.Fatalf("server end's remote address network %q, want unix (seen as localhost)", a.Network())
	}

	// Nobody accepts: Dial gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Dial(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial with nobody accepting: %v, want deadline exceeded", err)
	}

	l.closeAll()
	if _, err := client.Read(buf); err == nil {
		t.Fatal("client end still readable after closeAll")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := l.Dial(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Close: %v, want net.ErrClosed", err)
	}
}

func TestGlobalLock(t *testing.T) {
	l := newGlobalLock()
	ctx := context.Background()
	if err := l.acquire(ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	// Reentrant for the owner, exclusive for others.
	if err := l.acquire(ctx, 1, time.Millisecond); err != nil {
		t.Fatalf("owner acquiring again: %v", err)
	}
	if err := l.acquire(ctx, 2, 10*time.Millisecond); err == nil {
		t.Fatal("second owner got the lock")
	}
	l.release(1, false)
	if err := l.acquire(ctx, 2, 10*time.Millisecond); err == nil {
		t.Fatal("lock passed on while the owner still had a command in progress")
	}
	// Kept across commands while a transaction is open.
	l.release(1, true)
	if err := l.acquire(ctx, 2, 10*time.Millisecond); err == nil {
		t.Fatal("lock passed on while the owner had a transaction open")
	}
	l.drop(1)
	if err := l.acquire(ctx, 2, 10*time.Millisecond); err != nil {
		t.Fatalf("lock not passed on after drop: %v", err)
	}
	// Closing fails client waiters but not the engine's own work.
	done := make(chan error, 1)
	go func() { done <- l.acquire(ctx, 3, 0) }()
	internal := make(chan error, 1)
	go func() { internal <- l.acquire(ctx, internalOwner, 0) }()
	l.close()
	if err := <-done; err == nil || err.Error() != errShutdown().Error() {
		t.Fatalf("waiter after close: %v, want %v", err, errShutdown())
	}
	l.release(2, false)
	if err := <-internal; err != nil {
		t.Fatalf("engine's own acquire after close: %v", err)
	}
	if got := l.timeouts.Load(); got != 3 {
		t.Fatalf("%d timeouts counted, want 3", got)
	}
}

func TestCursorFilter(t *testing.T) {
	packet := func(seq byte, payload ...byte) []byte {
		return append([]byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}, payload...)
	}
	execute := func(flags byte) []byte {
		return []byte{0x17, 1, 0, 0, 0, flags, 1, 0, 0, 0}
	}
	long := make([]byte, 0xffffff) // a payload continued in a second packet
	long[0] = 0x03
	for i := 1; i < len(long); i++ {
		long[i] = 0x17
	}
	type stream struct {
		in, want []byte
		chunks   []int
	}
	var short, split stream
	add := func(s *stream, p, w []byte) {
		s.in = append(s.in, p...)
		s.want = append(s.want, w...)
	}
	add(&short, packet(1, 0x17, 1, 2, 3, 4, 0x01), packet(1, 0x17, 1, 2, 3, 4, 0x01)) // handshake answer: not a command
	add(&short, packet(0, execute(0x01)...), packet(0, execute(0x00)...))
	add(&short, packet(0, execute(0x0b)...), packet(0, execute(0x08)...)) // only the cursor bits are cleared
	add(&short, packet(0), packet(0))                                     // empty packet
	add(&short, packet(0, 0x03, 'S', 'E', 'L', 0x17, 0x01), packet(0, 0x03, 'S', 'E', 'L', 0x17, 0x01))
	add(&short, packet(0, 0x17, 9, 9), packet(0, 0x17, 9, 9)) // too short to have flags
	add(&short, packet(0, execute(0x02)...), packet(0, execute(0x00)...))
	short.chunks = []int{1, 2, 3, 5, 7, len(short.in)}

	add(&split, packet(0, long...), packet(0, long...))
	add(&split, packet(1, execute(0x01)...), packet(1, execute(0x01)...)) // continuation of the long one
	add(&split, packet(0, execute(0x04)...), packet(0, execute(0x00)...))
	split.chunks = []int{4093, 65536, len(split.in)}

	for name, s := range map[string]stream{"short packets": short, "split payload": split} {
		for _, chunk := range s.chunks {
			got := append([]byte(nil), s.in...)
			var f cursorFilter
			for i := 0; i < len(got); i += chunk {
				f.filter(got[i:min(i+chunk, len(got))])
			}
			if bytes.Equal(got, s.want) {
				continue
			}
			for i := range got {
				if got[i] != s.want[i] {
					t.Fatalf("%s in chunks of %d: byte %d is %#x, want %#x", name, chunk, i, got[i], s.want[i])
				}
			}
		}
	}
}
