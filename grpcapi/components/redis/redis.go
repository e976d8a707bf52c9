// Package redis holds the gRPC API's components on a Redis server: the
// `redis` lock (github.com/dapr/components-contrib's lock/redis plus
// renewal and fencing tokens), the `redis` configuration store (items in
// the value||version format that contrib's configuration/redis reads,
// with versions, optimistic saves and ordered change notifications) and
// the `redis` sequencer (INCRBY). All three read the same metadata keys as
// contrib's Redis components (redisHost, redisPassword, redisDB, ...) plus
// keyPrefix, the namespace of every key Mecha writes.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	rediscomponent "github.com/dapr/components-contrib/common/component/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Metadata keys Mecha adds to contrib's.
const (
	// mdKeyPrefix is the namespace of every key a component writes.
	mdKeyPrefix = "keyPrefix"
	// defaultKeyPrefix is keyPrefix's default.
	defaultKeyPrefix = "mecha"
)

// Health probing.
const (
	probeInterval = time.Second
	probeTimeout  = 2 * time.Second
)

// settings is a component's decoded metadata.
type settings struct {
	// conn is how to reach Redis, decoded exactly as contrib decodes it.
	conn rediscomponent.Settings
	// contrib is the metadata without Mecha's own keys, for contrib.
	contrib map[string]string
	// prefix is keyPrefix.
	prefix string
}

// contribKeys lists the metadata keys contrib's Redis settings decode for
// locks and configuration stores (state and pub/sub only keys excluded),
// lower-cased, mapped to their spelling.
var contribKeys = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	t := reflect.TypeOf(rediscomponent.Settings{})
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" || f.Tag.Get("mdonly") != "" {
			continue
		}
		out[strings.ToLower(name)] = name
		for _, alias := range strings.Split(f.Tag.Get("mapstructurealiases"), ",") {
			if alias != "" {
				out[strings.ToLower(alias)] = alias
			}
		}
	}
	return out
})

// parseSettings decodes and checks a component's metadata: contrib's
// Redis keys plus keyPrefix.
func parseSettings(md map[string]string) (*settings, error) {
	s := &settings{contrib: map[string]string{}, prefix: defaultKeyPrefix}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(md)) {
		v := md[k]
		switch {
		case strings.EqualFold(k, mdKeyPrefix):
			if v == "" {
				errs = append(errs, configs.Errorf("metadata."+k, "must not be empty (default %q)", defaultKeyPrefix))
			}
			s.prefix = v
		case contribKeys()[strings.ToLower(k)] != "":
			s.contrib[k] = v
		default:
			errs = append(errs, configs.Errorf("metadata."+k, "unknown key (known: %s)", knownKeys()))
		}
	}
	if err := s.conn.Decode(s.contrib); err != nil {
		errs = append(errs, configs.Errorf("metadata", "%v", err))
	}
	switch {
	case s.conn.Host == "":
		errs = append(errs, configs.Errorf("metadata.redisHost", "is required (host:port of the Redis server)"))
	case s.conn.RedisType != "" && !strings.EqualFold(s.conn.RedisType, rediscomponent.NodeType):
		errs = append(errs, configs.Errorf("metadata.redisType", "only %q is supported (Redis Cluster is not: the scripts touch several keys)", rediscomponent.NodeType))
	case s.conn.UseEntraID:
		errs = append(errs, configs.Errorf("metadata.useEntraID", "is not supported"))
	case s.conn.Failover && s.conn.SentinelMasterName == "":
		errs = append(errs, configs.Errorf("metadata.sentinelMasterName", "is required with failover: true"))
	}
	if (s.conn.ClientCert == "") != (s.conn.ClientKey == "") {
		errs = append(errs, configs.Errorf("metadata.clientCert", "clientCert and clientKey go together"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func knownKeys() string {
	out := []string{mdKeyPrefix}
	for _, v := range contribKeys() {
		out = append(out, v)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// client returns a go-redis client configured as contrib's (calls' deadlines
// bound socket reads and writes). Unlike contrib's, retries are off unless
// redisMaxRetries is set: the scripts are not idempotent, and a retry after
// a reply was lost would, say, report a lock just acquired as taken.
func (s *settings) client() (goredis.UniversalClient, error) {
	c := &s.conn
	var tlsCfg *tls.Config
	if c.EnableTLS {
		// As contrib: enableTLS encrypts without verifying the server.
		tlsCfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // contrib's meaning of enableTLS
		if err := c.SetCertificate(func(cert *tls.Certificate) { tlsCfg.Certificates = []tls.Certificate{*cert} }); err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
	}
	retries := c.RedisMaxRetries
	if retries == 0 {
		retries = -1
	}
	o := &goredis.UniversalOptions{
		Addrs:            []string{c.Host},
		Username:         c.Username,
		Password:         c.Password,
		DB:               c.DB,
		MaxRetries:       retries,
		MinRetryBackoff:  time.Duration(c.RedisMinRetryInterval),
		MaxRetryBackoff:  time.Duration(c.RedisMaxRetryInterval),
		DialTimeout:      time.Duration(c.DialTimeout),
		ReadTimeout:      time.Duration(c.ReadTimeout),
		WriteTimeout:     time.Duration(c.WriteTimeout),
		PoolSize:         c.PoolSize,
		MinIdleConns:     c.MinIdleConns,
		PoolTimeout:      time.Duration(c.PoolTimeout),
		ConnMaxIdleTime:  time.Duration(c.IdleTimeout),
		ConnMaxLifetime:  time.Duration(c.MaxConnAge),
		TLSConfig:        tlsCfg,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,

		ContextTimeoutEnabled: true,
	}
	if c.Failover {
		// redisHost lists the sentinels.
		o.Addrs = strings.Split(c.Host, ",")
		o.MasterName = c.SentinelMasterName
		return goredis.NewFailoverClient(o.Failover()), nil
	}
	return goredis.NewClient(o.Simple()), nil
}

// link is what every Redis component keeps: a go-redis client and the
// component.Link that probes Redis with it, so that health follows the
// server and a component started while Redis was down comes up by itself.
type link struct {
	*component.Link
	client goredis.UniversalClient
}

// newLink returns the link of a component of kind (lock, config,
// sequencer); ready, when set, runs once Redis answers, until it
// succeeds, and the component is UP only after it has.
func newLink(env component.Env, kind string, ready func(ctx context.Context) error) *link {
	l := &link{}
	l.Link = component.NewLink(component.LinkConfig{
		Store:       "redis",
		Kind:        kind,
		Name:        env.Name,
		Logger:      env.Logger,
		Ping:        func(ctx context.Context) error { return l.client.Ping(ctx).Err() },
		Ready:       ready,
		Unavailable: unavailable,
		// Operations run on the caller's context alone, without a timeout
		// of their own: its deadline passing says nothing about Redis.
		CallerDeadline: true,
		Interval:       probeInterval,
		Timeout:        probeTimeout,
	})
	return l
}

// start connects and probes once; it succeeds (DOWN) when Redis is down.
func (l *link) start(ctx context.Context, s *settings) error {
	if l.client != nil {
		return errors.New("already started")
	}
	c, err := s.client()
	if err != nil {
		return err
	}
	l.client = c
	return l.Start(ctx)
}

// close stops the probe and closes the client; it is safe after a failed
// or missing start.
func (l *link) close() error {
	if !l.Close() {
		return nil
	}
	return l.client.Close()
}

// redisError is an error reply from the server (go-redis v8 and v9).
type redisError interface{ RedisError() }

// unavailable tells connectivity failures from error replies; replies
// that mean the server cannot serve now count as connectivity failures.
func unavailable(err error) bool {
	var re redisError
	if !errors.As(err, &re) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING", "MASTERDOWN", "READONLY", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "NOAUTH", "WRONGPASS", "ERR max number of clients"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// errNotStarted is the error of an operation before Start.
var errNotStarted = component.Unavailable(errors.New("redis component not started"))
