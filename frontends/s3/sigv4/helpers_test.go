package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// The key and the time of the examples in the AWS documentation.
const (
	testAccessKey = "AKIAIOSFODNN7EXAMPLE"
	testSecret    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRegion    = "us-east-1"
)

var exampleTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

// testCredentials knows the example key only.
func testCredentials(accessKey string) (string, bool) {
	if accessKey == testAccessKey {
		return testSecret, true
	}
	return "", false
}

// verifierAt is a Verifier whose clock stands at now.
func verifierAt(now time.Time) *Verifier {
	return &Verifier{Credentials: testCredentials, Now: func() time.Time { return now }}
}

// wantError fails unless err is the S3 error code/status/message.
func wantError(t *testing.T, err error, code string, status int, message string) {
	t.Helper()
	var e *blob.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want %s %d %q", err, err, code, status, message)
	}
	if e.Code != code || e.Status != status || e.Message != message {
		t.Fatalf("error %s %d %q, want %s %d %q", e.Code, e.Status, e.Message, code, status, message)
	}
}

// wantSame fails unless err is the error want (the same S3 error).
func wantSame(t *testing.T, err error, want *blob.Error) {
	t.Helper()
	wantError(t, err, want.Code, want.Status, want.Message)
}

// readBody verifies r and reads its whole body.
func readBody(v *Verifier, r *http.Request) (*Result, []byte, error) {
	res, err := v.Verify(r)
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(res.Body)
	return res, data, err
}

// newRequest is a request as Go's server hands it to a handler.
func newRequest(method, target string, body []byte) *http.Request {
	var r *http.Request
	if body == nil {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, bytes.NewReader(body))
	}
	return r
}

// sdkSign signs r with the signer of aws-sdk-go-v2 as its S3 client does
// (no second encoding of the path).
func sdkSign(t *testing.T, r *http.Request, payload string, when time.Time, region string) {
	t.Helper()
	if r.Header.Get("X-Amz-Content-Sha256") == "" && payload != "" {
		r.Header.Set("X-Amz-Content-Sha256", payload)
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret}
	if err := signer.SignHTTP(context.Background(), creds, r, payload, "s3", region, when); err != nil {
		t.Fatal(err)
	}
}

// sdkPresign presigns r with the signer of aws-sdk-go-v2 and returns the
// URL and the headers to send.
func sdkPresign(t *testing.T, r *http.Request, expires time.Duration, when time.Time) (string, http.Header) {
	t.Helper()
	q := r.URL.Query()
	q.Set("X-Amz-Expires", fmt.Sprint(int(expires/time.Second)))
	r.URL.RawQuery = q.Encode()
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret}
	url, headers, err := signer.PresignHTTP(context.Background(), creds, r, "UNSIGNED-PAYLOAD", "s3", testRegion, when)
	if err != nil {
		t.Fatal(err)
	}
	return url, headers
}

var signatureField = regexp.MustCompile(`Signature=([0-9a-f]{64})`)

// seedOf is the signature in the Authorization header of r.
func seedOf(t *testing.T, r *http.Request) string {
	t.Helper()
	m := signatureField.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		t.Fatalf("no signature in %q", r.Header.Get("Authorization"))
	}
	return m[1]
}

// chunkSigner writes aws-chunked bodies as the AWS documentation describes
// them. It is the test's own signer, written from the documentation.
type chunkSigner struct {
	key   []byte
	stamp string
	scope string
	prev  string
	buf   bytes.Buffer
}

// newChunkSigner chains from seed, for the example key at when.
func newChunkSigner(seed string, when time.Time) *chunkSigner {
	date := when.Format("20060102")
	key := testHMAC([]byte("AWS4"+testSecret), date)
	for _, part := range []string{testRegion, "s3", "aws4_request"} {
		key = testHMAC(key, part)
	}
	return &chunkSigner{key: key, stamp: when.Format("20060102T150405Z"), scope: date + "/" + testRegion + "/s3/aws4_request", prev: seed}
}

// testHMAC is HMAC-SHA256.
func testHMAC(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// testSHA256 is the hex SHA-256 of data.
func testSHA256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// sign chains one signature of the given kind over hashes.
func (s *chunkSigner) sign(kind string, hashes ...string) string {
	sts := kind + "\n" + s.stamp + "\n" + s.scope + "\n" + s.prev + "\n" + strings.Join(hashes, "\n")
	s.prev = hex.EncodeToString(testHMAC(s.key, sts))
	return s.prev
}

// chunk writes a signed chunk; an empty one is the last chunk, whose
// CRLF the end (or the trailer) writes.
func (s *chunkSigner) chunk(data []byte) *chunkSigner {
	sig := s.sign("AWS4-HMAC-SHA256-PAYLOAD", testSHA256(nil), testSHA256(data))
	fmt.Fprintf(&s.buf, "%x;chunk-signature=%s\r\n", len(data), sig)
	if len(data) > 0 {
		s.buf.Write(data)
		s.buf.WriteString("\r\n")
	}
	return s
}

// end writes the CRLF after the last chunk of a body without trailer.
func (s *chunkSigner) end() []byte {
	s.buf.WriteString("\r\n")
	return s.buf.Bytes()
}

// trailer writes signed trailing headers (lines "name:value").
func (s *chunkSigner) trailer(lines ...string) []byte {
	var hashed strings.Builder
	for _, line := range lines {
		hashed.WriteString(line + "\n")
		s.buf.WriteString(line + "\r\n")
	}
	sig := s.sign("AWS4-HMAC-SHA256-TRAILER", testSHA256([]byte(hashed.String())))
	s.buf.WriteString("x-amz-trailer-signature:" + sig + "\r\n\r\n")
	return s.buf.Bytes()
}

// unsignedChunks writes an unsigned aws-chunked body of the given chunks
// and trailer lines.
func unsignedChunks(trailer []string, chunks ...[]byte) []byte {
	var b bytes.Buffer
	for _, c := range chunks {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	b.WriteString("0\r\n")
	for _, line := range trailer {
		b.WriteString(line + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
