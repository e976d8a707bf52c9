package blobtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/blob"
)

func testBuckets(t *testing.T, s blob.Store) {
	began := time.Now()
	err := s.HeadBucket(ctx(t), "bt-alpha")
	wantErr(t, err, blob.ErrNoSuchBucket, "head missing bucket")
	for _, b := range []string{"bt-gamma", "bt-alpha", "bt-beta", "bt-alpha-2", "bt-alpha.x"} {
		createBucket(t, s, b)
	}
	wantErr(t, s.CreateBucket(ctx(t), "bt-alpha"), blob.ErrBucketExists, "create bucket twice")
	must(t, s.HeadBucket(ctx(t), "bt-beta"), "head bucket")

	list, err := s.ListBuckets(ctx(t))
	must(t, err, "list buckets")
	var names []string
	for _, b := range list {
		names = append(names, b.Name)
		nearNow(t, "bucket "+b.Name+" created", b.Created, began)
	}
	if !slices.IsSorted(names) {
		t.Errorf("buckets not sorted: %q", names)
	}
	// Byte order: "bt-alpha" < "bt-alpha-2" < "bt-alpha.x" ('-' < '.').
	want := []string{"bt-alpha", "bt-alpha-2", "bt-alpha.x", "bt-beta", "bt-gamma"}
	if got := slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, "bt-") }); !slices.Equal(got, want) {
		t.Errorf("buckets %q, want %q", got, want)
	}

	wantErr(t, s.DeleteBucket(ctx(t), "bt-missing"), blob.ErrNoSuchBucket, "delete missing bucket")
	must(t, s.DeleteBucket(ctx(t), "bt-beta"), "delete empty bucket")
	wantErr(t, s.HeadBucket(ctx(t), "bt-beta"), blob.ErrNoSuchBucket, "head deleted bucket")
	wantErr(t, s.DeleteBucket(ctx(t), "bt-beta"), blob.ErrNoSuchBucket, "delete deleted bucket")
	list, err = s.ListBuckets(ctx(t))
	must(t, err, "list buckets")
	for _, b := range list {
		if b.Name == "bt-beta" {
			t.Errorf("deleted bucket still listed")
		}
	}

	// A bucket created again under the name of a deleted one is empty.
	put(t, s, "bt-gamma", "left/behind", []byte("x"), blob.PutOptions{})
	must(t, s.DeleteObject(ctx(t), "bt-gamma", "left/behind"), "delete object")
	must(t, s.DeleteBucket(ctx(t), "bt-gamma"), "delete bucket emptied of a nested key")
	createBucket(t, s, "bt-gamma")
	if objs := listAll(t, s, "bt-gamma", ""); len(objs) != 0 {
		t.Errorf("recreated bucket lists %q", keysOf(objs))
	}
}

func testBucketNotEmpty(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-full")
	put(t, s, "bt-full", "deep/down/key", []byte("data"), blob.PutOptions{})
	wantErr(t, s.DeleteBucket(ctx(t), "bt-full"), blob.ErrBucketNotEmpty, "delete bucket with an object")
	wantContent(t, s, "bt-full", "deep/down/key", []byte("data"))
	must(t, s.DeleteObject(ctx(t), "bt-full", "deep/down/key"), "delete object")

	// A multipart upload in progress keeps the bucket from being deleted.
	id, err := s.CreateMultipartUpload(ctx(t), "bt-full", "pending", blob.PutOptions{})
	must(t, err, "create upload")
	wantErr(t, s.DeleteBucket(ctx(t), "bt-full"), blob.ErrBucketNotEmpty, "delete bucket with an upload in progress")
	_, err = s.UploadPart(ctx(t), "bt-full", "pending", id, 1, strings.NewReader("part"), 4)
	must(t, err, "upload part after refused bucket deletion")
	must(t, s.AbortMultipartUpload(ctx(t), "bt-full", "pending", id), "abort")
	must(t, s.DeleteBucket(ctx(t), "bt-full"), "delete emptied bucket")
}

func testMissingBucket(t *testing.T, s blob.Store) {
	const b = "bt-nowhere"
	createBucket(t, s, "bt-here")
	put(t, s, "bt-here", "k", []byte("v"), blob.PutOptions{})
	c := ctx(t)
	_, err := s.ListObjects(c, b, blob.ListQuery{MaxKeys: 10})
	wantErr(t, err, blob.ErrNoSuchBucket, "list objects")
	_, err = s.HeadObject(c, b, "k")
	wantErr(t, err, blob.ErrNoSuchBucket, "head object")
	obj, err := s.GetObject(c, b, "k", nil)
	if err == nil {
		obj.Body.Close()
	}
	wantErr(t, err, blob.ErrNoSuchBucket, "get object")
	_, err = s.PutObject(c, b, "k", strings.NewReader("v"), 1, blob.PutOptions{})
	wantErr(t, err, blob.ErrNoSuchBucket, "put object")
	wantErr(t, s.DeleteObject(c, b, "k"), blob.ErrNoSuchBucket, "delete object")
	wantErr(t, s.SetTags(c, b, "k", map[string]string{"a": "b"}), blob.ErrNoSuchBucket, "set tags")
	_, err = s.CopyObject(c, b, "k", "bt-here", "k2", blob.CopyOptions{})
	wantErr(t, err, blob.ErrNoSuchBucket, "copy from a missing bucket")
	_, err = s.CopyObject(c, "bt-here", "k", b, "k2", blob.CopyOptions{})
	wantErr(t, err, blob.ErrNoSuchBucket, "copy to a missing bucket")
	_, err = s.CreateMultipartUpload(c, b, "k", blob.PutOptions{})
	wantErr(t, err, blob.ErrNoSuchBucket, "create upload")
	_, err = s.ListMultipartUploads(c, b, blob.UploadQuery{MaxUploads: 10})
	wantErr(t, err, blob.ErrNoSuchBucket, "list uploads")
	// An upload cannot exist in a missing bucket: S3 answers either.
	either := func(err error, what string) {
		t.Helper()
		if !isErr(err, blob.ErrNoSuchBucket) && !isErr(err, blob.ErrNoSuchUpload) {
			t.Errorf("%s: error %v, want NoSuchBucket or NoSuchUpload", what, err)
		}
	}
	_, err = s.UploadPart(c, b, "k", "nope", 1, strings.NewReader("x"), 1)
	either(err, "upload part")
	_, err = s.ListParts(c, b, "k", "nope", 0, 100)
	either(err, "list parts")
	_, err = s.CompleteMultipartUpload(c, b, "k", "nope", []blob.CompletePart{cp(1, "x")})
	either(err, "complete")
	either(s.AbortMultipartUpload(c, b, "k", "nope"), "abort")
}

func testObjectBasics(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-obj")
	began := time.Now()
	wantMissing(t, s, "bt-obj", "hello.txt")
	info := put(t, s, "bt-obj", "hello.txt", []byte("hello, world"), blob.PutOptions{})
	if info.Key != "hello.txt" || info.Parts != 0 {
		t.Errorf("put info: key %q parts %d", info.Key, info.Parts)
	}
	nearNow(t, "put last modified", info.LastModified, began)
	wantContent(t, s, "bt-obj", "hello.txt", []byte("hello, world"))
	head, err := s.HeadObject(ctx(t), "bt-obj", "hello.txt")
	must(t, err, "head")
	nearNow(t, "head last modified", head.LastModified, began)
	obj, _ := get(t, s, "bt-obj", "hello.txt", nil)
	if obj.Partial || obj.Start != 0 || obj.End != 11 {
		t.Errorf("whole get: partial %v bytes %d-%d, want false 0-11", obj.Partial, obj.Start, obj.End)
	}

	// Replacing changes content, size and ETag.
	put(t, s, "bt-obj", "hello.txt", []byte("goodbye"), blob.PutOptions{})
	wantContent(t, s, "bt-obj", "hello.txt", []byte("goodbye"))
	if objs := listAll(t, s, "bt-obj", ""); len(objs) != 1 || objs[0].Size != 7 || objs[0].ETag != md5hex([]byte("goodbye")) {
		t.Errorf("list after replace: %+v", objs)
	}

	// A body of unknown length (size -1) is read to its end.
	info, err = s.PutObject(ctx(t), "bt-obj", "unknown-length", io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")), -1, blob.PutOptions{})
	must(t, err, "put of unknown length")
	if info.Size != 6 || info.ETag != md5hex([]byte("abcdef")) {
		t.Errorf("put of unknown length: size %d etag %q", info.Size, info.ETag)
	}
	wantContent(t, s, "bt-obj", "unknown-length", []byte("abcdef"))

	must(t, s.DeleteObject(ctx(t), "bt-obj", "hello.txt"), "delete")
	wantMissing(t, s, "bt-obj", "hello.txt")
	must(t, s.DeleteObject(ctx(t), "bt-obj", "hello.txt"), "delete a missing key")
	must(t, s.DeleteObject(ctx(t), "bt-obj", "never/was"), "delete a key never written")
	if objs := listAll(t, s, "bt-obj", ""); !slices.Equal(keysOf(objs), []string{"unknown-length"}) {
		t.Errorf("list after delete: %q", keysOf(objs))
	}
	// Deleting "a/b" leaves "a" and "a/c" alone.
	for _, k := range []string{"a", "a/b", "a/c"} {
		put(t, s, "bt-obj", k, []byte(k), blob.PutOptions{})
	}
	must(t, s.DeleteObject(ctx(t), "bt-obj", "a/b"), "delete a/b")
	wantContent(t, s, "bt-obj", "a", []byte("a"))
	wantContent(t, s, "bt-obj", "a/c", []byte("a/c"))
	wantMissing(t, s, "bt-obj", "a/b")
	wantMissing(t, s, "bt-obj", "a/")
}

func testEmptyAndBinary(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-bin")
	info := put(t, s, "bt-bin", "empty", nil, blob.PutOptions{ContentType: "text/plain"})
	if info.ETag != emptyETag {
		t.Errorf("empty object etag %q", info.ETag)
	}
	wantContent(t, s, "bt-bin", "empty", nil)
	// An empty object through a reader of unknown length.
	info, err := s.PutObject(ctx(t), "bt-bin", "empty2", strings.NewReader(""), -1, blob.PutOptions{})
	must(t, err, "put empty of unknown length")
	if info.Size != 0 || info.ETag != emptyETag {
		t.Errorf("empty of unknown length: %d %q", info.Size, info.ETag)
	}
	// "folder/" is an object like any other.
	put(t, s, "bt-bin", "folder/", nil, blob.PutOptions{})
	wantContent(t, s, "bt-bin", "folder/", nil)

	var all []byte
	for i := range 4096 {
		all = append(all, byte(i), byte(255-i%256), 0)
	}
	put(t, s, "bt-bin", "binary", all, blob.PutOptions{ContentType: "application/octet-stream"})
	wantContent(t, s, "bt-bin", "binary", all)
	// Content that looks like a store's own framing is just content.
	tricky := []byte("{\"etag\":\"x\",\"size\":1}\n\x00\r\n--\n")
	put(t, s, "bt-bin", "tricky", tricky, blob.PutOptions{})
	wantContent(t, s, "bt-bin", "tricky", tricky)
	if objs := listAll(t, s, "bt-bin", ""); len(objs) != 5 || objs[1].Size != 0 || objs[1].ETag != emptyETag {
		t.Errorf("listing %+v", objs)
	}
}

func fullMeta() blob.PutOptions {
	return blob.PutOptions{
		ContentType:        "text/markdown; charset=utf-8",
		ContentEncoding:    "gzip",
		ContentDisposition: `attachment; filename="r\u00e9sum\u00e9.md"`,
		ContentLanguage:    "fr-CH",
		CacheControl:       "max-age=60, private",
		Expires:            "Wed, 21 Oct 2037 07:28:00 GMT",
		UserMeta:           map[string]string{"owner": "ana", "empty": "", "unicode": "日本語 ✓", "spaced": "  a  b  "},
		Checksums:          map[string]string{"CRC32": "yZRlqg==", "SHA256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="},
		Tags:               map[string]string{"project": "mecha", "stage": "test run"},
	}
}

func checkMeta(t *testing.T, what string, i *blob.Info, o blob.PutOptions) {
	t.Helper()
	if i.ContentType != o.ContentType || i.ContentEncoding != o.ContentEncoding || i.ContentDisposition != o.ContentDisposition ||
		i.ContentLanguage != o.ContentLanguage || i.CacheControl != o.CacheControl || i.Expires != o.Expires {
		t.Errorf("%s: headers %q %q %q %q %q %q, want %q %q %q %q %q %q", what,
			i.ContentType, i.ContentEncoding, i.ContentDisposition, i.ContentLanguage, i.CacheControl, i.Expires,
			o.ContentType, o.ContentEncoding, o.ContentDisposition, o.ContentLanguage, o.CacheControl, o.Expires)
	}
	if !equalMaps(i.UserMeta, o.UserMeta) {
		t.Errorf("%s: user meta %q, want %q", what, i.UserMeta, o.UserMeta)
	}
	if !equalMaps(i.Checksums, o.Checksums) {
		t.Errorf("%s: checksums %q, want %q", what, i.Checksums, o.Checksums)
	}
	if !equalMaps(i.Tags, o.Tags) {
		t.Errorf("%s: tags %q, want %q", what, i.Tags, o.Tags)
	}
}

func testMetadata(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-meta")
	o := fullMeta()
	put(t, s, "bt-meta", "doc.md", []byte("# hi"), o)
	head, err := s.HeadObject(ctx(t), "bt-meta", "doc.md")
	must(t, err, "head")
	checkMeta(t, "head", head, o)
	obj, body := get(t, s, "bt-meta", "doc.md", nil)
	checkMeta(t, "get", &obj.Info, o)
	if string(body) != "# hi" {
		t.Errorf("body %q", body)
	}
	// The caller's maps are the caller's: changing them later changes
	// nothing stored.
	o.UserMeta["owner"] = "mallory"
	o.Tags["stage"] = "changed"
	head, err = s.HeadObject(ctx(t), "bt-meta", "doc.md")
	must(t, err, "head")
	if head.UserMeta["owner"] != "ana" || head.Tags["stage"] != "test run" {
		t.Errorf("stored metadata follows the caller's maps: %q %q", head.UserMeta, head.Tags)
	}
	// Nor do changes to a returned Info.
	head.UserMeta["owner"] = "eve"
	again, err := s.HeadObject(ctx(t), "bt-meta", "doc.md")
	must(t, err, "head")
	if again.UserMeta["owner"] != "ana" {
		t.Errorf("stored metadata follows a returned Info: %q", again.UserMeta)
	}

	// A put replaces the metadata with its own, even none.
	put(t, s, "bt-meta", "doc.md", []byte("plain"), blob.PutOptions{})
	head, err = s.HeadObject(ctx(t), "bt-meta", "doc.md")
	must(t, err, "head after replace")
	checkMeta(t, "after a replace without metadata", head, blob.PutOptions{})
	// A checksum sent in the trailer of the body is known once the body
	// has returned io.EOF only: stores take Checksums after that.
	trailer := blob.PutOptions{Checksums: map[string]string{}}
	hooked := &eofHook{r: strings.NewReader("with trailer"), atEOF: func() { trailer.Checksums["CRC32C"] = "lLRtVg==" }}
	if _, err := s.PutObject(ctx(t), "bt-meta", "trailer", hooked, 12, trailer); err != nil {
		t.Fatalf("put with a trailer checksum: %v", err)
	}
	head, err = s.HeadObject(ctx(t), "bt-meta", "trailer")
	must(t, err, "head")
	if !equalMaps(head.Checksums, map[string]string{"CRC32C": "lLRtVg=="}) {
		t.Errorf("checksum known at the end of the body: stored %q", head.Checksums)
	}
	// Listing gives keys, sizes, ETags and times.
	l, err := s.ListObjects(ctx(t), "bt-meta", blob.ListQuery{MaxKeys: 10})
	must(t, err, "list")
	if len(l.Objects) != 2 || l.Objects[0].Key != "doc.md" || l.Objects[0].Size != 5 || l.Objects[0].ETag != md5hex([]byte("plain")) || l.Objects[0].LastModified.IsZero() {
		t.Errorf("listing %+v", l.Objects)
	}
}

func testTags(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-tags")
	o := blob.PutOptions{ContentType: "text/plain", Tags: map[string]string{"a": "1"}}
	info := put(t, s, "bt-tags", "t", []byte("tagged"), o)
	must(t, s.SetTags(ctx(t), "bt-tags", "t", map[string]string{"b": "2", "c": "three"}), "set tags")
	head, err := s.HeadObject(ctx(t), "bt-tags", "t")
	must(t, err, "head")
	if !equalMaps(head.Tags, map[string]string{"b": "2", "c": "three"}) {
		t.Errorf("tags %q", head.Tags)
	}
	if head.ETag != info.ETag || head.ContentType != "text/plain" || head.Size != 6 {
		t.Errorf("tagging changed the object: %+v", head)
	}
	wantContent(t, s, "bt-tags", "t", []byte("tagged"))
	must(t, s.SetTags(ctx(t), "bt-tags", "t", nil), "clear tags")
	head, err = s.HeadObject(ctx(t), "bt-tags", "t")
	must(t, err, "head")
	if len(head.Tags) != 0 {
		t.Errorf("tags after clearing: %q", head.Tags)
	}
	tags := map[string]string{"x": "y"}
	must(t, s.SetTags(ctx(t), "bt-tags", "t", tags), "set tags")
	tags["x"] = "changed"
	head, err = s.HeadObject(ctx(t), "bt-tags", "t")
	must(t, err, "head")
	if head.Tags["x"] != "y" {
		t.Errorf("stored tags follow the caller's map: %q", head.Tags)
	}
	wantErr(t, s.SetTags(ctx(t), "bt-tags", "missing", tags), blob.ErrNoSuchKey, "tag a missing key")
}

func testRanges(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-range")
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz") // 36 bytes
	put(t, s, "bt-range", "r", data, blob.PutOptions{})
	for _, tc := range []struct {
		rng        blob.Range
		start, end int64
	}{
		{blob.Range{First: 0, Last: 0}, 0, 0},
		{blob.Range{First: 0, Last: 9}, 0, 9},
		{blob.Range{First: 10, Last: 15}, 10, 15},
		{blob.Range{First: 30, Last: -1}, 30, 35},   // open ended
		{blob.Range{First: 30, Last: 1000}, 30, 35}, // end past the end: cut
		{blob.Range{First: 35, Last: 35}, 35, 35},   // the last byte
		{blob.Range{First: 0, Last: -1}, 0, 35},     // all of it, as a range
		{blob.Range{Suffix: 4}, 32, 35},             // the last 4
		{blob.Range{Suffix: 1000}, 0, 35},           // more than there is
		{blob.Range{First: 0, Last: 35, Suffix: 0}, 0, 35},
	} {
		rng := tc.rng
		obj, got := get(t, s, "bt-range", "r", &rng)
		if want := data[tc.start : tc.end+1]; !bytes.Equal(got, want) {
			t.Errorf("range %+v: %q, want %q", tc.rng, got, want)
		}
		if obj.Start != tc.start || obj.End != tc.end || !obj.Partial || obj.Size != 36 || obj.ETag != md5hex(data) {
			t.Errorf("range %+v: bytes %d-%d partial %v size %d etag %q, want %d-%d partial, size 36", tc.rng, obj.Start, obj.End, obj.Partial, obj.Size, obj.ETag, tc.start, tc.end)
		}
	}
	for _, rng := range []blob.Range{{First: 36, Last: -1}, {First: 36, Last: 40}, {First: 1000, Last: 2000}} {
		obj, err := s.GetObject(ctx(t), "bt-range", "r", &rng)
		if err == nil {
			obj.Body.Close()
		}
		wantErr(t, err, blob.ErrInvalidRange, fmt.Sprintf("range %+v", rng))
	}
	put(t, s, "bt-range", "empty", nil, blob.PutOptions{})
	for _, rng := range []blob.Range{{First: 0, Last: -1}, {Suffix: 5}} {
		obj, err := s.GetObject(ctx(t), "bt-range", "empty", &rng)
		if err == nil {
			obj.Body.Close()
		}
		wantErr(t, err, blob.ErrInvalidRange, fmt.Sprintf("range %+v of an empty object", rng))
	}
	obj, err := s.GetObject(ctx(t), "bt-range", "missing", &blob.Range{First: 0, Last: 1})
	if err == nil {
		obj.Body.Close()
	}
	wantErr(t, err, blob.ErrNoSuchKey, "range of a missing key")
}

func testReaderKeepsVersion(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-iso")
	old := newStream(1, 300<<10).allBytes()
	put(t, s, "bt-iso", "k", old, blob.PutOptions{ContentType: "old"})

	whole, err := s.GetObject(ctx(t), "bt-iso", "k", nil)
	must(t, err, "get")
	defer whole.Body.Close()
	ranged, err := s.GetObject(ctx(t), "bt-iso", "k", &blob.Range{First: 1000, Last: 200_000})
	must(t, err, "ranged get")
	defer ranged.Body.Close()
	head := make([]byte, 100)
	_, err = io.ReadFull(whole.Body, head)
	must(t, err, "read the start")

	// Overwrite with a longer object, then with a shorter one, then delete.
	put(t, s, "bt-iso", "k", newStream(2, 500<<10).allBytes(), blob.PutOptions{ContentType: "new"})
	put(t, s, "bt-iso", "k", []byte("short"), blob.PutOptions{})
	later, err := s.GetObject(ctx(t), "bt-iso", "k", nil)
	must(t, err, "get the short version")
	defer later.Body.Close()
	must(t, s.DeleteObject(ctx(t), "bt-iso", "k"), "delete")
	put(t, s, "bt-iso", "k", []byte("newest"), blob.PutOptions{})

	rest, err := io.ReadAll(whole.Body)
	must(t, err, "read the rest")
	if got := append(head, rest...); !bytes.Equal(got, old) {
		t.Errorf("a reader opened before an overwrite read %d bytes (md5 %s), want the old %d (md5 %s)", len(got), md5hex(got), len(old), md5hex(old))
	}
	if whole.ContentType != "old" || whole.ETag != md5hex(old) {
		t.Errorf("info of the opened version changed: %q %q", whole.ContentType, whole.ETag)
	}
	part, err := io.ReadAll(ranged.Body)
	must(t, err, "read the range")
	if !bytes.Equal(part, old[1000:200_001]) {
		t.Errorf("a ranged reader opened before an overwrite read other bytes")
	}
	short, err := io.ReadAll(later.Body)
	must(t, err, "read the short version")
	if string(short) != "short" {
		t.Errorf("a reader opened before a delete read %q", short)
	}
	wantContent(t, s, "bt-iso", "k", []byte("newest"))
}

func testPreconditions(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-cond")
	putErr := func(key, data string, o blob.PutOptions) error {
		_, err := s.PutObject(ctx(t), "bt-cond", key, strings.NewReader(data), int64(len(data)), o)
		return err
	}
	must(t, putErr("once", "first", blob.PutOptions{IfNoneMatch: true}), "if-none-match on a new key")
	wantErr(t, putErr("once", "second", blob.PutOptions{IfNoneMatch: true}), blob.ErrPreconditionFailed, "if-none-match on an existing key")
	wantContent(t, s, "bt-cond", "once", []byte("first"))

	etag := md5hex([]byte("first"))
	wantErr(t, putErr("once", "third", blob.PutOptions{IfMatch: md5hex([]byte("other"))}), blob.ErrPreconditionFailed, "if-match with another etag")
	wantContent(t, s, "bt-cond", "once", []byte("first"))
	must(t, putErr("once", "fourth", blob.PutOptions{IfMatch: etag}), "if-match with the etag")
	wantContent(t, s, "bt-cond", "once", []byte("fourth"))
	must(t, putErr("once", "fifth", blob.PutOptions{IfMatch: `"` + md5hex([]byte("fourth")) + `"`}), "if-match with the quoted etag")
	wantContent(t, s, "bt-cond", "once", []byte("fifth"))
	wantErr(t, putErr("once", "sixth", blob.PutOptions{IfMatch: etag}), blob.ErrPreconditionFailed, "if-match with a stale etag")
	wantErr(t, putErr("nothing-here", "x", blob.PutOptions{IfMatch: etag}), blob.ErrPreconditionFailed, "if-match on a missing key")
	wantMissing(t, s, "bt-cond", "nothing-here")

	// Copies check the destination's preconditions.
	_, err := s.CopyObject(ctx(t), "bt-cond", "once", "bt-cond", "copy", blob.CopyOptions{Meta: blob.PutOptions{IfNoneMatch: true}})
	must(t, err, "copy with if-none-match to a new key")
	_, err = s.CopyObject(ctx(t), "bt-cond", "once", "bt-cond", "copy", blob.CopyOptions{Meta: blob.PutOptions{IfNoneMatch: true}})
	wantErr(t, err, blob.ErrPreconditionFailed, "copy with if-none-match to an existing key")
}

func testBodyErrors(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-body")
	c := ctx(t)
	_, err := s.PutObject(c, "bt-body", "short", strings.NewReader("12345"), 10, blob.PutOptions{})
	wantErr(t, err, blob.ErrIncompleteBody, "body shorter than its size")
	wantMissing(t, s, "bt-body", "short")
	_, err = s.PutObject(c, "bt-body", "long", strings.NewReader("1234567890abc"), 10, blob.PutOptions{})
	wantErr(t, err, blob.ErrIncompleteBody, "body longer than its size")
	wantMissing(t, s, "bt-body", "long")

	big := newStream(3, 200<<10).allBytes()
	_, err = s.PutObject(c, "bt-body", "broken", &failingReader{data: big, err: errBody}, 400<<10, blob.PutOptions{})
	if err == nil || !errors.Is(err, errBody) {
		t.Errorf("put with a failing body: error %v, want the body's (%v)", err, errBody)
	}
	wantMissing(t, s, "bt-body", "broken")
	_, err = s.PutObject(c, "bt-body", "broken", &failingReader{data: big, err: errBody}, -1, blob.PutOptions{})
	if !errors.Is(err, errBody) {
		t.Errorf("put of unknown length with a failing body: error %v", err)
	}
	wantMissing(t, s, "bt-body", "broken")

	// The object in place stays whole whatever goes wrong with the next.
	put(t, s, "bt-body", "kept", []byte("original"), blob.PutOptions{ContentType: "text/original"})
	_, err = s.PutObject(c, "bt-body", "kept", &failingReader{data: big, err: errBody}, int64(len(big))+1, blob.PutOptions{})
	if !errors.Is(err, errBody) {
		t.Errorf("replace with a failing body: error %v", err)
	}
	_, err = s.PutObject(c, "bt-body", "kept", strings.NewReader("tiny"), 100, blob.PutOptions{})
	wantErr(t, err, blob.ErrIncompleteBody, "replace with a short body")
	wantContent(t, s, "bt-body", "kept", []byte("original"))
	head, _ := s.HeadObject(c, "bt-body", "kept")
	if head == nil || head.ContentType != "text/original" {
		t.Errorf("metadata of the kept object: %+v", head)
	}
	if keys := keysOf(listAll(t, s, "bt-body", "")); !slices.Equal(keys, []string{"kept"}) {
		t.Errorf("listing after failed puts: %q", keys)
	}
}

func testKeys(t *testing.T, s blob.Store) {
	createBucket(t, s, "bt-keys")
	long := repeat("0123456789/abcdefghij", 1024)
	keys := []string{
		"a", "a/", "a/b", "a-b", "a//b", "//", "/leading", "trailing/",
		"..", ".", "../escape", "a/../../b", "./dot", "a/./b", "...",
		"/etc/passwd", "C:\\windows\\path", "back\\slash", "%", "100%", "%2F%2e%2E", "%00",
		"with space", " leading space", "tab\there", "new\nline", "ctl\x01\x1f\x7f",
		"é", "caf\u00e9", "cafe\u0301", "日本/語/ファイル", "emoji 🎉", "\uFEFFbom",
		"UPPER", "upper", "Upper",
		"~", "~m", "a~b", "a.meta", ".hidden", "a:b*c?d\"e<f>g|h",
		strings.Repeat("x", 1024),                                        // the longest key
		strings.Repeat("é", 512),                                         // 1024 bytes of two-byte runes
		strings.Repeat("y", 300) + "/" + "z",                             // a component over 255 bytes
		"p/" + strings.Repeat("q", 256) + "/" + strings.Repeat("r", 400), // two of them
		long,                      // 1024 bytes, many components
		strings.Repeat("/", 1024), // only separators
		strings.Repeat("a/", 512), // deep
	}
	for _, k := range keys {
		if len(k) > 1024 {
			t.Fatalf("test key over 1024 bytes: %d", len(k))
		}
		put(t, s, "bt-keys", k, []byte("key:"+k), blob.PutOptions{UserMeta: map[string]string{"n": fmt.Sprint(len(k))}})
	}
	for _, k := range keys {
		wantContent(t, s, "bt-keys", k, []byte("key:"+k))
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	objs := listAll(t, s, "bt-keys", "")
	if got := keysOf(objs); !slices.Equal(got, want) {
		t.Errorf("listing differs from the keys written:\n got %q\nwant %q", got, want)
	}
	for _, o := range objs {
		if o.Size != int64(len("key:"+o.Key)) || o.ETag != md5hex([]byte("key:"+o.Key)) {
			t.Errorf("listed %q: size %d etag %q", o.Key, o.Size, o.ETag)
		}
	}
	_, err := s.PutObject(ctx(t), "bt-keys", strings.Repeat("k", 1025), strings.NewReader("x"), 1, blob.PutOptions{})
	wantErr(t, err, blob.ErrKeyTooLong, "a key of 1025 bytes")
	for _, k := range keys {
		must(t, s.DeleteObject(ctx(t), "bt-keys", k), fmt.Sprintf("delete %q", k))
		wantMissing(t, s, "bt-keys", k)
	}
	if objs := listAll(t, s, "bt-keys", ""); len(objs) != 0 {
		t.Errorf("listing after deleting everything: %q", keysOf(objs))
	}
	must(t, s.DeleteBucket(ctx(t), "bt-keys"), "delete the bucket")
}

// eofHook calls atEOF when its reader first returns io.EOF, as a
// frontend's aws-chunked body fills in the trailer's checksum.
type eofHook struct {
	r     io.Reader
	atEOF func()
}

func (e *eofHook) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && e.atEOF != nil {
		e.atEOF()
		e.atEOF = nil
	}
	return n, err
}
