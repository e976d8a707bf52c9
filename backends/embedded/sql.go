package embedded

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
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

// sqlSide is the SQL engine, started when a MySQL frontend first asks for
// it, and the upstream-session pool the frontend relays through to it.
type sqlSide struct {
	mu  sync.Mutex
	eng *engineProcess
	be  *mysqlb.Backend
}

var _ backends.MySQLPassthrough = (*Store)(nil)

// sqlBackend starts the engine at the first need.
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
	eng, err := startEngine(ctx, s.name, dir, s.cfg.SQL, s.log)
	if err != nil {
		s.log.Error("embedded SQL engine failed to start", "dir", dir, "err", err)
		return nil, fmt.Errorf("embedded SQL engine: %w", err)
	}
	cfg := mysqlb.DefaultConfig()
	cfg.Addr = "embedded:" + s.name
	be, err := mysqlb.NewWithDialer(cfg, backends.Env{Name: s.name, Logger: s.log}, eng.dial)
	if err == nil {
		// go-mysql-server ignores the collation of the handshake.
		be.ApplyCollation()
		err = be.Start(ctx)
	}
	if err != nil {
		_ = eng.close()
		return nil, err
	}
	s.log.Info("embedded SQL engine started", "dir", dir, "pid", eng.cmd.Process.Pid)
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
	err := errors.Join(s.sql.be.Close(), s.sql.eng.close())
	s.sql.be, s.sql.eng = nil, nil
	return err
}

// collectSQL exports the engine's session metrics, once it is running.
func (s *Store) collectSQL(w *metrics.Writer) {
	s.sql.mu.Lock()
	be := s.sql.be
	s.sql.mu.Unlock()
	if be != nil {
		be.CollectMetrics(w)
	}
}
