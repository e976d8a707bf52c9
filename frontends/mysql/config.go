package mysql

import (
	"errors"
	"time"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/frontends"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
)

// Config is the `protocol: mysql` frontend's configuration.
type Config struct {
	frontends.Base `yaml:",inline"`
	// Auth is who may log in to Mecha; omitted, the only user is root
	// with an empty password, as on a fresh local install.
	Auth *Auth `yaml:"auth"`
	// TLS, when set, lets clients switch to TLS in the handshake.
	TLS *configs.TLSServer `yaml:"tls"`
	// RequireTLS refuses clients that do not switch to TLS
	// (require_secure_transport).
	RequireTLS bool `yaml:"require_tls"`
	// MaxConnections is the most clients at once; more get error 1040.
	MaxConnections int `yaml:"max_connections"`
	// MaxAllowedPacket is the largest command a client may send; a larger
	// one gets error 1153 and the connection is closed, as MySQL does.
	MaxAllowedPacket configs.Size `yaml:"max_allowed_packet"`
	// LocalInfile relays LOAD DATA LOCAL INFILE between client and server;
	// off, the server refuses it with its own error.
	LocalInfile bool `yaml:"local_infile"`
	// ConnectTimeout bounds the handshake and login.
	ConnectTimeout configs.Duration `yaml:"connect_timeout"`
	// IdleTimeout closes a client idle for longer between commands; 0
	// leaves it to the upstream's wait_timeout.
	IdleTimeout configs.Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds how long a client may leave a response unread
	// (MySQL's net_write_timeout); past it the client is disconnected and
	// its upstream session closed. 0 waits forever.
	WriteTimeout configs.Duration `yaml:"write_timeout"`
	// RSAKeyFile is the PEM private key caching_sha2_password's full
	// authentication uses without TLS; without it a key is generated at
	// the first need.
	RSAKeyFile string `yaml:"rsa_key_file"`
}

// Auth is the frontend's own users.
type Auth struct {
	// Users maps user names to passwords.
	Users map[string]configs.Secret `yaml:"users"`
	// Plugin is the authentication plugin offered first:
	// mysql_native_password (the default) or caching_sha2_password.
	// Clients that answer with the other one are accepted as well.
	Plugin string `yaml:"plugin"`
}

// Validate checks the users and the plugin.
func (a *Auth) Validate() error {
	var errs []error
	if len(a.Users) == 0 {
		errs = append(errs, configs.Errorf("users", "needs at least one user"))
	}
	for name := range a.Users {
		if name == "" || len(name) > 80 {
			errs = append(errs, configs.Errorf("users", "invalid user name %q", name))
		}
	}
	switch a.Plugin {
	case "", wire.NativePassword, wire.CachingSHA2:
	default:
		errs = append(errs, configs.Errorf("plugin", "must be %s or %s", wire.NativePassword, wire.CachingSHA2))
	}
	return errors.Join(errs...)
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxConnections < 1 {
		errs = append(errs, configs.Errorf("max_connections", "must be at least 1"))
	}
	if c.MaxAllowedPacket < 1024 || c.MaxAllowedPacket > 1<<30 {
		errs = append(errs, configs.Errorf("max_allowed_packet", "must be between 1kb and 1gb"))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, configs.Errorf("connect_timeout", "must be positive"))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, configs.Errorf("write_timeout", "must not be negative"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, configs.Errorf("idle_timeout", "must not be negative"))
	}
	if c.RequireTLS && c.TLS == nil {
		errs = append(errs, configs.Errorf("require_tls", "needs tls"))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns the defaults, which are MySQL 8's where it has one.
func DefaultConfig() *Config {
	return &Config{
		Base:             frontends.Base{Protocol: "mysql"},
		MaxConnections:   1000,
		MaxAllowedPacket: 64 << 20,
		ConnectTimeout:   configs.Duration(10 * time.Second),
		WriteTimeout:     configs.Duration(60 * time.Second),
	}
}

// users returns the configured users, or the default root login.
func (c *Config) users() (map[string]string, string) {
	if c.Auth == nil {
		return map[string]string{"root": ""}, wire.NativePassword
	}
	m := make(map[string]string, len(c.Auth.Users))
	for u, p := range c.Auth.Users {
		m[u] = p.Reveal()
	}
	plugin := c.Auth.Plugin
	if plugin == "" {
		plugin = wire.NativePassword
	}
	return m, plugin
}
