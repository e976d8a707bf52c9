package postgresql

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

func init() {
	component.RegisterType(component.CapSequencer, "postgresql", DefaultSequencerConfig, NewSequencer)
}

// defaultSequencerTable is the table when metadata names none.
const defaultSequencerTable = "mecha_sequences"

// tableRE is a table name, optionally schema-qualified.
var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// SequencerConfig is the `type: postgresql` sequencer's configuration:
// everything is in metadata (connectionString, table, timeout, maxConns,
// connectionMaxIdleTime).
type SequencerConfig struct {
	component.Base `yaml:",inline"`
}

// DefaultSequencerConfig returns the defaults.
func DefaultSequencerConfig() *SequencerConfig { return &SequencerConfig{} }

// Validate checks the metadata.
func (c *SequencerConfig) Validate() error {
	_, err := parseSettings(c.Metadata, defaultSequencerTable, tableRE)
	return err
}

// Sequencer is a sequencer on PostgreSQL: a table (key TEXT PRIMARY KEY,
// value BIGINT) holds the last id reserved per key, created at Start if
// absent; a reservation is one INSERT ... ON CONFLICT DO UPDATE ...
// RETURNING, atomic on its own.
type Sequencer struct {
	s    *settings
	link *link
	// reserve is the reservation statement.
	reserve string
}

var _ component.SequencerStore = (*Sequencer)(nil)

// NewSequencer builds a sequencer; nothing connects until Start.
func NewSequencer(c *SequencerConfig, env component.Env) (*Sequencer, error) {
	s, err := parseSettings(c.Metadata, defaultSequencerTable, tableRE)
	if err != nil {
		return nil, err
	}
	t := quoteIdent(s.table)
	q := &Sequencer{s: s,
		reserve: `INSERT INTO ` + t + ` AS s (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = s.value + EXCLUDED.value RETURNING value`}
	q.link = newLink(env, s, "sequencer", q.createTable)
	return q, nil
}

// Start connects; when PostgreSQL is down it still succeeds, reporting
// DOWN until the server answers and the table is there.
func (q *Sequencer) Start(ctx context.Context) error { return q.link.start(ctx) }

// Health reports whether the server answers and the table exists.
func (q *Sequencer) Health() backends.Health { return q.link.Health() }

// Close releases the connections.
func (q *Sequencer) Close() error {
	q.link.close()
	return nil
}

// createTable creates the table if it is absent.
func (q *Sequencer) createTable(ctx context.Context) error {
	return pgx.BeginFunc(ctx, q.link.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(fnv64("mecha-ddl\x00"+q.s.table)))); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+quoteIdent(q.s.table)+` (key TEXT NOT NULL PRIMARY KEY, value BIGINT NOT NULL)`)
		if err != nil {
			return fmt.Errorf("create table %s: %w", q.s.table, err)
		}
		return nil
	})
}

// Reserve reserves n consecutive ids of key and returns the first.
func (q *Sequencer) Reserve(ctx context.Context, key string, n int64) (int64, error) {
	if q.link.pool == nil {
		return 0, errNotStarted
	}
	octx, cancel := q.link.op(ctx)
	defer cancel()
	var last int64
	err := q.link.pool.QueryRow(octx, q.reserve, key, n).Scan(&last)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		// The table is gone (or the probe has not created it yet).
		if err = q.createTable(octx); err == nil {
			err = q.link.pool.QueryRow(octx, q.reserve, key, n).Scan(&last)
		}
	}
	if err != nil {
		return 0, q.link.Fail(ctx, "reserve ids", err)
	}
	return last - n + 1, nil
}
