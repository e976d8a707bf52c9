// Command mecha is the Mecha gateway: one binary that serves Redis (and,
// as their issues land, S3, MySQL and gRPC) clients on localhost from the
// backends chosen in its configuration.
//
//	mecha run [-c mecha.yaml]   start (built-in defaults without -c)
//	mecha validate -c FILE      check a configuration and exit
//	mecha version               print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	s3fe "github.com/mecha-gateway/mecha/frontends/s3"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	_ "github.com/mecha-gateway/mecha/cmd/mecha/modules"
	"github.com/mecha-gateway/mecha/configs"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  mecha run [-c FILE]      start Mecha (built-in defaults when no FILE)
  mecha validate -c FILE   check a configuration file
  mecha version            print the version
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "mecha", getVersion())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "mecha: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func getVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func loadConfig(path string) (*configs.Config, error) {
	if path == "" {
		return configs.Default(), nil
	}
	return configs.Load(path)
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "mecha validate: -c FILE is required")
		return 2
	}
	cfg, err := configs.Load(*path)
	if err == nil {
		err = app.Validate(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(cfg.Log.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "configuration file (default: built-in defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	setProcs(cfg, log)
	began := time.Now()
	m, err := app.Start(context.Background(), cfg, log, getVersion())
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	for _, f := range m.Frontends() {
		log.Info("listening", "frontend", f[0], "protocol", f[1], "addr", f[2], "login", loginHint(cfg, f[1], f[0]))
	}
	grpcLogin := "no token"
	if m.GRPCTokenRequired() {
		grpcLogin = "token required (authorization: Bearer, or dapr-api-token)"
	}
	if a := m.GRPCAddr(); a != nil {
		log.Info("listening", "frontend", "grpc", "protocol", "grpc", "addr", a.String(), "login", grpcLogin, "services", "mecha.runtime.v1 (Configuration, Lock, PubSub, Sequencer)")
	}
	if a := m.DaprAddr(); a != nil {
		log.Info("listening", "frontend", "dapr", "protocol", "grpc", "addr", a.String(), "login", grpcLogin, "services", "dapr.proto.runtime.v1.Dapr (configuration, lock, pub/sub)")
	}
	if a := m.AdminAddr(); a != nil {
		log.Info("admin endpoint", "addr", a.String(), "paths", "/healthz /readyz /metrics")
	}
	releaseStartupPages()
	log.Info("mecha ready", "version", getVersion(), "config", cfg.Source, "startup", time.Since(began).Round(time.Microsecond))

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			reload(m, *path, log)
			continue
		}
		log.Info("shutting down", "signal", sig.String(), "drain", m.ShutdownTimeout())
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout())
		done := make(chan struct{})
		go func() {
			m.Shutdown(ctx)
			close(done)
		}()
		select {
		case <-done:
		case sig := <-sigs:
			log.Warn("second signal: exiting without waiting", "signal", sig.String())
			cancel()
			return 1
		}
		cancel()
		log.Info("stopped")
		return 0
	}
	return 0
}

func reload(m *app.Mecha, path string, log *slog.Logger) {
	if path == "" {
		log.Warn("SIGHUP ignored: running on built-in defaults, there is no file to reload")
		return
	}
	cfg, err := configs.Load(path)
	if err == nil {
		err = m.Reload(context.Background(), cfg, m.ShutdownTimeout())
	}
	if err == nil {
		setProcs(cfg, log)
	}
	if err != nil {
		var ce configs.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				log.Error("reload refused; the running configuration stays", "error", e.Error())
			}
			return
		}
		log.Error("reload refused; the running configuration stays", "error", err.Error())
	}
}

// loginHint tells the operator how clients log in to a frontend.
func loginHint(cfg *configs.Config, protocol, name string) string {
	var n configs.Node
	for _, f := range cfg.Frontends {
		if v, _ := f.Scalar("name"); v == name {
			n = f
		}
	}
	if n.IsZero() {
		return ""
	}
	switch protocol {
	case "redis":
		if n.Has("auth") {
			return "AUTH required"
		}
		return "no password"
	case "s3":
		c := s3fe.DefaultConfig()
		if n.Decode(c) != nil {
			return ""
		}
		hint := "access key " + c.Auth.AccessKey
		if c.Auth.SecretKey == s3fe.DefaultConfig().Auth.SecretKey {
			// The well-known default, as a fresh local install prints it.
			hint += ", secret " + string(c.Auth.SecretKey)
		}
		if c.Auth.Anonymous {
			hint += "; anonymous requests allowed"
		}
		return hint
	case "mysql":
		if n.Has("auth") {
			return "users from auth"
		}
		return "user root, empty password"
	}
	return ""
}

// setProcs applies max_procs unless GOMAXPROCS is set in the environment.
func setProcs(cfg *configs.Config, log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := cfg.Procs(runtime.NumCPU())
	if runtime.GOMAXPROCS(n) != n {
		log.Debug("max_procs applied", "procs", n, "cpus", runtime.NumCPU())
	}
}
