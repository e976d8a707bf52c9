package sqlengine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoginAsRoot(t *testing.T) {
	e := openEngine(t, Options{})
	db := connect(t, e, "test")
	got := rowsText(t, db, "SELECT CURRENT_USER(), DATABASE(), VERSION(), @@autocommit")
	want := [][]string{{"root@localhost", "test", DefaultVersion, "1"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = rowsText(t, connect(t, e, ""), "SELECT DATABASE()")
	if got[0][0] != "NULL" {
		t.Fatalf("DATABASE() without a database in the DSN = %q, want NULL", got[0][0])
	}
}

// TestRawHandshake logs in with a hand-made HandshakeResponse41, as Mecha's
// relay does, and checks the version announced.
func TestRawHandshake(t *testing.T) {
	for _, tc := range []struct {
		name, version, wantVersion, db string
	}{
		{name: "default version", wantVersion: DefaultVersion, db: "test"},
		{name: "custom version", version: "8.0.36-custom", wantVersion: "8.0.36-custom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := openEngine(t, Options{Version: tc.version})
			rc := dialRaw(t, e, "root", tc.db)
			if rc.version != tc.wantVersion {
				t.Fatalf("handshake version %q, want %q", rc.version, tc.wantVersion)
			}
			rc.exec(t, "CREATE TABLE IF NOT EXISTS test.raw (id INT PRIMARY KEY)")
			rc.exec(t, "INSERT INTO test.raw VALUES (1)")
			if n := queryInt(t, connect(t, e, "test"), "SELECT COUNT(*) FROM raw"); n != 1 {
				t.Fatalf("rows written by the raw client: %d, want 1", n)
			}
		})
	}
}

func TestDDLAndDML(t *testing.T) {
	e := openEngine(t, Options{})
	db := connect(t, e, "test")
	mustExec(t, db,
		"CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50) NOT NULL, qty INT DEFAULT 0, KEY (name))",
		"INSERT INTO items (name, qty) VALUES ('apple', 3), ('pear', 5), ('plum', 0)",
		"UPDATE items SET qty = qty + 10 WHERE name = 'pear'",
		"DELETE FROM items WHERE qty = 0",
		"ALTER TABLE items ADD COLUMN price DECIMAL(8,2) NULL",
		"UPDATE items SET price = 1.25 WHERE id = 1",
		"CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, item INT)",
		"INSERT INTO shop.orders VALUES (1, 2)",
	)
	for _, tc := range []struct {
		query string
		want  [][]string
	}{
		{"SELECT id, name, qty, price FROM items ORDER BY id", [][]string{{"1", "apple", "3", "1.25"}, {"2", "pear", "15", "NULL"}}},
		{"SELECT COUNT(*), SUM(qty) FROM items", [][]string{{"2", "18"}}},
		{"SELECT o.id, i.name FROM shop.orders o JOIN items i ON i.id = o.item", [][]string{{"1", "pear"}}},
		{"SHOW DATABASES LIKE 'shop'", [][]string{{"shop"}}},
	} {
		if got := rowsText(t, db, tc.query); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.query, got, tc.want)
		}
	}
	res, err := db.Exec("INSERT INTO items (name) VALUES ('kiwi')")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.LastInsertId(); id != 4 {
		t.Errorf("LastInsertId = %d, want 4", id)
	}
	_, err = db.Exec("INSERT INTO items (id, name) VALUES (1, 'dup')")
	if me := mysqlError(t, err); me.Number != 1062 {
		t.Errorf("duplicate key: error %d %q, want 1062", me.Number, me.Message)
	}
	_, err = db.Exec("SELECT * FROM nosuchtable")
	if me := mysqlError(t, err); me.Number != 1146 {
		t.Errorf("missing table: error %d %q, want 1146", me.Number, me.Message)
	}
}

func TestPreparedStatementsReexecuted(t *testing.T) {
	e := openEngine(t, Options{})
	db := connect(t, e, "test", "interpolateParams=false")
	mustExec(t, db, "CREATE TABLE kv (k INT PRIMARY KEY, v VARCHAR(20), b VARBINARY(8))")
	c := conn(t, db)
	ctx := context.Background()
	ins, err := c.PrepareContext(ctx, "INSERT INTO kv VALUES (?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	for i := 0; i < 20; i++ {
		if _, err := ins.ExecContext(ctx, i, fmt.Sprintf("v%d", i), []byte{byte(i), 0}); err != nil {
			t.Fatalf("execute #%d: %v", i, err)
		}
	}
	sel, err := c.PrepareContext(ctx, "SELECT v, b FROM kv WHERE k = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	for _, k := range []int{19, 0, 7, 7} {
		var v string
		var b []byte
		if err := sel.QueryRowContext(ctx, k).Scan(&v, &b); err != nil {
			t.Fatalf("select %d: %v", k, err)
		}
		if v != fmt.Sprintf("v%d", k) || !reflect.DeepEqual(b, []byte{byte(k), 0}) {
			t.Fatalf("select %d: got %q %v", k, v, b)
		}
	}
	if err := sel.QueryRowContext(ctx, 99).Scan(new(string), new([]byte)); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("select of a missing key: %v, want no rows", err)
	}
	// Query with arguments and no interpolation goes through
	// COM_STMT_PREPARE / COM_STMT_EXECUTE too.
	if n := queryInt(t, db, "SELECT COUNT(*) FROM kv WHERE k >= ? AND v <> ?", 10, "v15"); n != 9 {
		t.Fatalf("count = %d, want 9", n)
	}
}

func TestTransactions(t *testing.T) {
	e := openEngine(t, Options{})
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE acct (id INT PRIMARY KEY, bal INT)", "INSERT INTO acct VALUES (1, 100), (2, 0)")
	other := connect(t, e, "test")
	ctx := context.Background()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "UPDATE acct SET bal = bal - 30 WHERE id = 1", "UPDATE acct SET bal = bal + 30 WHERE id = 2")
	if got := rowsText(t, tx, "SELECT bal FROM acct ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"70"}, {"30"}}) {
		t.Fatalf("inside the transaction: %q", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := rowsText(t, other, "SELECT bal FROM acct ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"70"}, {"30"}}) {
		t.Fatalf("after commit, seen by another connection: %q", got)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "UPDATE acct SET bal = 0", "INSERT INTO acct VALUES (3, 5)")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := rowsText(t, other, "SELECT id, bal FROM acct ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"1", "70"}, {"2", "30"}}) {
		t.Fatalf("after rollback: %q", got)
	}

	// A failed statement inside a transaction undoes only itself.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "INSERT INTO acct VALUES (4, 4)")
	if _, err := tx.Exec("INSERT INTO acct VALUES (5, 5), (1, 1)"); err == nil {
		t.Fatal("insert of a duplicate key succeeded")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := rowsText(t, other, "SELECT id, bal FROM acct ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"1", "70"}, {"2", "30"}, {"4", "4"}}) {
		t.Fatalf("after a failed statement and commit: %q", got)
	}

	// autocommit=0 keeps a transaction open until COMMIT.
	c := conn(t, db)
	mustExec(t, c, "SET autocommit = 0", "UPDATE acct SET bal = 1 WHERE id = 4", "ROLLBACK")
	mustExec(t, c, "UPDATE acct SET bal = 2 WHERE id = 4", "COMMIT")
	if n := queryInt(t, other, "SELECT bal FROM acct WHERE id = 4"); n != 2 {
		t.Fatalf("after autocommit=0 rollback then commit: bal = %d, want 2", n)
	}
}

// TestConcurrentTransactionsSerialize runs read-modify-write increments in
// transactions from many connections at once. go-mysql-server's memory
// engine alone loses updates here (each transaction installs the whole
// table it read at commit); the global lock must make the total exact.
func TestConcurrentTransactionsSerialize(t *testing.T) {
	e := openEngine(t, Options{})
	db := connect(t, e, "test")
	db.SetMaxOpenConns(16)
	mustExec(t, db, "CREATE TABLE counter (id INT PRIMARY KEY, n INT, other INT)", "INSERT INTO counter VALUES (1, 0, 0), (2, 0, 0)")
	const workers, rounds, autocommitters = 8, 50, 2
	var wg sync.WaitGroup
	errs := make(chan error, workers+autocommitters)
	// Autocommit statements of other connections interleave with the
	// transactions.
	for w := 0; w < autocommitters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if _, err := db.Exec("UPDATE counter SET other = other + 1 WHERE id = 2"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < rounds; i++ {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				var n int
				if err := tx.QueryRowContext(ctx, "SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
					tx.Rollback()
					errs <- err
					return
				}
				if _, err := tx.ExecContext(ctx, "UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
					tx.Rollback()
					errs <- err
					return
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := rowsText(t, db, "SELECT n, other FROM counter ORDER BY id")
	want := [][]string{{fmt.Sprint(workers * rounds), "0"}, {"0", fmt.Sprint(autocommitters * rounds)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counters = %q, want %q", got, want)
	}
}

func TestLockWaitTimeout(t *testing.T) {
	e := openEngine(t, Options{LockWaitTimeout: 200 * time.Millisecond})
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 0)")
	ctx := context.Background()

	holder := conn(t, db)
	mustExec(t, holder, "BEGIN", "UPDATE t SET v = 1 WHERE id = 1")

	waiter := conn(t, db)
	start := time.Now()
	_, err := waiter.ExecContext(ctx, "UPDATE t SET v = 2 WHERE id = 1")
	me := mysqlError(t, err)
	if me.Number != 1205 || string(me.SQLState[:]) != "HY000" || me.Message != "Lock wait timeout exceeded; try restarting transaction" {
		t.Fatalf("got error %d (%s) %q, want 1205 (HY000) Lock wait timeout exceeded; try restarting transaction",
			me.Number, me.SQLState[:], me.Message)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("gave up after %v, before the 200ms timeout", waited)
	}
	// A read waits as well: statements are serialised, not just writes.
	if _, err := waiter.QueryContext(ctx, "SELECT v FROM t"); mysqlError(t, err).Number != 1205 {
		t.Fatalf("select during another transaction: %v, want error 1205", err)
	}
	if s := e.Stats(); s.LockWaitTimeouts < 2 || s.LockWaits < 2 {
		t.Fatalf("stats: %d lock waits, %d timeouts; want at least 2 of each", s.LockWaits, s.LockWaitTimeouts)
	}

	mustExec(t, holder, "COMMIT")
	mustExec(t, waiter, "UPDATE t SET v = v + 10 WHERE id = 1")
	if n := queryInt(t, waiter, "SELECT v FROM t WHERE id = 1"); n != 11 {
		t.Fatalf("v = %d, want 11", n)
	}
}

// TestLockReleasedWhenSessionEnds checks that a connection that goes away,
// or resets its session, with a transaction open frees the engine and
// leaves no trace of the transaction.
func TestLockReleasedWhenSessionEnds(t *testing.T) {
	e := openEngine(t, Options{LockWaitTimeout: 5 * time.Second})
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 0)")

	t.Run("connection closed", func(t *testing.T) {
		rc := dialRaw(t, e, "root", "test")
		rc.exec(t, "BEGIN")
		rc.exec(t, "UPDATE t SET v = 100 WHERE id = 1")
		if !ownedByAnyClient(e) {
			t.Fatal("the lock is not held during the transaction")
		}
		rc.c.Close()
		if n := queryInt(t, db, "SELECT v FROM t WHERE id = 1"); n != 0 {
			t.Fatalf("v = %d after the transaction's connection closed, want 0", n)
		}
	})
	t.Run("COM_RESET_CONNECTION", func(t *testing.T) {
		rc := dialRaw(t, e, "root", "test")
		rc.exec(t, "BEGIN")
		rc.exec(t, "UPDATE t SET v = 200 WHERE id = 1")
		p, err := rc.command(comResetConnection, "")
		if err != nil || p[0] != 0x00 {
			t.Fatalf("COM_RESET_CONNECTION: %v %s", err, describe(p))
		}
		if n := queryInt(t, db, "SELECT v FROM t WHERE id = 1"); n != 0 {
			t.Fatalf("v = %d after the session was reset, want 0", n)
		}
		// The connection goes on with a new session.
		rc.exec(t, "UPDATE t SET v = 3 WHERE id = 1")
		if n := queryInt(t, db, "SELECT v FROM t WHERE id = 1"); n != 3 {
			t.Fatalf("v = %d, want 3", n)
		}
	})
}

// ownedByAnyClient reports whether a client connection owns the lock.
func ownedByAnyClient(e *Engine) bool {
	e.lock.mu.Lock()
	defer e.lock.mu.Unlock()
	return e.lock.held && e.lock.owner != internalOwner
}

func TestClose(t *testing.T) {
	e, err := Open(Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	db := connect(t, e, "test")
	db.SetMaxIdleConns(0)
	c := conn(t, db)
	mustExec(t, c, "CREATE TABLE t (id INT)")
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.ExecContext(context.Background(), "INSERT INTO t VALUES (1)"); err == nil {
		t.Fatal("a connection opened before Close still works after it")
	}
	if _, err := e.Dial(context.Background()); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
}

func TestCloseFailsWaiters(t *testing.T) {
	e, err := Open(Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE t (id INT)")
	holder := dialRaw(t, e, "root", "test")
	holder.exec(t, "BEGIN")
	holder.exec(t, "INSERT INTO t VALUES (1)")
	waiter := dialRaw(t, e, "root", "test")
	done := make(chan []byte, 1)
	go func() {
		p, _ := waiter.command(comQuery, "INSERT INTO t VALUES (2)")
		done <- p
	}()
	eventually(t, 5*time.Second, "the second client to wait for the lock", func() bool { return e.Stats().LockWaits > 0 })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-done:
		// Either the shutdown error or a closed connection (nil).
		if p != nil && !strings.HasPrefix(describe(p), "error 1053 ") {
			t.Fatalf("waiting client got %s, want error 1053 or a closed connection", describe(p))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a client waiting for the lock still waits after Close")
	}
}

// TestKillRunsWithoutTheLock stops a statement that holds the lock from
// another connection, as Mecha's relay does when its client goes away.
func TestKillRunsWithoutTheLock(t *testing.T) {
	e := openEngine(t, Options{LockWaitTimeout: 30 * time.Second})
	db := connect(t, e, "test")
	sleeper := conn(t, db)
	id := queryInt(t, sleeper, "SELECT CONNECTION_ID()")
	done := make(chan error, 1)
	go func() {
		_, err := sleeper.ExecContext(context.Background(), "SELECT SLEEP(20)")
		done <- err
	}()
	eventually(t, 5*time.Second, "SLEEP to hold the lock", func() bool { return ownedByAnyClient(e) })
	mustExec(t, db, fmt.Sprintf("KILL QUERY %d", id))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("killed statement succeeded")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("statement still running after KILL QUERY")
	}
	if n := queryInt(t, db, "SELECT 7"); n != 7 {
		t.Fatalf("SELECT 7 = %d", n)
	}
}

func TestMultiStatements(t *testing.T) {
	e := openEngine(t, Options{Dir: t.TempDir(), SnapshotInterval: -1})
	db := connect(t, e, "test", "multiStatements=true")
	c := conn(t, db)
	mustExec(t, c, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
	if err := e.snapshot(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "SELECT 1; SHOW TABLES")
	if e.dirty.Load() {
		t.Fatal("reads in a multi-statement query marked the data as changed")
	}
	mustExec(t, c, "SELECT 1; INSERT INTO t VALUES (2); UPDATE t SET id = 3 WHERE id = 2")
	if !e.dirty.Load() {
		t.Fatal("a write after a read in a multi-statement query did not mark the data as changed")
	}
	if got := rowsText(t, c, "SELECT id FROM t ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"1"}, {"3"}}) {
		t.Fatalf("rows: %q", got)
	}
}

// TestCursorRequest asks for a server-side cursor (COM_STMT_EXECUTE with
// CURSOR_TYPE_READ_ONLY) and gets the whole result set at once, without
// SERVER_STATUS_CURSOR_EXISTS, as MySQL allows: an open cursor would hold
// the engine's lock between the client's fetches.
func TestCursorRequest(t *testing.T) {
	e := openEngine(t, Options{LockWaitTimeout: 200 * time.Millisecond})
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)")
	var values []string
	for i := 0; i < 300; i++ { // more than go-mysql-server's batch of 128 rows
		values = append(values, fmt.Sprintf("(%d)", i))
	}
	mustExec(t, db, "INSERT INTO t VALUES "+strings.Join(values, ","))

	rc := dialRaw(t, e, "root", "test")
	id := rc.prepare(t, "SELECT id FROM t ORDER BY id")
	for round := 0; round < 2; round++ {
		rows, status := rc.executeCursor(t, id)
		if status&0x40 != 0 {
			t.Fatalf("status flags %#x announce an open cursor", status)
		}
		if len(rows) != 300 {
			t.Fatalf("%d rows, want 300", len(rows))
		}
		for i, v := range rows {
			if v != int32(i) {
				t.Fatalf("row %d is %d", i, v)
			}
		}
		if ownedByAnyClient(e) {
			t.Fatal("the lock is still held after the result was sent")
		}
		mustExec(t, db, "INSERT INTO t VALUES (1000)", "DELETE FROM t WHERE id = 1000")
	}
}

// TestCloseCancelsRunningStatements checks that Close does not wait for a
// long statement to finish on its own.
func TestCloseCancelsRunningStatements(t *testing.T) {
	e, err := Open(Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	db := connect(t, e, "test")
	done := make(chan error, 1)
	go func() {
		_, err := db.Exec("SELECT SLEEP(60)")
		done <- err
	}()
	eventually(t, 5*time.Second, "SLEEP to hold the lock", func() bool { return ownedByAnyClient(e) })
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waits for a 60-second statement after 30 seconds")
	}
	if err := <-done; err == nil {
		t.Fatal("the statement running at Close succeeded")
	}
}
