// Package configs defines Mecha's configuration file: its shape, a strict
// loader that names the file, line and key of every problem, and the
// example configurations shipped beside it (each loaded by a test).
package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is a whole configuration file.
type Config struct {
	// Admin is the operator's HTTP endpoint (/healthz, /readyz, /metrics).
	Admin Admin `yaml:"admin"`
	// Log sets the level and format of Mecha's own logs.
	Log Log `yaml:"log"`
	// DataDir is where embedded stores keep their data.
	DataDir string `yaml:"data_dir"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxProcs is how many CPUs Mecha's Go code may run on at once. 0 (the
	// default) chooses by what Mecha serves: half the machine's CPUs, at
	// least one, for small-request protocols (a sidecar shares its machine
	// with the application and the backend, and on a small machine fewer
	// threads waking each other is faster); every CPU once an S3 frontend
	// is configured, whose bulk transfers gain from running in parallel.
	// The GOMAXPROCS environment variable, when set, takes precedence.
	MaxProcs int `yaml:"max_procs"`
	// Frontends are the listeners clients connect to; each entry names its
	// protocol, listen address and backend, plus the protocol's options.
	Frontends []Node `yaml:"frontends"`
	// Backends are the stores requests are served from, by name; each
	// entry names its type plus the type's options.
	Backends map[string]Node `yaml:"backends"`
	// GRPC is the gRPC API for configuration, locks, pub/sub and
	// sequencers (package grpcapi decodes it); absent, it is off.
	GRPC Node `yaml:"grpc"`

	// Source names the file the configuration came from.
	Source string `yaml:"-"`
}

// Admin configures the admin HTTP endpoint.
type Admin struct {
	// Listen is the address of /healthz, /readyz and /metrics; empty
	// disables the endpoint.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ (for diagnosing
	// Mecha itself; keep it off where the admin port is reachable).
	Pprof bool `yaml:"pprof"`
}

// Validate checks the admin listen address.
func (a *Admin) Validate() error {
	if a.Listen == "" {
		return nil
	}
	return CheckListen("listen", a.Listen)
}

// Log configures Mecha's logs.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Validate checks level and format.
func (l *Log) Validate() error {
	var errs []error
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, Errorf("level", "must be debug, info, warn or error, not %q", l.Level))
	}
	switch l.Format {
	case "text", "json":
	default:
		errs = append(errs, Errorf("format", "must be text or json, not %q", l.Format))
	}
	return errors.Join(errs...)
}

// Validate checks the top-level values.
func (c *Config) Validate() error {
	if c.MaxProcs < 0 {
		return Errorf("max_procs", "must not be negative")
	}
	return nil
}

// Procs is the GOMAXPROCS value MaxProcs asks for on a machine with cpus
// CPUs.
func (c *Config) Procs(cpus int) int {
	if c.MaxProcs > 0 {
		return c.MaxProcs
	}
	for _, f := range c.Frontends {
		if p, _ := f.Scalar("protocol"); p == "s3" {
			return max(1, cpus)
		}
	}
	return max(1, cpus/2)
}

// Defaults returns the settings of a file that sets nothing.
func Defaults() *Config {
	return &Config{
		Admin:           Admin{Listen: "127.0.0.1:34999"},
		Log:             Log{Level: "info", Format: "text"},
		DataDir:         "./mecha-data",
		ShutdownTimeout: Duration(10e9),
	}
}

// Load reads and decodes the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a configuration from data; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			doc = yaml.Node{}
		} else {
			return nil, &Error{Pos: Pos{File: name}, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Pos: Pos{File: name, Line: extra.Line}, Msg: "only one YAML document is allowed"}
	}
	cfg := Defaults()
	cfg.Source = name
	if doc.Kind == 0 || (len(doc.Content) > 0 && doc.Content[0].ShortTag() == "!!null") {
		return cfg, nil
	}
	if err := (Node{node: &doc, file: name}).Decode(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// CheckListen validates a host:port listen address for key.
func CheckListen(key, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Errorf(key, "invalid address %q: want host:port", addr)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return Errorf(key, "invalid address %q: host must be an IP address or localhost", addr)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != port {
		return Errorf(key, "invalid port in %q", addr)
	}
	return nil
}

// CheckAddr validates a host:port address to dial for key.
func CheckAddr(key, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return Errorf(key, "invalid address %q: want host:port", addr)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p <= 0 || p > 65535 || fmt.Sprint(p) != port {
		return Errorf(key, "invalid port in %q", addr)
	}
	return nil
}
