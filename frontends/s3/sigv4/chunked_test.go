package sigv4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// streamingRequest is a PUT with an aws-chunked body, signed by the SDK's
// signer; body writes the chunks from the seed signature.
func streamingRequest(t *testing.T, payload string, decoded int, trailer string, body func(seed string) []byte) *http.Request {
	t.Helper()
	r := newRequest("PUT", exampleHost+"/key", nil)
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(decoded))
	if trailer != "" {
		r.Header.Set("X-Amz-Trailer", trailer)
	}
	sdkSign(t, r, payload, exampleTime, testRegion)
	data := body(seedOf(t, r))
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	return r
}

// signedBody writes signed chunks of the given data, then the last chunk.
func signedBody(chunks ...[]byte) func(string) []byte {
	return func(seed string) []byte {
		s := newChunkSigner(seed, exampleTime)
		for _, c := range chunks {
			s.chunk(c)
		}
		return s.chunk(nil).end()
	}
}

// fill is n bytes of a pattern.
func fill(n int, c byte) []byte {
	return bytes.Repeat([]byte{c}, n)
}

// readStrictly reads all of body and fails if an error ever comes with or
// after io.EOF.
func readStrictly(body io.Reader) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 1000)
	for {
		n, err := body.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
	}
}

func TestSignedChunks(t *testing.T) {
	a, b, c := fill(8192, 'a'), fill(10000, 'b'), fill(100, 'c')
	want := bytes.Join([][]byte{a, b, c}, nil)
	const streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

	res, err := verifierAt(exampleTime).Verify(streamingRequest(t, streaming, len(want), "", signedBody(a, b, c)))
	if err != nil {
		t.Fatal(err)
	}
	data, err := readStrictly(res.Body)
	if err != nil || !bytes.Equal(data, want) || !res.Streaming || res.DecodedLength != int64(len(want)) {
		t.Fatalf("%v: %d bytes, streaming %v, decoded length %d", err, len(data), res.Streaming, res.DecodedLength)
	}
	if n, err := res.Body.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d %v", n, err)
	}

	t.Run("an empty object", func(t *testing.T) {
		_, data, err := readBody(verifierAt(exampleTime), streamingRequest(t, streaming, 0, "", signedBody()))
		if err != nil || len(data) != 0 {
			t.Fatalf("%v %q", err, data)
		}
	})

	// Each case changes the body that signedBody(a, b, c) writes.
	for _, tc := range []struct {
		name    string
		decoded int
		edit    func([]byte) []byte
		want    *blob.Error
		passed  int // at most this many bytes come before the error
	}{
		{"one byte of the second chunk flipped", len(want), func(body []byte) []byte {
			i := bytes.Index(body, fill(100, 'b'))
			body[i+5000] = 'B'
			return body
		}, ErrSignatureDoesNotMatch, len(a) + len(b)},
		{"one byte of the last data chunk flipped", len(want), func(body []byte) []byte {
			body[bytes.Index(body, fill(100, 'c'))] = 'C'
			return body
		}, ErrSignatureDoesNotMatch, len(want)},
		{"the first chunk's signature changed", len(want), corrupt("chunk-signature=", 0), ErrSignatureDoesNotMatch, len(a)},
		{"the second chunk's signature changed", len(want), corrupt("chunk-signature=", 1), ErrSignatureDoesNotMatch, len(a) + len(b)},
		{"the last chunk's signature changed", len(want), corrupt("chunk-signature=", 3), ErrSignatureDoesNotMatch, len(want)},
		{"the chunks in another order", len(want), func(body []byte) []byte {
			first := bytes.Index(body, []byte("\r\n2710;")) + 2
			second := bytes.Index(body, []byte("\r\n64;")) + 2
			return append(append(append([]byte{}, body[first:second]...), body[:first]...), body[second:]...)
		}, ErrSignatureDoesNotMatch, len(b)},
		{"the body ends before the last chunk", len(want), func(body []byte) []byte {
			return body[:bytes.LastIndex(body, []byte("0;chunk-signature="))]
		}, ErrIncompleteChunkedBody, len(want)},
		{"the body ends inside data", len(want), func(body []byte) []byte {
			return body[:bytes.Index(body, fill(100, 'b'))+10]
		}, ErrIncompleteChunkedBody, len(a) + 10},
		{"the body ends inside a chunk line", len(want), func(body []byte) []byte {
			return body[:bytes.Index(body, []byte("2710;"))+10]
		}, ErrIncompleteChunkedBody, len(a)},
		{"the body ends without its final CRLF", len(want), func(body []byte) []byte {
			return body[:len(body)-2]
		}, ErrIncompleteChunkedBody, len(want)},
		{"no CRLF after data", len(want), func(body []byte) []byte {
			i := bytes.Index(body, []byte("\r\n2710;"))
			body[i] = 'x'
			return body
		}, ErrIncompleteChunkedBody, len(a)},
		{"a chunk line that ends in LF only", len(want), func(body []byte) []byte {
			i := bytes.Index(body, []byte("\r\n"))
			return append(body[:i:i], body[i+1:]...)
		}, ErrIncompleteChunkedBody, 0},
		{"a size that is not hex", len(want), func(body []byte) []byte {
			return bytes.Replace(body, []byte("2710;"), []byte("27x0;"), 1)
		}, ErrIncompleteChunkedBody, len(a)},
		{"a chunk without its signature", len(want), func(body []byte) []byte {
			i := bytes.Index(body, []byte("2710;"))
			return append(body[:i+4:i+4], body[i+4+len(";chunk-signature=")+64:]...)
		}, ErrIncompleteChunkedBody, len(a)},
		{"a signature of 63 digits", len(want), func(body []byte) []byte {
			i := bytes.Index(body, []byte("2710;chunk-signature=")) + len("2710;chunk-signature=")
			return append(body[:i:i], body[i+1:]...)
		}, ErrIncompleteChunkedBody, len(a)},
		{"a chunk line of 300 bytes", len(want), func(body []byte) []byte {
			i := bytes.Index(body, []byte("2710;"))
			return append(append(body[:i:i], "0000000000000000000000000"[:10]+strings.Repeat(" ", 290)...), body[i:]...)
		}, ErrIncompleteChunkedBody, len(a)},
		{"ten KiB without a line end", len(want), func(body []byte) []byte {
			i := bytes.Index(body, []byte("2710;"))
			return append(body[:i:i], fill(10<<10, '0')...)
		}, ErrIncompleteChunkedBody, len(a)},
		{"more data than x-amz-decoded-content-length", len(want) - 1, nil, ErrIncompleteChunkedBody, len(a) + len(b)},
		{"less data than x-amz-decoded-content-length", len(want) + 1, nil, ErrIncompleteChunkedBody, len(want)},
		{"data after the end", len(want), func(body []byte) []byte {
			return append(body, "extra"...)
		}, ErrIncompleteChunkedBody, len(want)},
		{"a trailer without the -TRAILER mode", len(want), func(body []byte) []byte {
			return append(body[:len(body)-2], "x-amz-checksum-crc32:AAAAAA==\r\n\r\n"...)
		}, ErrMalformedTrailer, len(want)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := signedBody(a, b, c)
			if tc.edit != nil {
				body = func(seed string) []byte { return tc.edit(signedBody(a, b, c)(seed)) }
			}
			res, err := verifierAt(exampleTime).Verify(streamingRequest(t, streaming, tc.decoded, "", body))
			if err != nil {
				t.Fatal(err)
			}
			data, err := readStrictly(res.Body)
			wantSame(t, err, tc.want)
			if len(data) > tc.passed {
				t.Fatalf("%d bytes passed before the error, at most %d expected", len(data), tc.passed)
			}
			if _, again := res.Body.Read(make([]byte, 10)); again != err {
				t.Fatalf("the error is not sticky: %v", again)
			}
			if res.Trailer() != nil {
				t.Fatal("a trailer from a failed body")
			}
		})
	}
}

// corrupt changes the character after the index-th occurrence of text.
func corrupt(text string, index int) func([]byte) []byte {
	return func(body []byte) []byte {
		at := -1
		for i := 0; i <= index; i++ {
			at += 1 + bytes.Index(body[at+1:], []byte(text))
		}
		i := at + len(text)
		if body[i] == '0' {
			body[i] = '1'
		} else {
			body[i] = '0'
		}
		return body
	}
}

func TestChunkSizes(t *testing.T) {
	const streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	t.Run("a chunk below 8192 bytes that is not the last", func(t *testing.T) {
		small, big := fill(8191, 'a'), fill(8192, 'b')
		_, data, err := readBody(verifierAt(exampleTime), streamingRequest(t, streaming, len(small)+len(big), "", signedBody(small, big)))
		wantSame(t, err, ErrInvalidChunkSize)
		if len(data) != len(small) {
			t.Fatalf("%d bytes before the error", len(data))
		}
		r := newRequest("PUT", exampleHost+"/key", unsignedChunks(nil, fill(100, 'a'), fill(100, 'b')))
		r.Header.Set("X-Amz-Decoded-Content-Length", "200")
		sdkSign(t, r, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", exampleTime, testRegion)
		_, _, err = readBody(verifierAt(exampleTime), r)
		wantSame(t, err, ErrInvalidChunkSize)
	})
	t.Run("a signed chunk above 16 MiB", func(t *testing.T) {
		r := streamingRequest(t, streaming, 64<<20, "", func(seed string) []byte {
			return []byte(fmt.Sprintf("%x;chunk-signature=%s\r\n", MaxSignedChunkSize+1, strings.Repeat("0", 64)))
		})
		_, data, err := readBody(verifierAt(exampleTime), r)
		wantSame(t, err, ErrIncompleteChunkedBody)
		if len(data) != 0 {
			t.Fatalf("%d bytes passed", len(data))
		}
	})
	t.Run("a size of sixteen hex digits", func(t *testing.T) {
		r := newRequest("PUT", exampleHost+"/key", []byte("ffffffffffffffff\r\n"))
		r.Header.Set("X-Amz-Decoded-Content-Length", "9223372036854775807")
		sdkSign(t, r, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", exampleTime, testRegion)
		_, _, err := readBody(verifierAt(exampleTime), r)
		wantSame(t, err, ErrIncompleteChunkedBody)
	})
}

// trailerRequest is a PUT in the signed -TRAILER mode announcing
// x-amz-checksum-crc32; body gets the seed and the chunk signer.
func trailerRequest(t *testing.T, data []byte, trailer string, body func(*chunkSigner) []byte) *http.Request {
	return streamingRequest(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", len(data), trailer, func(seed string) []byte {
		s := newChunkSigner(seed, exampleTime)
		if len(data) > 0 {
			s.chunk(data)
		}
		s.chunk(nil)
		return body(s)
	})
}

func TestTrailers(t *testing.T) {
	data := fill(9000, 'd')
	const crc = "x-amz-checksum-crc32:AAAAAA=="
	for _, tc := range []struct {
		name    string
		trailer string
		body    func(*chunkSigner) []byte
		want    *blob.Error
	}{
		{"a signed trailer", "x-amz-checksum-crc32", func(s *chunkSigner) []byte { return s.trailer(crc) }, nil},
		{"x-amz-trailer in upper case", "X-Amz-Checksum-Crc32", func(s *chunkSigner) []byte { return s.trailer(crc) }, nil},
		{"minio-go's empty line before the signature", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			body := s.trailer(crc)
			return bytes.Replace(body, []byte(crc+"\r\n"), []byte(crc+"\n\r\n"), 1)
		}, nil},
		{"the trailer's value changed", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			return bytes.Replace(s.trailer(crc), []byte("AAAAAA=="), []byte("AAAAAB=="), 1)
		}, ErrSignatureDoesNotMatch},
		{"the trailer's signature changed", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			return corrupt("x-amz-trailer-signature:", 0)(s.trailer(crc))
		}, ErrSignatureDoesNotMatch},
		{"no trailer signature", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			s.buf.WriteString(crc + "\r\n\r\n")
			return s.buf.Bytes()
		}, ErrMalformedTrailer},
		{"a trailer that x-amz-trailer did not announce", "x-amz-checksum-crc32c", func(s *chunkSigner) []byte { return s.trailer(crc) }, ErrMalformedTrailer},
		{"an announced trailer that is missing", "x-amz-checksum-crc32,x-amz-checksum-sha256", func(s *chunkSigner) []byte { return s.trailer(crc) }, ErrMalformedTrailer},
		{"the same trailer twice", "x-amz-checksum-crc32", func(s *chunkSigner) []byte { return s.trailer(crc, crc) }, ErrMalformedTrailer},
		{"a trailer line without a colon", "x-amz-checksum-crc32", func(s *chunkSigner) []byte { return s.trailer("x-amz-checksum-crc32") }, ErrMalformedTrailer},
		{"a trailer after the signature", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			body := s.trailer(crc)
			return append(body[:len(body)-2], crc+"\r\n\r\n"...)
		}, ErrMalformedTrailer},
		{"a trailer line of 2000 bytes", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			return s.trailer("x-amz-checksum-crc32:" + strings.Repeat("A", 2000))
		}, ErrMalformedTrailer},
		{"trailers of more than 8 KiB", "", func(s *chunkSigner) []byte {
			var lines []string
			for i := 0; i < 20; i++ {
				lines = append(lines, fmt.Sprintf("x-amz-meta-%d:%s", i, strings.Repeat("v", 900)))
			}
			return s.trailer(lines...)
		}, ErrMalformedTrailer},
		{"the body ends inside the trailer", "x-amz-checksum-crc32", func(s *chunkSigner) []byte {
			body := s.trailer(crc)
			return body[:len(body)-20]
		}, ErrIncompleteChunkedBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := verifierAt(exampleTime).Verify(trailerRequest(t, data, tc.trailer, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if res.Trailer() != nil {
				t.Fatal("a trailer before the body was read")
			}
			got, err := readStrictly(res.Body)
			if tc.want != nil {
				wantSame(t, err, tc.want)
				if res.Trailer() != nil {
					t.Fatal("a trailer from a failed body")
				}
				return
			}
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%v: %d bytes", err, len(got))
			}
			if v := res.Trailer().Get("X-Amz-Checksum-Crc32"); v != "AAAAAA==" || len(res.Trailer()) != 1 {
				t.Fatalf("trailer %v", res.Trailer())
			}
		})
	}

	t.Run("x-amz-trailer without the -TRAILER mode", func(t *testing.T) {
		r := streamingRequest(t, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", len(data), "x-amz-checksum-crc32", signedBody(data))
		_, _, err := readBody(verifierAt(exampleTime), r)
		wantSame(t, err, ErrMalformedTrailer)
	})

	unsigned := func(body []byte, decoded int, trailer string) *http.Request {
		r := newRequest("PUT", exampleHost+"/key", body)
		r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(decoded))
		r.Header.Set("X-Amz-Trailer", trailer)
		sdkSign(t, r, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", exampleTime, testRegion)
		return r
	}
	t.Run("an unsigned trailer", func(t *testing.T) {
		res, got, err := readBody(verifierAt(exampleTime), unsigned(unsignedChunks([]string{crc}, data), len(data), "x-amz-checksum-crc32"))
		if err != nil || !bytes.Equal(got, data) || res.Trailer().Get("X-Amz-Checksum-Crc32") != "AAAAAA==" {
			t.Fatalf("%v %d %v", err, len(got), res.Trailer())
		}
	})
	t.Run("minio-go's unsigned trailer", func(t *testing.T) {
		body := unsignedChunks(nil, data)
		body = append(body[:len(body)-2], crc+"\n\r\n\r\n"...)
		res, got, err := readBody(verifierAt(exampleTime), unsigned(body, len(data), "x-amz-checksum-crc32"))
		if err != nil || !bytes.Equal(got, data) || res.Trailer().Get("X-Amz-Checksum-Crc32") != "AAAAAA==" {
			t.Fatalf("%v %d %v", err, len(got), res.Trailer())
		}
	})
	t.Run("a chunk signature in the unsigned mode", func(t *testing.T) {
		body := []byte("2328;chunk-signature=" + strings.Repeat("0", 64) + "\r\n" + string(data) + "\r\n0\r\n\r\n")
		_, _, err := readBody(verifierAt(exampleTime), unsigned(body, len(data), ""))
		wantSame(t, err, ErrIncompleteChunkedBody)
	})
	t.Run("a signature line in the unsigned mode", func(t *testing.T) {
		body := unsignedChunks([]string{crc, "x-amz-trailer-signature:" + strings.Repeat("0", 64)}, data)
		_, _, err := readBody(verifierAt(exampleTime), unsigned(body, len(data), "x-amz-checksum-crc32"))
		wantSame(t, err, ErrMalformedTrailer)
	})
}

// chainOf is a fixed chain for decoding without a request.
func chainOf() chain {
	s := newChunkSigner("", exampleTime)
	return chain{key: s.key, stamp: s.stamp, scope: s.scope, seed: strings.Repeat("ab", 32)}
}

// fuzzModes are the streaming modes FuzzChunked decodes in.
var fuzzModes = [...]payloadMode{payloadStreaming, payloadStreamingTrailer, payloadStreamingUnsignedTrailer}

// fuzzTrailers is what x-amz-trailer announces in the fuzzed mode.
func fuzzTrailers(m payloadMode) map[string]bool {
	if m == payloadStreaming {
		return nil
	}
	return map[string]bool{"x-amz-checksum-crc32c": true}
}

// fuzzSeed is one input of FuzzChunked.
type fuzzSeed struct {
	body    []byte
	decoded int64
	mode    uint8
}

// validSeeds are well-formed bodies in each mode (with the trailer
// x-amz-checksum-crc32c where the mode has one), for the chain of chainOf.
func validSeeds() []fuzzSeed {
	c := chainOf()
	signer := func() *chunkSigner { return newChunkSigner(c.seed, exampleTime) }
	const crc = "x-amz-checksum-crc32c:AAAAAA=="
	return []fuzzSeed{
		{signer().chunk(fill(8192, 'a')).chunk([]byte("tail")).chunk(nil).end(), 8196, 0},
		{signer().chunk(nil).end(), 0, 0},
		{signer().chunk([]byte("data")).chunk(nil).trailer(crc), 4, 1},
		{unsignedChunks([]string{crc}, fill(8192, 'u'), []byte("end")), 8195, 2},
	}
}

func TestValidFuzzSeedsDecode(t *testing.T) {
	for i, seed := range validSeeds() {
		m := fuzzModes[seed.mode]
		cr := newChunkedReader(io.NopCloser(bytes.NewReader(seed.body)), m, chainOf(), seed.decoded, fuzzTrailers(m))
		if n, err := io.Copy(io.Discard, cr); err != nil || n != seed.decoded {
			t.Fatalf("seed %d: %v after %d bytes", i, err, n)
		}
	}
}

// FuzzChunked decodes arbitrary bodies: no panic, no error but S3's, never
// more output than input, never more read than given, and a trailer only
// after a clean end.
func FuzzChunked(f *testing.F) {
	for _, seed := range validSeeds() {
		f.Add(seed.body, seed.decoded, seed.mode)
	}
	f.Add([]byte("ffffffffffffff\r\n"), int64(1<<40), uint8(2))
	c := chainOf()
	f.Fuzz(func(t *testing.T, body []byte, decoded int64, mode uint8) {
		m := fuzzModes[int(mode)%len(fuzzModes)]
		if decoded < 0 {
			decoded = -decoded
		}
		src := &countingReader{r: iotest.HalfReader(bytes.NewReader(body))}
		cr := newChunkedReader(io.NopCloser(src), m, c, decoded, fuzzTrailers(m))
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{cr}, make([]byte, 777))
		if err != nil {
			var e *blob.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an S3 error", err, err)
			}
			if cr.trailers() != nil {
				t.Fatal("a trailer from a failed body")
			}
		} else {
			if n != decoded {
				t.Fatalf("decoded %d bytes of %d", n, decoded)
			}
			tr := cr.trailers()
			if tr == nil {
				t.Fatal("no trailer header after a clean end")
			}
			if size := len(fmt.Sprint(tr)); size > MaxTrailerSize+100 {
				t.Fatalf("a trailer of %d bytes", size)
			}
		}
		if n > int64(len(body)) || src.n > int64(len(body)) {
			t.Fatalf("%d bytes out and %d read from %d", n, src.n, len(body))
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

// Read reads and counts.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// generatedChunks produces an unsigned aws-chunked body of count chunks of
// 8 KiB without holding it.
type generatedChunks struct {
	count   int
	pending []byte
	chunk   []byte
	done    bool
}

// Read writes the next part of the body.
func (g *generatedChunks) Read(p []byte) (int, error) {
	if len(g.pending) == 0 {
		switch {
		case g.count > 0:
			g.count--
			g.pending = g.chunk
		case !g.done:
			g.done = true
			g.pending = []byte("0\r\n\r\n")
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

func TestChunkedBoundedMemory(t *testing.T) {
	// 32 MiB pass through in far less memory.
	const chunks = 4096
	chunk := append(append([]byte("2000\r\n"), fill(8192, 'm')...), "\r\n"...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cr := newChunkedReader(io.NopCloser(&generatedChunks{count: chunks, chunk: chunk}), payloadStreamingUnsignedTrailer, chain{}, chunks*8192, nil)
	n, err := io.Copy(io.Discard, cr)
	runtime.ReadMemStats(&after)
	if err != nil || n != chunks*8192 {
		t.Fatalf("%v after %d bytes", err, n)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
		t.Fatalf("decoding %d MiB allocated %d bytes", n>>20, grown)
	}

	// Verifying signed chunks allocates no more for more chunks (the race
	// detector's runtime may add one or two allocations of its own).
	c := chainOf()
	body := func(count int) []byte {
		s := newChunkSigner(c.seed, exampleTime)
		for i := 0; i < count; i++ {
			s.chunk(fill(8192, byte('a'+i%26)))
		}
		return s.chunk(nil).end()
	}
	allocs := func(count int) float64 {
		data := body(count)
		return testing.AllocsPerRun(5, func() {
			cr := newChunkedReader(io.NopCloser(bytes.NewReader(data)), payloadStreaming, c, int64(count*8192), nil)
			if n, err := io.Copy(io.Discard, cr); err != nil || n != int64(count*8192) {
				t.Fatalf("%v after %d bytes", err, n)
			}
		})
	}
	if few, many := allocs(8), allocs(128); many > few+4 {
		t.Fatalf("%v allocations for 8 chunks, %v for 128", few, many)
	}
}
