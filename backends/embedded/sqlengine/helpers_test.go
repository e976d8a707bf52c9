package sqlengine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// quietLogger drops the engine's log lines (go-mysql-server logs every
// failed statement, which several tests provoke on purpose).
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openEngine opens an engine that the test closes at its end.
func openEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	e, err := Open(opts)
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

var dialSeq atomic.Uint64

// connect returns a go-sql-driver pool whose connections are made with
// e.Dial, logged in as root with an empty password. params are DSN
// parameters ("interpolateParams=false", ...).
func connect(t *testing.T, e *Engine, db string, params ...string) *sql.DB {
	t.Helper()
	name := fmt.Sprintf("sqlengine-test-%d", dialSeq.Add(1))
	mysql.RegisterDialContext(name, func(ctx context.Context, _ string) (net.Conn, error) {
		return e.Dial(ctx)
	})
	t.Cleanup(func() { mysql.DeregisterDialContext(name) })
	dsn := "root:@" + name + "(embedded)/" + db
	if len(params) > 0 {
		dsn += "?" + strings.Join(params, "&")
	}
	pool, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// conn returns one connection of pool, closed at the end of the test.
func conn(t *testing.T, pool *sql.DB) *sql.Conn {
	t.Helper()
	c, err := pool.Conn(context.Background())
	if err != nil {
		t.Fatalf("get connection: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// mustExec runs statements, failing the test on the first error.
func mustExec(t *testing.T, db execer, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// rowsText runs a query and returns every cell as the text the server sent
// ("NULL" for NULL), one string slice per row.
func rowsText(t *testing.T, db querier, query string, args ...any) [][]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, r := range raw {
			if r == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(r)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, db querier, query string, args ...any) int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("%s: no row (%v)", query, rows.Err())
	}
	var n int64
	if err := rows.Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// mysqlError returns err as a server error, failing the test if it is not
// one.
func mysqlError(t *testing.T, err error) *mysql.MySQLError {
	t.Helper()
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		t.Fatalf("want a MySQL error, got %v", err)
	}
	return me
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
