// Package mysql holds the gRPC API's `mysql` sequencer on MySQL or
// MariaDB: a table holds the last id reserved per key, and a reservation
// is one INSERT ... ON DUPLICATE KEY UPDATE whose new value comes back in
// the same round trip (LAST_INSERT_ID(expr)).
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/sqlmeta"
)

func init() {
	component.RegisterType(component.CapSequencer, "mysql", DefaultSequencerConfig, NewSequencer)
}

// Defaults.
const (
	defaultTable   = "mecha_sequences"
	defaultTimeout = 20 * time.Second
	dialTimeout    = 5 * time.Second
	probeInterval  = time.Second
	probeTimeout   = 3 * time.Second
)

// tableRE is a table name, optionally database-qualified.
var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// SequencerConfig is the `type: mysql` sequencer's configuration:
// everything is in metadata: connectionString (a go-sql-driver DSN, as
// contrib's MySQL components take it), table, timeout, maxConns.
type SequencerConfig struct {
	component.Base `yaml:",inline"`
}

// DefaultSequencerConfig returns the defaults.
func DefaultSequencerConfig() *SequencerConfig { return &SequencerConfig{} }

// Validate checks the metadata.
func (c *SequencerConfig) Validate() error {
	_, err := parseSettings(c.Metadata)
	return err
}

type settings struct {
	dsn      *mysql.Config
	table    string
	timeout  time.Duration
	maxConns int
}

func parseSettings(md map[string]string) (*settings, error) {
	vals, errs := sqlmeta.Read(md, []sqlmeta.Key{
		{Name: "connectionString"},
		{Name: "table"},
		{Name: "timeout", Aliases: []string{"timeoutInSeconds"}},
		{Name: "maxConns"},
	})
	s := &settings{table: defaultTable}
	if v := vals["connectionString"]; v == "" {
		errs = append(errs, configs.Errorf("metadata.connectionString", "is required (a DSN such as \"root:@tcp(127.0.0.1:3306)/app\")"))
	} else if cfg, err := mysql.ParseDSN(v); err != nil {
		errs = append(errs, configs.Errorf("metadata.connectionString", "not a valid DSN"))
	} else {
		if cfg.Timeout == 0 {
			cfg.Timeout = dialTimeout
		}
		s.dsn = cfg
	}
	if v, ok := vals["table"]; ok {
		s.table = v
	}
	if !tableRE.MatchString(s.table) || len(s.table) > 129 {
		errs = append(errs, configs.Errorf("metadata.table", "%q is not a table name (letters, digits, _ and $, optionally database.table)", s.table))
	}
	var err error
	if s.timeout, err = sqlmeta.Timeout(vals, defaultTimeout); err != nil {
		errs = append(errs, err)
	}
	if s.maxConns, err = sqlmeta.MaxConns(vals); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func quoteIdent(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = "`" + strings.ReplaceAll(p, "`", "``") + "`"
	}
	return strings.Join(parts, ".")
}

// Sequencer is a sequencer on MySQL or MariaDB. The table (`key`
// VARBINARY(1024) PRIMARY KEY, `value` BIGINT) is created at Start if
// absent; keys compare as bytes.
type Sequencer struct {
	s    *settings
	db   *sql.DB
	link *component.Link
	// reserve is the reservation statement.
	reserve string
}

var _ component.SequencerStore = (*Sequencer)(nil)

// NewSequencer builds a sequencer; nothing connects until Start.
func NewSequencer(c *SequencerConfig, env component.Env) (*Sequencer, error) {
	s, err := parseSettings(c.Metadata)
	if err != nil {
		return nil, err
	}
	t := quoteIdent(s.table)
	q := &Sequencer{s: s,
		// LAST_INSERT_ID(expr) makes the new value the statement's insert
		// id, which comes back in the OK packet: one round trip, atomic.
		reserve: "INSERT INTO " + t + " (`key`, `value`) VALUES (?, LAST_INSERT_ID(?)) " +
			"ON DUPLICATE KEY UPDATE `value` = LAST_INSERT_ID(`value` + ?)"}
	q.link = component.NewLink(component.LinkConfig{
		Store:  "mysql",
		Kind:   "sequencer",
		Name:   env.Name,
		Logger: env.Logger,
		Ping:   func(ctx context.Context) error { return q.db.PingContext(ctx) },
		// The sequencer is UP once the table is there.
		Ready:       q.createTable,
		Unavailable: unavailable,
		// CallerDeadline stays unset: a Reserve that outlives its deadline
		// (the caller's, or the configured timeout) counts as the server
		// not answering in time.
		Interval: probeInterval,
		Timeout:  probeTimeout,
	})
	return q, nil
}

// Start opens the pool and probes once; when the server is down it still
// succeeds, reporting DOWN until the server answers and the table is
// there.
func (q *Sequencer) Start(ctx context.Context) error {
	if q.db != nil {
		return errors.New("already started")
	}
	conn, err := mysql.NewConnector(q.s.dsn.Clone())
	if err != nil {
		return fmt.Errorf("mysql connector: %w", err)
	}
	q.db = sql.OpenDB(conn)
	if q.s.maxConns > 0 {
		q.db.SetMaxOpenConns(q.s.maxConns)
	}
	q.db.SetConnMaxIdleTime(5 * time.Minute)
	return q.link.Start(ctx)
}

// Health reports whether the server answers and the table exists.
func (q *Sequencer) Health() backends.Health { return q.link.Health() }

// Close releases the connections; it is safe after a failed or missing
// Start.
func (q *Sequencer) Close() error {
	if !q.link.Close() {
		return nil
	}
	return q.db.Close()
}

func (q *Sequencer) createTable(ctx context.Context) error {
	_, err := q.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+quoteIdent(q.s.table)+
		" (`key` VARBINARY(1024) NOT NULL PRIMARY KEY, `value` BIGINT NOT NULL) ENGINE=InnoDB")
	if err != nil {
		return fmt.Errorf("create table %s: %w", q.s.table, err)
	}
	return nil
}

// MySQL error numbers Reserve handles.
const (
	errNoSuchTable  = 1146
	errLockDeadlock = 1213
	errLockWait     = 1205
)

// Reserve reserves n consecutive ids of key and returns the first.
func (q *Sequencer) Reserve(ctx context.Context, key string, n int64) (int64, error) {
	if q.db == nil {
		return 0, errNotStarted
	}
	octx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(ctx, q.s.timeout)
		defer cancel()
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var res sql.Result
		res, err = q.db.ExecContext(octx, q.reserve, []byte(key), n, n)
		if err == nil {
			var last int64
			if last, err = res.LastInsertId(); err == nil {
				return last - n + 1, nil
			}
			break
		}
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			break
		}
		switch me.Number {
		case errNoSuchTable:
			// The table is gone (or the probe has not created it yet).
			if err = q.createTable(octx); err != nil {
				return 0, q.link.Fail(ctx, "reserve ids", err)
			}
		case errLockDeadlock, errLockWait:
			// Rolled back: nothing was reserved, try again.
		default:
			return 0, q.link.Fail(ctx, "reserve ids", err)
		}
	}
	return 0, q.link.Fail(ctx, "reserve ids", err)
}

var errNotStarted = component.Unavailable(errors.New("mysql component not started"))

// unavailable tells connectivity failures from errors the server
// reported; a server that reports it cannot serve now counts as
// unavailable.
func unavailable(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return true
	}
	switch me.Number {
	case 1040, // too many connections
		1053, // server shutdown in progress
		1927: // connection was killed (MariaDB)
		return true
	}
	return false
}
