package s3

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mecha-gateway/mecha/configs"
)

// maxBackoff bounds the wait between two attempts of a retried request.
const maxBackoff = 2 * time.Second

// buildClients makes the HTTP client and the two SDK clients: one that
// retries, one that does not.
func (s *Store) buildClients() error {
	c := s.cfg
	u, _ := url.Parse(c.Endpoint) // checked by Validate
	var tlsConf *tls.Config
	if u.Scheme == "https" {
		t := c.TLS
		if t == nil {
			t = &configs.TLSClient{}
		}
		var err error
		if tlsConf, err = t.Build(u.Hostname()); err != nil {
			return err
		}
	}
	dialer := &net.Dialer{Timeout: c.DialTimeout.D(), KeepAlive: 30 * time.Second}
	stall := c.StallTimeout.D()
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: conn, timeout: stall}, nil
		},
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   c.DialTimeout.D(),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          c.MaxIdleConns,
		MaxIdleConnsPerHost:   c.MaxIdleConns,
		IdleConnTimeout:       min(90*time.Second, stall),
		ResponseHeaderTimeout: c.ResponseHeaderTimeout.D(),
		ExpectContinueTimeout: time.Second,
		// Objects stored with Content-Encoding: gzip are served as they
		// are, never inflated on the way.
		DisableCompression: true,
	}
	s.closer = tr
	httpClient := &http.Client{
		Transport: tr,
		// Redirects (a bucket in another region) come back as the
		// upstream's errors rather than being followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if c.AccessKey != "" {
		creds = credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey.Reveal(), "")
	}
	base := s3sdk.Options{
		Region:       c.Region,
		BaseEndpoint: aws.String(c.Endpoint),
		UsePathStyle: c.PathStyle,
		Credentials:  creds,
		HTTPClient:   httpClient,
		Logger:       logging.Nop{},
		// The SDK computes no checksum of its own: it would have to read
		// a body twice. Checksums the client sent are forwarded as they
		// are, and checked by the upstream.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
		APIOptions: []func(*middleware.Stack) error{
			s.countRequests,
			dropDefaultContentType,
			// Payloads are never hashed for the signature: bodies stream
			// through once, and the upstream checks the MD5 and any
			// checksum itself.
			v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware,
		},
	}
	retrying := base
	retrying.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = c.MaxRetries + 1
		o.MaxBackoff = maxBackoff
		// No client-side retry quota: when it runs out the SDK fails
		// requests with an error of its own instead of the upstream's.
		o.RateLimiter = ratelimit.None
	})
	s.client = s3sdk.New(retrying)
	single := base
	single.Retryer = aws.NopRetryer{}
	s.once = s3sdk.New(single)
	if c.PathStyle {
		s.fast = &fastPath{http: httpClient, endpoint: strings.TrimRight(c.Endpoint, "/"), region: c.Region,
			signer: v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })}
		if c.AccessKey != "" {
			s.fast.creds = &aws.Credentials{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey.Reveal()}
		}
	}
	return nil
}

// countRequests records every attempt of every operation in the store's
// metrics: sent, failed, and the time to the answer's headers.
func (s *Store) countRequests(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("MechaUpstreamMetrics",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			i, ok := operationIndex[middleware.GetOperationName(ctx)]
			if !ok {
				return next.HandleFinalize(ctx, in)
			}
			st := s.ops.Get(i)
			st.Calls.Inc()
			began := time.Now()
			out, md, err := next.HandleFinalize(ctx, in)
			st.Latency.Observe(time.Since(began))
			if err != nil {
				st.Errors.Inc()
			}
			return out, md, err
		}), middleware.After)
}

// dropDefaultContentType removes the Content-Type the SDK gives a body
// the caller gave none ("application/octet-stream"): an object stored
// without a type keeps none, and the upstream answers its own default
// (S3: binary/octet-stream), as it would to the client directly.
func dropDefaultContentType(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("MechaDropDefaultContentType",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok && smithyhttp.GetIsContentTypeDefaultValue(ctx) {
				req.Header.Del("Content-Type")
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
}

// stallConn is a connection on which every read and write must make
// progress within timeout. Any progress, either way, extends the
// deadline of both: a long upload keeps alive the read that waits for
// its answer.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.Conn.SetDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}
