package s3_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/mecha-gateway/mecha/backends/blob"
	s3 "github.com/mecha-gateway/mecha/backends/s3"
)

// errDigest is what the frontend's body returns at its end when the
// client's checksum or signature does not match.
var errDigest = &blob.Error{Code: "BadDigest", Status: 400, Message: "The CRC32 you specified did not match the calculated checksum."}

// badBody yields data, and then err: with the last bytes (n > 0) when
// withLast, or on the read after them (0, err).
type badBody struct {
	data     []byte
	chunk    int
	err      error
	withLast bool
}

func (b *badBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p[:min(len(p), b.chunk)], b.data)
	b.data = b.data[n:]
	if len(b.data) == 0 && b.withLast {
		return n, b.err
	}
	return n, nil
}

// upstreams are the real S3 servers the body tests run against.
var upstreams = []struct {
	name  string
	start func(*testing.T) string
}{
	{"mecha", mechaS3},
	{"gofakes3", fakeS3},
}

// TestFailingBodyNeverCommits checks that a body that fails at its very
// end — the frontend's checksum or signature check, on the read that
// returns its last bytes or on the one after — leaves nothing upstream:
// the object in place stays, a new key stays missing, a part is not
// stored.
func TestFailingBodyNeverCommits(t *testing.T) {
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			s := newStore(t, up.start(t), nil)
			ctx := t.Context()
			must(t, s.CreateBucket(ctx, "bodies"))
			_, err := s.PutObject(ctx, "bodies", "kept", strings.NewReader("original"), 8, blob.PutOptions{})
			must(t, err)
			id, err := s.CreateMultipartUpload(ctx, "bodies", "parts", blob.PutOptions{})
			must(t, err)
			for _, size := range []int{1, 10, 100 << 10, 3 << 20} {
				for _, withLast := range []bool{true, false} {
					for _, chunk := range []int{1, 4096, 1 << 20} {
						if size > 1<<20 && chunk == 1 {
							continue
						}
						what := fmt.Sprintf("%d bytes in chunks of %d, error with the last bytes %v", size, chunk, withLast)
						data := bytes.Repeat([]byte("z"), size)
						body := func() io.Reader { return &badBody{data: data, chunk: chunk, err: errDigest, withLast: withLast} }
						_, err := s.PutObject(ctx, "bodies", "kept", body(), int64(size), blob.PutOptions{})
						if !errors.Is(err, errDigest) {
							t.Errorf("%s: replace: error %v, want the body's", what, err)
						}
						_, err = s.PutObject(ctx, "bodies", "new", body(), int64(size), blob.PutOptions{})
						if !errors.Is(err, errDigest) {
							t.Errorf("%s: new key: error %v, want the body's", what, err)
						}
						_, err = s.UploadPart(ctx, "bodies", "parts", id, 1, body(), int64(size))
						if !errors.Is(err, errDigest) {
							t.Errorf("%s: part: error %v, want the body's", what, err)
						}
						wantBody(t, s, "bodies", "kept", "original")
						if _, err := s.HeadObject(ctx, "bodies", "new"); !errors.Is(err, blob.ErrNoSuchKey) {
							t.Fatalf("%s: the failed body was stored as a new object (head: %v)", what, err)
						}
						l, err := s.ListParts(ctx, "bodies", "parts", id, 0, 100)
						must(t, err)
						if len(l.Parts) != 0 {
							t.Fatalf("%s: the failed body was stored as a part: %+v", what, l.Parts)
						}
					}
				}
			}
			// An empty body that fails fails before anything is sent.
			_, err = s.PutObject(ctx, "bodies", "kept", &badBody{err: errDigest}, 0, blob.PutOptions{})
			if !errors.Is(err, errDigest) {
				t.Errorf("empty failing body: %v", err)
			}
			wantBody(t, s, "bodies", "kept", "original")
		})
	}
}

// TestFailingBodyWithoutHoldback is the control of
// TestFailingBodyNeverCommits: the same failing body, streamed by the
// SDK alone with its Content-Length, is committed by the upstream — the
// failure this backend's held-back last byte prevents.
func TestFailingBodyWithoutHoldback(t *testing.T) {
	endpoint := fakeS3(t)
	client := s3sdk.New(s3sdk.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(upstreamKey, upstreamSecret, ""),
		Retryer:     aws.NopRetryer{}, RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		APIOptions: []func(*middleware.Stack) error{v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware},
	})
	ctx := t.Context()
	if _, err := client.CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: aws.String("control")}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("z"), 100<<10)
	_, err := client.PutObject(ctx, &s3sdk.PutObjectInput{
		Bucket: aws.String("control"), Key: aws.String("k"), ContentLength: aws.Int64(int64(len(data))),
		Body: &badBody{data: data, chunk: 4096, err: errDigest, withLast: true},
	})
	if err == nil {
		t.Fatal("the SDK reported success for a failing body")
	}
	s := newStore(t, endpoint, nil)
	if _, err := s.HeadObject(ctx, "control", "k"); err != nil {
		t.Skipf("this time the upstream did not commit the failing body either (%v): the control shows nothing", err)
	}
	t.Logf("without the held-back byte, the upstream committed a body that failed: %v", err)
}

// TestUnknownLength checks bodies of unknown length (-1): spooled in
// memory or to spool_dir, sent with their length, the spool file gone
// afterwards, and a failing one never sent.
func TestUnknownLength(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, mechaS3(t), func(c *s3.Config) { c.SpoolDir = dir })
	ctx := t.Context()
	must(t, s.CreateBucket(ctx, "unknown"))
	for _, size := range []int{0, 1, 1 << 20, 1<<20 + 1, 3 << 20} {
		data := bytes.Repeat([]byte{byte(size)}, size)
		info, err := s.PutObject(ctx, "unknown", "k", io.MultiReader(bytes.NewReader(data)), -1, blob.PutOptions{})
		must(t, err)
		if info.Size != int64(size) || info.ETag != md5hex(data) {
			t.Errorf("%d bytes of unknown length: %+v", size, info)
		}
		wantBody(t, s, "unknown", "k", string(data))
		p, err := s.CreateMultipartUpload(ctx, "unknown", "mp", blob.PutOptions{})
		must(t, err)
		part, err := s.UploadPart(ctx, "unknown", "mp", p, 1, io.MultiReader(bytes.NewReader(data)), -1)
		must(t, err)
		if part.Size != int64(size) || part.ETag != md5hex(data) {
			t.Errorf("part of %d bytes of unknown length: %+v", size, part)
		}
		must(t, s.AbortMultipartUpload(ctx, "unknown", "mp", p))
		_, err = s.PutObject(ctx, "unknown", "k", &badBody{data: data, chunk: 64 << 10, err: errDigest, withLast: true}, -1, blob.PutOptions{})
		if !errors.Is(err, errDigest) {
			t.Errorf("failing body of unknown length (%d bytes): %v", size, err)
		}
		wantBody(t, s, "unknown", "k", string(data))
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("spool files left behind: %v", left)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantBody fails the test unless bucket/key holds want.
func wantBody(t *testing.T, s blob.Store, bucket, key, want string) {
	t.Helper()
	obj, err := s.GetObject(t.Context(), bucket, key, nil)
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Body.Close()
	got, err := io.ReadAll(obj.Body)
	if err != nil || string(got) != want {
		t.Fatalf("get %s/%s: %d bytes %.20q (%v), want %d bytes %.20q", bucket, key, len(got), got, err, len(want), want)
	}
}
