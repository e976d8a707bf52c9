package blobtest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/blob"
)

func testCopy(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-src")
	createBucket(t, s, "bt-dst")
	o := fullMeta()
	data := newStream(4, 100<<10).allBytes()
	put(t, s, "bt-src", "orig", data, o)

	info, err := s.CopyObject(ctx(t), "bt-src", "orig", "bt-src", "copy", blob.CopyOptions{})
	must(t, err, "copy in a bucket")
	if info.ETag != md5hex(data) || info.Size != int64(len(data)) || info.Key != "copy" {
		t.Errorf("copy info %+v", info)
	}
	wantContent(t, s, "bt-src", "copy", data)
	head, _ := s.HeadObject(ctx(t), "bt-src", "copy")
	checkMeta(t, "copy keeps the metadata", head, o)

	_, err = s.CopyObject(ctx(t), "bt-src", "orig", "bt-dst", "deep/copy", blob.CopyOptions{})
	must(t, err, "copy across buckets")
	wantContent(t, s, "bt-dst", "deep/copy", data)
	head, _ = s.HeadObject(ctx(t), "bt-dst", "deep/copy")
	checkMeta(t, "cross-bucket copy keeps the metadata", head, o)

	// REPLACE takes the new metadata; the tags stay unless replaced too.
	repl := blob.PutOptions{ContentType: "image/png", UserMeta: map[string]string{"new": "yes"}}
	_, err = s.CopyObject(ctx(t), "bt-src", "orig", "bt-dst", "replaced", blob.CopyOptions{ReplaceMetadata: true, Meta: repl})
	must(t, err, "copy replacing metadata")
	head, _ = s.HeadObject(ctx(t), "bt-dst", "replaced")
	want := repl
	want.Tags, want.Checksums = o.Tags, o.Checksums
	checkMeta(t, "copy replacing metadata", head, want)
	_, err = s.CopyObject(ctx(t), "bt-src", "orig", "bt-dst", "retagged", blob.CopyOptions{ReplaceTags: true, Meta: blob.PutOptions{Tags: map[string]string{"t": "2"}}})
	must(t, err, "copy replacing tags")
	head, _ = s.HeadObject(ctx(t), "bt-dst", "retagged")
	want = o
	want.Tags = map[string]string{"t": "2"}
	checkMeta(t, "copy replacing tags", head, want)

	// Onto itself with new metadata: the content stays.
	_, err = s.CopyObject(ctx(t), "bt-src", "orig", "bt-src", "orig", blob.CopyOptions{ReplaceMetadata: true, Meta: blob.PutOptions{ContentType: "text/new"}})
	must(t, err, "copy onto itself")
	wantContent(t, s, "bt-src", "orig", data)
	head, _ = s.HeadObject(ctx(t), "bt-src", "orig")
	if head.ContentType != "text/new" {
		t.Errorf("copy onto itself: content type %q", head.ContentType)
	}

	// The copy is independent of its source.
	put(t, s, "bt-src", "orig", []byte("changed"), blob.PutOptions{})
	must(t, s.DeleteObject(ctx(t), "bt-src", "orig"), "delete the source")
	wantContent(t, s, "bt-dst", "deep/copy", data)
	wantContent(t, s, "bt-src", "copy", data)

	_, err = s.CopyObject(ctx(t), "bt-src", "orig", "bt-dst", "x", blob.CopyOptions{})
	wantErr(t, err, blob.ErrNoSuchKey, "copy of a missing key")
	wantMissing(t, s, "bt-dst", "x")

	// An empty object copies too.
	put(t, s, "bt-src", "empty", nil, blob.PutOptions{})
	_, err = s.CopyObject(ctx(t), "bt-src", "empty", "bt-dst", "empty", blob.CopyOptions{})
	must(t, err, "copy an empty object")
	wantContent(t, s, "bt-dst", "empty", nil)
}

// uploadStream uploads part n of upload id from a generated stream and
// returns it.
func uploadStream(t *testing.T, s blob.Store, bucket, key, id string, n int, g *stream) blob.Part {
	t.Helper()
	p, err := s.UploadPart(ctx(t), bucket, key, id, n, g, g.size)
	must(t, err, fmt.Sprintf("upload part %d", n))
	if want := (&stream{seed: g.seed, size: g.size}).md5Of(); p.ETag != want || p.Size != g.size || p.Number != n {
		t.Errorf("part %d: %+v, want etag %s size %d", n, p, want, g.size)
	}
	return p
}

func testMultipart(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-mp")
	const key = "big/file.bin"
	o := fullMeta()
	id, err := s.CreateMultipartUpload(ctx(t), "bt-mp", key, o)
	must(t, err, "create upload")
	if id == "" {
		t.Fatal("empty upload id")
	}
	// Parts arrive out of order; part 2 is sent twice, the second wins.
	p3 := uploadStream(t, s, "bt-mp", key, id, 3, newStream(13, 1000))
	p1 := uploadStream(t, s, "bt-mp", key, id, 1, newStream(11, blob.MinPartSize))
	uploadStream(t, s, "bt-mp", key, id, 2, newStream(99, blob.MinPartSize+7))
	p2 := uploadStream(t, s, "bt-mp", key, id, 2, newStream(12, blob.MinPartSize+1))
	// A part that is not used in the end.
	uploadStream(t, s, "bt-mp", key, id, 5, newStream(15, 10))

	// The object does not exist until completed.
	wantMissing(t, s, "bt-mp", key)
	if objs := listAll(t, s, "bt-mp", ""); len(objs) != 0 {
		t.Errorf("an upload in progress is listed as an object: %q", keysOf(objs))
	}

	l, err := s.ListParts(ctx(t), "bt-mp", key, id, 0, 1000)
	must(t, err, "list parts")
	var nums []int
	for _, p := range l.Parts {
		nums = append(nums, p.Number)
	}
	if !slices.Equal(nums, []int{1, 2, 3, 5}) || l.Truncated {
		t.Errorf("parts %v truncated %v", nums, l.Truncated)
	} else if l.Parts[1].ETag != p2.ETag || l.Parts[1].Size != p2.Size || l.Parts[1].LastModified.IsZero() {
		t.Errorf("replaced part listed as %+v, want %+v", l.Parts[1], p2)
	}
	l, err = s.ListParts(ctx(t), "bt-mp", key, id, 1, 2)
	must(t, err, "list parts after 1")
	if len(l.Parts) != 2 || l.Parts[0].Number != 2 || l.Parts[1].Number != 3 || !l.Truncated || l.NextMarker != 3 {
		t.Errorf("parts after 1, at most 2: %+v truncated %v next %d", l.Parts, l.Truncated, l.NextMarker)
	}
	l, err = s.ListParts(ctx(t), "bt-mp", key, id, 3, 2)
	must(t, err, "list parts after 3")
	if len(l.Parts) != 1 || l.Parts[0].Number != 5 || l.Truncated {
		t.Errorf("parts after 3: %+v truncated %v", l.Parts, l.Truncated)
	}

	// Completion errors leave the upload as it was.
	_, err = s.CompleteMultipartUpload(ctx(t), "bt-mp", key, id, []blob.CompletePart{cp(2, p2.ETag), cp(1, p1.ETag)})
	wantErr(t, err, blob.ErrInvalidPartOrder, "complete with parts out of order")
	_, err = s.CompleteMultipartUpload(ctx(t), "bt-mp", key, id, []blob.CompletePart{cp(1, p1.ETag), cp(2, p1.ETag)})
	wantErr(t, err, blob.ErrInvalidPart, "complete with a wrong etag")
	_, err = s.CompleteMultipartUpload(ctx(t), "bt-mp", key, id, []blob.CompletePart{cp(1, p1.ETag), cp(4, p3.ETag)})
	wantErr(t, err, blob.ErrInvalidPart, "complete with a part never uploaded")
	_, err = s.CompleteMultipartUpload(ctx(t), "bt-mp", key, id, []blob.CompletePart{cp(1, p1.ETag), cp(3, p3.ETag), cp(5, "x")})
	wantErr(t, err, blob.ErrInvalidPart, "complete with a wrong etag on the last part")
	_, err = s.CompleteMultipartUpload(ctx(t), "bt-mp", key, id, []blob.CompletePart{cp(3, p3.ETag), cp(5, "ignored")})
	wantErr(t, err, blob.ErrInvalidPart, "a wrong etag comes before a small part")
	wantMissing(t, s, "bt-mp", key)

	// Parts 1, 2 and 3 (quoted ETags, as clients send them).
	parts := []blob.CompletePart{cp(1, `"`+p1.ETag+`"`), cp(2, p2.ETag), cp(3, `"`+p3.ETag+`"`)}
	info, err := s.CompleteMultipartUpload(ctx(t), "bt-mp", key, id, parts)
	must(t, err, "complete")
	wantETag := blob.MultipartETag([]string{p1.ETag, p2.ETag, p3.ETag})
	size := int64(blob.MinPartSize + blob.MinPartSize + 1 + 1000)
	if info.ETag != wantETag || info.Size != size || info.Parts != 3 || info.Key != key {
		t.Errorf("completed: %+v, want etag %s size %d parts 3", info, wantETag, size)
	}
	head, err := s.HeadObject(ctx(t), "bt-mp", key)
	must(t, err, "head the completed object")
	if head.ETag != wantETag || head.Size != size || head.Parts != 3 {
		t.Errorf("head of the completed object: etag %q size %d parts %d", head.ETag, head.Size, head.Parts)
	}
	checkMeta(t, "completed object", head, o)

	// The content is the parts, in order, streamed back.
	obj, err := s.GetObject(ctx(t), "bt-mp", key, nil)
	must(t, err, "get")
	h := md5.New()
	_, err = io.Copy(h, obj.Body)
	obj.Body.Close()
	must(t, err, "read")
	w := md5.New()
	io.Copy(w, io.MultiReader(newStream(11, blob.MinPartSize), newStream(12, blob.MinPartSize+1), newStream(13, 1000)))
	if hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(w.Sum(nil)) {
		t.Errorf("completed content differs from the parts")
	}
	// A range across the boundary of parts 1 and 2.
	rng := blob.Range{First: blob.MinPartSize - 3, Last: blob.MinPartSize + 2}
	_, got := get(t, s, "bt-mp", key, &rng)
	want := append(newStream(11, blob.MinPartSize).bytesAt(blob.MinPartSize-3, 3), newStream(12, blob.MinPartSize+1).bytesAt(0, 3)...)
	if !bytes.Equal(got, want) {
		t.Errorf("range across parts: %x, want %x", got, want)
	}

	// The upload is gone.
	_, err = s.ListParts(ctx(t), "bt-mp", key, id, 0, 1000)
	wantErr(t, err, blob.ErrNoSuchUpload, "list parts after completion")
	_, err = s.UploadPart(ctx(t), "bt-mp", key, id, 6, strings.NewReader("late"), 4)
	wantErr(t, err, blob.ErrNoSuchUpload, "upload part after completion")
	wantErr(t, s.AbortMultipartUpload(ctx(t), "bt-mp", key, id), blob.ErrNoSuchUpload, "abort after completion")
	ul, err := s.ListMultipartUploads(ctx(t), "bt-mp", blob.UploadQuery{MaxUploads: 1000})
	must(t, err, "list uploads")
	if len(ul.Uploads) != 0 {
		t.Errorf("completed upload still listed: %+v", ul.Uploads)
	}
	must(t, s.DeleteObject(ctx(t), "bt-mp", key), "delete")
	must(t, s.DeleteBucket(ctx(t), "bt-mp"), "delete bucket after completion")
}

func testMultipartErrors(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-mperr")
	c := ctx(t)
	for _, bad := range []string{"nope", "", "../../etc", "0000000000000000000000000000000000000000"} {
		_, err := s.UploadPart(c, "bt-mperr", "k", bad, 1, strings.NewReader("x"), 1)
		wantErr(t, err, blob.ErrNoSuchUpload, fmt.Sprintf("upload part to upload %q", bad))
		_, err = s.ListParts(c, "bt-mperr", "k", bad, 0, 10)
		wantErr(t, err, blob.ErrNoSuchUpload, fmt.Sprintf("list parts of upload %q", bad))
		_, err = s.CompleteMultipartUpload(c, "bt-mperr", "k", bad, []blob.CompletePart{cp(1, "x")})
		wantErr(t, err, blob.ErrNoSuchUpload, fmt.Sprintf("complete upload %q", bad))
		wantErr(t, s.AbortMultipartUpload(c, "bt-mperr", "k", bad), blob.ErrNoSuchUpload, fmt.Sprintf("abort upload %q", bad))
	}
	id, err := s.CreateMultipartUpload(c, "bt-mperr", "k", blob.PutOptions{})
	must(t, err, "create upload")
	// An upload belongs to its key.
	_, err = s.UploadPart(c, "bt-mperr", "other", id, 1, strings.NewReader("x"), 1)
	wantErr(t, err, blob.ErrNoSuchUpload, "upload part under another key")
	_, err = s.ListParts(c, "bt-mperr", "other", id, 0, 10)
	wantErr(t, err, blob.ErrNoSuchUpload, "list parts under another key")
	for _, n := range []int{0, -1, blob.MaxParts + 1} {
		if _, err := s.UploadPart(c, "bt-mperr", "k", id, n, strings.NewReader("x"), 1); err == nil {
			t.Errorf("part number %d accepted", n)
		}
	}
	p, err := s.UploadPart(c, "bt-mperr", "k", id, blob.MaxParts, strings.NewReader("last"), 4)
	must(t, err, "part 10000")
	// Body rules are PutObject's, and a failed part leaves the old one.
	_, err = s.UploadPart(c, "bt-mperr", "k", id, blob.MaxParts, strings.NewReader("abc"), 5)
	wantErr(t, err, blob.ErrIncompleteBody, "short part")
	_, err = s.UploadPart(c, "bt-mperr", "k", id, blob.MaxParts, &failingReader{data: []byte("partial"), err: errBody}, 100)
	if !errors.Is(err, errBody) {
		t.Errorf("part with a failing body: %v", err)
	}
	_, err = s.UploadPart(c, "bt-mperr", "k", id, 7, &failingReader{data: []byte("partial"), err: errBody}, -1)
	if !errors.Is(err, errBody) {
		t.Errorf("new part with a failing body: %v", err)
	}
	l, err := s.ListParts(c, "bt-mperr", "k", id, 0, 10)
	must(t, err, "list parts")
	if len(l.Parts) != 1 || l.Parts[0].ETag != p.ETag || l.Parts[0].Size != 4 {
		t.Errorf("parts after failed uploads: %+v", l.Parts)
	}
	// Too small parts.
	small := uploadStream(t, s, "bt-mperr", "k", id, 1, newStream(1, 100))
	_, err = s.CompleteMultipartUpload(c, "bt-mperr", "k", id, []blob.CompletePart{cp(1, small.ETag), cp(blob.MaxParts, p.ETag)})
	wantErr(t, err, blob.ErrEntityTooSmall, "complete with a small first part")
	big := uploadStream(t, s, "bt-mperr", "k", id, 2, newStream(2, blob.MinPartSize-1))
	_, err = s.CompleteMultipartUpload(c, "bt-mperr", "k", id, []blob.CompletePart{cp(2, big.ETag), cp(blob.MaxParts, p.ETag)})
	wantErr(t, err, blob.ErrEntityTooSmall, "complete with a part one byte too small")
	// One small part alone is fine: it is the last.
	info, err := s.CompleteMultipartUpload(c, "bt-mperr", "k", id, []blob.CompletePart{cp(1, small.ETag)})
	must(t, err, "complete with one small part")
	if info.ETag != blob.MultipartETag([]string{small.ETag}) || info.Size != 100 || info.Parts != 1 {
		t.Errorf("one-part upload: %+v", info)
	}
	wantContentMD5(t, s, "bt-mperr", "k", newStream(1, 100).allBytes())
}

// wantContentMD5 checks an object's content when its ETag is not its MD5
// (multipart objects).
func wantContentMD5(t *testing.T, s blob.Store, bucket, key string, data []byte) {
	t.Helper()
	_, got := get(t, s, bucket, key, nil)
	if !bytes.Equal(got, data) {
		t.Errorf("%s/%s: %d bytes, want %d", bucket, key, len(got), len(data))
	}
}

func testMultipartAbort(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-abort")
	c := ctx(t)
	put(t, s, "bt-abort", "k", []byte("existing"), blob.PutOptions{})
	id, err := s.CreateMultipartUpload(c, "bt-abort", "k", blob.PutOptions{})
	must(t, err, "create")
	p := uploadStream(t, s, "bt-abort", "k", id, 1, newStream(5, 1234))
	must(t, s.AbortMultipartUpload(c, "bt-abort", "k", id), "abort")
	wantErr(t, s.AbortMultipartUpload(c, "bt-abort", "k", id), blob.ErrNoSuchUpload, "abort twice")
	_, err = s.ListParts(c, "bt-abort", "k", id, 0, 10)
	wantErr(t, err, blob.ErrNoSuchUpload, "list parts after abort")
	_, err = s.UploadPart(c, "bt-abort", "k", id, 2, strings.NewReader("x"), 1)
	wantErr(t, err, blob.ErrNoSuchUpload, "upload part after abort")
	_, err = s.CompleteMultipartUpload(c, "bt-abort", "k", id, []blob.CompletePart{cp(1, p.ETag)})
	wantErr(t, err, blob.ErrNoSuchUpload, "complete after abort")
	// The object under the same key was never touched.
	wantContent(t, s, "bt-abort", "k", []byte("existing"))
	ul, err := s.ListMultipartUploads(c, "bt-abort", blob.UploadQuery{MaxUploads: 10})
	must(t, err, "list uploads")
	if len(ul.Uploads) != 0 {
		t.Errorf("aborted upload listed: %+v", ul.Uploads)
	}

	// Two uploads of one key are independent.
	a, err := s.CreateMultipartUpload(c, "bt-abort", "two", blob.PutOptions{ContentType: "a"})
	must(t, err, "create a")
	b, err := s.CreateMultipartUpload(c, "bt-abort", "two", blob.PutOptions{ContentType: "b"})
	must(t, err, "create b")
	if a == b {
		t.Fatalf("two uploads share id %q", a)
	}
	pa := uploadStream(t, s, "bt-abort", "two", a, 1, newStream(6, 10))
	uploadStream(t, s, "bt-abort", "two", b, 1, newStream(7, 10))
	must(t, s.AbortMultipartUpload(c, "bt-abort", "two", b), "abort b")
	_, err = s.CompleteMultipartUpload(c, "bt-abort", "two", a, []blob.CompletePart{cp(1, pa.ETag)})
	must(t, err, "complete a")
	head, err := s.HeadObject(c, "bt-abort", "two")
	must(t, err, "head")
	if head.ContentType != "a" {
		t.Errorf("completed upload a has content type %q", head.ContentType)
	}
	wantContentMD5(t, s, "bt-abort", "two", newStream(6, 10).allBytes())
}

func testListUploads(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-ups")
	c := ctx(t)
	began := time.Now()
	type up struct{ key, id string }
	var all []up
	for _, k := range []string{"b", "a/1", "a/2", "a/1", "c", "a-x", "a/1"} {
		id, err := s.CreateMultipartUpload(c, "bt-ups", k, blob.PutOptions{})
		must(t, err, "create "+k)
		all = append(all, up{k, id})
	}
	// By key, then by initiation: creation order within a key.
	want := []up{all[5], all[1], all[3], all[6], all[2], all[0], all[4]}
	l, err := s.ListMultipartUploads(c, "bt-ups", blob.UploadQuery{MaxUploads: 1000})
	must(t, err, "list uploads")
	var got []up
	for _, u := range l.Uploads {
		got = append(got, up{u.Key, u.ID})
		nearNow(t, "initiated", u.Initiated, began)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || l.Truncated {
		t.Errorf("uploads\n got %v\nwant %v (truncated %v)", got, want, l.Truncated)
	}
	l, err = s.ListMultipartUploads(c, "bt-ups", blob.UploadQuery{Prefix: "a/", MaxUploads: 1000})
	must(t, err, "list uploads under a/")
	if len(l.Uploads) != 4 || l.Uploads[0].Key != "a/1" || l.Uploads[3].Key != "a/2" {
		t.Errorf("uploads under a/: %+v", l.Uploads)
	}
	l, err = s.ListMultipartUploads(c, "bt-ups", blob.UploadQuery{Delimiter: "/", MaxUploads: 1000})
	must(t, err, "list uploads with a delimiter")
	if len(l.Uploads) != 3 || l.Uploads[0].Key != "a-x" || l.Uploads[1].Key != "b" || l.Uploads[2].Key != "c" || !slices.Equal(l.CommonPrefixes, []string{"a/"}) {
		t.Errorf("uploads with a delimiter: %+v prefixes %q", l.Uploads, l.CommonPrefixes)
	}
	// A key marker alone skips that key's uploads; with an upload id,
	// those after it.
	l, err = s.ListMultipartUploads(c, "bt-ups", blob.UploadQuery{KeyMarker: "a/1", MaxUploads: 1000})
	must(t, err, "list uploads after a/1")
	if len(l.Uploads) != 3 || l.Uploads[0].Key != "a/2" {
		t.Errorf("uploads after key a/1: %+v", l.Uploads)
	}
	l, err = s.ListMultipartUploads(c, "bt-ups", blob.UploadQuery{KeyMarker: "a/1", UploadIDMarker: all[1].id, MaxUploads: 1000})
	must(t, err, "list uploads after the first of a/1")
	if len(l.Uploads) != 5 || l.Uploads[0].ID != all[3].id || l.Uploads[1].ID != all[6].id {
		t.Errorf("uploads after a/1's first: %+v", l.Uploads)
	}
	// Paging one, two, three at a time covers each upload once.
	for _, max := range []int{1, 2, 3} {
		var paged []up
		q := blob.UploadQuery{MaxUploads: max}
		for i := 0; ; i++ {
			if i > len(all) {
				t.Fatalf("paging by %d does not end", max)
			}
			l, err := s.ListMultipartUploads(c, "bt-ups", q)
			must(t, err, "page uploads")
			if len(l.Uploads) > max {
				t.Errorf("page of %d uploads, max %d", len(l.Uploads), max)
			}
			for _, u := range l.Uploads {
				paged = append(paged, up{u.Key, u.ID})
			}
			if !l.Truncated {
				break
			}
			last := l.Uploads[len(l.Uploads)-1]
			if l.NextKeyMarker != last.Key || l.NextUploadIDMarker != last.ID {
				t.Errorf("next markers %q %q, want %q %q", l.NextKeyMarker, l.NextUploadIDMarker, last.Key, last.ID)
			}
			q.KeyMarker, q.UploadIDMarker = l.NextKeyMarker, l.NextUploadIDMarker
		}
		if fmt.Sprint(paged) != fmt.Sprint(want) {
			t.Errorf("paging by %d:\n got %v\nwant %v", max, paged, want)
		}
	}
	l, err = s.ListMultipartUploads(c, "bt-ups", blob.UploadQuery{MaxUploads: 0})
	must(t, err, "list no uploads")
	if len(l.Uploads) != 0 || l.Truncated {
		t.Errorf("max 0: %+v", l)
	}
	for _, u := range all {
		must(t, s.AbortMultipartUpload(c, "bt-ups", u.key, u.id), "abort")
	}
	must(t, s.DeleteBucket(c, "bt-ups"), "delete bucket once every upload is aborted")
}

// cp names part n with etag in a completion.
func cp(n int, etag string) blob.CompletePart { return blob.CompletePart{Number: n, ETag: etag} }
