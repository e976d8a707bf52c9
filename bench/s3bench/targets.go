package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// versitygwVersion is the peer gateway the throughput suite compares with.
const versitygwVersion = "v1.7.0"

// target is one S3 endpoint the load runs against.
type target struct {
	name     string
	endpoint string // http://127.0.0.1:port
	bucket   string
	client   *s3.Client
	procs    []*server // whose memory is watched (the first is the target's own)
}

// mechaConfig is Mecha's configuration with one S3 frontend on the
// backend described by backendYAML.
func (b *bench) mechaConfig(name string, port, admin int, backendYAML string) string {
	return fmt.Sprintf(`admin: {listen: 127.0.0.1:%d}
log: {level: warn}
data_dir: %s
%s
frontends:
  - {name: objects, protocol: s3, listen: 127.0.0.1:%d, backend: store, auth: {access_key: %s, secret_key: %s}}
backends:
  store: %s
`, admin, b.subdir(name+"-data"), b.o.mechaExtra, port, accessKey, secretKey, backendYAML)
}

// validate runs `mecha validate` on a config with the given backend and
// returns its complaint, if any. A backend type the binary does not have
// gives an error starting with "unavailable".
func (b *bench) validate(name, backendYAML string) error {
	cfg := filepath.Join(b.dir, name+"-validate.yaml")
	check(os.WriteFile(cfg, []byte(b.mechaConfig(name, 1, 2, backendYAML)), 0o644))
	out, err := exec.Command(b.mecha, "validate", "-c", cfg).CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	if i := strings.Index(msg, "unknown backend type"); i >= 0 {
		return fmt.Errorf("unavailable: %s in %s", msg[i:], b.mecha)
	}
	return fmt.Errorf("config refused: %s", msg)
}

// startMecha runs Mecha with one S3 frontend on backendYAML and waits for
// /readyz.
func (b *bench) startMecha(name, backendYAML string) (*server, string) {
	port, admin := freePort(), freePort()
	cfg := filepath.Join(b.dir, name+".yaml")
	check(os.WriteFile(cfg, []byte(b.mechaConfig(name, port, admin, backendYAML)), 0o644))
	s := start(b.dir, name, b.mecha, "run", "-c", cfg)
	waitReady(s, fmt.Sprintf("http://127.0.0.1:%d/readyz", admin), false)
	if b.o.verbose {
		fmt.Printf("  started %s (pid %d): backend %s, log %s\n", name, s.pid(), backendYAML, s.log)
	}
	return s, fmt.Sprintf("http://127.0.0.1:%d", port)
}

// fsBackend is the YAML of Mecha's fs backend rooted in a fresh directory.
func (b *bench) fsBackend(name string) string {
	return fmt.Sprintf("{type: fs, root: %s, fsync: %t}", b.subdir(name+"-objects"), b.o.fsync)
}

// s3Backend is the YAML of Mecha's s3 backend in front of endpoint.
func s3Backend(endpoint string) string {
	return fmt.Sprintf("{type: s3, endpoint: %q, region: %s, path_style: true, access_key: %s, secret_key: %s}",
		endpoint, region, accessKey, secretKey)
}

// startVersitygw runs versitygw's posix backend on a fresh directory.
func (b *bench) startVersitygw(bin string) (*server, string) {
	port := freePort()
	root := b.subdir("versitygw-objects")
	s := start(b.dir, "versitygw", bin, "--port", fmt.Sprintf("127.0.0.1:%d", port),
		"--access", accessKey, "--secret", secretKey, "--region", region, "--quiet", "posix", root)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(s, endpoint+"/", true) // 403 without a signature: listening
	if b.o.verbose {
		fmt.Printf("  started versitygw (pid %d): posix %s, log %s\n", s.pid(), root, s.log)
	}
	return s, endpoint
}

// versitygwBinary returns the cached versitygw build, building it from the
// Go module proxy the first time.
func versitygwBinary(cacheDir string) string {
	if cacheDir == "" {
		switch {
		case os.Getenv("XDG_CACHE_HOME") != "":
			cacheDir = filepath.Join(os.Getenv("XDG_CACHE_HOME"), "mecha-s3bench")
		case isDir("bench/s3bench"):
			cacheDir = "bench/s3bench/.cache"
		default:
			d, err := os.UserCacheDir()
			check(err)
			cacheDir = filepath.Join(d, "mecha-s3bench")
		}
	}
	cacheDir, err := filepath.Abs(cacheDir)
	check(err)
	bin := filepath.Join(cacheDir, "versitygw-"+versitygwVersion, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	fmt.Printf("building versitygw %s into %s (once; takes a minute)\n", versitygwVersion, bin)
	check(os.MkdirAll(filepath.Dir(bin), 0o755))
	gobin, err := os.MkdirTemp(filepath.Dir(bin), "build")
	check(err)
	defer os.RemoveAll(gobin)
	// The command is in cmd/versitygw (the module root is a library).
	install := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+versitygwVersion)
	install.Dir = gobin // outside this module
	install.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOBIN="+gobin, "GOWORK=off")
	install.Stdout, install.Stderr = os.Stderr, os.Stderr
	check(install.Run())
	check(os.Rename(filepath.Join(gobin, "versitygw"), bin))
	return bin
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// newClient is an aws-sdk-go-v2 client for endpoint, set up the same way
// for every target: path style, static credentials, checksums only where
// an operation requires them, no retries (a failed request is counted,
// not hidden), and enough idle connections for every client.
func newClient(endpoint string, o options) *s3.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4 * (o.clients + o.partConc),
		MaxIdleConnsPerHost:   4 * (o.clients + o.partConc),
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
	var apiOptions []func(*s3.Options)
	if o.unsignedPut {
		apiOptions = append(apiOptions, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	}
	return s3.New(s3.Options{
		Region:                     region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		Retryer:                    aws.NopRetryer{},
		HTTPClient:                 &http.Client{Transport: tr},
	}, apiOptions...)
}

// newTarget makes a target with its client and bucket.
func newTarget(name, endpoint, bucket string, o options, procs ...*server) *target {
	t := &target{name: name, endpoint: endpoint, bucket: bucket, client: newClient(endpoint, o), procs: procs}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := t.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		check(fmt.Errorf("%s: create bucket %s: %w", name, bucket, err))
	}
	return t
}
