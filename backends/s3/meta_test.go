package s3_test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/metrics"
	s3 "github.com/mecha-gateway/mecha/backends/s3"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	"github.com/mecha-gateway/mecha/configs"
)

// TestChecksums checks that a checksum the client sent goes upstream,
// where it is verified and kept, and comes back on HEAD and GET.
func TestChecksums(t *testing.T) {
	s := newStore(t, mechaS3(t), nil)
	ctx := t.Context()
	must(t, s.CreateBucket(ctx, "sums"))
	const data, crc32, sha256 = "hello, world", "/6tyOg==", "Ccp+TqpuiunH0mEWcSkYSINkTQffuny/vEyKLgg2DVs="
	_, err := s.PutObject(ctx, "sums", "k", strings.NewReader(data), int64(len(data)), blob.PutOptions{Checksums: map[string]string{"CRC32": crc32}})
	must(t, err)
	head, err := s.HeadObject(ctx, "sums", "k")
	must(t, err)
	if !maps.Equal(head.Checksums, map[string]string{"CRC32": crc32}) {
		t.Errorf("head checksums %q", head.Checksums)
	}
	obj, err := s.GetObject(ctx, "sums", "k", nil)
	must(t, err)
	obj.Body.Close()
	if !maps.Equal(obj.Checksums, map[string]string{"CRC32": crc32}) {
		t.Errorf("get checksums %q", obj.Checksums)
	}
	// Two given: one goes (S3 takes one per request).
	_, err = s.PutObject(ctx, "sums", "two", strings.NewReader(data), int64(len(data)), blob.PutOptions{Checksums: map[string]string{"CRC32": crc32, "SHA256": sha256}})
	must(t, err)
	head, err = s.HeadObject(ctx, "sums", "two")
	must(t, err)
	if len(head.Checksums) != 1 || head.Checksums["CRC32"] != crc32 {
		t.Errorf("checksums of a put with two: %q", head.Checksums)
	}
	// A wrong one: the upstream refuses the object.
	_, err = s.PutObject(ctx, "sums", "k", strings.NewReader("changed body"), 12, blob.PutOptions{Checksums: map[string]string{"CRC32": crc32}})
	wantS3Error(t, "put with a wrong checksum", err, "BadDigest", 400)
	wantBody(t, s, "sums", "k", data)
}

// TestMetadata checks that metadata round-trips, user metadata that
// HTTP cannot carry as it is included, and that copies keep or replace
// it.
func TestMetadata(t *testing.T) {
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			// gofakes3 has no tagging, drops Content-Language,
			// Cache-Control and Expires, and merges the source's metadata
			// into a copy's new metadata.
			fake := up.name == "gofakes3"
			s := newStore(t, up.start(t), nil)
			ctx := t.Context()
			must(t, s.CreateBucket(ctx, "meta"))
			o := blob.PutOptions{
				ContentType: "text/markdown; charset=utf-8", ContentEncoding: "gzip", ContentDisposition: `attachment; filename="a b.md"`,
				UserMeta: map[string]string{"owner": "ana", "empty": "", "unicode": "日本語 ✓", "spaced": "  a  b  ", "encoded-look": "=?UTF-8?B?eA==?=", "ctl": "a\tb"},
			}
			if !fake {
				o.ContentLanguage, o.CacheControl, o.Expires = "fr-CH", "max-age=60, private", "Wed, 21 Oct 2037 07:28:00 GMT"
				o.Tags = map[string]string{"project": "mecha", "stage": "test run", "odd": "a&b=c+d/é"}
			}
			_, err := s.PutObject(ctx, "meta", "doc", strings.NewReader("# hi"), 4, o)
			must(t, err)
			head, err := s.HeadObject(ctx, "meta", "doc")
			must(t, err)
			checkMeta(t, "head", head, o)
			obj, err := s.GetObject(ctx, "meta", "doc", nil)
			must(t, err)
			obj.Body.Close()
			checkMeta(t, "get", &obj.Info, o)

			_, err = s.CopyObject(ctx, "meta", "doc", "meta", "copy", blob.CopyOptions{})
			must(t, err)
			head, err = s.HeadObject(ctx, "meta", "copy")
			must(t, err)
			checkMeta(t, "copy", head, o)
			if fake {
				return
			}
			repl := blob.PutOptions{ContentType: "image/png", UserMeta: map[string]string{"new": "ü"}, Tags: map[string]string{"t": "2"}}
			_, err = s.CopyObject(ctx, "meta", "doc", "meta", "replaced", blob.CopyOptions{ReplaceMetadata: true, ReplaceTags: true, Meta: repl})
			must(t, err)
			head, err = s.HeadObject(ctx, "meta", "replaced")
			must(t, err)
			checkMeta(t, "copy with new metadata", head, repl)
			must(t, s.SetTags(ctx, "meta", "doc", map[string]string{"x": "y"}))
			head, err = s.HeadObject(ctx, "meta", "doc")
			must(t, err)
			if !maps.Equal(head.Tags, map[string]string{"x": "y"}) {
				t.Errorf("tags after SetTags: %q", head.Tags)
			}
			must(t, s.SetTags(ctx, "meta", "doc", nil))
			if tags, err := s.GetTags(ctx, "meta", "doc"); err != nil || len(tags) != 0 {
				t.Errorf("tags after clearing: %q %v", tags, err)
			}
		})
	}
}

func checkMeta(t *testing.T, what string, i *blob.Info, o blob.PutOptions) {
	t.Helper()
	got := []string{i.ContentType, i.ContentEncoding, i.ContentDisposition, i.ContentLanguage, i.CacheControl, i.Expires}
	want := []string{o.ContentType, o.ContentEncoding, o.ContentDisposition, o.ContentLanguage, o.CacheControl, o.Expires}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: headers %q, want %q", what, got, want)
	}
	if !maps.Equal(i.UserMeta, o.UserMeta) && len(i.UserMeta)+len(o.UserMeta) > 0 {
		t.Errorf("%s: user metadata %q, want %q", what, i.UserMeta, o.UserMeta)
	}
	if !maps.Equal(i.Tags, o.Tags) && len(i.Tags)+len(o.Tags) > 0 {
		t.Errorf("%s: tags %q, want %q", what, i.Tags, o.Tags)
	}
}

// TestBucketPrefix checks bucket_prefix: buckets upstream carry it, and
// the store shows only those, without it.
func TestBucketPrefix(t *testing.T) {
	endpoint := mechaS3(t)
	app1 := newStore(t, endpoint, func(c *s3.Config) { c.BucketPrefix = "app1-" })
	raw := newStore(t, endpoint, nil)
	ctx := t.Context()
	must(t, app1.CreateBucket(ctx, "photos"))
	must(t, app1.CreateBucket(ctx, "docs"))
	must(t, raw.CreateBucket(ctx, "other"))
	must(t, raw.HeadBucket(ctx, "app1-photos"))
	list, err := app1.ListBuckets(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "docs" || list[1].Name != "photos" {
		t.Errorf("buckets with the prefix: %+v", list)
	}
	_, err = app1.PutObject(ctx, "photos", "cat.jpg", strings.NewReader("meow"), 4, blob.PutOptions{})
	must(t, err)
	_, err = app1.CopyObject(ctx, "photos", "cat.jpg", "docs", "cat copy.jpg", blob.CopyOptions{})
	must(t, err)
	wantBody(t, raw, "app1-docs", "cat copy.jpg", "meow")
	if err := app1.HeadBucket(ctx, "other"); !errors.Is(err, blob.ErrNoSuchBucket) {
		t.Errorf("a bucket without the prefix is visible: %v", err)
	}
}

// TestMetrics checks the per-operation upstream metrics.
func TestMetrics(t *testing.T) {
	s := newStore(t, fakeS3(t), nil)
	ctx := t.Context()
	must(t, s.CreateBucket(ctx, "metrics"))
	_, err := s.PutObject(ctx, "metrics", "k", strings.NewReader("v"), 1, blob.PutOptions{})
	must(t, err)
	_, err = s.HeadObject(ctx, "metrics", "missing")
	if !errors.Is(err, blob.ErrNoSuchKey) {
		t.Fatal(err)
	}
	w := metrics.NewWriter()
	s.CollectMetrics(w)
	var buf bytes.Buffer
	w.WriteTo(&buf)
	for _, want := range []string{
		`mecha_s3_upstream_up{backend="up"} 1`,
		`mecha_s3_upstream_requests_total{backend="up",operation="PutObject"} 1`,
		`mecha_s3_upstream_errors_total{backend="up",operation="PutObject"} 0`,
		`mecha_s3_upstream_errors_total{backend="up",operation="HeadObject"} 1`,
		`mecha_s3_upstream_duration_seconds_count{backend="up",operation="CreateBucket"} 1`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, buf.String())
		}
	}
}

// TestConfig checks the configuration's validation.
func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		edit func(*s3.Config)
		key  string
	}{
		{func(c *s3.Config) { c.Endpoint = "" }, "endpoint"},
		{func(c *s3.Config) { c.Endpoint = "127.0.0.1:9000" }, "endpoint"},
		{func(c *s3.Config) { c.Endpoint = "ftp://127.0.0.1:9000" }, "endpoint"},
		{func(c *s3.Config) { c.Endpoint = "http://127.0.0.1:9000/bucket" }, "endpoint"},
		{func(c *s3.Config) { c.TLS = &configs.TLSClient{} }, "tls"},
		{func(c *s3.Config) { c.Region = "" }, "region"},
		{func(c *s3.Config) { c.SecretKey = "" }, "access_key"},
		{func(c *s3.Config) { c.BucketPrefix = "Upper_" }, "bucket_prefix"},
		{func(c *s3.Config) { c.DialTimeout = 0 }, "dial_timeout"},
		{func(c *s3.Config) { c.StallTimeout = c.ResponseHeaderTimeout / 2 }, "stall_timeout"},
		{func(c *s3.Config) { c.MaxRetries = -1 }, "max_retries"},
		{func(c *s3.Config) { c.SpoolDir = "/no/such/dir" }, "spool_dir"},
	} {
		c := s3.DefaultConfig()
		c.Endpoint, c.AccessKey, c.SecretKey = "http://127.0.0.1:9000", "ak", "sk"
		if err := c.Validate(); err != nil {
			t.Fatalf("valid config: %v", err)
		}
		tc.edit(c)
		err := c.Validate()
		var fe *configs.FieldError
		if !errors.As(err, &fe) || fe.Key != tc.key {
			t.Errorf("config error %v, want one on %s", err, tc.key)
		}
		if _, err := s3.New(c, backends.Env{Name: "x"}); err == nil {
			t.Errorf("New accepted a config with a bad %s", tc.key)
		}
	}
	// The secret never prints.
	c := s3.DefaultConfig()
	c.SecretKey = "very-secret"
	if out := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(out, "very-secret") {
		t.Errorf("the secret key prints: %s", out)
	}
}

// TestReadme loads the configurations of README.md.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	must(t, err)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1)
	n := 0
	for i, m := range blocks {
		if !regexp.MustCompile(`(?m)^(frontends|backends):`).Match(m[1]) {
			continue
		}
		n++
		cfg, err := configs.Parse(fmt.Sprintf("README.md example %d", i+1), m[1])
		if err == nil {
			err = app.Validate(cfg)
		}
		if err != nil {
			t.Errorf("example %d: %v", i+1, err)
		}
	}
	if n == 0 {
		t.Fatal("README.md has no configuration example")
	}
}

// TestThroughMecha runs a client (aws-sdk-go-v2) against a Mecha whose
// S3 frontend is backed by this backend, in front of a second Mecha: a
// request whose Content-MD5 does not match its body fails with
// BadDigest and leaves nothing upstream.
func TestThroughMecha(t *testing.T) {
	upstream := mechaS3(t)
	front := apptest.Start(t, fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: objects, protocol: s3, listen: "127.0.0.1:0", backend: remote, auth: {access_key: client, secret_key: client-secret}}
backends:
  remote: {type: s3, endpoint: %q, access_key: %s, secret_key: %s, health_interval: 100ms}
`, upstream, upstreamKey, upstreamSecret))
	client := s3sdk.New(s3sdk.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + apptest.Addr(t, front, "objects")), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("client", "client-secret", ""),
	})
	ctx := t.Context()
	direct := newStore(t, upstream, nil)
	_, err := client.CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: aws.String("through")})
	must(t, err)
	must(t, direct.HeadBucket(ctx, "through"))

	data := bytes.Repeat([]byte("0123456789"), 50_000)
	sum := md5.Sum(data)
	_, err = client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: aws.String("through"), Key: aws.String("dir/obj"), Body: bytes.NewReader(data),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])), Metadata: map[string]string{"who": "client"}})
	must(t, err)
	wantBody(t, direct, "through", "dir/obj", string(data))
	out, err := client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: aws.String("through"), Key: aws.String("dir/obj"), Range: aws.String("bytes=10-19")})
	must(t, err)
	part := make([]byte, 10)
	_, err = out.Body.Read(part)
	out.Body.Close()
	if string(part) != "0123456789" || aws.ToString(out.ContentRange) != fmt.Sprintf("bytes 10-19/%d", len(data)) || out.Metadata["who"] != "client" {
		t.Errorf("ranged get through Mecha: %q %q %q", part, aws.ToString(out.ContentRange), out.Metadata)
	}
	list, err := client.ListObjectsV2(ctx, &s3sdk.ListObjectsV2Input{Bucket: aws.String("through"), Delimiter: aws.String("/")})
	must(t, err)
	if len(list.CommonPrefixes) != 1 || aws.ToString(list.CommonPrefixes[0].Prefix) != "dir/" {
		t.Errorf("listing through Mecha: %+v", list.CommonPrefixes)
	}

	// A body whose Content-MD5 is wrong: the frontend finds it at the
	// body's end, and the upstream never completes the request.
	wrong := md5.Sum([]byte("something else"))
	for _, key := range []string{"dir/obj", "fresh"} {
		_, err = client.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: aws.String("through"), Key: aws.String(key), Body: bytes.NewReader(bytes.Repeat([]byte("x"), len(data))),
			ContentMD5: aws.String(base64.StdEncoding.EncodeToString(wrong[:]))}, func(o *s3sdk.Options) { o.Retryer = aws.NopRetryer{} })
		if err == nil || !strings.Contains(err.Error(), "BadDigest") {
			t.Errorf("put %s with a wrong Content-MD5: %v, want BadDigest", key, err)
		}
	}
	wantBody(t, direct, "through", "dir/obj", string(data))
	if _, err := direct.HeadObject(ctx, "through", "fresh"); !errors.Is(err, blob.ErrNoSuchKey) {
		t.Errorf("a body with a wrong Content-MD5 reached the upstream: %v", err)
	}
}

// TestListAfterCommonPrefix checks paging that resumes after a common
// prefix: gofakes3 lists that prefix again after start-after, and the
// store drops it and fills the page.
func TestListAfterCommonPrefix(t *testing.T) {
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			s := newStore(t, up.start(t), nil)
			ctx := t.Context()
			must(t, s.CreateBucket(ctx, "pages"))
			for _, k := range []string{"a", "a-b", "a/b", "a/c", "a/d/e", "b", "b/x", "c", "d"} {
				_, err := s.PutObject(ctx, "pages", k, strings.NewReader(k), int64(len(k)), blob.PutOptions{})
				must(t, err)
			}
			var got []string
			q := blob.ListQuery{Delimiter: "/", MaxKeys: 3}
			for range 10 {
				l, err := s.ListObjects(ctx, "pages", q)
				must(t, err)
				var page []string
				for _, o := range l.Objects {
					page = append(page, o.Key)
				}
				page = append(page, l.CommonPrefixes...)
				slices.Sort(page)
				got = append(got, strings.Join(page, " "))
				if !l.Truncated {
					break
				}
				q.After = l.Next
			}
			if want := []string{"a a-b a/", "b b/ c", "d"}; !slices.Equal(got, want) {
				t.Errorf("pages %q, want %q", got, want)
			}
		})
	}
}

// TestConditionalPut checks If-None-Match and If-Match on PutObject
// against both upstreams.
func TestConditionalPut(t *testing.T) {
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			s := newStore(t, up.start(t), nil)
			ctx := t.Context()
			must(t, s.CreateBucket(ctx, "cond"))
			put := func(data string, o blob.PutOptions) error {
				_, err := s.PutObject(ctx, "cond", "k", strings.NewReader(data), int64(len(data)), o)
				return err
			}
			must(t, put("first", blob.PutOptions{IfNoneMatch: true}))
			wantS3Error(t, "if-none-match on an existing key", put("second", blob.PutOptions{IfNoneMatch: true}), "PreconditionFailed", 412)
			wantS3Error(t, "if-match with another etag", put("third", blob.PutOptions{IfMatch: md5hex([]byte("other"))}), "PreconditionFailed", 412)
			wantBody(t, s, "cond", "k", "first")
			must(t, put("fourth", blob.PutOptions{IfMatch: md5hex([]byte("first"))}))
			must(t, put("fifth", blob.PutOptions{IfMatch: `"` + md5hex([]byte("fourth")) + `"`}))
			wantBody(t, s, "cond", "k", "fifth")
		})
	}
}

// TestCopySendsConditions checks that a copy's conditions on its
// destination and its directives reach the upstream (neither test
// upstream honours conditional copies yet).
func TestCopySendsConditions(t *testing.T) {
	seen := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-amz-copy-source") != "" {
			seen <- r.Header.Clone()
			w.Write([]byte(`<CopyObjectResult><ETag>"0123"</ETag><LastModified>2030-01-02T03:04:05.000Z</LastModified></CopyObjectResult>`))
			return
		}
		if r.Method == http.MethodHead {
			w.Header().Set("ETag", `"0123"`)
			w.Header().Set("Content-Length", "42")
			return
		}
		w.Write([]byte(`<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>`))
	}))
	t.Cleanup(srv.Close)
	s := newStore(t, srv.URL, nil)
	info, err := s.CopyObject(t.Context(), "src", "a b+c", "dst", "k", blob.CopyOptions{
		ReplaceMetadata: true, ReplaceTags: true,
		Meta: blob.PutOptions{ContentType: "text/plain", Tags: map[string]string{"t": "1"}, IfNoneMatch: true},
	})
	must(t, err)
	h := <-seen
	for name, want := range map[string]string{
		"If-None-Match": "*", "X-Amz-Copy-Source": "src/a%20b%2Bc", "X-Amz-Metadata-Directive": "REPLACE",
		"X-Amz-Tagging-Directive": "REPLACE", "X-Amz-Tagging": "t=1", "Content-Type": "text/plain",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if info.ETag != "0123" || info.Size != 42 || info.LastModified.Year() != 2030 {
		t.Errorf("copy info %+v", info)
	}
}
