package s3

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// TestSendBody checks the held-back last byte: what the transport gets
// from bodies that end well, end early, run long or fail.
func TestSendBody(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
		sent string // what the transport can send
		err  error  // what the body ends with
	}{
		{"exact", strings.NewReader("hello"), 5, "hello", nil},
		{"exact, one byte at a time", iotest.OneByteReader(strings.NewReader("hello")), 5, "hello", nil},
		{"exact, EOF with the data", iotest.DataErrReader(strings.NewReader("hello")), 5, "hello", nil},
		{"one byte", strings.NewReader("x"), 1, "x", nil},
		{"short", strings.NewReader("hel"), 5, "hel", blob.ErrIncompleteBody},
		{"one byte short", strings.NewReader("hell"), 5, "hell", blob.ErrIncompleteBody},
		{"long", strings.NewReader("hello!"), 5, "hell", blob.ErrIncompleteBody},
		{"error after the data", io.MultiReader(strings.NewReader("hello"), iotest.ErrReader(boom)), 5, "hell", boom},
		{"error with the last bytes", &lastErr{data: "hello", err: boom}, 5, "hell", boom},
		{"error midway", io.MultiReader(strings.NewReader("he"), iotest.ErrReader(boom)), 5, "he", boom},
		{"no progress", zeroReader{}, 1, "", io.ErrNoProgress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &sendBody{r: tc.r, size: tc.size}
			// As net/http reads a body of known length: up to the length,
			// then once more to see the end.
			got, err := io.ReadAll(io.LimitReader(b, tc.size))
			if err == nil {
				_, err = b.Read(make([]byte, 1))
				if err == io.EOF {
					err = nil
				}
			}
			if string(got) != tc.sent || !errors.Is(err, tc.err) {
				t.Errorf("transport read %q, %v; want %q, %v", got, err, tc.sent, tc.err)
			}
			if berr := b.end(); !errors.Is(berr, tc.err) {
				t.Errorf("end: %v, want %v", berr, tc.err)
			}
			if _, err := b.Read(make([]byte, 1)); err != errRequestEnded {
				t.Errorf("read after end: %v", err)
			}
		})
	}
}

type lastErr struct {
	data string
	err  error
}

func (r *lastErr) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if r.data == "" {
		return n, r.err
	}
	return n, nil
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestMetaEncoding(t *testing.T) {
	in := map[string]string{"plain": "just ascii", "utf8": "日本語 ✓", "spaces": "  a  b  ", "ctl": "a\tb\x01", "looks": "=?UTF-8?Q?x?=", "empty": ""}
	enc := encodeMeta(in)
	for k, v := range enc {
		if needsEncoding(v) && !strings.HasPrefix(v, "=?UTF-8?B?") {
			t.Errorf("%s: %q goes as it is", k, v)
		}
	}
	if enc["plain"] != "just ascii" || enc["empty"] != "" {
		t.Errorf("plain values were encoded: %q", enc)
	}
	if out := decodeMeta(enc); len(out) != len(in) || out["utf8"] != in["utf8"] || out["spaces"] != in["spaces"] || out["ctl"] != in["ctl"] || out["looks"] != in["looks"] {
		t.Errorf("round trip: %q, want %q", out, in)
	}
	// What S3 sends for a non-ASCII value.
	if out := decodeMeta(map[string]string{"X": "=?UTF-8?B?w6k=?="}); out["x"] != "é" {
		t.Errorf("S3's encoded word: %q", out)
	}
}

func TestEscapes(t *testing.T) {
	if got := encodeTags(map[string]string{"b": "x y", "a": "1&2=3+4/é"}); got != "a=1%262%3D3%2B4%2F%C3%A9&b=x%20y" {
		t.Errorf("tagging %q", got)
	}
	s := &Store{cfg: &Config{BucketPrefix: "p-"}}
	if got := *s.copySource("bkt", "dir/a b+c?d%é"); got != "p-bkt/dir/a%20b%2Bc%3Fd%25%C3%A9" {
		t.Errorf("copy source %q", got)
	}
}

func TestRanges(t *testing.T) {
	for rng, want := range map[blob.Range]string{
		{First: 0, Last: 9}:   "bytes=0-9",
		{First: 10, Last: -1}: "bytes=10-",
		{Suffix: 5}:           "bytes=-5",
	} {
		if got := rangeHeader(&rng); got != want {
			t.Errorf("%+v: %q, want %q", rng, got, want)
		}
	}
	for v, ok := range map[string]bool{"bytes 0-9/10": true, "bytes 5-5/6": true, "bytes 0-10/10": false, "bytes */10": false, "": false, "bytes 3-2/10": false} {
		if _, _, _, got := parseContentRange(v); got != ok {
			t.Errorf("%q: ok %v", v, got)
		}
	}
}
