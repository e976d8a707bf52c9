package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/mecha-gateway/mecha/configs/tlstest"
)

var ctx = context.Background()

// apiCode is the S3 error code of an SDK error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSDKObjects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := e.sdk()
		mkBucket(t, c, "sdk-objects")
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("sdk-objects")}); apiCode(err) != "BucketAlreadyOwnedByYou" {
			t.Fatalf("create twice: %v", err)
		}
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")}); apiCode(err) != "InvalidBucketName" {
			t.Fatalf("bad name: %v", err)
		}
		body := []byte("hello, mecha\x00\xff")
		put, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt"), Body: bytes.NewReader(body),
			ContentType: aws.String("text/plain"), CacheControl: aws.String("max-age=60"),
			Metadata: map[string]string{"color": "blue"}, ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			Tagging: aws.String("a=1&b=2"),
		})
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(body)
		if want := `"` + hex.EncodeToString(sum[:]) + `"`; aws.ToString(put.ETag) != want {
			t.Fatalf("etag %s, want %s", aws.ToString(put.ETag), want)
		}
		if put.ChecksumSHA256 == nil {
			t.Fatal("no SHA256 checksum in the PUT reply")
		}
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt"), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		if b := readAll(t, got.Body); !bytes.Equal(b, body) {
			t.Fatalf("got %q", b)
		}
		if aws.ToString(got.ContentType) != "text/plain" || aws.ToString(got.CacheControl) != "max-age=60" || got.Metadata["color"] != "blue" ||
			aws.ToInt32(got.TagCount) != 2 || aws.ToString(got.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) {
			t.Fatalf("metadata: %+v", got)
		}
		// Ranges.
		for _, tc := range []struct{ rng, want string }{{"bytes=0-4", "hello"}, {"bytes=7-", "mecha\x00\xff"}, {"bytes=-2", "\x00\xff"}} {
			r, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt"), Range: aws.String(tc.rng)})
			if err != nil {
				t.Fatal(err)
			}
			if b := readAll(t, r.Body); string(b) != tc.want || r.ContentRange == nil {
				t.Fatalf("%s: %q %v", tc.rng, b, r.ContentRange)
			}
		}
		_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt"), Range: aws.String("bytes=100-")})
		if apiCode(err) != "InvalidRange" {
			t.Fatalf("range past the end: %v", err)
		}
		// Conditions.
		_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt"), IfMatch: aws.String(`"nope"`)})
		if apiCode(err) != "PreconditionFailed" {
			t.Fatalf("If-Match: %v", err)
		}
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
		if apiCode(err) != "PreconditionFailed" {
			t.Fatalf("If-None-Match: *: %v", err)
		}
		// Missing things.
		_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("nope")})
		if apiCode(err) != "NoSuchKey" {
			t.Fatalf("missing key: %v", err)
		}
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("k")})
		var nf *types.NotFound
		if !errors.As(err, &nf) {
			t.Fatalf("head in a missing bucket: %v", err)
		}
		// Tagging.
		tags, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt")})
		if err != nil || len(tags.TagSet) != 2 {
			t.Fatalf("tags %+v %v", tags, err)
		}
		if _, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("sdk-objects"), Key: aws.String("dir/ü ñ+%.txt")}); err != nil {
			t.Fatal(err)
		}
		// Copy, replacing metadata.
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("copy"),
			CopySource: aws.String("sdk-objects/" + url.PathEscape("dir/ü ñ+%.txt")), MetadataDirective: types.MetadataDirectiveReplace,
			Metadata: map[string]string{"color": "red"}, ContentType: aws.String("text/x")})
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("copy")})
		if err != nil || h.Metadata["color"] != "red" || aws.ToString(h.ContentType) != "text/x" || aws.ToInt64(h.ContentLength) != int64(len(body)) {
			t.Fatalf("copy: %+v %v", h, err)
		}
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("sdk-objects"), Key: aws.String("copy"), CopySource: aws.String("sdk-objects/copy")})
		if apiCode(err) != "InvalidRequest" {
			t.Fatalf("copy onto itself: %v", err)
		}
		// Delete, and delete the bucket.
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("sdk-objects")}); apiCode(err) != "BucketNotEmpty" {
			t.Fatalf("delete a full bucket: %v", err)
		}
		del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("sdk-objects"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
			{Key: aws.String("dir/ü ñ+%.txt")}, {Key: aws.String("copy"), VersionId: aws.String("null")}, {Key: aws.String("never-there")}}}})
		if err != nil || len(del.Deleted) != 3 || len(del.Errors) != 0 {
			t.Fatalf("delete objects: %+v %v", del, err)
		}
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("sdk-objects")}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSDKListing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := e.sdk()
		mkBucket(t, c, "sdk-list")
		keys := []string{"a", "a-b", "a/b", "a/c/d", "a0", "b/x", "é", "z"}
		for _, k := range keys {
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk-list"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
				t.Fatal(err)
			}
		}
		// Every key once, in S3's order, a page of two at a time.
		var listed []string
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("sdk-list"), MaxKeys: aws.Int32(2)})
		pages := 0
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, o := range page.Contents {
				listed = append(listed, aws.ToString(o.Key))
			}
		}
		want := append([]string(nil), keys...)
		sort.Strings(want)
		if fmt.Sprint(listed) != fmt.Sprint(want) || pages != 4 {
			t.Fatalf("listed %q in %d pages, want %q", listed, pages, want)
		}
		out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("sdk-list"), Delimiter: aws.String("/")})
		if err != nil {
			t.Fatal(err)
		}
		var prefixes []string
		for _, cp := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
		if fmt.Sprint(prefixes) != "[a/ b/]" || len(out.Contents) != 5 || aws.ToInt32(out.KeyCount) != 7 {
			t.Fatalf("delimiter: prefixes %q, %d objects, key count %d", prefixes, len(out.Contents), aws.ToInt32(out.KeyCount))
		}
		v1, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("sdk-list"), Prefix: aws.String("a/"), Marker: aws.String("a/b")})
		if err != nil || len(v1.Contents) != 1 || aws.ToString(v1.Contents[0].Key) != "a/c/d" {
			t.Fatalf("v1 with marker: %+v %v", v1, err)
		}
		vers, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("sdk-list"), Prefix: aws.String("b/")})
		if err != nil || len(vers.Versions) != 1 || aws.ToString(vers.Versions[0].VersionId) != "null" {
			t.Fatalf("versions: %+v %v", vers, err)
		}
		buckets, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err != nil || len(buckets.Buckets) != 1 || aws.ToString(buckets.Buckets[0].Name) != "sdk-list" {
			t.Fatalf("buckets: %+v %v", buckets, err)
		}
	})
}

func TestSDKMultipartManager(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := e.sdk()
		mkBucket(t, c, "sdk-mp")
		const size = 17<<20 + 123
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7 / 3)
		}
		up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20; u.Concurrency = 3 })
		res, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk-mp"), Key: aws.String("big"), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(aws.ToString(res.ETag), `-4"`) {
			t.Fatalf("multipart etag %s", aws.ToString(res.ETag))
		}
		down := manager.NewDownloader(c, func(d *manager.Downloader) { d.PartSize = 3 << 20 })
		buf := manager.NewWriteAtBuffer(nil)
		n, err := down.Download(ctx, buf, &s3.GetObjectInput{Bucket: aws.String("sdk-mp"), Key: aws.String("big")})
		if err != nil || n != size || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("download: %d bytes, %v", n, err)
		}
		// Too small parts, wrong ETags, abort.
		cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small")})
		if err != nil {
			t.Fatal(err)
		}
		var parts []types.CompletedPart
		for i := int32(1); i <= 2; i++ {
			p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small"), UploadId: cr.UploadId,
				PartNumber: aws.Int32(i), Body: strings.NewReader("tiny")})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(i), ETag: p.ETag})
		}
		lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small"), UploadId: cr.UploadId})
		if err != nil || len(lp.Parts) != 2 {
			t.Fatalf("list parts: %+v %v", lp, err)
		}
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small"), UploadId: cr.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		if apiCode(err) != "EntityTooSmall" {
			t.Fatalf("complete with small parts: %v", err)
		}
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small"), UploadId: cr.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{parts[1], parts[0]}}})
		if apiCode(err) != "InvalidPartOrder" {
			t.Fatalf("complete out of order: %v", err)
		}
		ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("sdk-mp")})
		if err != nil || len(ups.Uploads) != 1 {
			t.Fatalf("uploads: %+v %v", ups, err)
		}
		if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small"), UploadId: cr.UploadId}); err != nil {
			t.Fatal(err)
		}
		_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("sdk-mp"), Key: aws.String("small"), UploadId: cr.UploadId})
		if apiCode(err) != "NoSuchUpload" {
			t.Fatalf("parts of an aborted upload: %v", err)
		}
	})
}

func TestSDKPresign(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := e.sdk()
		mkBucket(t, c, "sdk-presign")
		ps := s3.NewPresignClient(c)
		put, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sdk-presign"), Key: aws.String("k")}, s3.WithPresignExpires(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, put.URL, strings.NewReader("presigned body"))
		for k, vs := range put.SignedHeader {
			req.Header[k] = vs
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("presigned PUT: %v %v", resp, err)
		}
		resp.Body.Close()
		get, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("sdk-presign"), Key: aws.String("k")}, s3.WithPresignExpires(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.Get(get.URL)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("presigned GET: %v %v", resp, err)
		}
		if b := readAll(t, resp.Body); string(b) != "presigned body" {
			t.Fatalf("presigned GET read %q", b)
		}
		// A tampered URL.
		resp, err = http.Get(strings.Replace(get.URL, "/k?", "/other?", 1))
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp.Body)
		if resp.StatusCode != 403 || !bytes.Contains(b, []byte("<Code>SignatureDoesNotMatch</Code>")) {
			t.Fatalf("tampered URL: %d %s", resp.StatusCode, b)
		}
	})
}

// TestSDKOverTLS: over HTTPS the SDK streams bodies as aws-chunked with a
// trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER), which Mecha
// decodes, verifies and stores.
func TestSDKOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Mecha")
	}
	certs := tlstest.Make(t, "mecha")
	e := startWith(t, "fs", fmt.Sprintf(", tls: {cert_file: %q, key_file: %q}", certs.Cert["mecha"], certs.Key["mecha"]))
	e.endpoint = "https://" + e.addr
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}}
	c := e.sdk(func(o *s3.Options) { o.HTTPClient = client })
	mkBucket(t, c, "tls-bucket")
	data := bytes.Repeat([]byte("trailing checksum "), 40000) // 720 KB
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmSha256} {
		key := "obj-" + string(alg)
		// An unseekable body of known length: the SDK cannot hash it
		// ahead, so it sends the checksum in the trailer.
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tls-bucket"), Key: aws.String(key),
			Body: io.NopCloser(bytes.NewReader(data)), ContentLength: aws.Int64(int64(len(data))), ChecksumAlgorithm: alg})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("tls-bucket"), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		if b := readAll(t, got.Body); !bytes.Equal(b, data) {
			t.Fatalf("%s: read back %d bytes", alg, len(b))
		}
		// The checksum came in the body's trailer: Mecha verified and
		// stored it, and returns it.
		var h hash.Hash
		var stored string
		switch alg {
		case types.ChecksumAlgorithmCrc32:
			h, stored = crc32.NewIEEE(), aws.ToString(got.ChecksumCRC32)
		case types.ChecksumAlgorithmCrc32c:
			h, stored = crc32.New(crc32.MakeTable(crc32.Castagnoli)), aws.ToString(got.ChecksumCRC32C)
		default:
			h, stored = sha256.New(), aws.ToString(got.ChecksumSHA256)
		}
		h.Write(data)
		if want := base64.StdEncoding.EncodeToString(h.Sum(nil)); stored != want {
			t.Fatalf("%s: stored checksum %q, want %q", alg, stored, want)
		}
	}
	up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20 })
	big := bytes.Repeat([]byte{7, 1, 2, 9}, 3<<20) // 12 MiB, 3 parts
	if _, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String("tls-bucket"), Key: aws.String("big"), Body: bytes.NewReader(big),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("tls-bucket"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, got.Body); !bytes.Equal(b, big) {
		t.Fatalf("multipart over TLS: read back %d bytes", len(b))
	}
}
