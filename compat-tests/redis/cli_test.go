package redis

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

func cli(t *testing.T, e *env, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(need(t, "redis-cli"), append([]string{"-h", "127.0.0.1", "-p", e.port}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli %v: %v\n%s%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

func TestRedisCLI(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"PING"}, "PONG\n"},
			{[]string{"SET", "greeting", "hello world"}, "OK\n"},
			{[]string{"GET", "greeting"}, "\"hello world\"\n"},
			{[]string{"INCR", "visits"}, "(integer) 1\n"},
			{[]string{"RPUSH", "list", "a", "b"}, "(integer) 2\n"},
			{[]string{"LRANGE", "list", "0", "-1"}, "1) \"a\"\n2) \"b\"\n"},
			{[]string{"GET", "nothing"}, "(nil)\n"},
			{[]string{"HELLO", "3"}, "(error) NOPROTO unsupported protocol version\n"},
			{[]string{"-n", "4", "SET", "in-db-4", "x"}, "OK\n"},
			{[]string{"-n", "4", "DBSIZE"}, "(integer) 1\n"},
			{[]string{"NOSUCHCMD"}, "(error) ERR unknown command 'NOSUCHCMD', with args beginning with: \n"},
			{[]string{"CLIENT", "SETNAME", "bad name"}, "(error) ERR Client names cannot contain spaces, newlines or special characters.\n"},
		}
		for _, tt := range tests {
			if e.kind == "cluster" && tt.args[0] == "-n" {
				continue // a cluster has database 0 only
			}
			// --no-raw: format replies as a terminal user sees them.
			if got := cli(t, e, "", append([]string{"--no-raw"}, tt.args...)...); got != tt.want {
				t.Errorf("redis-cli %v = %q, want %q", tt.args, got, tt.want)
			}
		}
		// Interactive-style: commands on standard input, one per line, as a
		// user types them (redis-cli asks COMMAND DOCS for its hints first).
		out := cli(t, e, "SET typed yes\nGET typed\nEXISTS typed greeting\nTYPE list\n")
		if out != "OK\nyes\n2\nlist\n" {
			t.Errorf("commands on stdin = %q", out)
		}
		// INFO as redis-cli prints it, CRLF lines included.
		if info := cli(t, e, "", "INFO", "server"); !strings.Contains(info, "redis_version:") || !strings.Contains(info, "mecha_frontend:cache") {
			t.Errorf("INFO server = %q", info)
		}
		// --stat and other modes need CONFIG/INFO; a latency sample needs PING.
		if lat := cli(t, e, "", "--latency", "-i", "0.1", "--raw"); !strings.Contains(lat, " ") {
			// --latency --raw prints "min max avg samples" once and exits.
			t.Errorf("--latency --raw = %q", lat)
		}
	})
}

func TestRedisCLIAuth(t *testing.T) {
	eachBackend(t, "auth: {password: pw}", func(t *testing.T, e *env) {
		if got := cli(t, e, "", "--no-raw", "GET", "k"); got != "(error) NOAUTH Authentication required.\n" {
			t.Fatalf("no password: %q", got)
		}
		if got := cli(t, e, "", "--no-auth-warning", "-a", "pw", "SET", "k", "v"); got != "OK\n" {
			t.Fatalf("with -a: %q", got)
		}
		// As with Redis: AUTH fails (reported on stderr), the command is
		// refused.
		if got := cli(t, e, "", "--no-auth-warning", "-a", "wrong", "PING"); got != "NOAUTH Authentication required.\n\n" {
			t.Fatalf("wrong -a: %q", got)
		}
	})
}

// TestRedisCLIPipe mass-inserts with redis-cli --pipe, which streams
// commands without waiting and checks every reply with an ECHO marker.
func TestRedisCLIPipe(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		var in strings.Builder
		const n = 20000
		for i := 0; i < n; i++ {
			fmt.Fprintf(&in, "*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$%d\r\nval:%d\r\n", len(fmt.Sprint("key:", i)), i, len(fmt.Sprint("val:", i)), i)
		}
		out := cli(t, e, in.String(), "--pipe")
		if !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", n)) {
			t.Fatalf("--pipe output: %q", out)
		}
		if got := e.data(t, "DBSIZE"); got != fmt.Sprintf(":%d", n) {
			t.Fatalf("DBSIZE = %s", got)
		}
		if got := e.data(t, "GET", "key:12345"); got != "val:12345" {
			t.Fatalf("key:12345 = %q", got)
		}
	})
}

// TestRedisBenchmark runs every default redis-benchmark test through
// Mecha and expects each to complete without errors.
func TestRedisBenchmark(t *testing.T) {
	eachBackend(t, "", func(t *testing.T, e *env) {
		cmd := exec.Command(need(t, "redis-benchmark"), "-h", "127.0.0.1", "-p", e.port, "-n", "2000", "-c", "20", "--csv")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("redis-benchmark: %v\n%s", err, errOut.String())
		}
		if s := errOut.String() + out.String(); strings.Contains(strings.ToLower(s), "error") || strings.Contains(s, "WARNING") {
			t.Fatalf("redis-benchmark reported a problem:\n%s", s)
		}
		want := []string{"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN", "LRANGE_100", "LRANGE_300", "LRANGE_500", "LRANGE_600", "MSET"}
		for _, test := range want {
			if !strings.Contains(out.String(), `"`+test) {
				t.Errorf("redis-benchmark output lacks %s:\n%s", test, out.String())
			}
		}
		// Mecha sent every request upstream as soon as its batch was
		// complete, not when the backend's 100 ms watchdog found it
		// waiting. A frontend that forgot a flush on some path would leave
		// thousands of the ~38,000 requests to the watchdog; a handful can
		// be a scheduler stall on a loaded machine.
		if late := lateFlushes(t, e); late > 10 {
			t.Errorf("%v requests were flushed late", late)
		}
		// Every test's rps is a positive number.
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
			f := strings.Split(line, ",")
			if len(f) < 2 || f[1] == `"0.00"` || f[1] == `""` {
				t.Errorf("bad result line %q", line)
			}
		}
	})
}
