package configs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSClient configures TLS towards an upstream.
type TLSClient struct {
	// CAFile is a PEM bundle of authorities to trust; empty trusts the
	// system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for upstreams that
	// require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the upstream's certificate
	// (default: the host of the address).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. Never use it
	// outside tests.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks that certificate and key come together.
func (t *TLSClient) Validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return Errorf("cert_file", "cert_file and key_file must be set together")
	}
	return nil
}

// Build returns the tls.Config.
func (t *TLSClient) Build(serverName string) (*tls.Config, error) {
	c := &tls.Config{ServerName: serverName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// TLSServer configures TLS on a listener.
type TLSServer struct {
	// CertFile and KeyFile are the server's certificate and key (PEM).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires clients to present a certificate
	// signed by one of these authorities.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Validate checks that certificate and key are set.
func (t *TLSServer) Validate() error {
	var errs []error
	if t.CertFile == "" {
		errs = append(errs, Errorf("cert_file", "is required"))
	}
	if t.KeyFile == "" {
		errs = append(errs, Errorf("key_file", "is required"))
	}
	return errors.Join(errs...)
}

// Build returns the tls.Config.
func (t *TLSServer) Build() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pool, err := loadPool(t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
