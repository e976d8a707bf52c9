// Package s3 runs unmodified S3 clients (aws-sdk-go-v2, minio-go, the aws
// CLI, boto3, rclone, s3cmd) against Mecha's S3 frontend, on each object
// store backend.
package s3

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// The credentials every test signs with.
const (
	accessKey = "mecha"
	secretKey = "mecha-secret"
)

// backendKinds are the stores every client test runs against.
var backendKinds = []string{"fs", "memory"}

// env is Mecha with one S3 frontend on one backend.
type env struct {
	kind     string
	endpoint string // http://127.0.0.1:port
	addr     string
}

// start runs Mecha with an S3 frontend on a backend of kind.
func start(t *testing.T, kind string) *env { return startWith(t, kind, "") }

// startWith runs Mecha with extra frontend settings (", tls: {...}").
func startWith(t *testing.T, kind, extra string) *env {
	t.Helper()
	backend := fmt.Sprintf("{type: fs, root: %q}", t.TempDir())
	if kind == "memory" {
		backend = "{type: memory, max_bytes: 1gb}"
	}
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: ""}
frontends:
  - {name: objects, protocol: s3, listen: "127.0.0.1:0", backend: store, auth: {access_key: %s, secret_key: %s}%s}
backends:
  store: %s
`, accessKey, secretKey, extra, backend))
	addr := apptest.Addr(t, m, "objects")
	return &env{kind: kind, endpoint: "http://" + addr, addr: addr}
}

// forEachBackend runs fn as a subtest on every backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			if testing.Short() {
				t.Skip("starts Mecha")
			}
			fn(t, start(t, kind))
		})
	}
}

// sdk is an aws-sdk-go-v2 client with its defaults (checksums when
// supported), path style.
func (e *env) sdk(opts ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	}, opts...)
}

// mkBucket creates a bucket with the SDK.
func mkBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}
