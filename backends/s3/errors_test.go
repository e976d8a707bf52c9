package s3_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	s3 "github.com/mecha-gateway/mecha/backends/s3"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// wantS3Error fails the test unless err is a *blob.Error with code and
// status.
func wantS3Error(t *testing.T, what string, err error, code string, status int) *blob.Error {
	t.Helper()
	var be *blob.Error
	if !errors.As(err, &be) || be.Code != code || be.Status != status {
		t.Errorf("%s: error %v, want %s (%d)", what, err, code, status)
		return nil
	}
	return be
}

// TestUpstreamErrors checks that errors of a real upstream come back
// with S3's codes and statuses, as blob's sentinels where it has them.
func TestUpstreamErrors(t *testing.T) {
	s := newStore(t, mechaS3(t), nil)
	ctx := t.Context()
	must(t, s.CreateBucket(ctx, "errs"))
	_, err := s.PutObject(ctx, "errs", "k", strings.NewReader("value"), 5, blob.PutOptions{})
	must(t, err)
	id, err := s.CreateMultipartUpload(ctx, "errs", "mp", blob.PutOptions{})
	must(t, err)
	small, err := s.UploadPart(ctx, "errs", "mp", id, 1, strings.NewReader("small"), 5)
	must(t, err)
	_, err = s.UploadPart(ctx, "errs", "mp", id, 2, strings.NewReader("last"), 4)
	must(t, err)

	_, headMissingBucket := s.HeadObject(ctx, "nowhere", "k")
	_, headMissingKey := s.HeadObject(ctx, "errs", "nothing")
	_, getMissingKey := s.GetObject(ctx, "errs", "nothing", nil)
	_, getRange := s.GetObject(ctx, "errs", "k", &blob.Range{First: 5, Last: -1})
	_, listMissing := s.ListObjects(ctx, "nowhere", blob.ListQuery{MaxKeys: 10})
	_, ifNoneMatch := s.PutObject(ctx, "errs", "k", strings.NewReader("x"), 1, blob.PutOptions{IfNoneMatch: true})
	_, ifMatch := s.PutObject(ctx, "errs", "k", strings.NewReader("x"), 1, blob.PutOptions{IfMatch: "0123"})
	_, badPart := s.CompleteMultipartUpload(ctx, "errs", "mp", id, []blob.CompletePart{{Number: 1, ETag: "nope"}})
	_, tooSmall := s.CompleteMultipartUpload(ctx, "errs", "mp", id, []blob.CompletePart{{Number: 1, ETag: small.ETag}, {Number: 2, ETag: md5hex([]byte("last"))}})
	_, noUpload := s.ListParts(ctx, "errs", "mp", "no-such-upload", 0, 10)
	for _, tc := range []struct {
		what   string
		err    error
		want   *blob.Error
		status int
	}{
		{"head in a missing bucket", headMissingBucket, blob.ErrNoSuchBucket, 404},
		{"head a missing key", headMissingKey, blob.ErrNoSuchKey, 404},
		{"get a missing key", getMissingKey, blob.ErrNoSuchKey, 404},
		{"get past the end", getRange, blob.ErrInvalidRange, 416},
		{"list a missing bucket", listMissing, blob.ErrNoSuchBucket, 404},
		{"head a missing bucket", s.HeadBucket(ctx, "nowhere"), blob.ErrNoSuchBucket, 404},
		{"delete a missing bucket", s.DeleteBucket(ctx, "nowhere"), blob.ErrNoSuchBucket, 404},
		{"delete a bucket with objects", s.DeleteBucket(ctx, "errs"), blob.ErrBucketNotEmpty, 409},
		{"create an existing bucket", s.CreateBucket(ctx, "errs"), blob.ErrBucketExists, 409},
		{"put if none match", ifNoneMatch, blob.ErrPreconditionFailed, 412},
		{"put if match", ifMatch, blob.ErrPreconditionFailed, 412},
		{"complete with a wrong etag", badPart, blob.ErrInvalidPart, 400},
		{"complete with a small part", tooSmall, blob.ErrEntityTooSmall, 400},
		{"list parts of no upload", noUpload, blob.ErrNoSuchUpload, 404},
		{"abort no upload", s.AbortMultipartUpload(ctx, "errs", "mp", "no-such-upload"), blob.ErrNoSuchUpload, 404},
		{"tag a missing key", s.SetTags(ctx, "errs", "nothing", map[string]string{"a": "b"}), blob.ErrNoSuchKey, 404},
	} {
		wantS3Error(t, tc.what, tc.err, tc.want.Code, tc.status)
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: errors.Is(%v, blob's %s) is false", tc.what, tc.err, tc.want.Code)
		}
	}
}

// TestAnswersPassThrough checks errors that blob has no sentinel for,
// and answers that are not S3's, from a scripted upstream.
func TestAnswersPassThrough(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/bkt/")
		switch {
		case r.URL.Path == "/" && r.Method == http.MethodGet: // health check
			w.Write([]byte(`<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>`))
		case key == "slow":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		case key == "denied" && r.Method == http.MethodHead:
			w.WriteHeader(http.StatusForbidden)
		case key == "denied":
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
		case key == "odd":
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`<Error><Code>OperationAborted</Code><Message>A conflicting conditional operation is in progress.</Message></Error>`))
		case key == "html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`<html><body>proxy error</body></html>`))
		case key == "modified":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	t.Cleanup(srv.Close)
	s := newStore(t, srv.URL, func(c *s3.Config) { c.MaxRetries = 0 })
	ctx := t.Context()
	_, err := s.GetObject(ctx, "bkt", "slow", nil)
	if be := wantS3Error(t, "SlowDown", err, "SlowDown", 503); be != nil && be.Message != "Please reduce your request rate." {
		t.Errorf("SlowDown message %q", be.Message)
	}
	_, err = s.HeadObject(ctx, "bkt", "denied")
	wantS3Error(t, "HEAD 403", err, "AccessDenied", 403)
	_, err = s.GetObject(ctx, "bkt", "denied", nil)
	wantS3Error(t, "GET 403", err, "AccessDenied", 403)
	_, err = s.GetObject(ctx, "bkt", "odd", nil)
	if be := wantS3Error(t, "unknown code", err, "OperationAborted", 409); be != nil && be.Message != "A conflicting conditional operation is in progress." {
		t.Errorf("OperationAborted message %q", be.Message)
	}
	_, err = s.GetObject(ctx, "bkt", "html", nil)
	var be *blob.Error
	if !errors.As(err, &be) || be.Status < 500 {
		t.Errorf("an HTML answer: %v, want a 5xx *blob.Error", err)
	}
	_, err = s.HeadObject(ctx, "bkt", "modified")
	wantS3Error(t, "HEAD 304", err, "NotModified", 304)
}

// freeAddr returns an address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitHealth polls the store's health until it is st.
func waitHealth(t *testing.T, s *s3.Store, st backends.State) backends.Health {
	t.Helper()
	apptest.Eventually(t, 10*time.Second, "health "+st.String(), func() bool { return s.Health().State == st })
	return s.Health()
}

// TestUpstreamDown checks a store whose upstream is down: it starts,
// reports DOWN, fails requests with 503 naming the upstream, and comes
// UP once the upstream listens.
func TestUpstreamDown(t *testing.T) {
	addr := freeAddr(t)
	s := newStore(t, "http://"+addr, nil)
	h := waitHealth(t, s, backends.StateDown)
	if !strings.Contains(h.Detail, addr) {
		t.Errorf("health detail %q does not name the upstream", h.Detail)
	}
	t.Logf("health: %s", h.Detail)
	ctx := t.Context()
	_, err := s.HeadObject(ctx, "bkt", "k")
	if be := wantS3Error(t, "head", err, "ServiceUnavailable", 503); be != nil && !strings.Contains(be.Message, addr) {
		t.Errorf("message %q does not name the upstream", be.Message)
	}
	t.Logf("error: %v", err)
	_, err = s.PutObject(ctx, "bkt", "k", strings.NewReader("data"), 4, blob.PutOptions{})
	wantS3Error(t, "put", err, "ServiceUnavailable", 503)
	_, err = s.ListBuckets(ctx)
	wantS3Error(t, "list buckets", err, "ServiceUnavailable", 503)

	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again to test recovery: %v", addr, err)
	}
	srv := &http.Server{Handler: fakeHandler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	waitHealth(t, s, backends.StateUp)
	must(t, s.CreateBucket(ctx, "bkt"))
}

// TestWrongCredentials checks that an upstream refusing the gateway's
// credentials is DOWN, with the reason.
func TestWrongCredentials(t *testing.T) {
	s := newStore(t, mechaS3(t), func(c *s3.Config) { c.SecretKey = "wrong" })
	h := waitHealth(t, s, backends.StateDown)
	if !strings.Contains(h.Detail, "credentials") || !strings.Contains(h.Detail, "SignatureDoesNotMatch") {
		t.Errorf("health detail %q", h.Detail)
	}
	err := s.CreateBucket(t.Context(), "bkt")
	wantS3Error(t, "create bucket", err, "SignatureDoesNotMatch", 403)
}

// stuckServer accepts connections and answers nothing until the test
// ends, or, with partial, answers headers and some of a body.
func stuckServer(t *testing.T, partial bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf) // the request's head
				if partial {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"x\"\r\n\r\npartial body")
				}
				<-done
			})
		}
	})
	return "http://" + l.Addr().String()
}

// TestStuckUpstream checks that an upstream that stops answering fails
// requests with 503 once the timeouts pass, rather than hanging them.
func TestStuckUpstream(t *testing.T) {
	quick := func(c *s3.Config) {
		c.ResponseHeaderTimeout = s3Duration(200 * time.Millisecond)
		c.StallTimeout = s3Duration(300 * time.Millisecond)
		c.MaxRetries = 0
	}
	s := newStore(t, stuckServer(t, false), quick)
	_, err := s.HeadObject(t.Context(), "bkt", "k")
	wantS3Error(t, "head on a silent upstream", err, "ServiceUnavailable", 503)
	waitHealth(t, s, backends.StateDown)

	s = newStore(t, stuckServer(t, true), quick)
	obj, err := s.GetObject(t.Context(), "bkt", "k", nil)
	must(t, err)
	defer obj.Body.Close()
	got, err := io.ReadAll(obj.Body)
	if err == nil || string(got) != "partial body" {
		t.Errorf("read of a stalled download: %q, %v; want the partial body and an error", got, err)
	}
}
