// Package s3 is the `type: s3` blob backend: buckets and objects kept by
// an S3-compatible upstream (AWS S3, MinIO, Ceph RGW, another Mecha ...),
// reached through aws-sdk-go-v2 with the gateway's own credentials.
//
// Every blob.Store call is one S3 request upstream (a few need a second:
// see README.md). Bodies stream both ways without being held in memory:
// an upload of known size is sent with its Content-Length and an unsigned
// payload, its last byte held back until the client's body has ended
// cleanly, so that a body that fails — a bad checksum or signature the
// frontend finds at its end — can never complete the upstream request.
// Upstream errors come back as *blob.Error with S3's code, status and
// message; an upstream that cannot be reached gives 503
// ServiceUnavailable naming it, within the configured timeouts.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

func init() {
	backends.RegisterType("s3", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: s3` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// Endpoint is the upstream's URL: http:// or https://, host and
	// port, no path (e.g. https://s3.eu-west-1.amazonaws.com,
	// http://127.0.0.1:9000).
	Endpoint string `yaml:"endpoint"`
	// Region is the region requests are signed for, and the location
	// constraint of buckets created outside us-east-1.
	Region string `yaml:"region"`
	// AccessKey and SecretKey are the gateway's own credentials at the
	// upstream (clients' credentials are the frontend's and never go
	// upstream). Both empty sends unsigned requests.
	AccessKey string         `yaml:"access_key"`
	SecretKey configs.Secret `yaml:"secret_key"`
	// PathStyle addresses buckets as http://host/bucket/key (true, what
	// most S3-compatible servers expect) rather than as
	// http://bucket.host/key (false, AWS's virtual-hosted style).
	PathStyle bool `yaml:"path_style"`
	// BucketPrefix is put before every bucket name upstream, so that
	// several gateways can share one account: with "app1-", the client's
	// bucket "photos" is "app1-photos" upstream, and ListBuckets shows
	// only the buckets that have the prefix, without it.
	BucketPrefix string `yaml:"bucket_prefix"`
	// TLS configures HTTPS to the upstream (authorities, client
	// certificate); only with an https endpoint. Without it the system's
	// authorities are trusted.
	TLS *configs.TLSClient `yaml:"tls"`
	// DialTimeout bounds opening a connection (TCP and TLS).
	DialTimeout configs.Duration `yaml:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for the upstream's answer
	// once a request, body included, has been sent.
	ResponseHeaderTimeout configs.Duration `yaml:"response_header_timeout"`
	// StallTimeout fails a request whose connection neither sends nor
	// receives a byte for this long: an upload or download that stops
	// moving. It must not be shorter than response_header_timeout.
	StallTimeout configs.Duration `yaml:"stall_timeout"`
	// MaxRetries is how many times a request that failed for a reason
	// worth retrying (network error, 5xx, throttling) is sent again, with
	// jittered backoff. Uploads of a client's body are never retried:
	// the body streams through once.
	MaxRetries int `yaml:"max_retries"`
	// MaxIdleConns is how many idle connections to the upstream are kept
	// for reuse.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// HealthInterval is how often the upstream is checked (ListBuckets).
	HealthInterval configs.Duration `yaml:"health_interval"`
	// SpoolDir is where a body of unknown length is written before it is
	// sent (S3 needs every upload's length up front); default: the
	// system's temporary directory. Bodies up to 1 MiB stay in memory.
	SpoolDir string `yaml:"spool_dir"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() *Config {
	return &Config{
		Region:                "us-east-1",
		PathStyle:             true,
		DialTimeout:           configs.Duration(5 * time.Second),
		ResponseHeaderTimeout: configs.Duration(30 * time.Second),
		StallTimeout:          configs.Duration(60 * time.Second),
		MaxRetries:            2,
		MaxIdleConns:          100,
		HealthInterval:        configs.Duration(5 * time.Second),
	}
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, configs.Errorf("endpoint", "is required: the upstream's URL, e.g. http://127.0.0.1:9000"))
	} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, configs.Errorf("endpoint", "%q is not an http:// or https:// URL with a host", c.Endpoint))
	} else if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		errs = append(errs, configs.Errorf("endpoint", "%q must be scheme://host[:port] only, without path, query or user", c.Endpoint))
	} else if c.TLS != nil && u.Scheme != "https" {
		errs = append(errs, configs.Errorf("tls", "is set but the endpoint is not https://"))
	}
	if c.Region == "" {
		errs = append(errs, configs.Errorf("region", "is required (us-east-1 when the upstream does not care)"))
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, configs.Errorf("access_key", "access_key and secret_key go together (both empty: unsigned requests)"))
	}
	if len(c.BucketPrefix) > 32 || strings.Trim(c.BucketPrefix, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		errs = append(errs, configs.Errorf("bucket_prefix", "must be at most 32 characters among a-z, 0-9, '.' and '-'"))
	}
	for _, d := range []struct {
		key string
		v   configs.Duration
	}{{"dial_timeout", c.DialTimeout}, {"response_header_timeout", c.ResponseHeaderTimeout}, {"stall_timeout", c.StallTimeout}, {"health_interval", c.HealthInterval}} {
		if d.v <= 0 {
			errs = append(errs, configs.Errorf(d.key, "must be positive"))
		}
	}
	if c.StallTimeout > 0 && c.StallTimeout < c.ResponseHeaderTimeout {
		errs = append(errs, configs.Errorf("stall_timeout", "must not be shorter than response_header_timeout (%s)", c.ResponseHeaderTimeout.D()))
	}
	if c.MaxRetries < 0 || c.MaxRetries > 10 {
		errs = append(errs, configs.Errorf("max_retries", "must be between 0 and 10"))
	}
	if c.MaxIdleConns < 0 {
		errs = append(errs, configs.Errorf("max_idle_conns", "must not be negative"))
	}
	if c.SpoolDir != "" {
		if st, err := os.Stat(c.SpoolDir); err != nil || !st.IsDir() {
			errs = append(errs, configs.Errorf("spool_dir", "%q is not a directory", c.SpoolDir))
		}
	}
	return errors.Join(errs...)
}

// Store is the S3 backend.
type Store struct {
	cfg      *Config
	name     string
	log      *slog.Logger
	endpoint string // for messages
	client   *s3sdk.Client
	// once is the client for requests that must not be retried (uploads
	// of a one-shot body, health probes).
	once   *s3sdk.Client
	closer interface{ CloseIdleConnections() }
	// fast sends GetObject as a plain signed request (nil: not used).
	fast   *fastPath
	health backends.HealthCell
	ops    *metrics.CommandTable

	wake chan struct{}
	// stop ends the health checks, one in flight included.
	stop    context.CancelFunc
	done    sync.WaitGroup
	started atomic.Bool
	closed  atomic.Bool
	lifeMu  sync.Mutex
}

var (
	_ blob.Store        = (*Store)(nil)
	_ metrics.Collector = (*Store)(nil)
)

// New builds the store; nothing is sent upstream before Start.
func New(cfg *Config, env backends.Env) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 backend %s: %w", env.Name, err)
	}
	s := &Store{
		cfg:      cfg,
		name:     env.Name,
		log:      env.Logger,
		endpoint: strings.TrimSuffix(cfg.Endpoint, "/"),
		ops:      metrics.NewCommandTable(operations),
		wake:     make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.buildClients(); err != nil {
		return nil, fmt.Errorf("s3 backend %s: %w", env.Name, err)
	}
	return s, nil
}

// Start checks the upstream once and starts the periodic checks. An
// upstream that is down is not an error: the store reports DOWN and
// recovers by itself.
func (s *Store) Start(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed.Load() || s.started.Swap(true) {
		return nil
	}
	s.probe(ctx)
	loopCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done.Add(1)
	go s.healthLoop(loopCtx)
	return nil
}

// Close stops the health checks and drops idle connections. Requests in
// flight finish or fail on their own.
func (s *Store) Close() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	if s.started.Load() {
		s.stop()
		s.done.Wait()
	}
	s.closer.CloseIdleConnections()
	return nil
}

// Health is UP while the upstream answers S3 requests with the gateway's
// credentials.
func (s *Store) Health() backends.Health { return s.health.Get() }

func (s *Store) healthLoop(ctx context.Context) {
	defer s.done.Done()
	t := time.NewTicker(s.cfg.HealthInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		s.probe(ctx)
	}
}

// kick asks for a health check now (a request could not reach the
// upstream).
func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// credentialErrors are the codes of an upstream that does not accept
// the gateway's credentials at all.
var credentialErrors = map[string]bool{
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "InvalidToken": true,
	"ExpiredToken": true, "AuthorizationHeaderMalformed": true, "InvalidSecurity": true,
}

// probe checks the upstream with a ListBuckets of at most one bucket.
// It is DOWN when it cannot be reached, answers 5xx, or refuses the
// gateway's credentials; any other answer (AccessDenied for credentials
// limited to some buckets, say) shows an upstream that is UP.
func (s *Store) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout.D()+s.cfg.ResponseHeaderTimeout.D())
	defer cancel()
	_, err := s.once.ListBuckets(ctx, &s3sdk.ListBucketsInput{MaxBuckets: ptr(int32(1))})
	if err == nil {
		s.setHealth(backends.StateUp, "")
		return
	}
	e := s.classify(ctx, "health check", err, nil)
	var be *blob.Error
	switch {
	case errors.As(e, new(*unreachableError)):
		s.setHealth(backends.StateDown, fmt.Sprintf("cannot reach upstream %s: %v", s.endpoint, innermost(err)))
	case errors.As(e, &be) && credentialErrors[be.Code]:
		s.setHealth(backends.StateDown, fmt.Sprintf("upstream %s refuses the configured credentials: %s", s.endpoint, be))
	case errors.As(e, &be) && be.Status < 500:
		// It answers S3 requests, if not this one (credentials limited
		// to some buckets, a server without ListBuckets).
		s.setHealth(backends.StateUp, fmt.Sprintf("upstream %s answers, but refuses ListBuckets: %s", s.endpoint, be))
	case errors.As(e, &be):
		s.setHealth(backends.StateDown, fmt.Sprintf("upstream %s answers %d %s", s.endpoint, be.Status, be))
	default:
		s.setHealth(backends.StateDown, fmt.Sprintf("upstream %s: %v", s.endpoint, e))
	}
}

func (s *Store) setHealth(st backends.State, detail string) {
	if s.health.Set(st, detail) {
		if st == backends.StateUp {
			s.log.Info("s3 upstream is up", "endpoint", s.endpoint)
		} else {
			s.log.Warn("s3 upstream is down", "endpoint", s.endpoint, "detail", detail)
		}
	}
}

// operations are the upstream operations counted in metrics, as the SDK
// names them.
var operations = []string{
	"ListBuckets", "CreateBucket", "DeleteBucket", "HeadBucket", "ListObjectsV2",
	"HeadObject", "GetObject", "PutObject", "DeleteObject", "CopyObject",
	"GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging",
	"CreateMultipartUpload", "UploadPart", "ListParts", "CompleteMultipartUpload",
	"AbortMultipartUpload", "ListMultipartUploads",
}

var operationIndex = func() map[string]int {
	m := make(map[string]int, len(operations))
	for i, op := range operations {
		m[op] = i
	}
	return m
}()

// CollectMetrics exports the upstream requests, by operation, and
// whether the upstream is up.
func (s *Store) CollectMetrics(w *metrics.Writer) {
	b := metrics.Label{Name: "backend", Value: s.name}
	up := 0.0
	if s.health.Get().State == backends.StateUp {
		up = 1
	}
	w.Gauge("mecha_s3_upstream_up", "1 when the upstream S3 answers the gateway's requests.", up, b)
	for i, op := range operations {
		st := s.ops.Get(i)
		if st.Calls.Load() == 0 {
			continue
		}
		l := []metrics.Label{b, {Name: "operation", Value: op}}
		w.Counter("mecha_s3_upstream_requests_total", "Requests sent to the upstream S3 (each attempt), by operation.", float64(st.Calls.Load()), l...)
		w.Counter("mecha_s3_upstream_errors_total", "Upstream requests that failed: an error answer or no answer, by operation.", float64(st.Errors.Load()), l...)
		w.Histogram("mecha_s3_upstream_duration_seconds", "Time from sending a request upstream to its answer's headers, by operation.", &st.Latency, l...)
	}
}

// api is the client for a request: with retries, unless the upstream
// is known to be down, when requests fail at the first attempt rather
// than keep their clients waiting through backoffs.
func (s *Store) api() *s3sdk.Client {
	if s.health.Get().State == backends.StateDown {
		return s.once
	}
	return s.client
}

// bucket is a client's bucket name as the upstream knows it.
func (s *Store) bucket(name string) *string { return ptr(s.cfg.BucketPrefix + name) }

func ptr[T any](v T) *T { return &v }

// val returns what p points to, or the zero value.
func val[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
