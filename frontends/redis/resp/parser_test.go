package resp

import (
	"bytes"
	"strings"
	"testing"
)

// parseAll feeds input to a parser in one piece and returns the commands
// (args joined by '|', "" for an ignored empty command) and the error.
func parseAll(p *Parser, input string) ([]string, error) {
	buf := []byte(input)
	var out []string
	for len(buf) > 0 {
		cmd, n, err := p.Parse(buf)
		if err != nil {
			return out, err
		}
		if n == 0 {
			out = append(out, "<incomplete>")
			return out, nil
		}
		var parts []string
		for _, a := range cmd.Args {
			parts = append(parts, string(a))
		}
		out = append(out, strings.Join(parts, "|"))
		buf = buf[n:]
	}
	return out, nil
}

func newParser() *Parser {
	return &Parser{Limits: DefaultLimits, Authenticated: true}
}

func TestParserMatchesRedis(t *testing.T) {
	// Expectations observed on redis-server 7.0.15 with the same bytes.
	tests := []struct {
		name  string
		input string
		want  []string
		err   string
	}{
		{"multibulk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", []string{"GET|k"}, ""},
		{"pipelined", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", []string{"PING", "PING"}, ""},
		{"empty bulk", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", []string{"ECHO|"}, ""},
		{"binary bulk", "*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", []string{"ECHO|a\r\nb"}, ""},
		{"star zero ignored", "*0\r\n*1\r\n$4\r\nPING\r\n", []string{"", "PING"}, ""},
		{"star minus ignored", "*-1\r\n", []string{""}, ""},
		{"empty lines ignored", "\r\n\r\nPING\r\n", []string{"", "", "PING"}, ""},
		{"bare LF line", "\nPING\n", []string{"", "PING"}, ""},
		{"inline", "SET k v\r\n", []string{"SET|k|v"}, ""},
		{"inline blanks", "  SET   k\tv  \r\n", []string{"SET|k|v"}, ""},
		{"inline double quotes", `ECHO "a b\x41\n"` + "\r\n", []string{"ECHO|a bA\n"}, ""},
		{"inline single quotes", `ECHO 'a\'b'` + "\r\n", []string{"ECHO|a'b"}, ""},
		{"inline quote mid-token", `ECHO a"b c"` + "\r\n", []string{"ECHO|ab c"}, ""},
		{"inline empty quoted", `ECHO ""` + "\r\n", []string{"ECHO|"}, ""},
		{"unbalanced quotes", `PING "a` + "\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"closing quote glued", `PING "a"b` + "\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"expected dollar", "*1\r\nx\r\n", nil, "Protocol error: expected '$', got 'x'"},
		{"expected dollar CR", "*1\r\n\r\n", nil, "Protocol error: expected '$', got ' '"},
		{"negative bulk", "*1\r\n$-1\r\n", nil, "Protocol error: invalid bulk length"},
		{"bulk leading zero", "*1\r\n$04\r\nPING\r\n", nil, "Protocol error: invalid bulk length"},
		{"bulk not a number", "*1\r\n$x\r\n", nil, "Protocol error: invalid bulk length"},
		{"multibulk not a number", "*a\r\n", nil, "Protocol error: invalid multibulk length"},
		{"multibulk leading zero", "*01\r\n$4\r\nPING\r\n", nil, "Protocol error: invalid multibulk length"},
		{"multibulk plus", "*+1\r\n", nil, "Protocol error: invalid multibulk length"},
		{"multibulk too big for int", "*2147483648\r\n", nil, "Protocol error: invalid multibulk length"},
		// Redis skips the two bytes after a count or a payload unchecked.
		{"lax CR", "*1\rx$4\r\nPING\r\n", []string{"PING"}, ""},
		{"lax payload end", "*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n", []string{"PING", "PING"}, ""},
		{"incomplete header", "*2\r\n$3\r\nGE", []string{"<incomplete>"}, ""},
		{"incomplete count", "*2", []string{"<incomplete>"}, ""},
		{"incomplete inline", "PING", []string{"<incomplete>"}, ""},
		{"error after good commands", "*1\r\n$4\r\nPING\r\n*x\r\n", []string{"PING"}, "Protocol error: invalid multibulk length"},
		// strchr stops at NUL: the line never ends.
		{"inline NUL", "PI\x00NG\r\n", []string{"<incomplete>"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAll(newParser(), tt.input)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("commands = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParserLimits(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		authed bool
		input  string
		err    string
	}{
		{"bulk over limit", Limits{MaxBulkLen: 10, MaxMultibulkLen: 100, MaxInlineLen: 100}, true, "*1\r\n$11\r\n", "Protocol error: invalid bulk length"},
		{"bulk at limit", Limits{MaxBulkLen: 10, MaxMultibulkLen: 100, MaxInlineLen: 100}, true, "*1\r\n$10\r\n0123456789\r\n", ""},
		{"multibulk over limit", Limits{MaxBulkLen: 10, MaxMultibulkLen: 3, MaxInlineLen: 100}, true, "*4\r\n", "Protocol error: invalid multibulk length"},
		{"inline over limit", Limits{MaxBulkLen: 10, MaxMultibulkLen: 3, MaxInlineLen: 8}, true, "PING aaaaaaaaaaaa", "Protocol error: too big inline request"},
		{"count line over limit", Limits{MaxBulkLen: 10, MaxMultibulkLen: 3, MaxInlineLen: 8}, true, "*111111111111", "Protocol error: too big mbulk count string"},
		{"bulk line over limit", Limits{MaxBulkLen: 10, MaxMultibulkLen: 3, MaxInlineLen: 8}, true, "*1\r\n$111111111111", "Protocol error: too big bulk count string"},
		{"unauthenticated multibulk", DefaultLimits, false, "*11\r\n", "Protocol error: unauthenticated multibulk length"},
		{"unauthenticated bulk", DefaultLimits, false, "*1\r\n$16385\r\n", "Protocol error: unauthenticated bulk length"},
		{"unauthenticated small ok", DefaultLimits, false, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Parser{Limits: tt.limits, Authenticated: tt.authed}
			_, err := parseAll(p, tt.input)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Fatalf("error = %v, want %q", err, tt.err)
			}
		})
	}
}

// TestParserResumes feeds a pipeline one byte at a time, moving the
// pending bytes as a connection's buffer compaction does, and expects the
// same commands as in one piece.
func TestParserResumes(t *testing.T) {
	input := "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\nPING x\r\n*0\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
	want, err := parseAll(newParser(), input)
	if err != nil {
		t.Fatal(err)
	}
	p := newParser()
	var pending []byte
	var got []string
	for i := 0; i < len(input); i++ {
		pending = append(pending, input[i])
		for {
			cmd, n, err := p.Parse(pending)
			if err != nil {
				t.Fatalf("at byte %d: %v", i, err)
			}
			if n == 0 {
				break
			}
			var parts []string
			for _, a := range cmd.Args {
				parts = append(parts, string(a))
			}
			got = append(got, strings.Join(parts, "|"))
			// compaction: the unconsumed tail moves to a fresh buffer
			pending = append([]byte(nil), pending[n:]...)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("byte-at-a-time = %q, whole = %q", got, want)
	}
}

func TestParserRawIsForwardable(t *testing.T) {
	p := newParser()
	canonical := "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
	cmd, _, err := p.Parse([]byte(canonical))
	if err != nil || string(cmd.Raw) != canonical {
		t.Fatalf("raw = %q, %v; want the input", cmd.Raw, err)
	}
	for _, lax := range []string{"*1\rx$4\r\nPING\r\n", "*1\r\n$4\r\nPINGxx", "PING\r\n"} {
		cmd, _, err := p.Parse([]byte(lax))
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Raw != nil {
			t.Fatalf("%q: raw = %q, want nil (must be re-encoded before forwarding)", lax, cmd.Raw)
		}
	}
}

// TestParserArgsSurvive checks that the args of earlier commands in a
// batch are not overwritten by later ones until Release.
func TestParserArgsSurvive(t *testing.T) {
	p := newParser()
	buf := []byte("*2\r\n$1\r\na\r\n$1\r\nb\r\nX Y Z\r\n*1\r\n$1\r\nc\r\n")
	var cmds []Command
	for len(buf) > 0 {
		cmd, n, err := p.Parse(buf)
		if err != nil || n == 0 {
			t.Fatalf("parse: %v %d", err, n)
		}
		cmds = append(cmds, cmd)
		buf = buf[n:]
	}
	var got []string
	for _, c := range cmds {
		got = append(got, string(bytes.Join(c.Args, []byte("|"))))
	}
	if strings.Join(got, ",") != "a|b,X|Y|Z,c" {
		t.Fatalf("got %q", got)
	}
}

func TestParseInt(t *testing.T) {
	tests := map[string]bool{
		"0": true, "1": true, "-1": true, "9223372036854775807": true, "-9223372036854775808": true,
		"": false, "-": false, "-0": false, "01": false, "+1": false, " 1": false, "1 ": false,
		"9223372036854775808": false, "-9223372036854775809": false, "1x": false,
	}
	for in, ok := range tests {
		if _, got := ParseInt([]byte(in)); got != ok {
			t.Errorf("ParseInt(%q) ok = %v, want %v", in, got, ok)
		}
	}
}
