package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// TestDriverSessionsDoNotLeak checks that what one client leaves in its
// session (variables, an open transaction, a temporary table, a lock, a
// character set, a current database) is not seen by the next client,
// which may get the same upstream session from Mecha's pool.
func TestDriverSessionsDoNotLeak(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	execAll(t, e.direct(t), "CREATE TABLE leak (id INT PRIMARY KEY)", "CREATE DATABASE IF NOT EXISTS "+e.up.DB+"_other")
	t.Cleanup(func() { _, _ = e.direct(t).Exec("DROP DATABASE IF EXISTS " + e.up.DB + "_other") })
	lockName := e.up.DB + "_lock"
	// The character set comes with the login (collation=) or from SET
	// NAMES afterwards (charset=); the next client's must be its own.
	rounds := []struct {
		dirty, clean []string
		wantCS       string
	}{
		{[]string{"charset=latin1"}, nil, "utf8mb4"},
		{[]string{"collation=latin1_swedish_ci"}, nil, "utf8mb4"},
		{nil, []string{"collation=latin1_swedish_ci"}, "latin1"},
		{[]string{"collation=utf8mb4_bin"}, []string{"collation=utf8mb4_unicode_ci"}, "utf8mb4"},
	}
	for round, r := range rounds {
		// A client that leaves a mess behind and disconnects.
		dirty := e.via(t, append([]string{"autocommit=false"}, r.dirty...)...)
		dirty.SetMaxIdleConns(0)
		conn, err := dirty.Conn(context.Background())
		must(t, err)
		ctx := context.Background()
		for _, s := range []string{
			"SET @leak = 'dirty', SESSION sql_mode = 'ANSI_QUOTES', SESSION time_zone = '+05:00'",
			"CREATE TEMPORARY TABLE tmp_leak (x INT)",
			"INSERT INTO leak VALUES (" + fmt.Sprint(round+1) + ")",
			"SELECT GET_LOCK('" + lockName + "', 0)",
			"USE " + e.up.DB + "_other",
		} {
			_, err := conn.ExecContext(ctx, s)
			must(t, err)
		}
		must(t, conn.Close())
		must(t, dirty.Close())
		// Wait until Mecha has put the session back in its pool (or
		// closed it), so that the next client can be given it.
		apptest.Eventually(t, 5*time.Second, "the dirty session to be released", func() bool {
			return e.g.Metric(t, "mecha_frontend_connections{") == 0 &&
				e.g.Metric(t, "mecha_mysql_upstream_sessions{") == e.g.Metric(t, "mecha_mysql_upstream_idle_sessions{")
		})

		clean := e.via(t, r.clean...)
		clean.SetMaxOpenConns(1)
		var (
			v                    sql.NullString
			mode, tz, cs, dbName string
			ac                   int
		)
		must(t, clean.QueryRow("SELECT @leak, @@sql_mode, @@time_zone, @@character_set_client, DATABASE(), @@autocommit").Scan(&v, &mode, &tz, &cs, &dbName, &ac))
		if v.Valid || strings.Contains(mode, "ANSI_QUOTES") || tz != "SYSTEM" || cs != r.wantCS || dbName != e.up.DB || ac != 1 {
			t.Errorf("round %d: next client sees @leak=%v sql_mode=%q time_zone=%q charset=%q (want %s) db=%q autocommit=%d", round, v, mode, tz, cs, r.wantCS, dbName, ac)
		}
		// The same through MariaDB directly, so that the expectation is
		// MariaDB's and not a guess.
		if dcs := queryString(t, e.direct(t, r.clean...), "SELECT @@character_set_client"); dcs != r.wantCS {
			t.Errorf("round %d: directly the character set is %q", round, dcs)
		}
		const charsets = "SELECT CONCAT_WS(' ', @@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection)"
		if got, want := queryString(t, clean, charsets), queryString(t, e.direct(t, r.clean...), charsets); got != want {
			t.Errorf("round %d: character sets through Mecha %q, directly %q", round, got, want)
		}
		if _, err := clean.Exec("SELECT * FROM tmp_leak"); !isMySQLErr(err, 1146, "42S02") {
			t.Errorf("round %d: the previous client's temporary table: %v", round, err)
		}
		// The uncommitted insert was rolled back and its row lock released.
		if n := queryInt(t, e.direct(t), "SELECT COUNT(*) FROM leak"); n != 0 {
			t.Errorf("round %d: %d rows of an uncommitted transaction", round, n)
		}
		if n := queryInt(t, clean, "SELECT IS_FREE_LOCK(?)", lockName); n != 1 {
			t.Errorf("round %d: the previous client's named lock is still held", round)
		}
		must(t, clean.Close())
	}
	// The clients above got upstream sessions that earlier clients had
	// left, reset by Mecha: that is what this test is about.
	if reuses := e.g.Metric(t, "mecha_mysql_upstream_reuses_total"); reuses < float64(len(rounds)) {
		t.Errorf("upstream sessions reused %v times, want at least %d", reuses, len(rounds))
	}
}

// TestDriverDisconnectRollsBack checks that a client that disconnects in
// the middle of a transaction has it rolled back and its locks (row
// locks, the table's metadata lock, a named lock) released at once, as
// MariaDB does for a direct client: another client can then update the
// row, alter the table and take the lock.
func TestDriverDisconnectRollsBack(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	ctx := context.Background()
	for _, side := range []string{"direct", "mecha"} {
		t.Run(side, func(t *testing.T) {
			table, lock := "held_"+side, e.up.DB+"_held_"+side
			execAll(t, e.direct(t), "CREATE TABLE "+table+" (id INT PRIMARY KEY, v INT) ENGINE=InnoDB", "INSERT INTO "+table+" VALUES (1, 0)")
			db := e.direct(t)
			if side == "mecha" {
				db = e.via(t)
			}
			conn, err := db.Conn(ctx)
			must(t, err)
			for _, q := range []string{"BEGIN", "UPDATE " + table + " SET v = v + 1 WHERE id = 1", "SELECT GET_LOCK('" + lock + "', 0)"} {
				_, err := conn.ExecContext(ctx, q)
				must(t, err)
			}
			// The client goes away (COM_QUIT) without committing.
			must(t, conn.Close())
			must(t, db.Close())

			other, err := e.direct(t).Conn(ctx)
			must(t, err)
			defer other.Close()
			_, err = other.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 3, SESSION lock_wait_timeout = 3")
			must(t, err)
			if _, err := other.ExecContext(ctx, "UPDATE "+table+" SET v = v + 10 WHERE id = 1"); err != nil {
				t.Errorf("updating the row after the client left: %v", err)
			}
			var v int
			must(t, other.QueryRowContext(ctx, "SELECT v FROM "+table+" WHERE id = 1").Scan(&v))
			if v != 10 {
				t.Errorf("v = %d, want 10 (the departed client's update rolled back)", v)
			}
			if _, err := other.ExecContext(ctx, "ALTER TABLE "+table+" ADD COLUMN extra INT"); err != nil {
				t.Errorf("altering the table after the client left: %v", err)
			}
			var free int
			must(t, other.QueryRowContext(ctx, "SELECT IS_FREE_LOCK(?)", lock).Scan(&free))
			if free != 1 {
				t.Errorf("the departed client's named lock %s is still held", lock)
			}
		})
	}
}

// TestDriverUpstreamSessionEnds ends a pooled client's session on the
// server (KILL here; wait_timeout and a server restart do the same).
// Directly, MariaDB closes the connection, go-sql-driver finds it closed
// before reusing it and database/sql opens a new one: the application sees
// no error. Through Mecha the client's connection must end as promptly.
func TestDriverUpstreamSessionEnds(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	for _, side := range []string{"direct", "mecha"} {
		t.Run(side, func(t *testing.T) {
			db := e.direct(t)
			if side == "mecha" {
				db = e.via(t)
			}
			db.SetMaxOpenConns(1)
			id := queryInt(t, db, "SELECT CONNECTION_ID()")
			execAll(t, e.direct(t), fmt.Sprint("KILL ", id))
			apptest.Eventually(t, 5*time.Second, "the session to end", func() bool {
				return queryInt(t, e.direct(t), "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id) == 0
			})
			if side == "mecha" {
				// Mecha learns of the hang-up from the kernel and closes the
				// client's connection, as the server's own closing would.
				apptest.Eventually(t, 5*time.Second, "Mecha to close the client", func() bool {
					return e.g.Metric(t, `mecha_frontend_upstream_lost_total{frontend="db"`) >= 1
				})
			}
			time.Sleep(100 * time.Millisecond) // as an application idle a moment
			var got int64
			if err := db.QueryRow("SELECT CONNECTION_ID()").Scan(&got); err != nil {
				t.Errorf("first query after the session was killed: %v", err)
			} else if got == id {
				t.Errorf("still on the killed session %d", id)
			}
		})
	}
}
