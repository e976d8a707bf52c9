package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// startEmbedded starts Mecha with a MySQL frontend on its embedded SQL
// engine, keeping its data in dir.
func startEmbedded(t *testing.T, dir string) (*app.Mecha, string) {
	t.Helper()
	apptest.SQLEngine(t)
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: db, protocol: mysql, listen: "127.0.0.1:0", backend: sql}
backends:
  sql: {type: embedded, dir: %q, sql: {snapshot_interval: 100ms, lock_wait_timeout: 2s}}
`, dir))
	return m, apptest.Addr(t, m, "db")
}

// TestEmbeddedEngine runs go-sql-driver, the mariadb CLI and a
// concurrent workload against the embedded engine, and checks that the
// data survives a restart of Mecha.
func TestEmbeddedEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Mecha")
	}
	dir := t.TempDir()
	m, addr := startEmbedded(t, dir)
	for _, params := range [][]string{{"interpolateParams=true"}, {"interpolateParams=false"}} {
		db := mysqltest.Open(t, mysqltest.DSN(addr, "root", "", "test", params...))
		table := "items_" + strings.TrimSuffix(strings.TrimPrefix(params[0], "interpolateParams="), "e")
		mustExec(t, db, "CREATE TABLE "+table+" (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL, price DECIMAL(8,2), seen DATETIME(6), data BLOB)")
		seen := time.Date(2026, 11, 22, 10, 30, 0, 123456000, time.UTC)
		for i := 1; i <= 20; i++ {
			res := mustExec(t, db, "INSERT INTO "+table+" (name, price, seen, data) VALUES (?, ?, ?, ?)", fmt.Sprintf("item-%02d ü", i), float64(i)+0.25, seen, []byte{0, byte(i), 0xff})
			if id, _ := res.LastInsertId(); id != int64(i) {
				t.Fatalf("insert id %d, want %d", id, i)
			}
		}
		var n int
		var sum string
		if err := db.QueryRow("SELECT COUNT(*), CAST(SUM(price) AS CHAR) FROM "+table+" WHERE name LIKE ?", "item-%").Scan(&n, &sum); err != nil || n != 20 || sum != "215.00" {
			t.Fatalf("count %d sum %s: %v", n, sum, err)
		}
		// A transaction rolled back leaves nothing; one committed stays.
		tx, _ := db.Begin()
		mustExec(t, tx, "DELETE FROM "+table+" WHERE id <= 10")
		tx.Rollback()
		tx, _ = db.Begin()
		mustExec(t, tx, "UPDATE "+table+" SET price = 0 WHERE id = 20")
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != 20 {
			t.Fatalf("after rollback: %d rows, %v", n, err)
		}
		_, err := db.Exec("INSERT INTO " + table + " (id, name) VALUES (1, 'dup')")
		if me := mysqlErrOf(err); me == nil || me.Number != 1062 {
			t.Fatalf("duplicate key: %v", err)
		}
	}
	// Concurrent read-modify-write transactions serialize: no update lost.
	db := mysqltest.Open(t, mysqltest.DSN(addr, "root", "", "test", "interpolateParams=false"))
	db.SetMaxOpenConns(8)
	mustExec(t, db, "CREATE TABLE counter (id INT PRIMARY KEY, n INT)")
	mustExec(t, db, "INSERT INTO counter VALUES (1, 0)")
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		go func() {
			for i := 0; i < 25; i++ {
				err := func() error {
					tx, err := db.BeginTx(context.Background(), nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					var n int
					if err := tx.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
						return err
					}
					if _, err := tx.Exec("UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
						return err
					}
					return tx.Commit()
				}()
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var counter int
	if err := db.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&counter); err != nil || counter != 200 {
		t.Fatalf("counter %d, want 200 (%v)", counter, err)
	}
	// Clients one after another, each in its own database and character
	// set: sessions are not carried over from one client to the next.
	for i, coll := range []string{"utf8mb4_general_ci", "latin1_swedish_ci", "utf8mb4_bin"} {
		one := mysqltest.Open(t, mysqltest.DSN(addr, "root", "", "test", "collation="+coll))
		one.SetMaxIdleConns(0)
		var got string
		if err := one.QueryRow("SELECT CONCAT(DATABASE(), ' ', @@collation_connection, ' ', IFNULL(@mine, 'fresh'))").Scan(&got); err != nil || got != "test "+coll+" fresh" {
			t.Fatalf("client %d: %q %v", i, got, err)
		}
		mustExec(t, one, "SET @mine = 1")
		one.Close()
	}
	// The mariadb CLI, as a user on a fresh machine would use it.
	out := runCLI(t, addr, "SELECT name, price FROM items_tru WHERE id IN (1, 20) ORDER BY id")
	if out != "name\tprice\nitem-01 ü\t1.25\nitem-20 ü\t0.00\n" {
		t.Fatalf("mariadb CLI: %q", out)
	}
	// Restart Mecha on the same directory: everything is still there.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db.Close()
	m.Shutdown(ctx)
	_, addr = startEmbedded(t, dir)
	db = mysqltest.Open(t, mysqltest.DSN(addr, "root", "", "test", "parseTime=true"))
	var got sql.NullString
	if err := db.QueryRow("SELECT CONCAT(COUNT(*), ' ', MAX(n)) FROM counter").Scan(&got); err != nil || got.String != "1 200" {
		t.Fatalf("after restart: %q %v", got.String, err)
	}
	var seen time.Time
	var data []byte
	if err := db.QueryRow("SELECT seen, data FROM items_fals WHERE id = 7").Scan(&seen, &data); err != nil {
		t.Fatal(err)
	}
	if string(data) != "\x00\x07\xff" || !seen.Equal(time.Date(2026, 11, 22, 10, 30, 0, 123456000, time.UTC)) {
		t.Fatalf("after restart: blob %q, datetime %v", data, seen)
	}
}

// mustExec runs a statement, failing the test on an error.
func mustExec(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) sql.Result {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

func mysqlErrOf(err error) *mysqldrv.MySQLError {
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

// runCLI runs the mariadb CLI in batch mode on addr, in database test.
func runCLI(t *testing.T, addr, query string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, errOut, code := run(t, "", need(t, "mariadb"), "-h", host, "-P", port, "-u", "root", "--batch", "-D", "test", "-e", query)
	if code != 0 {
		t.Fatalf("mariadb: exit %d: %s", code, errOut)
	}
	return out
}
