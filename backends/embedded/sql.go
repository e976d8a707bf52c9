package embedded

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/embedded/sqlengine"
	"github.com/mecha-gateway/mecha/backends/metrics"
	mysqlb "github.com/mecha-gateway/mecha/backends/mysql"
	"github.com/mecha-gateway/mecha/configs"
)

// SQLConfig configures the MySQL-dialect engine the store serves MySQL
// frontends from.
type SQLConfig struct {
	// LockWaitTimeout is how long a statement waits while another
	// connection runs a statement or holds a transaction open, before it
	// fails with error 1205.
	LockWaitTimeout configs.Duration `yaml:"lock_wait_timeout"`
	// SnapshotInterval is the longest time between a committed write and
	// the snapshot on disk that holds it.
	SnapshotInterval configs.Duration `yaml:"snapshot_interval"`
}

// Validate checks the durations.
func (c *SQLConfig) Validate() error {
	var errs []error
	if c.LockWaitTimeout <= 0 {
		errs = append(errs, configs.Errorf("lock_wait_timeout", "must be positive"))
	}
	if c.SnapshotInterval <= 0 {
		errs = append(errs, configs.Errorf("snapshot_interval", "must be positive"))
	}
	return errors.Join(errs...)
}

func defaultSQLConfig() SQLConfig {
	return SQLConfig{LockWaitTimeout: configs.Duration(50 * time.Second), SnapshotInterval: configs.Duration(time.Second)}
}

// sqlSide is the SQL engine, opened when a MySQL frontend first asks for
// it, and the upstream-session pool the frontend relays through to it.
type sqlSide struct {
	mu  sync.Mutex
	eng *sqlengine.Engine
	be  *mysqlb.Backend
}

var _ backends.MySQLPassthrough = (*Store)(nil)

// sqlBackend opens the engine at the first need.
func (s *Store) sqlBackend(ctx context.Context) (*mysqlb.Backend, error) {
	s.sql.mu.Lock()
	defer s.sql.mu.Unlock()
	if s.sql.be != nil {
		return s.sql.be, nil
	}
	if !s.started.Load() {
		return nil, errors.New("embedded store is not running")
	}
	dir := ""
	if s.cfg.persistent() {
		dir = filepath.Join(s.dir, "sql")
	}
	eng, err := sqlengine.Open(sqlengine.Options{
		Dir:              dir,
		LockWaitTimeout:  s.cfg.SQL.LockWaitTimeout.D(),
		SnapshotInterval: s.cfg.SQL.SnapshotInterval.D(),
		Logger:           s.log.With("engine", "sql"),
	})
	if err != nil {
		s.log.Error("embedded SQL engine failed to open", "dir", dir, "err", err)
		return nil, fmt.Errorf("embedded SQL engine: %w", err)
	}
	cfg := mysqlb.DefaultConfig()
	cfg.Addr = "embedded:" + s.name
	be, err := mysqlb.NewWithDialer(cfg, backends.Env{Name: s.name, Logger: s.log}, eng.Dial)
	if err == nil {
		// go-mysql-server ignores the collation of the handshake.
		be.ApplyCollation()
		err = be.Start(ctx)
	}
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	s.log.Info("embedded SQL engine open", "dir", dir)
	s.sql.eng, s.sql.be = eng, be
	return be, nil
}

// Server describes the embedded engine for the MySQL frontend's handshake.
func (s *Store) Server(ctx context.Context) (backends.MySQLServer, error) {
	be, err := s.sqlBackend(ctx)
	if err != nil {
		return backends.MySQLServer{}, err
	}
	return be.Server(ctx)
}

// Session returns a session on the embedded engine.
func (s *Store) Session(ctx context.Context, p backends.MySQLSessionParams) (backends.MySQLSession, error) {
	be, err := s.sqlBackend(ctx)
	if err != nil {
		return nil, err
	}
	return be.Session(ctx, p)
}

// closeSQL closes the sessions' pool, then the engine (which writes its
// last snapshot).
func (s *Store) closeSQL() error {
	s.sql.mu.Lock()
	defer s.sql.mu.Unlock()
	if s.sql.be == nil {
		return nil
	}
	err := errors.Join(s.sql.be.Close(), s.sql.eng.Close())
	s.sql.be, s.sql.eng = nil, nil
	return err
}

// collectSQL exports the engine's metrics, once it is open.
func (s *Store) collectSQL(w *metrics.Writer) {
	s.sql.mu.Lock()
	be, eng := s.sql.be, s.sql.eng
	s.sql.mu.Unlock()
	if be == nil {
		return
	}
	be.CollectMetrics(w)
	st := eng.Stats()
	l := metrics.Label{Name: "backend", Value: s.name}
	w.Counter("mecha_embedded_sql_snapshots_total", "Snapshots of the embedded SQL engine written to disk.", float64(st.SnapshotsWritten), l)
	w.Counter("mecha_embedded_sql_snapshot_errors_total", "Snapshots of the embedded SQL engine that failed.", float64(st.SnapshotErrors), l)
	w.Gauge("mecha_embedded_sql_snapshot_bytes", "Size of the latest snapshot.", float64(st.LastSnapshotBytes), l)
	w.Gauge("mecha_embedded_sql_snapshot_seconds", "Time the latest snapshot took.", st.LastSnapshotDuration.Seconds(), l)
	w.Counter("mecha_embedded_sql_lock_waits_total", "Statements that waited for another connection's statement or transaction.", float64(st.LockWaits), l)
	w.Counter("mecha_embedded_sql_lock_wait_timeouts_total", "Statements that gave up waiting (error 1205).", float64(st.LockWaitTimeouts), l)
}
