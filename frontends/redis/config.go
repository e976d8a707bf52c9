package redis

import (
	"errors"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// Config is the `protocol: redis` frontend's configuration.
type Config struct {
	frontends.Base `yaml:",inline"`
	// Auth, when set, makes clients authenticate (AUTH or HELLO ... AUTH)
	// before any other command. It is independent of the upstream's
	// password.
	Auth *Auth `yaml:"auth"`
	// TLS, when set, makes the listener speak TLS only.
	TLS *configs.TLSServer `yaml:"tls"`
	// Limits bound what clients may send.
	Limits Limits `yaml:"limits"`
	// IdleTimeout closes a client idle for longer (Redis' `timeout`); 0
	// never does. Clients blocked or subscribed are never idle.
	IdleTimeout configs.Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds how long a client that does not read its replies
	// may hold up a shared upstream connection before it is disconnected.
	WriteTimeout configs.Duration `yaml:"write_timeout"`
}

// Auth is the frontend's own credentials.
type Auth struct {
	// Password is the password of the `default` user (AUTH <password>).
	Password configs.Secret `yaml:"password"`
	// Users are ACL users (AUTH <user> <password>), by name.
	Users map[string]configs.Secret `yaml:"users"`
}

// Validate checks that some credential is set.
func (a *Auth) Validate() error {
	if a.Password == "" && len(a.Users) == 0 {
		return configs.Errorf("password", "auth needs a password or users (omit auth to allow clients without one)")
	}
	for name := range a.Users {
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			return configs.Errorf("users", "invalid user name %q", name)
		}
	}
	return nil
}

// Limits are the frontend's protection against hostile or broken clients.
type Limits struct {
	// MaxClients is the most clients connected at once (Redis'
	// maxclients); more are refused with "ERR max number of clients
	// reached".
	MaxClients int `yaml:"max_clients"`
	// MaxBulkLen is the largest argument (proto-max-bulk-len).
	MaxBulkLen configs.Size `yaml:"max_bulk_len"`
	// MaxMultibulkLen is the most arguments in one command.
	MaxMultibulkLen int64 `yaml:"max_multibulk_len"`
	// MaxInlineLen is the longest inline command.
	MaxInlineLen configs.Size `yaml:"max_inline_len"`
	// MaxQueryBuffer is the most unprocessed input held for one client
	// (client-query-buffer-limit); a client past it is disconnected.
	MaxQueryBuffer configs.Size `yaml:"max_query_buffer"`
	// MaxOutputBuffer is the most reply data held for a client that does
	// not read it (client-output-buffer-limit); a client past it is
	// disconnected.
	MaxOutputBuffer configs.Size `yaml:"max_output_buffer"`
}

// Validate checks the limits.
func (l *Limits) Validate() error {
	var errs []error
	if l.MaxClients < 1 {
		errs = append(errs, configs.Errorf("max_clients", "must be at least 1"))
	}
	if l.MaxBulkLen < 1 {
		errs = append(errs, configs.Errorf("max_bulk_len", "must be at least 1"))
	}
	if l.MaxMultibulkLen < 1 || l.MaxMultibulkLen > 1<<31-1 {
		errs = append(errs, configs.Errorf("max_multibulk_len", "must be between 1 and 2147483647"))
	}
	if l.MaxInlineLen < 1 {
		errs = append(errs, configs.Errorf("max_inline_len", "must be at least 1"))
	}
	if l.MaxQueryBuffer < 1<<20 {
		errs = append(errs, configs.Errorf("max_query_buffer", "must be at least 1mb"))
	}
	if l.MaxOutputBuffer < 1<<20 {
		errs = append(errs, configs.Errorf("max_output_buffer", "must be at least 1mb"))
	}
	return errors.Join(errs...)
}

func (l *Limits) parser() resp.Limits {
	return resp.Limits{
		MaxBulkLen:      int64(l.MaxBulkLen),
		MaxMultibulkLen: l.MaxMultibulkLen,
		MaxInlineLen:    int(l.MaxInlineLen),
	}
}

// DefaultConfig returns the defaults, which are Redis 7's.
func DefaultConfig() *Config {
	return &Config{
		Base: frontends.Base{Protocol: "redis"},
		Limits: Limits{
			MaxClients:      10000,
			MaxBulkLen:      configs.Size(resp.DefaultLimits.MaxBulkLen),
			MaxMultibulkLen: resp.DefaultLimits.MaxMultibulkLen,
			MaxInlineLen:    configs.Size(resp.DefaultLimits.MaxInlineLen),
			MaxQueryBuffer:  1 << 30,
			MaxOutputBuffer: 256 << 20,
		},
		WriteTimeout: configs.Duration(30 * time.Second),
	}
}
