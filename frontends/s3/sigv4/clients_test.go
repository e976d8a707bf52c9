package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awscredentials "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/minio/minio-go/v7"
	miniocredentials "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// capture is what the stub server saw of one request.
type capture struct {
	method, path, query string
	payload             string      // x-amz-content-sha256 as sent
	checksums           http.Header // the x-amz-checksum-* request headers
	accessKey           string
	body                []byte
	trailer             http.Header
	streaming           bool
	decodedLength       int64
	err                 error
}

// s3Stub is an S3 server that authenticates each request with a Verifier,
// reads the whole verified body, and answers just enough of S3 for the
// clients: object PUT and GET, and the three steps of a multipart upload.
type s3Stub struct {
	v      *Verifier
	object []byte // what a GET answers

	mu  sync.Mutex
	got []capture
}

// ServeHTTP authenticates, reads and answers.
func (s *s3Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := capture{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, payload: r.Header.Get("X-Amz-Content-Sha256"), checksums: http.Header{}}
	for name, values := range r.Header {
		if strings.HasPrefix(name, "X-Amz-Checksum-") {
			c.checksums[name] = values
		}
	}
	res, err := s.v.Verify(r)
	if err == nil {
		c.accessKey, c.streaming, c.decodedLength = res.AccessKey, res.Streaming, res.DecodedLength
		c.body, err = io.ReadAll(res.Body)
		c.trailer = res.Trailer()
	}
	c.err = err
	s.mu.Lock()
	s.got = append(s.got, c)
	s.mu.Unlock()
	if err != nil {
		writeS3Error(w, err)
		return
	}
	query := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && query.Has("uploads"):
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>%s</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>`, r.URL.Path)
	case r.Method == http.MethodPost && query.Has("uploadId"):
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>%s</Key><ETag>"etag-2"</ETag></CompleteMultipartUploadResult>`, r.URL.Path)
	case r.Method == http.MethodGet:
		w.Header().Set("ETag", `"etag-1"`)
		w.Header().Set("Last-Modified", "Fri, 24 May 2013 00:00:00 GMT")
		w.Header().Set("Content-Length", fmt.Sprint(len(s.object)))
		w.Write(s.object)
	default:
		w.Header().Set("ETag", `"etag-1"`)
	}
}

// captures returns what the server saw so far.
func (s *s3Stub) captures() []capture {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capture(nil), s.got...)
}

// last is the last request the server saw.
func (s *s3Stub) last(t *testing.T) capture {
	t.Helper()
	got := s.captures()
	if len(got) == 0 {
		t.Fatal("the server saw no request")
	}
	return got[len(got)-1]
}

// writeS3Error answers an S3 error document.
func writeS3Error(w http.ResponseWriter, err error) {
	var e *blob.Error
	if !errors.As(err, &e) {
		e = blob.ErrInternal
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	var code, message bytes.Buffer
	xml.EscapeText(&code, []byte(e.Code))
	xml.EscapeText(&message, []byte(e.Message))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code.String(), message.String())
}

// startStub starts a stub on 127.0.0.1, over TLS if asked.
func startStub(t *testing.T, v *Verifier, tls bool) (*s3Stub, *httptest.Server) {
	t.Helper()
	stub := &s3Stub{v: v, object: []byte("the content of the object")}
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(stub)
	} else {
		srv = httptest.NewServer(stub)
	}
	t.Cleanup(srv.Close)
	return stub, srv
}

// liveVerifier knows the example key and uses the real clock.
func liveVerifier() *Verifier {
	return &Verifier{Credentials: testCredentials, Region: testRegion}
}

// sdkClient is an aws-sdk-go-v2 S3 client of the stub.
func sdkClient(srv *httptest.Server, secret string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:           testRegion,
		Credentials:      awscredentials.NewStaticCredentialsProvider(testAccessKey, secret, ""),
		BaseEndpoint:     aws.String(srv.URL),
		UsePathStyle:     true,
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
	}, optFns...)
}

// wantAPIError fails unless a client error carries the S3 code.
func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
		t.Fatalf("error %v, want the code %s", err, code)
	}
}

// onlyReader hides every method but Read (an unseekable body).
type onlyReader struct{ io.Reader }

// crc32Of is the base64 CRC32 (IEEE) of data, as x-amz-checksum-crc32.
func crc32Of(data []byte, table *crc32.Table) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.Checksum(data, table))
	return base64.StdEncoding.EncodeToString(b[:])
}

// testContent is n bytes that are not all alike.
func testContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i*7%26)
	}
	return b
}

func TestSDKOverHTTP(t *testing.T) {
	stub, srv := startStub(t, liveVerifier(), false)
	client := sdkClient(srv, testSecret)
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		size      int
		algorithm types.ChecksumAlgorithm
	}{
		{"a string", 26, ""},
		{"CRC32", 1000, types.ChecksumAlgorithmCrc32},
		{"SHA256", 1000, types.ChecksumAlgorithmSha256},
		{"3 MiB, sent after 100-continue", 3 << 20, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testContent(tc.size)
			_, err := client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("bucket"), Key: aws.String("dir/a b+c"), Body: bytes.NewReader(data), ChecksumAlgorithm: tc.algorithm,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := stub.last(t)
			if got.err != nil || !bytes.Equal(got.body, data) || got.accessKey != testAccessKey || got.streaming {
				t.Fatalf("%v: %d bytes, key %q, streaming %v", got.err, len(got.body), got.accessKey, got.streaming)
			}
			if got.payload != testSHA256(data) || got.path != "/bucket/dir/a b+c" || got.decodedLength != int64(len(data)) {
				t.Fatalf("payload %s, path %q, length %d", got.payload, got.path, got.decodedLength)
			}
		})
	}

	t.Run("GetObject", func(t *testing.T) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key"), Range: aws.String("bytes=0-")})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(data, stub.object) {
			t.Fatalf("%v %q", err, data)
		}
		if got := stub.last(t); got.err != nil || got.method != "GET" || got.payload != emptySHA256 {
			t.Fatalf("%+v", got)
		}
	})

	t.Run("an unseekable body as UNSIGNED-PAYLOAD", func(t *testing.T) {
		unsigned := sdkClient(srv, testSecret, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware),
			func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
		data := testContent(100000)
		_, err := unsigned.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("bucket"), Key: aws.String("key"), Body: onlyReader{bytes.NewReader(data)}, ContentLength: aws.Int64(int64(len(data))),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := stub.last(t); got.err != nil || got.payload != "UNSIGNED-PAYLOAD" || !bytes.Equal(got.body, data) {
			t.Fatalf("%v %s %d bytes", got.err, got.payload, len(got.body))
		}
	})

	t.Run("another secret", func(t *testing.T) {
		_, err := sdkClient(srv, "not-the-secret").PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key"), Body: strings.NewReader("x")})
		wantAPIError(t, err, "SignatureDoesNotMatch")
		wantSame(t, stub.last(t).err, ErrSignatureDoesNotMatch)
	})
	t.Run("an unknown access key", func(t *testing.T) {
		other := s3.New(s3.Options{
			Region: testRegion, Credentials: awscredentials.NewStaticCredentialsProvider("AKIAUNKNOWN", testSecret, ""),
			BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, HTTPClient: srv.Client(), RetryMaxAttempts: 1,
		})
		_, err := other.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key")})
		wantAPIError(t, err, "InvalidAccessKeyId")
	})
	t.Run("another region", func(t *testing.T) {
		_, err := sdkClient(srv, testSecret, func(o *s3.Options) { o.Region = "eu-west-1" }).
			GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key")})
		wantAPIError(t, err, "AuthorizationHeaderMalformed")
		wantError(t, stub.last(t).err, "AuthorizationHeaderMalformed", 400, "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'")
	})
}

func TestSDKOverTLSWithTrailingChecksums(t *testing.T) {
	stub, srv := startStub(t, liveVerifier(), true)
	client := sdkClient(srv, testSecret)
	ctx := context.Background()

	for _, tc := range []struct {
		name       string
		size       int
		algorithm  types.ChecksumAlgorithm
		unseekable bool
		trailer    string
		checksum   func([]byte) string
	}{
		{"a string with CRC32", 26, types.ChecksumAlgorithmCrc32, false, "X-Amz-Checksum-Crc32", func(d []byte) string { return crc32Of(d, crc32.IEEETable) }},
		{"CRC32C", 5000, types.ChecksumAlgorithmCrc32c, false, "X-Amz-Checksum-Crc32c", func(d []byte) string { return crc32Of(d, crc32.MakeTable(crc32.Castagnoli)) }},
		{"SHA256", 70000, types.ChecksumAlgorithmSha256, false, "X-Amz-Checksum-Sha256", func(d []byte) string {
			sum := sha256.Sum256(d)
			return base64.StdEncoding.EncodeToString(sum[:])
		}},
		{"an unseekable body of 200 KiB", 200 << 10, types.ChecksumAlgorithmCrc32, true, "X-Amz-Checksum-Crc32", func(d []byte) string { return crc32Of(d, crc32.IEEETable) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := testContent(tc.size)
			var body io.Reader = bytes.NewReader(data)
			if tc.unseekable {
				body = onlyReader{body}
			}
			_, err := client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("bucket"), Key: aws.String("key"), Body: body, ChecksumAlgorithm: tc.algorithm, ContentLength: aws.Int64(int64(len(data))),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := stub.last(t)
			if got.err != nil || !bytes.Equal(got.body, data) || !got.streaming || got.payload != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
				t.Fatalf("%v: %d bytes, streaming %v, payload %s", got.err, len(got.body), got.streaming, got.payload)
			}
			if got.decodedLength != int64(len(data)) || got.trailer.Get(tc.trailer) != tc.checksum(data) || len(got.trailer) != 1 {
				t.Fatalf("decoded length %d, trailer %v", got.decodedLength, got.trailer)
			}
		})
	}

	t.Run("no checksum algorithm", func(t *testing.T) {
		// Over TLS the SDK does not hash the payload.
		data := testContent(1000)
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key"), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		if got := stub.last(t); got.err != nil || got.payload != "UNSIGNED-PAYLOAD" || !bytes.Equal(got.body, data) {
			t.Fatalf("%v %s %d bytes", got.err, got.payload, len(got.body))
		}
	})
	t.Run("an unseekable body of unknown length", func(t *testing.T) {
		// Without x-amz-decoded-content-length S3 cannot check the length.
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("bucket"), Key: aws.String("key"), Body: onlyReader{strings.NewReader("data")}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		wantAPIError(t, err, "MissingContentLength")
		wantSame(t, stub.last(t).err, ErrMissingContentLength)
	})
	t.Run("GetObject", func(t *testing.T) {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key")})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(data, stub.object) {
			t.Fatalf("%q", data)
		}
	})
}

// answer is the status and the S3 error code of a response.
func answer(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var doc struct{ Code string }
	xml.Unmarshal(data, &doc)
	return resp.StatusCode, doc.Code
}

// sendPresignedURL sends a request presigned by the SDK.
func sendPresignedURL(t *testing.T, srv *httptest.Server, p *v4.PresignedHTTPRequest, target string, body []byte) *http.Response {
	t.Helper()
	r, err := http.NewRequest(p.Method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.SignedHeader {
		if k != "Host" {
			r.Header[k] = v
		}
	}
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestSDKPresignedURLs(t *testing.T) {
	ctx := context.Background()
	verifier := func(offset time.Duration) *Verifier {
		v := liveVerifier()
		v.Now = func() time.Time { return time.Now().Add(offset) }
		return v
	}
	presigner := func(srv *httptest.Server) *s3.PresignClient {
		return s3.NewPresignClient(sdkClient(srv, testSecret), func(o *s3.PresignOptions) { o.Expires = time.Hour })
	}

	t.Run("GET and PUT", func(t *testing.T) {
		stub, srv := startStub(t, verifier(0), false)
		get, err := presigner(srv).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("dir/ü b.txt")})
		if err != nil {
			t.Fatal(err)
		}
		resp := sendPresignedURL(t, srv, get, get.URL, nil)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(data, stub.object) {
			t.Fatalf("%d %q %v", resp.StatusCode, data, stub.last(t).err)
		}

		content := testContent(5000)
		put, err := presigner(srv).PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key"), ContentType: aws.String("text/plain")})
		if err != nil {
			t.Fatal(err)
		}
		resp = sendPresignedURL(t, srv, put, put.URL, content)
		if status, code := answer(t, resp); status != 200 {
			t.Fatalf("%d %s %v", status, code, stub.last(t).err)
		}
		if got := stub.last(t); !bytes.Equal(got.body, content) || got.accessKey != testAccessKey {
			t.Fatalf("%d bytes, key %q", len(got.body), got.accessKey)
		}
	})

	for _, tc := range []struct {
		name   string
		offset time.Duration
		edit   func(string) string
		want   *blob.Error
	}{
		{"expired", 2 * time.Hour, nil, ErrRequestExpired},
		{"not yet valid", -time.Hour, nil, ErrRequestNotYetValid},
		{"one more parameter", 0, func(u string) string { return u + "&versionId=null" }, ErrSignatureDoesNotMatch},
		{"a longer X-Amz-Expires", 0, func(u string) string { return strings.Replace(u, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1) }, ErrSignatureDoesNotMatch},
		{"another key", 0, func(u string) string { return strings.Replace(u, "/key?", "/kez?", 1) }, ErrSignatureDoesNotMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub, srv := startStub(t, verifier(tc.offset), false)
			get, err := presigner(srv).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String("key")})
			if err != nil {
				t.Fatal(err)
			}
			target := get.URL
			if tc.edit != nil {
				target = tc.edit(target)
				if target == get.URL {
					t.Fatalf("the edit changed nothing in %s", target)
				}
			}
			status, code := answer(t, sendPresignedURL(t, srv, get, target, nil))
			if status != tc.want.Status || code != tc.want.Code {
				t.Fatalf("%d %s, want %d %s", status, code, tc.want.Status, tc.want.Code)
			}
			wantSame(t, stub.last(t).err, tc.want)
		})
	}
}

// minioClient is a minio-go client of the stub.
func minioClient(t *testing.T, srv *httptest.Server, secret string, trailingHeaders bool) *minio.Client {
	t.Helper()
	u := strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
	client, err := minio.New(u, &minio.Options{
		Creds:           miniocredentials.NewStaticV4(testAccessKey, secret, ""),
		Secure:          strings.HasPrefix(srv.URL, "https://"),
		Transport:       srv.Client().Transport,
		Region:          testRegion,
		BucketLookup:    minio.BucketLookupPath,
		TrailingHeaders: trailingHeaders,
		MaxRetries:      1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// putPartWithTrailer uploads a part with minio-go's Core and a trailing
// CRC32C, and checks what the server received in the payload mode.
func putPartWithTrailer(t *testing.T, stub *s3Stub, client *minio.Client, payload string) {
	t.Helper()
	data := testContent(150000)
	checksum := crc32Of(data, crc32.MakeTable(crc32.Castagnoli))
	core := minio.Core{Client: client}
	_, err := core.PutObjectPart(context.Background(), "bucket", "key", "upload-1", 1, bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{
		Trailer: http.Header{"X-Amz-Checksum-Crc32c": []string{checksum}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := stub.last(t)
	if got.err != nil || !bytes.Equal(got.body, data) || got.payload != payload {
		t.Fatalf("%v: %d bytes, payload %s", got.err, len(got.body), got.payload)
	}
	if got.trailer.Get("X-Amz-Checksum-Crc32c") != checksum {
		t.Fatalf("trailer %v, want %s", got.trailer, checksum)
	}
}

func TestMinioGoOverHTTP(t *testing.T) {
	stub, srv := startStub(t, liveVerifier(), false)
	client := minioClient(t, srv, testSecret, false)
	ctx := context.Background()

	t.Run("PutObject of a known size", func(t *testing.T) {
		data := testContent(150000)
		if _, err := client.PutObject(ctx, "bucket", "key", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		got := stub.last(t)
		if got.err != nil || !bytes.Equal(got.body, data) || !got.streaming || got.payload != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" {
			t.Fatalf("%v: %d bytes, streaming %v, payload %s", got.err, len(got.body), got.streaming, got.payload)
		}
	})

	t.Run("PutObject of an unknown size", func(t *testing.T) {
		before := len(stub.captures())
		data := testContent(300000)
		info, err := client.PutObject(ctx, "bucket", "key", onlyReader{bytes.NewReader(data)}, -1, minio.PutObjectOptions{PartSize: 5 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(data)) {
			t.Fatalf("uploaded %d bytes", info.Size)
		}
		var parts [][]byte
		for _, got := range stub.captures()[before:] {
			if got.err != nil {
				t.Fatalf("%s %s: %v", got.method, got.query, got.err)
			}
			if got.method == "PUT" && strings.Contains(got.query, "partNumber=") {
				if !got.streaming || got.payload != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" {
					t.Fatalf("a part sent as %s", got.payload)
				}
				parts = append(parts, got.body)
			}
		}
		if len(parts) != 1 || !bytes.Equal(parts[0], data) {
			t.Fatalf("%d parts", len(parts))
		}
	})

	t.Run("a part with a signed trailing checksum", func(t *testing.T) {
		putPartWithTrailer(t, stub, client, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
	})

	t.Run("PutObject in parts with signed trailing checksums", func(t *testing.T) {
		before := len(stub.captures())
		data := testContent(6 << 20)
		trailing := minioClient(t, srv, testSecret, true)
		if _, err := trailing.PutObject(ctx, "bucket", "key", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{PartSize: 5 << 20}); err != nil {
			t.Fatal(err)
		}
		parts := map[string][]byte{}
		for _, got := range stub.captures()[before:] {
			if got.err != nil {
				t.Fatalf("%s %s: %v", got.method, got.query, got.err)
			}
			if got.method != "PUT" {
				continue
			}
			if got.payload != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" {
				t.Fatalf("a part sent as %s", got.payload)
			}
			if want := crc32Of(got.body, crc32.MakeTable(crc32.Castagnoli)); got.trailer.Get("X-Amz-Checksum-Crc32c") != want {
				t.Fatalf("trailer %v, want %s", got.trailer, want)
			}
			query, _ := url.ParseQuery(got.query)
			parts[query.Get("partNumber")] = got.body
		}
		joined := append(append([]byte{}, parts["1"]...), parts["2"]...)
		if len(parts) != 2 || !bytes.Equal(joined, data) {
			t.Fatalf("%d parts, %d bytes", len(parts), len(joined))
		}
	})

	t.Run("GetObject", func(t *testing.T) {
		obj, err := client.GetObject(ctx, "bucket", "key", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(data, stub.object) {
			t.Fatalf("%v %q", err, data)
		}
	})

	t.Run("another secret", func(t *testing.T) {
		data := testContent(100000)
		_, err := minioClient(t, srv, "not-the-secret", false).PutObject(ctx, "bucket", "key", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		if code := minio.ToErrorResponse(err).Code; code != "SignatureDoesNotMatch" {
			t.Fatalf("error %v", err)
		}
	})
}

func TestMinioGoOverTLSWithTrailingHeaders(t *testing.T) {
	stub, srv := startStub(t, liveVerifier(), true)
	client := minioClient(t, srv, testSecret, true)
	ctx := context.Background()

	t.Run("PutObject", func(t *testing.T) {
		data := testContent(150000)
		if _, err := client.PutObject(ctx, "bucket", "key", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := stub.last(t); got.err != nil || !bytes.Equal(got.body, data) {
			t.Fatalf("%v: %d bytes, payload %s", got.err, len(got.body), got.payload)
		}
	})
	t.Run("a part with an unsigned trailing checksum", func(t *testing.T) {
		putPartWithTrailer(t, stub, client, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	})
}

// rawExchange writes request bytes on a new connection to srv, closes the
// writing half, and returns the status of the answer.
func rawExchange(t *testing.T, srv *httptest.Server, request []byte) int {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(request); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	var status int
	if _, err := fmt.Sscanf(string(reply), "HTTP/1.1 %d", &status); err != nil {
		t.Fatalf("reply %q", reply)
	}
	return status
}

// wireRequest is a request to srv signed by the SDK's signer, as bytes.
func wireRequest(t *testing.T, srv *httptest.Server, payload string, headers map[string]string, contentLength int, body func(seed string) []byte) []byte {
	t.Helper()
	r, _ := http.NewRequest("PUT", srv.URL+"/bucket/key", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	sdkSign(t, r, payload, time.Now().UTC(), testRegion)
	data := body(seedOf(t, r))
	if contentLength < 0 {
		contentLength = len(data)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "PUT /bucket/key HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", r.Host, contentLength)
	for k, v := range r.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v[0])
	}
	b.WriteString("\r\n")
	b.Write(data)
	return b.Bytes()
}

func TestOnTheWire(t *testing.T) {
	stub, srv := startStub(t, liveVerifier(), false)
	streaming := map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "9000"}
	data := testContent(9000)

	t.Run("a body shorter than its Content-Length", func(t *testing.T) {
		content := []byte("0123456789")
		request := wireRequest(t, srv, testSHA256(content), nil, 100, func(string) []byte { return content })
		if status := rawExchange(t, srv, request); status != 400 {
			t.Fatalf("status %d", status)
		}
		wantSame(t, stub.last(t).err, blob.ErrIncompleteBody)
	})
	t.Run("an unsigned body shorter than its Content-Length", func(t *testing.T) {
		request := wireRequest(t, srv, "UNSIGNED-PAYLOAD", nil, 100, func(string) []byte { return []byte("0123456789") })
		rawExchange(t, srv, request)
		wantSame(t, stub.last(t).err, blob.ErrIncompleteBody)
	})
	t.Run("signed chunks", func(t *testing.T) {
		request := wireRequest(t, srv, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", streaming, -1, func(seed string) []byte {
			return newChunkSigner(seed, time.Now().UTC()).chunk(data).chunk(nil).end()
		})
		if status := rawExchange(t, srv, request); status != 200 {
			t.Fatalf("status %d: %v", status, stub.last(t).err)
		}
		if got := stub.last(t); !bytes.Equal(got.body, data) {
			t.Fatalf("%d bytes", len(got.body))
		}
	})
	t.Run("signed chunks that end early", func(t *testing.T) {
		request := wireRequest(t, srv, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", streaming, -1, func(seed string) []byte {
			body := newChunkSigner(seed, time.Now().UTC()).chunk(data).chunk(nil).end()
			return body[:len(body)-100]
		})
		if status := rawExchange(t, srv, request); status != 400 {
			t.Fatalf("status %d", status)
		}
		wantSame(t, stub.last(t).err, ErrIncompleteChunkedBody)
	})
	t.Run("a signed chunk with a byte flipped", func(t *testing.T) {
		request := wireRequest(t, srv, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", streaming, -1, func(seed string) []byte {
			body := newChunkSigner(seed, time.Now().UTC()).chunk(data).chunk(nil).end()
			body[bytes.Index(body, data)+4500] ^= 1
			return body
		})
		if status := rawExchange(t, srv, request); status != 403 {
			t.Fatalf("status %d", status)
		}
		wantSame(t, stub.last(t).err, ErrSignatureDoesNotMatch)
	})
	t.Run("signed chunks in the chunked transfer coding", func(t *testing.T) {
		r, _ := http.NewRequest("PUT", srv.URL+"/bucket/key", nil)
		for k, v := range streaming {
			r.Header.Set(k, v)
		}
		sdkSign(t, r, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", time.Now().UTC(), testRegion)
		body := newChunkSigner(seedOf(t, r), time.Now().UTC()).chunk(data).chunk(nil).end()
		r.Body = io.NopCloser(onlyReader{bytes.NewReader(body)})
		r.ContentLength = -1
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		if status, code := answer(t, resp); status != 200 {
			t.Fatalf("%d %s", status, code)
		}
		if got := stub.last(t); !bytes.Equal(got.body, data) {
			t.Fatalf("%d bytes", len(got.body))
		}
	})
}
