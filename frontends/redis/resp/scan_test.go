package resp

import (
	"testing"
)

// replies is a stream of every reply type, RESP2 and RESP3, nested.
var replies = []string{
	"+OK\r\n",
	"-ERR wrong\r\n",
	":42\r\n",
	"$5\r\nhello\r\n",
	"$0\r\n\r\n",
	"$-1\r\n",
	"*-1\r\n",
	"*0\r\n",
	"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n",
	"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$7\r\na\r\nb\r\nc\r\n",
	"_\r\n",
	"#t\r\n",
	",3.14\r\n",
	"(12345678901234567890\r\n",
	"!5\r\nERR x\r\n",
	"=7\r\ntxt:abc\r\n",
	"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",
	"~2\r\n+x\r\n+y\r\n",
	">3\r\n+message\r\n+ch\r\n+hi\r\n",
	"|1\r\n+key\r\n+val\r\n+the value\r\n",
	"$10\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
}

// scanAll splits stream into replies, feeding the scanner chunk bytes at a
// time.
func scanAll(t *testing.T, stream string, chunk int) ([]string, []byte) {
	t.Helper()
	var s ReplyScanner
	var out []string
	var types []byte
	start := 0
	pos := 0
	for pos < len(stream) {
		end := min(pos+chunk, len(stream))
		p := []byte(stream[pos:end])
		for len(p) > 0 {
			n, typ, done, err := s.Scan(p)
			if err != nil {
				t.Fatalf("chunk %d at %d: %v", chunk, pos, err)
			}
			pos += n
			p = p[n:]
			if done {
				out = append(out, stream[start:pos])
				types = append(types, typ)
				start = pos
			}
		}
	}
	if s.Busy() {
		t.Fatalf("chunk %d: scanner busy at end of stream", chunk)
	}
	return out, types
}

func TestReplyScannerBoundaries(t *testing.T) {
	stream := ""
	for _, r := range replies {
		stream += r
	}
	for chunk := 1; chunk <= len(stream); chunk++ {
		got, types := scanAll(t, stream, chunk)
		if len(got) != len(replies) {
			t.Fatalf("chunk %d: %d replies, want %d: %q", chunk, len(got), len(replies), got)
		}
		for i := range replies {
			if got[i] != replies[i] {
				t.Fatalf("chunk %d: reply %d = %q, want %q", chunk, i, got[i], replies[i])
			}
			if types[i] != replies[i][0] {
				t.Fatalf("chunk %d: type %d = %q, want %q", chunk, i, types[i], replies[i][0])
			}
		}
	}
}

func TestReplyScannerRejects(t *testing.T) {
	for _, bad := range []string{"x\r\n", "$-2\r\n", "*-5\r\n", "$1a\r\n", "$\r\n", "*1\rx", "$12345678901234567890\r\n"} {
		var s ReplyScanner
		var err error
		p := []byte(bad)
		for len(p) > 0 && err == nil {
			var n int
			n, _, _, err = s.Scan(p)
			p = p[n:]
		}
		if err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestDecodeValue(t *testing.T) {
	v, n, err := DecodeValue([]byte("*3\r\n$1\r\na\r\n:5\r\n*1\r\n+ok\r\nTRAILING"))
	if err != nil || n != len("*3\r\n$1\r\na\r\n:5\r\n*1\r\n+ok\r\n") {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if len(v.Array) != 3 || string(v.Array[0].Str) != "a" || v.Array[1].Int != 5 || string(v.Array[2].Array[0].Str) != "ok" {
		t.Fatalf("decoded %+v", v)
	}
	if got := string(AppendValue(nil, v)); got != "*3\r\n$1\r\na\r\n:5\r\n*1\r\n+ok\r\n" {
		t.Fatalf("re-encoded %q", got)
	}
	if _, _, err := DecodeValue([]byte("$5\r\nab")); err == nil {
		t.Fatal("truncated bulk decoded")
	}
}

func TestAppendErrorSanitizes(t *testing.T) {
	if got := string(AppendError(nil, "ERR a\r\nb")); got != "-ERR a  b\r\n" {
		t.Fatalf("got %q", got)
	}
}
