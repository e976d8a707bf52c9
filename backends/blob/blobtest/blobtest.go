// Package blobtest is the conformance suite of the object-store capability
// (backends/blob): one body of tests, written against S3's semantics, that
// every blob backend's tests run against a fresh store.
//
//	func TestConformance(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Store {
//			s := newStartedStore(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Run calls open once per subtest; open returns a started store with no
// buckets, and closes it itself (with t.Cleanup) when it needs closing.
// Run closes nothing it did not open: bodies of objects it reads, and the
// readers it writes from.
//
// Under -short the large-object test streams 8 MiB rather than 64 MiB.
package blobtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// Run runs the whole suite, each test as a subtest against a store of its
// own from open.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"Buckets", testBuckets},
		{"BucketNotEmpty", testBucketNotEmpty},
		{"MissingBucket", testMissingBucket},
		{"ObjectBasics", testObjectBasics},
		{"EmptyAndBinary", testEmptyAndBinary},
		{"Metadata", testMetadata},
		{"Tags", testTags},
		{"Ranges", testRanges},
		{"ReaderKeepsVersion", testReaderKeepsVersion},
		{"Preconditions", testPreconditions},
		{"BodyErrors", testBodyErrors},
		{"Keys", testKeys},
		{"ListOrder", testListOrder},
		{"ListQueries", testListQueries},
		{"ListPaging", testListPaging},
		{"Copy", testCopy},
		{"Multipart", testMultipart},
		{"MultipartErrors", testMultipartErrors},
		{"MultipartAbort", testMultipartAbort},
		{"ListUploads", testListUploads},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"ConcurrentKeys", testConcurrentKeys},
		{"LargeObject", testLargeObject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// emptyETag is the MD5 of nothing.
const emptyETag = "d41d8cd98f00b204e9800998ecf8427e"

// isErr reports whether err is the S3 error want (by code: a store may
// return its own *blob.Error with the same code, or wrap one).
func isErr(err error, want *blob.Error) bool {
	var be *blob.Error
	return errors.As(err, &be) && be.Code == want.Code
}

// wantErr fails the test unless err is the S3 error want.
func wantErr(t *testing.T, err error, want *blob.Error, what string) {
	t.Helper()
	if !isErr(err, want) {
		t.Errorf("%s: error %v, want %s", what, err, want.Code)
	}
}

// must fails the test now if err is not nil.
func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func md5hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

func createBucket(t *testing.T, s blob.Store, name string) {
	t.Helper()
	must(t, s.CreateBucket(t.Context(), name), "create bucket "+name)
}

// put stores data at bucket/key with o and checks the Info it returns.
func put(t *testing.T, s blob.Store, bucket, key string, data []byte, o blob.PutOptions) *blob.Info {
	t.Helper()
	info, err := s.PutObject(t.Context(), bucket, key, bytes.NewReader(data), int64(len(data)), o)
	must(t, err, fmt.Sprintf("put %s/%q", bucket, key))
	if info.Size != int64(len(data)) || info.ETag != md5hex(data) {
		t.Errorf("put %s/%q: size %d etag %q, want %d %q", bucket, key, info.Size, info.ETag, len(data), md5hex(data))
	}
	return info
}

// get reads the object (or rng of it) whole and closes its body.
func get(t *testing.T, s blob.Store, bucket, key string, rng *blob.Range) (*blob.Object, []byte) {
	t.Helper()
	obj, err := s.GetObject(t.Context(), bucket, key, rng)
	must(t, err, fmt.Sprintf("get %s/%q", bucket, key))
	defer obj.Body.Close()
	b, err := io.ReadAll(obj.Body)
	must(t, err, fmt.Sprintf("read %s/%q", bucket, key))
	return obj, b
}

// wantContent fails the test unless bucket/key holds data, as GetObject
// and HeadObject see it.
func wantContent(t *testing.T, s blob.Store, bucket, key string, data []byte) {
	t.Helper()
	obj, got := get(t, s, bucket, key, nil)
	if !bytes.Equal(got, data) {
		t.Errorf("get %s/%q: %d bytes %.40q, want %d bytes %.40q", bucket, key, len(got), got, len(data), data)
	}
	if obj.Size != int64(len(data)) || obj.ETag != md5hex(data) || obj.Key != key {
		t.Errorf("get %s/%q: key %q size %d etag %q, want size %d etag %q", bucket, key, obj.Key, obj.Size, obj.ETag, len(data), md5hex(data))
	}
	head, err := s.HeadObject(t.Context(), bucket, key)
	must(t, err, fmt.Sprintf("head %s/%q", bucket, key))
	if head.Size != int64(len(data)) || head.ETag != md5hex(data) || head.Key != key {
		t.Errorf("head %s/%q: key %q size %d etag %q, want size %d etag %q", bucket, key, head.Key, head.Size, head.ETag, len(data), md5hex(data))
	}
}

// wantMissing fails the test unless bucket/key does not exist.
func wantMissing(t *testing.T, s blob.Store, bucket, key string) {
	t.Helper()
	_, err := s.HeadObject(t.Context(), bucket, key)
	wantErr(t, err, blob.ErrNoSuchKey, fmt.Sprintf("head %s/%q", bucket, key))
	obj, err := s.GetObject(t.Context(), bucket, key, nil)
	if err == nil {
		obj.Body.Close()
	}
	wantErr(t, err, blob.ErrNoSuchKey, fmt.Sprintf("get %s/%q", bucket, key))
}

// listAll lists a whole bucket (or a prefix of it) without a delimiter,
// page by page.
func listAll(t *testing.T, s blob.Store, bucket, prefix string) []blob.Info {
	t.Helper()
	var out []blob.Info
	q := blob.ListQuery{Prefix: prefix, MaxKeys: 1000}
	for {
		l, err := s.ListObjects(t.Context(), bucket, q)
		must(t, err, "list "+bucket)
		out = append(out, l.Objects...)
		if !l.Truncated {
			return out
		}
		q.After = l.Next
	}
}

func keysOf(infos []blob.Info) []string {
	out := make([]string, 0, len(infos))
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

// equalMaps compares string maps, nil and empty being equal.
func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

// failingReader yields data, then fails with err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var errBody = errors.New("blobtest: the client went away")

// stream is a deterministic pseudo-random byte stream of a given size,
// generated as it is read: tests write large objects through it without
// holding them in memory. Byte i of the stream of seed s is the same
// whatever reads came before, so a part of it can be generated again to
// check a ranged read.
type stream struct {
	seed      uint64
	off, size int64
}

func newStream(seed uint64, size int64) *stream { return &stream{seed: seed, size: size} }

// word returns the 8 bytes at offset 8*i.
func (g *stream) word(i int64) uint64 {
	// splitmix64 of the seed and the word's index.
	z := g.seed + uint64(i)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (g *stream) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.off)]
	n := 0
	var w [8]byte
	for n < len(p) {
		at := g.off + int64(n)
		binary.LittleEndian.PutUint64(w[:], g.word(at/8))
		n += copy(p[n:], w[at%8:])
	}
	g.off += int64(n)
	return n, nil
}

// bytesAt returns n bytes of the stream from offset off.
func (g *stream) bytesAt(off, n int64) []byte {
	c := &stream{seed: g.seed, off: off, size: off + n}
	b, _ := io.ReadAll(c)
	return b
}

// allBytes returns the whole stream, for small ones.
func (g *stream) allBytes() []byte { return g.bytesAt(0, g.size) }

// md5Of returns the MD5 of the stream's whole content, streaming.
func (g *stream) md5Of() string {
	h := md5.New()
	io.Copy(h, &stream{seed: g.seed, size: g.size})
	return hex.EncodeToString(h.Sum(nil))
}

// nearNow checks that a store's timestamp is set and plausible: not
// before the test began (to the second, as stores may truncate) and not
// in the future by more than clock granularity. It is not a timing
// assertion: nothing waits on it.
func nearNow(t *testing.T, what string, got, began time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Errorf("%s: zero time", what)
		return
	}
	if got.Before(began.Truncate(time.Second).Add(-time.Second)) || got.After(time.Now().Add(time.Minute)) {
		t.Errorf("%s: time %v, test began at %v", what, got, began)
	}
}

// ctx is a shorthand for the test's context in closures.
func ctx(t *testing.T) context.Context { return t.Context() }

// repeat returns s repeated to n bytes.
func repeat(s string, n int) string { return strings.Repeat(s, n/len(s)+1)[:n] }
