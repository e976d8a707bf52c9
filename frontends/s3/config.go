package s3

import (
	"errors"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends"
)

// Config is the `protocol: s3` frontend's configuration.
type Config struct {
	frontends.Base `yaml:",inline"`
	// Auth holds the credentials clients sign requests with. Without an
	// auth entry the defaults apply (mecha / mecha-secret).
	Auth Auth `yaml:"auth"`
	// Region is the region the frontend reports (GetBucketLocation) and
	// that signatures may name; any region is accepted in signatures
	// unless StrictRegion is set.
	Region       string `yaml:"region"`
	StrictRegion bool   `yaml:"strict_region"`
	// Domains are the host names under which buckets are addressed as
	// subdomains (virtual-hosted style: <bucket>.<domain>). Other hosts,
	// IP addresses included, are path style.
	Domains []string `yaml:"domains"`
	// TLS, when set, makes the listener speak HTTPS only.
	TLS *configs.TLSServer `yaml:"tls"`
	// MaxSkew is how far a signed request's time may be from Mecha's.
	MaxSkew configs.Duration `yaml:"max_skew"`
	// ReadHeaderTimeout bounds reading a request's headers; IdleTimeout
	// closes keep-alive connections idle for longer.
	ReadHeaderTimeout configs.Duration `yaml:"read_header_timeout"`
	IdleTimeout       configs.Duration `yaml:"idle_timeout"`
	// BodyTimeout fails a request whose body sends nothing for this long
	// (S3's RequestTimeout), so that a stalled or hostile client does not
	// hold a request open without end.
	BodyTimeout configs.Duration `yaml:"body_timeout"`
	// MaxObjectSize is the largest single PUT (S3: 5 GiB); larger ones
	// get EntityTooLarge and must use multipart.
	MaxObjectSize configs.Size `yaml:"max_object_size"`
}

// Auth is the frontend's credentials.
type Auth struct {
	AccessKey string         `yaml:"access_key"`
	SecretKey configs.Secret `yaml:"secret_key"`
	// Keys are more credential pairs: access key → secret key.
	Keys map[string]configs.Secret `yaml:"keys"`
	// Anonymous lets unsigned requests through. Signed requests are
	// still verified.
	Anonymous bool `yaml:"anonymous"`
}

// DefaultConfig returns the defaults: the keys of a fresh local install,
// region us-east-1, S3's own limits.
func DefaultConfig() *Config {
	return &Config{
		Base:              frontends.Base{Protocol: "s3"},
		Auth:              Auth{AccessKey: "mecha", SecretKey: "mecha-secret"},
		Region:            "us-east-1",
		Domains:           []string{"localhost"},
		MaxSkew:           configs.Duration(15 * time.Minute),
		ReadHeaderTimeout: configs.Duration(30 * time.Second),
		IdleTimeout:       configs.Duration(2 * time.Minute),
		BodyTimeout:       configs.Duration(time.Minute),
		MaxObjectSize:     5 << 30,
	}
}

// Validate checks the values.
func (c *Config) Validate() error {
	// Base and TLS validate themselves (the decoder walks every field).
	var errs []error
	if (c.Auth.AccessKey == "") != (c.Auth.SecretKey == "") {
		errs = append(errs, configs.Errorf("auth", "access_key and secret_key go together"))
	}
	if c.Auth.AccessKey == "" && len(c.Auth.Keys) == 0 && !c.Auth.Anonymous {
		errs = append(errs, configs.Errorf("auth", "needs access_key and secret_key, keys, or anonymous: true"))
	}
	for ak, sk := range c.Auth.Keys {
		if ak == "" || sk == "" || strings.ContainsAny(ak, " /\t\r\n") {
			errs = append(errs, configs.Errorf("auth.keys", "invalid pair for access key %q", ak))
		}
	}
	if c.Region == "" {
		errs = append(errs, configs.Errorf("region", "is required"))
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "/: ") {
			errs = append(errs, configs.Errorf("domains", "%q is not a host name", d))
		}
	}
	if c.MaxSkew <= 0 {
		errs = append(errs, configs.Errorf("max_skew", "must be positive"))
	}
	if c.ReadHeaderTimeout <= 0 || c.IdleTimeout <= 0 || c.BodyTimeout <= 0 {
		errs = append(errs, configs.Errorf("read_header_timeout", "timeouts must be positive"))
	}
	if c.MaxObjectSize < 1 {
		errs = append(errs, configs.Errorf("max_object_size", "must be positive"))
	}
	return errors.Join(errs...)
}

// secret returns the secret key of an access key.
func (a *Auth) secret(accessKey string) (string, bool) {
	if accessKey == a.AccessKey && a.AccessKey != "" {
		return string(a.SecretKey), true
	}
	sk, ok := a.Keys[accessKey]
	return string(sk), ok
}
