package blobtest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// version returns the content of version v of the hot key: every byte
// is v, and its length depends on v.
func version(v int) []byte {
	return bytes.Repeat([]byte{byte(v)}, 1+(v*7919)%(48<<10))
}

func testConcurrentSameKey(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-race")
	const writers, rounds, readers = 4, 15, 4
	byETag := map[string]int{}
	for v := 0; v <= writers*rounds; v++ {
		byETag[md5hex(version(v))] = v
	}
	put(t, s, "bt-race", "hot", version(0), blob.PutOptions{})

	// check verifies that what a reader saw is one whole version.
	check := func(what string, info *blob.Info, body []byte, start int64) {
		v, ok := byETag[info.ETag]
		if !ok {
			t.Errorf("%s: etag %q of no version written", what, info.ETag)
			return
		}
		if info.Size != int64(len(version(v))) {
			t.Errorf("%s: version %d has size %d, want %d", what, v, info.Size, len(version(v)))
		}
		if body != nil {
			want := version(v)[start:]
			want = want[:min(len(want), len(body))]
			if !bytes.Equal(body, want) {
				t.Errorf("%s: body of %d bytes is not version %d's", what, len(body), v)
			}
		}
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				v := 1 + w*rounds + r
				data := version(v)
				if _, err := s.PutObject(ctx(t), "bt-race", "hot", bytes.NewReader(data), int64(len(data)), blob.PutOptions{}); err != nil {
					t.Errorf("writer %d: put: %v", w, err)
				}
				if r%5 == 4 {
					if err := s.DeleteObject(ctx(t), "bt-race", "hot"); err != nil {
						t.Errorf("writer %d: delete: %v", w, err)
					}
				}
			}
		})
	}
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				switch i % 4 {
				case 0, 1:
					var rng *blob.Range
					if i%4 == 1 {
						rng = &blob.Range{First: 100, Last: 5000}
					}
					obj, err := s.GetObject(ctx(t), "bt-race", "hot", rng)
					if isErr(err, blob.ErrNoSuchKey) || (rng != nil && isErr(err, blob.ErrInvalidRange)) {
						continue
					}
					if err != nil {
						t.Errorf("reader %d: get: %v", r, err)
						return
					}
					body, err := io.ReadAll(obj.Body)
					obj.Body.Close()
					if err != nil {
						t.Errorf("reader %d: read: %v", r, err)
						return
					}
					if int64(len(body)) != obj.End-obj.Start+1 {
						t.Errorf("reader %d: %d bytes for bytes %d-%d", r, len(body), obj.Start, obj.End)
					}
					check(fmt.Sprintf("reader %d get", r), &obj.Info, body, obj.Start)
				case 2:
					info, err := s.HeadObject(ctx(t), "bt-race", "hot")
					if err == nil {
						check(fmt.Sprintf("reader %d head", r), info, nil, 0)
					} else if !isErr(err, blob.ErrNoSuchKey) {
						t.Errorf("reader %d: head: %v", r, err)
					}
				case 3:
					l, err := s.ListObjects(ctx(t), "bt-race", blob.ListQuery{MaxKeys: 10})
					if err != nil {
						t.Errorf("reader %d: list: %v", r, err)
						return
					}
					for _, o := range l.Objects {
						check(fmt.Sprintf("reader %d list", r), &o, nil, 0)
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	// The last write of some writer, or nothing if its last step was a
	// delete (rounds is a multiple of 5: every writer ends deleting).
	wantMissing(t, s, "bt-race", "hot")
	put(t, s, "bt-race", "hot", version(7), blob.PutOptions{})
	wantContent(t, s, "bt-race", "hot", version(7))
}

func testConcurrentKeys(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-many")
	const workers, perWorker = 6, 20
	var want []string
	for w := range workers {
		for i := range perWorker {
			if i%3 != 0 {
				want = append(want, fmt.Sprintf("g%d/k%02d", w, i))
			}
		}
	}
	slices.Sort(want)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				k := fmt.Sprintf("g%d/k%02d", w, i)
				data := []byte(k)
				if _, err := s.PutObject(ctx(t), "bt-many", k, bytes.NewReader(data), int64(len(data)), blob.PutOptions{}); err != nil {
					t.Errorf("put %s: %v", k, err)
				}
				if i%3 == 0 {
					if err := s.DeleteObject(ctx(t), "bt-many", k); err != nil {
						t.Errorf("delete %s: %v", k, err)
					}
				}
			}
		})
	}
	// Listings taken meanwhile are in order and without repeats.
	wg.Go(func() {
		for range 20 {
			l, err := s.ListObjects(ctx(t), "bt-many", blob.ListQuery{MaxKeys: 1000})
			if err != nil {
				t.Errorf("list: %v", err)
				return
			}
			keys := keysOf(l.Objects)
			if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
				t.Errorf("listing during writes out of order or repeated: %q", keys)
			}
		}
	})
	// Parts of one upload, uploaded at once.
	id, err := s.CreateMultipartUpload(ctx(t), "bt-many", "assembled", blob.PutOptions{})
	must(t, err, "create upload")
	const parts = 6
	etags := make([]string, parts)
	for n := range parts {
		wg.Go(func() {
			g := newStream(uint64(100+n), blob.MinPartSize)
			if n == parts-1 {
				g = newStream(uint64(100+n), 12345)
			}
			p, err := s.UploadPart(ctx(t), "bt-many", "assembled", id, n+1, g, g.size)
			if err != nil {
				t.Errorf("part %d: %v", n+1, err)
				return
			}
			etags[n] = p.ETag
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := keysOf(listAll(t, s, "bt-many", "g")); !slices.Equal(got, want) {
		t.Errorf("after concurrent writes:\n got %q\nwant %q", got, want)
	}
	var complete []blob.CompletePart
	var readers []io.Reader
	for n := range parts {
		complete = append(complete, blob.CompletePart{Number: n + 1, ETag: etags[n]})
		size := int64(blob.MinPartSize)
		if n == parts-1 {
			size = 12345
		}
		readers = append(readers, newStream(uint64(100+n), size))
	}
	info, err := s.CompleteMultipartUpload(ctx(t), "bt-many", "assembled", id, complete)
	must(t, err, "complete")
	if info.ETag != blob.MultipartETag(etags) || info.Size != (parts-1)*blob.MinPartSize+12345 {
		t.Errorf("assembled: %+v", info)
	}
	h := md5.New()
	io.Copy(h, io.MultiReader(readers...))
	obj, err := s.GetObject(ctx(t), "bt-many", "assembled", nil)
	must(t, err, "get assembled")
	g := md5.New()
	_, err = io.Copy(g, obj.Body)
	obj.Body.Close()
	must(t, err, "read assembled")
	if hex.EncodeToString(g.Sum(nil)) != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("assembled content differs from its parts")
	}
}

func testLargeObject(t *testing.T, s blob.Store) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	createBucket(t, s, "bt-large")
	g := newStream(42, size)
	h := md5.New()
	info, err := s.PutObject(ctx(t), "bt-large", "large.bin", io.TeeReader(g, h), size, blob.PutOptions{ContentType: "application/octet-stream"})
	must(t, err, "put large")
	want := hex.EncodeToString(h.Sum(nil))
	if info.ETag != want || info.Size != size {
		t.Fatalf("large put: etag %s size %d, want %s %d", info.ETag, info.Size, want, size)
	}
	obj, err := s.GetObject(ctx(t), "bt-large", "large.bin", nil)
	must(t, err, "get large")
	r := md5.New()
	n, err := io.Copy(r, obj.Body)
	obj.Body.Close()
	must(t, err, "read large")
	if got := hex.EncodeToString(r.Sum(nil)); got != want || n != size {
		t.Errorf("large get: %d bytes md5 %s, want %d %s", n, got, size, want)
	}
	for _, rng := range []blob.Range{{First: size/2 - 1000, Last: size/2 + 1000}, {Suffix: 4097}, {First: 1 << 20, Last: 1<<20 + 65535}} {
		obj, part := get(t, s, "bt-large", "large.bin", &rng)
		if !bytes.Equal(part, g.bytesAt(obj.Start, obj.End-obj.Start+1)) || obj.End-obj.Start+1 != int64(len(part)) {
			t.Errorf("large range %+v (bytes %d-%d): content differs", rng, obj.Start, obj.End)
		}
	}
	// The same through a body of unknown length.
	h.Reset()
	info, err = s.PutObject(ctx(t), "bt-large", "large.bin", io.TeeReader(newStream(43, size/4), h), -1, blob.PutOptions{})
	must(t, err, "put large of unknown length")
	if info.Size != size/4 || info.ETag != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("large put of unknown length: %+v", info)
	}
	must(t, s.DeleteObject(ctx(t), "bt-large", "large.bin"), "delete large")
}
