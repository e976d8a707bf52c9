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
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	rediscomponent "github.com/dapr/components-contrib/common/component/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/mecha-gateway/mecha/backends"
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
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
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
	if c.Failover {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:       c.SentinelMasterName,
			SentinelAddrs:    strings.Split(c.Host, ","),
			SentinelUsername: c.SentinelUsername,
			SentinelPassword: c.SentinelPassword,
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

			ContextTimeoutEnabled: true,
		}), nil
	}
	return goredis.NewClient(&goredis.Options{
		Addr:            c.Host,
		Username:        c.Username,
		Password:        c.Password,
		DB:              c.DB,
		MaxRetries:      retries,
		MinRetryBackoff: time.Duration(c.RedisMinRetryInterval),
		MaxRetryBackoff: time.Duration(c.RedisMaxRetryInterval),
		DialTimeout:     time.Duration(c.DialTimeout),
		ReadTimeout:     time.Duration(c.ReadTimeout),
		WriteTimeout:    time.Duration(c.WriteTimeout),
		PoolSize:        c.PoolSize,
		MinIdleConns:    c.MinIdleConns,
		PoolTimeout:     time.Duration(c.PoolTimeout),
		ConnMaxIdleTime: time.Duration(c.IdleTimeout),
		ConnMaxLifetime: time.Duration(c.MaxConnAge),
		TLSConfig:       tlsCfg,

		ContextTimeoutEnabled: true,
	}), nil
}

// link is what every Redis component keeps: a go-redis client, its health
// and a goroutine that probes Redis, so that health follows the server and
// a component started while Redis was down comes up by itself.
type link struct {
	name   string
	log    *slog.Logger
	client goredis.UniversalClient
	health backends.HealthCell
	// ready, when set, runs once Redis answers, until it succeeds; the
	// component is UP only after it has.
	ready func(ctx context.Context) error

	mu      sync.Mutex
	isReady bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newLink(env component.Env, kind string) *link {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &link{name: env.Name, log: log.With("store", kind)}
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
	l.health.Set(backends.StateInit, "")
	l.kick = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	l.probe(ctx)
	go l.loop()
	return nil
}

// close stops the probe and closes the client; it is safe after a failed
// or missing start.
func (l *link) close() error {
	if l.stop == nil {
		return nil
	}
	select {
	case <-l.stop:
		return nil
	default:
	}
	close(l.stop)
	<-l.done
	l.health.Set(backends.StateDown, "closed")
	return l.client.Close()
}

func (l *link) loop() {
	defer close(l.done)
	t := time.NewTimer(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-l.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		l.probe(ctx)
		cancel()
		t.Reset(probeInterval)
	}
}

// probe pings Redis (and runs ready) and records the outcome.
func (l *link) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	err := l.client.Ping(ctx).Err()
	if err == nil && l.ready != nil {
		l.mu.Lock()
		if !l.isReady {
			if err = l.ready(ctx); err == nil {
				l.isReady = true
			}
		}
		l.mu.Unlock()
	}
	if err != nil {
		if l.health.Set(backends.StateDown, err.Error()) {
			l.log.Warn("redis component down", "component", l.name, "err", err)
		}
		return
	}
	if l.health.Set(backends.StateUp, "") {
		l.log.Info("redis component up", "component", l.name)
	}
}

// fail turns an operation's error into the error to return: connectivity
// failures wrap component.ErrUnavailable, mark the component DOWN and wake
// the prober.
func (l *link) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !unavailable(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.health.Set(backends.StateDown, err.Error())
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return component.Unavailable(fmt.Errorf("%s: %w", op, err))
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
