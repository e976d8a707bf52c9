package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Client is a raw RESP connection for tests that need exact bytes.
type Client struct {
	t testing.TB
	C net.Conn
	r *bufio.Reader
}

// Dial connects to addr; the connection closes when the test ends.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, C: c, r: bufio.NewReader(c)}
}

// Send writes a command in RESP.
func (cl *Client) Send(args ...string) {
	cl.t.Helper()
	cl.Write(Command(args...))
}

// Command encodes args as a RESP request.
func Command(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// Write writes raw bytes.
func (cl *Client) Write(s string) {
	cl.t.Helper()
	cl.C.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl.C.Write([]byte(s)); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// Do sends a command and reads one reply.
func (cl *Client) Do(args ...string) string {
	cl.t.Helper()
	cl.Send(args...)
	return cl.Reply()
}

// Reply reads one whole reply and returns it as raw RESP.
func (cl *Client) Reply() string {
	cl.t.Helper()
	cl.C.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := ReadReply(cl.r)
	if err != nil {
		cl.t.Fatalf("read reply: %v (so far %q)", err, s)
	}
	return s
}

// TryReply reads one reply, returning the error instead of failing.
func (cl *Client) TryReply(within time.Duration) (string, error) {
	cl.C.SetReadDeadline(time.Now().Add(within))
	return ReadReply(cl.r)
}

// ReadReply reads one whole reply from r as raw RESP.
func ReadReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return line, err
	}
	if len(line) < 3 {
		return line, fmt.Errorf("short line %q", line)
	}
	switch line[0] {
	case '$':
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		if n < 0 {
			return line, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return line, err
		}
		return line + string(buf), nil
	case '*':
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		out := line
		for i := 0; i < n; i++ {
			e, err := ReadReply(r)
			out += e
			if err != nil {
				return out, err
			}
		}
		return out, nil
	}
	return line, nil
}

// Closed reports whether the server closed the connection within a few
// seconds.
func (cl *Client) Closed() bool {
	cl.C.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := cl.r.ReadByte()
	return err == io.EOF || (err != nil && strings.Contains(err.Error(), "reset"))
}

// Exchange sends input on a fresh connection, half-closes it, and returns
// everything the server writes until it closes: the replies to every
// command in input, in order.
func Exchange(t testing.TB, addr, input string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(input)); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v (got %q)", err, out)
	}
	return string(out)
}

// Bulk encodes s as a bulk string reply.
func Bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
