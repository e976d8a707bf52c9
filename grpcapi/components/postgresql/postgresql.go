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
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/sqlmeta"
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

// common are the keys every component here reads.
var common = []sqlmeta.Key{
	{Name: "connectionString", Aliases: []string{"url"}},
	{Name: "table"},
	{Name: "timeout", Aliases: []string{"timeoutInSeconds"}},
	{Name: "maxConns"},
	{Name: "connectionMaxIdleTime"},
}

// parseSettings decodes and checks metadata. tableRE restricts the table
// name; own lists the component's other keys.
func parseSettings(md map[string]string, defaultTable string, tableRE *regexp.Regexp, own ...string) (*settings, error) {
	keys := slices.Clone(common)
	for _, k := range own {
		keys = append(keys, sqlmeta.Key{Name: k})
	}
	vals, errs := sqlmeta.Read(md, keys)
	s := &settings{table: defaultTable, own: map[string]string{}, connString: vals["connectionString"]}
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
	var err error
	if s.timeout, err = sqlmeta.Timeout(vals, defaultTimeout); err != nil {
		errs = append(errs, err)
	}
	if s.pool != nil {
		if n, err := sqlmeta.MaxConns(vals); err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			s.pool.MaxConns = int32(min(n, 1<<20))
		}
		if v, ok := vals["connectionMaxIdleTime"]; ok {
			d, err := sqlmeta.ParseDuration(v)
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

// link is what every component here keeps: a pool and the
// component.Link that probes the server with it, so that a component
// started while PostgreSQL was down comes up by itself.
type link struct {
	*component.Link
	s    *settings
	pool *pgxpool.Pool
}

// newLink returns the link of a component of kind (config, sequencer);
// ready runs once the server answers, until it succeeds (creating or
// checking the table), and the component is UP only after it has.
func newLink(env component.Env, s *settings, kind string, ready func(ctx context.Context) error) *link {
	l := &link{s: s}
	l.Link = component.NewLink(component.LinkConfig{
		Store:       "postgresql",
		Kind:        kind,
		Name:        env.Name,
		Logger:      env.Logger,
		Ping:        func(ctx context.Context) error { return l.pool.Ping(ctx) },
		Ready:       ready,
		Unavailable: unavailable,
		// CallerDeadline stays unset: an operation that outlives its
		// deadline (the caller's, or the configured timeout that op adds)
		// counts as the server not answering in time.
		Interval: probeInterval,
		Timeout:  probeTimeout,
	})
	return l
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
	return l.Start(ctx)
}

// close stops the probe and the pool; it is safe after a failed or
// missing start.
func (l *link) close() {
	if l.Close() {
		l.pool.Close()
	}
}

// op bounds ctx by the configured timeout when it has no deadline.
func (l *link) op(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, l.s.timeout)
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
