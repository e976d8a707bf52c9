// Package postgresql holds the gRPC API's components on PostgreSQL: the
// `postgresql` configuration store (the table layout and LISTEN/NOTIFY
// trigger that github.com/dapr/components-contrib's configuration/postgres
// reads, plus versions, optimistic saves and deletes) and the
// `postgresql` sequencer (one row per key, one upsert per reservation).
// Both read contrib's metadata keys (connectionString, table, timeout).
package postgresql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// Health probing.
const (
	probeInterval = time.Second
	probeTimeout  = 3 * time.Second
)

// defaultTimeout bounds an operation whose context has no deadline (as
// contrib's default).
const defaultTimeout = 20 * time.Second

// settings is a component's decoded metadata.
type settings struct {
	connString string
	pool       *pgxpool.Config
	table      string
	timeout    time.Duration
	// own are the component's other keys, by canonical spelling.
	own map[string]string
}

// key is a metadata key a component reads.
type key struct {
	name    string
	aliases []string
}

// common are the keys every component here reads.
var common = []key{
	{name: "connectionString", aliases: []string{"url"}},
	{name: "table"},
	{name: "timeout", aliases: []string{"timeoutInSeconds"}},
	{name: "maxConns"},
	{name: "connectionMaxIdleTime"},
}

// parseSettings decodes and checks metadata. tableRE restricts the table
// name; own lists the component's other keys.
func parseSettings(md map[string]string, defaultTable string, tableRE *regexp.Regexp, own ...string) (*settings, error) {
	known := map[string]string{}
	var names []string
	for _, k := range common {
		known[strings.ToLower(k.name)] = k.name
		names = append(names, k.name)
		for _, a := range k.aliases {
			known[strings.ToLower(a)] = k.name
		}
	}
	for _, k := range own {
		known[strings.ToLower(k)] = k
		names = append(names, k)
	}
	sort.Strings(names)
	vals := map[string]string{}
	var errs []error
	mdKeys := make([]string, 0, len(md))
	for k := range md {
		mdKeys = append(mdKeys, k)
	}
	sort.Strings(mdKeys)
	for _, k := range mdKeys {
		canon, ok := known[strings.ToLower(k)]
		if !ok {
			errs = append(errs, configs.Errorf("metadata."+k, "unknown key (known: %s)", strings.Join(names, ", ")))
			continue
		}
		vals[canon] = md[k]
	}
	s := &settings{table: defaultTable, timeout: defaultTimeout, own: map[string]string{}, connString: vals["connectionString"]}
	for _, k := range own {
		if v, ok := vals[k]; ok {
			s.own[k] = v
		}
	}
	if s.connString == "" {
		errs = append(errs, configs.Errorf("metadata.connectionString", "is required (e.g. \"host=127.0.0.1 user=postgres dbname=app\" or postgres://user@host/db)"))
	} else if cfg, err := pgxpool.ParseConfig(s.connString); err != nil {
		// pgx's error may quote the string; say only that it is wrong.
		errs = append(errs, configs.Errorf("metadata.connectionString", "not a valid PostgreSQL connection string"))
	} else {
		s.pool = cfg
	}
	if v, ok := vals["table"]; ok {
		s.table = v
	}
	if !tableRE.MatchString(s.table) || len(s.table) > 63 {
		errs = append(errs, configs.Errorf("metadata.table", "%q is not allowed: use at most 63 of %s", s.table, tableRE))
	}
	if v, ok := vals["timeout"]; ok {
		d, err := parseDuration(v)
		if err != nil || d < time.Second {
			errs = append(errs, configs.Errorf("metadata.timeout", "must be a duration of at least 1s (\"20s\", or seconds: \"20\")"))
		}
		s.timeout = d
	}
	if s.pool != nil {
		if v, ok := vals["maxConns"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, configs.Errorf("metadata.maxConns", "must be a positive integer"))
			}
			s.pool.MaxConns = int32(min(n, 1<<20))
		}
		if v, ok := vals["connectionMaxIdleTime"]; ok {
			d, err := parseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, configs.Errorf("metadata.connectionMaxIdleTime", "must be a positive duration"))
			}
			s.pool.MaxConnIdleTime = d
		}
		if s.pool.ConnConfig.ConnectTimeout == 0 {
			s.pool.ConnConfig.ConnectTimeout = 5 * time.Second
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// parseDuration reads a Go duration or a number of seconds.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// quoteIdent quotes a possibly schema-qualified name.
func quoteIdent(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// bareName is a table name without its schema.
func bareName(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// link is what every component here keeps: a pool, its health and a
// goroutine that probes the server, so that a component started while
// PostgreSQL was down comes up by itself.
type link struct {
	name string
	log  *slog.Logger
	s    *settings
	pool *pgxpool.Pool
	// ready runs once the server answers, until it succeeds (creating
	// or checking the table); the component is UP only after it has.
	ready  func(ctx context.Context) error
	health backends.HealthCell

	mu      sync.Mutex
	isReady bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newLink(env component.Env, s *settings, kind string) *link {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &link{name: env.Name, log: log.With("store", kind), s: s}
}

// start creates the pool and probes once; it succeeds (DOWN) when the
// server is down.
func (l *link) start(ctx context.Context) error {
	if l.pool != nil {
		return errors.New("already started")
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), l.s.pool.Copy())
	if err != nil {
		return fmt.Errorf("postgresql pool: %w", err)
	}
	l.pool = pool
	l.kick = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	l.probe(ctx)
	go l.loop()
	return nil
}

// close stops the probe and the pool; it is safe after a failed or
// missing start.
func (l *link) close() {
	if l.stop == nil {
		return
	}
	select {
	case <-l.stop:
		return
	default:
	}
	close(l.stop)
	<-l.done
	l.pool.Close()
	l.health.Set(backends.StateDown, "closed")
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

func (l *link) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	err := l.pool.Ping(ctx)
	if err == nil {
		l.mu.Lock()
		if !l.isReady && l.ready != nil {
			err = l.ready(ctx)
		}
		if err == nil {
			l.isReady = true
		}
		l.mu.Unlock()
	}
	if err != nil {
		if l.health.Set(backends.StateDown, err.Error()) {
			l.log.Warn("postgresql component down", "component", l.name, "err", err)
		}
		return
	}
	if l.health.Set(backends.StateUp, "") {
		l.log.Info("postgresql component up", "component", l.name)
	}
}

// op bounds ctx by the configured timeout when it has no deadline.
func (l *link) op(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, l.s.timeout)
}

// fail turns an operation's error into the error to return: connectivity
// failures wrap component.ErrUnavailable, mark the component DOWN and wake
// the prober.
func (l *link) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
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

// unavailable tells connectivity failures from errors the server
// reported; a server that reports it cannot serve now counts as
// unavailable.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return true
	}
	switch {
	case strings.HasPrefix(pe.Code, "08"), // connection exception
		pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, cannot connect now
		pe.Code == "53300": // too many connections
		return true
	}
	return false
}

var errNotStarted = component.Unavailable(errors.New("postgresql component not started"))
