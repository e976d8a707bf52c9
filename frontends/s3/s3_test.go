package s3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// gateway is Mecha with an S3 frontend on a backend.
type gateway struct {
	addr string
	root string // the fs backend's root ("" for memory)
	m    *app.Mecha
}

func startGateway(t *testing.T, kind string) *gateway {
	return startGatewayAuth(t, kind, "{access_key: ak, secret_key: sk}")
}

// startGatewayAuth starts the gateway with its auth section.
func startGatewayAuth(t *testing.T, kind, auth string) *gateway {
	t.Helper()
	return startGatewayWith(t, kind, auth, "")
}

// startGatewayWith starts the gateway with its auth section and more
// frontend settings (", key: value").
func startGatewayWith(t *testing.T, kind, auth, extra string) *gateway {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Mecha")
	}
	g := &gateway{}
	backend := "{type: memory}"
	if kind == "fs" {
		g.root = t.TempDir()
		backend = fmt.Sprintf("{type: fs, root: %q}", g.root)
	}
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: s3, protocol: s3, listen: "127.0.0.1:0", backend: store, auth: %s%s}
backends:
  store: %s
`, auth, extra, backend))
	g.addr, g.m = apptest.Addr(t, m, "s3"), m
	return g
}

// do sends a request signed by access key ak with secret (unsigned when
// secret is ""), the payload hash covering body.
func (g *gateway) do(t *testing.T, method, path, secret string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	return g.doAs(t, "ak", method, path, secret, body, hdr)
}

func (g *gateway) doAs(t *testing.T, ak, method, path, secret string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+g.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if secret != "" {
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		if v := req.Header.Get("x-amz-content-sha256"); v != "" {
			hash = v
		}
		req.Header.Set("x-amz-content-sha256", hash)
		creds := aws.Credentials{AccessKeyID: ak, SecretAccessKey: secret}
		if err := signer().SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// expectError checks an S3 error answer.
func expectError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || !bytes.Contains(body, []byte("<Code>"+code+"</Code>")) || !bytes.Contains(body, []byte("<RequestId>")) {
		t.Fatalf("want %d %s, got %d %s", status, code, resp.StatusCode, body)
	}
	if resp.Header.Get("x-amz-request-id") == "" {
		t.Fatal("no x-amz-request-id")
	}
}

func TestAuthentication(t *testing.T) {
	g := startGateway(t, "memory")
	resp, body := g.do(t, "GET", "/", "", nil, nil)
	expectError(t, resp, body, 403, "AccessDenied")
	resp, body = g.do(t, "GET", "/", "wrong", nil, nil)
	expectError(t, resp, body, 403, "SignatureDoesNotMatch")
	resp, body = g.do(t, "GET", "/", "sk", nil, nil)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("<ListAllMyBucketsResult")) {
		t.Fatalf("signed ListBuckets: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("GET", "http://"+g.addr+"/", nil)
	req.Header.Set("Authorization", "AWS ak:c2lnbmF0dXJl")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	expectError(t, r2, b2, 400, "InvalidRequest")
}

func TestRoutingAndErrors(t *testing.T) {
	g := startGateway(t, "memory")
	if resp, body := g.do(t, "PUT", "/bkt", "sk", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	for _, sub := range []string{"policy", "acl", "lifecycle", "cors", "website"} {
		resp, body := g.do(t, "GET", "/bkt?"+sub, "sk", nil, nil)
		expectError(t, resp, body, 501, "NotImplemented")
	}
	resp, body := g.do(t, "GET", "/bkt/missing", "sk", nil, nil)
	expectError(t, resp, body, 404, "NoSuchKey")
	if !bytes.Contains(body, []byte("<Key>missing</Key>")) || !bytes.Contains(body, []byte("<Resource>/bkt/missing</Resource>")) {
		t.Fatalf("NoSuchKey document: %s", body)
	}
	resp, body = g.do(t, "HEAD", "/bkt/missing", "sk", nil, nil)
	if resp.StatusCode != 404 || len(body) != 0 {
		t.Fatalf("HEAD of a missing key: %d %q", resp.StatusCode, body)
	}
	resp, body = g.do(t, "GET", "/nobucket?list-type=2", "sk", nil, nil)
	expectError(t, resp, body, 404, "NoSuchBucket")
	resp, body = g.do(t, "GET", "/bkt?list-type=2&max-keys=-1", "sk", nil, nil)
	expectError(t, resp, body, 400, "InvalidArgument")
	// Malformed XML where XML is expected.
	resp, body = g.do(t, "POST", "/bkt?delete", "sk", []byte("<Delete><Object><Key>a</Key>"), nil)
	expectError(t, resp, body, 400, "MalformedXML")
	resp, body = g.do(t, "POST", "/bkt/k?uploads", "sk", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("create upload: %d %s", resp.StatusCode, body)
	}
	id := between(string(body), "<UploadId>", "</UploadId>")
	resp, body = g.do(t, "POST", "/bkt/k?uploadId="+id, "sk", []byte("<CompleteMultipartUpload><Part>"), nil)
	expectError(t, resp, body, 400, "MalformedXML")
	resp, body = g.do(t, "POST", "/bkt/k?uploadId=nope", "sk", []byte("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"), nil)
	expectError(t, resp, body, 404, "NoSuchUpload")
	// Digests.
	resp, body = g.do(t, "PUT", "/bkt/d", "sk", []byte("data"), map[string]string{"Content-MD5": "not base64!"})
	expectError(t, resp, body, 400, "InvalidDigest")
	other := md5.Sum([]byte("other"))
	resp, body = g.do(t, "PUT", "/bkt/d", "sk", []byte("data"), map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(other[:])})
	expectError(t, resp, body, 400, "BadDigest")
	resp, body = g.do(t, "PUT", "/bkt/d", "sk", []byte("data"), map[string]string{"x-amz-checksum-crc32": "AAAAAA=="})
	expectError(t, resp, body, 400, "BadDigest")
	resp, body = g.do(t, "PUT", "/bkt/d", "sk", []byte("data"), map[string]string{"x-amz-content-sha256": strings.Repeat("0", 64)})
	expectError(t, resp, body, 400, "XAmzContentSHA256Mismatch")
	resp, body = g.do(t, "GET", "/bkt/d", "sk", nil, nil)
	expectError(t, resp, body, 404, "NoSuchKey") // none of them stored anything
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// TestTruncatedBody: a client that sends fewer bytes than it announced
// and goes away leaves no object, and the old one intact.
func TestTruncatedBody(t *testing.T) {
	for _, kind := range []string{"memory", "fs"} {
		t.Run(kind, func(t *testing.T) {
			g := startGateway(t, kind)
			g.do(t, "PUT", "/bkt", "sk", nil, nil)
			if resp, body := g.do(t, "PUT", "/bkt/k", "sk", []byte("old"), nil); resp.StatusCode != 200 {
				t.Fatalf("put: %d %s", resp.StatusCode, body)
			}
			req, _ := http.NewRequest("PUT", "http://"+g.addr+"/bkt/k", nil)
			req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
			req.Header.Set("Content-Length", "1000")
			signer().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "ak", SecretAccessKey: "sk"}, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now())
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "PUT /bkt/k HTTP/1.1\r\nHost: %s\r\n", g.addr)
			for k, vs := range req.Header {
				fmt.Fprintf(c, "%s: %s\r\n", k, vs[0])
			}
			fmt.Fprintf(c, "\r\n%s", strings.Repeat("n", 400))
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer to a truncated PUT: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.Close()
			expectError(t, resp, body, 400, "IncompleteBody")
			// Answered, so done with: the old object stays.
			if _, got := g.do(t, "GET", "/bkt/k", "sk", nil, nil); string(got) != "old" {
				t.Fatalf("object after a truncated PUT: %q", got)
			}
		})
	}
}

// TestTraversalKeys: keys that look like paths are keys, on disk too.
func TestTraversalKeys(t *testing.T) {
	g := startGateway(t, "fs")
	g.do(t, "PUT", "/bkt", "sk", nil, nil)
	outside := filepath.Dir(g.root)
	before, _ := os.ReadDir(outside)
	keys := []string{"../escape", "../../escape2", "a/../../b", "/abs", "a//b", "./dot", strings.Repeat("long/", 200) + "k"}
	for _, k := range keys {
		resp, body := g.do(t, "PUT", "/bkt/"+k, "sk", []byte(k), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("put %q: %d %s", k, resp.StatusCode, body)
		}
	}
	for _, k := range keys {
		resp, body := g.do(t, "GET", "/bkt/"+k, "sk", nil, nil)
		if resp.StatusCode != 200 || string(body) != k {
			t.Fatalf("get %q: %d %q", k, resp.StatusCode, body)
		}
	}
	after, _ := os.ReadDir(outside)
	if len(after) != len(before) {
		t.Fatalf("files appeared next to the root: %v → %v", before, after)
	}
}

func TestVirtualHostedStyle(t *testing.T) {
	g := startGateway(t, "memory")
	g.do(t, "PUT", "/vhost", "sk", nil, nil)
	g.do(t, "PUT", "/vhost/key", "sk", []byte("by path"), nil)
	req, _ := http.NewRequest("GET", "http://"+g.addr+"/key", nil)
	_, port, _ := net.SplitHostPort(g.addr)
	req.Host = "vhost.localhost:" + port
	req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
	signer().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "ak", SecretAccessKey: "sk"}, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "by path" {
		t.Fatalf("virtual-hosted GET: %d %q", resp.StatusCode, b)
	}
}

// signer signs paths as S3 clients do: encoded once, not twice.
func signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

// TestExpiredPresignedURL: a URL signed two hours ago for one minute is
// refused as S3 does.
func TestExpiredPresignedURL(t *testing.T) {
	g := startGateway(t, "memory")
	g.do(t, "PUT", "/bkt", "sk", nil, nil)
	g.do(t, "PUT", "/bkt/k", "sk", []byte("v"), nil)
	presign := func(at time.Time) string {
		req, _ := http.NewRequest("GET", "http://"+g.addr+"/bkt/k?X-Amz-Expires=60", nil)
		u, _, err := signer().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: "ak", SecretAccessKey: "sk"}, req,
			"UNSIGNED-PAYLOAD", "s3", "us-east-1", at)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	get := func(u string) (*http.Response, []byte) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, body := get(presign(time.Now())); resp.StatusCode != 200 || string(body) != "v" {
		t.Fatalf("fresh URL: %d %s", resp.StatusCode, body)
	}
	resp, body := get(presign(time.Now().Add(-2 * time.Hour)))
	expectError(t, resp, body, 403, "AccessDenied")
	if !bytes.Contains(body, []byte("Request has expired")) {
		t.Fatalf("expired URL: %s", body)
	}
}

// TestMetrics: requests are counted by S3 operation, errors apart.
func TestMetrics(t *testing.T) {
	g := startGateway(t, "memory")
	g.do(t, "PUT", "/bkt", "sk", nil, nil)
	g.do(t, "PUT", "/bkt/k", "sk", []byte("12345"), nil)
	g.do(t, "GET", "/bkt/k", "sk", nil, nil)
	g.do(t, "GET", "/bkt/missing", "sk", nil, nil)
	m := apptest.Metrics(t, g.m)
	for _, want := range []string{
		`mecha_frontend_requests_total{frontend="s3",protocol="s3",command="GetObject"} 2`,
		`mecha_frontend_errors_total{frontend="s3",protocol="s3",command="GetObject"} 1`,
		`mecha_frontend_requests_total{frontend="s3",protocol="s3",command="PutObject"} 1`,
		`mecha_frontend_requests_total{frontend="s3",protocol="s3",command="CreateBucket"} 1`,
		`mecha_frontend_received_bytes_total{frontend="s3",protocol="s3"} 5`,
		`mecha_frontend_sent_bytes_total{frontend="s3",protocol="s3"} 5`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestCredentials: every configured key pair signs; unsigned requests
// pass only with anonymous access, and a signed one is verified even then.
func TestCredentials(t *testing.T) {
	g := startGatewayAuth(t, "memory", "{access_key: ak, secret_key: sk, keys: {second: second-secret}}")
	if resp, body := g.doAs(t, "second", "PUT", "/bkt", "second-secret", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("second key: %d %s", resp.StatusCode, body)
	}
	resp, body := g.doAs(t, "second", "GET", "/bkt?list-type=2", "sk", nil, nil)
	expectError(t, resp, body, 403, "SignatureDoesNotMatch")
	resp, body = g.doAs(t, "nobody", "GET", "/", "x", nil, nil)
	expectError(t, resp, body, 403, "InvalidAccessKeyId")

	anon := startGatewayAuth(t, "memory", "{access_key: ak, secret_key: sk, anonymous: true}")
	if resp, body := anon.do(t, "PUT", "/open", "", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("anonymous create: %d %s", resp.StatusCode, body)
	}
	resp, body = anon.do(t, "GET", "/open?list-type=2", "wrong", nil, nil)
	expectError(t, resp, body, 403, "SignatureDoesNotMatch")
}

// TestStalledBody: a client that stops sending its body gets S3's
// RequestTimeout once body_timeout passes, and nothing is stored.
func TestStalledBody(t *testing.T) {
	g := startGatewayWith(t, "fs", "{access_key: ak, secret_key: sk}", ", body_timeout: 200ms")
	g.do(t, "PUT", "/bkt", "sk", nil, nil)
	req, _ := http.NewRequest("PUT", "http://"+g.addr+"/bkt/stalled", nil)
	req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
	req.Header.Set("Content-Length", "1000")
	signer().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "ak", SecretAccessKey: "sk"}, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now())
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /bkt/stalled HTTP/1.1\r\nHost: %s\r\n", g.addr)
	for k, vs := range req.Header {
		fmt.Fprintf(c, "%s: %s\r\n", k, vs[0])
	}
	fmt.Fprintf(c, "\r\n%s", strings.Repeat("s", 10)) // then nothing
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectError(t, resp, body, 400, "RequestTimeout")
	r2, b2 := g.do(t, "GET", "/bkt/stalled", "sk", nil, nil)
	expectError(t, r2, b2, 404, "NoSuchKey")
}
