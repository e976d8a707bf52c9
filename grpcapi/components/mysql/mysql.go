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
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/configs"
	"github.com/mecha-gateway/mecha/grpcapi/component"
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
	canon := map[string]string{
		"connectionstring": "connectionString",
		"table":            "table",
		"timeout":          "timeout",
		"timeoutinseconds": "timeout",
		"maxconns":         "maxConns",
	}
	vals := map[string]string{}
	var errs []error
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c, ok := canon[strings.ToLower(k)]
		if !ok {
			errs = append(errs, configs.Errorf("metadata."+k, "unknown key (known: connectionString, maxConns, table, timeout)"))
			continue
		}
		vals[c] = md[k]
	}
	s := &settings{table: defaultTable, timeout: defaultTimeout}
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
	if v, ok := vals["timeout"]; ok {
		d, err := parseDuration(v)
		if err != nil || d < time.Second {
			errs = append(errs, configs.Errorf("metadata.timeout", "must be a duration of at least 1s (\"20s\", or seconds: \"20\")"))
		}
		s.timeout = d
	}
	if v, ok := vals["maxConns"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, configs.Errorf("metadata.maxConns", "must be a positive integer"))
		}
		s.maxConns = n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
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
	s       *settings
	name    string
	log     *slog.Logger
	db      *sql.DB
	health  backends.HealthCell
	reserve string

	mu      sync.Mutex
	isReady bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

var _ component.SequencerStore = (*Sequencer)(nil)

// NewSequencer builds a sequencer; nothing connects until Start.
func NewSequencer(c *SequencerConfig, env component.Env) (*Sequencer, error) {
	s, err := parseSettings(c.Metadata)
	if err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := quoteIdent(s.table)
	return &Sequencer{s: s, name: env.Name, log: log.With("store", "sequencer"),
		// LAST_INSERT_ID(expr) makes the new value the statement's insert
		// id, which comes back in the OK packet: one round trip, atomic.
		reserve: "INSERT INTO " + t + " (`key`, `value`) VALUES (?, LAST_INSERT_ID(?)) " +
			"ON DUPLICATE KEY UPDATE `value` = LAST_INSERT_ID(`value` + ?)"}, nil
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
	q.kick = make(chan struct{}, 1)
	q.stop = make(chan struct{})
	q.done = make(chan struct{})
	q.probe(ctx)
	go q.loop()
	return nil
}

// Health reports whether the server answers and the table exists.
func (q *Sequencer) Health() backends.Health { return q.health.Get() }

// Close releases the connections; it is safe after a failed or missing
// Start.
func (q *Sequencer) Close() error {
	if q.stop == nil {
		return nil
	}
	select {
	case <-q.stop:
		return nil
	default:
	}
	close(q.stop)
	<-q.done
	q.health.Set(backends.StateDown, "closed")
	return q.db.Close()
}

func (q *Sequencer) loop() {
	defer close(q.done)
	t := time.NewTimer(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-q.kick:
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-q.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		q.probe(ctx)
		cancel()
		t.Reset(probeInterval)
	}
}

func (q *Sequencer) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	err := q.db.PingContext(ctx)
	if err == nil {
		q.mu.Lock()
		if !q.isReady {
			if err = q.createTable(ctx); err == nil {
				q.isReady = true
			}
		}
		q.mu.Unlock()
	}
	if err != nil {
		if q.health.Set(backends.StateDown, err.Error()) {
			q.log.Warn("mysql component down", "component", q.name, "err", err)
		}
		return
	}
	if q.health.Set(backends.StateUp, "") {
		q.log.Info("mysql component up", "component", q.name)
	}
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
				return 0, q.fail(ctx, err)
			}
		case errLockDeadlock, errLockWait:
			// Rolled back: nothing was reserved, try again.
		default:
			return 0, q.fail(ctx, err)
		}
	}
	return 0, q.fail(ctx, err)
}

var errNotStarted = component.Unavailable(errors.New("mysql component not started"))

// fail turns an error into the one to return: connectivity failures wrap
// component.ErrUnavailable, mark the component DOWN and wake the prober.
func (q *Sequencer) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("reserve ids: %w", err)
	}
	if !unavailable(err) {
		return fmt.Errorf("reserve ids: %w", err)
	}
	q.health.Set(backends.StateDown, err.Error())
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return component.Unavailable(fmt.Errorf("reserve ids: %w", err))
}

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
