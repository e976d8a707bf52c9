package mysql_test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
	"github.com/mecha-gateway/mecha/configs/tlstest"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
)

func mysqlErr(err error) *mysql.MySQLError {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

func wantErr(t *testing.T, err error, code uint16, state, msgPrefix string) {
	t.Helper()
	me := mysqlErr(err)
	if me == nil {
		t.Fatalf("err = %v, want MySQL error %d", err, code)
	}
	if me.Number != code || string(me.SQLState[:]) != state || !strings.HasPrefix(me.Message, msgPrefix) {
		t.Fatalf("error %d (%s) %q, want %d (%s) %q...", me.Number, me.SQLState, me.Message, code, state, msgPrefix)
	}
}

func scalar[T any](t *testing.T, db interface {
	QueryRow(string, ...any) *sql.Row
}, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestLoginMethods(t *testing.T) {
	up := mysqltest.Shared(t)
	for _, plugin := range []string{wire.NativePassword, wire.CachingSHA2} {
		t.Run(plugin, func(t *testing.T) {
			gw := mysqltest.StartGateway(t, up, fmt.Sprintf(`auth: {plugin: %s, users: {app: "s3cret pw", nopw: ""}}`, plugin), "")
			// The first caching_sha2_password login takes the full path
			// (the driver asks for the RSA key without TLS), later ones the
			// fast path, as with MySQL's cache.
			for i := 0; i < 2; i++ {
				db := mysqltest.Open(t, gw.DSN("app", "s3cret pw"))
				if got := scalar[int](t, db, "SELECT 1"); got != 1 {
					t.Fatal(got)
				}
				db.Close()
			}
			if got := scalar[int](t, mysqltest.Open(t, gw.DSN("nopw", "")), "SELECT 2"); got != 2 {
				t.Fatal(got)
			}
			if plugin == wire.CachingSHA2 {
				if full, fast := gw.Metric(t, `mecha_frontend_logins_total{frontend="db",protocol="mysql",method="caching_sha2_password_full"}`),
					gw.Metric(t, `mecha_frontend_logins_total{frontend="db",protocol="mysql",method="caching_sha2_password_fast"}`); full != 1 || fast != 2 {
					t.Errorf("sha2 logins: full %v fast %v, want 1 and 2 (one cached, one empty password)", full, fast)
				}
			}
			err := mysqltest.Open(t, gw.DSN("app", "wrong")).Ping()
			wantErr(t, err, 1045, "28000", "Access denied for user 'app'@'127.0.0.1' (using password: YES)")
			err = mysqltest.Open(t, gw.DSN("nobody", "")).Ping()
			wantErr(t, err, 1045, "28000", "Access denied for user 'nobody'@'127.0.0.1' (using password: NO)")
			// Logging in to Mecha does not log in to the upstream as that
			// user: the session is the backend's.
			if got := scalar[string](t, mysqltest.Open(t, gw.DSN("app", "s3cret pw")), "SELECT CURRENT_USER()"); !strings.HasPrefix(got, "root@") {
				t.Errorf("upstream user %q", got)
			}
		})
	}
	// A client offering the other plugin than the one announced is
	// served as well (here: the driver asked to use native password
	// answers an auth switch).
	gw := mysqltest.StartGateway(t, up, `auth: {plugin: caching_sha2_password, users: {app: pw}}`, "")
	if got := scalar[int](t, mysqltest.Open(t, gw.DSN("app", "pw", "allowNativePasswords=true")), "SELECT 3"); got != 3 {
		t.Fatal(got)
	}
}

func TestTLS(t *testing.T) {
	up := mysqltest.Shared(t)
	certs := tlstest.Make(t, "server")
	gw := mysqltest.StartGateway(t, up, fmt.Sprintf(`auth: {plugin: caching_sha2_password, users: {app: pw}}, tls: {cert_file: %q, key_file: %q}, require_tls: true`,
		certs.Cert["server"], certs.Key["server"]), "")
	if err := mysql.RegisterTLSConfig("mecha-test", &tls.Config{RootCAs: certs.Pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	db := mysqltest.Open(t, gw.DSN("app", "pw", "tls=mecha-test"))
	// Over TLS, caching_sha2_password's full path sends the password in
	// clear inside the TLS session.
	if got := scalar[int](t, db, "SELECT 7"); got != 7 {
		t.Fatal(got)
	}
	err := mysqltest.Open(t, gw.DSN("app", "pw")).Ping()
	wantErr(t, err, 3159, "HY000", "Connections using insecure transport are prohibited")
	if got := gw.Metric(t, `mecha_frontend_auth_failures_total{frontend="db"`); got != 1 {
		t.Errorf("auth failures = %v", got)
	}
}

func TestSessionStateAndErrors(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	db := gw.Open(t, "collation=utf8mb4_unicode_ci", "clientFoundRows=true")
	db.SetMaxOpenConns(1)
	if got := scalar[string](t, db, "SELECT @@collation_connection"); got != "utf8mb4_unicode_ci" {
		t.Errorf("collation from the handshake: %q", got)
	}
	if got := scalar[string](t, db, "SELECT DATABASE()"); got != up.DB {
		t.Errorf("database from the handshake: %q", got)
	}
	mustExec(t, db, "CREATE TABLE kv (k INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(3) UNIQUE)")
	res := mustExec(t, db, "INSERT INTO kv (v) VALUES ('a'), ('b')")
	if id, _ := res.LastInsertId(); id != 1 {
		t.Errorf("last insert id %d", id)
	}
	// CLIENT_FOUND_ROWS reaches the server: a matched but unchanged row counts.
	res = mustExec(t, db, "UPDATE kv SET v = 'a' WHERE k = 1")
	if n, _ := res.RowsAffected(); n != 1 {
		t.Errorf("found rows: affected %d, want 1", n)
	}
	_, err := db.Exec("INSERT INTO kv (v) VALUES ('a')")
	wantErr(t, err, 1062, "23000", "Duplicate entry 'a'")
	_, err = db.Exec("SELEC 1")
	wantErr(t, err, 1064, "42000", "You have an error in your SQL syntax")
	_, err = db.Exec("INSERT INTO kv (v) VALUES ('toolong')")
	wantErr(t, err, 1406, "22001", "Data too long for column 'v'")
	mustExec(t, db, "SET SESSION sql_mode = ''")
	mustExec(t, db, "INSERT INTO kv (v) VALUES ('truncated')")
	if got := scalar[int](t, db, "SELECT @@warning_count"); got != 1 {
		t.Errorf("warnings after a truncating insert: %d", got)
	}
	mustExec(t, db, "SET @mine = 42")
	if got := scalar[int](t, db, "SELECT @mine"); got != 42 {
		t.Errorf("user variable %d", got)
	}
	// A database the server does not know: its error, as the server
	// words it.
	err = mysqltest.Open(t, mysqltest.DSN(gw.Addr, "root", "", "no_such_db_here")).Ping()
	wantErr(t, err, 1049, "42000", "Unknown database 'no_such_db_here'")
}

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

// TestSessionsAreResetForReuse checks that an upstream session a client
// left is reused for the next one with nothing of the first client's
// session left behind.
func TestSessionsAreResetForReuse(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	// leave opens a client, leaves session state behind on its upstream
	// session, disconnects and returns that session's id once it is back
	// in the pool.
	leave := func() int64 {
		first := gw.Open(t)
		// One client connection, so one upstream session goes back to
		// the pool.
		first.SetMaxOpenConns(1)
		conn, err := first.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var upstreamID int64
		if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&upstreamID); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"SET @left = 'behind'", "CREATE TEMPORARY TABLE tmp (x INT)", "SET SESSION sql_mode = 'ANSI_QUOTES'",
			"START TRANSACTION", "CREATE TABLE IF NOT EXISTS reuse (x INT) ENGINE=InnoDB"} {
			if _, err := conn.ExecContext(context.Background(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		conn.Close()
		first.Close()
		apptest.Eventually(t, 5*time.Second, "session back in the pool", func() bool {
			return gw.Metric(t, `mecha_mysql_upstream_idle_sessions{backend="upstream"}`) >= 1
		})
		return upstreamID
	}
	// The next client gets that session. On a loaded machine the pooled
	// session is now and then gone before (the shared server closed it,
	// say) and the client gets a new one, which has nothing to check:
	// try again, a few times at most.
	var second *sql.DB
	for attempt := 1; ; attempt++ {
		upstreamID := leave()
		second = mysqltest.Open(t, gw.DSN("root", "", "collation=latin1_swedish_ci"))
		second.SetMaxOpenConns(1)
		got := scalar[int64](t, second, "SELECT CONNECTION_ID()")
		if got == upstreamID {
			break
		}
		if attempt == 3 {
			t.Fatalf("the pool gave another session (%d, not %d) %d times: nothing to check the reset on", got, upstreamID, attempt)
		}
		t.Logf("attempt %d: the pool gave another session (%d, not %d); again", attempt, got, upstreamID)
		second.Close()
	}
	if got := scalar[sql.NullString](t, second, "SELECT @left"); got.Valid {
		t.Errorf("user variable survived: %q", got.String)
	}
	if _, err := second.Exec("SELECT * FROM tmp"); mysqlErr(err) == nil || mysqlErr(err).Number != 1146 {
		t.Errorf("temporary table survived: %v", err)
	}
	if got := scalar[string](t, second, "SELECT @@sql_mode"); strings.Contains(got, "ANSI_QUOTES") {
		t.Errorf("sql_mode survived: %q", got)
	}
	if got := scalar[string](t, second, "SELECT @@collation_connection"); got != "latin1_swedish_ci" {
		t.Errorf("collation of the new client: %q", got)
	}
	if got := scalar[int](t, second, "SELECT @@in_transaction"); got != 0 {
		t.Errorf("transaction survived")
	}
	if gw.Metric(t, `mecha_mysql_upstream_reuses_total{backend="upstream"}`) < 1 {
		t.Error("no reuse counted")
	}
}

// TestKill: KILL with the connection id Mecha announced (what the mysql
// CLI's Ctrl-C sends) reaches the client's upstream session, and so does
// KILL with the id CONNECTION_ID() returns.
func TestKill(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	admin := gw.Open(t)
	for _, how := range []string{"announced", "upstream", "com_process_kill"} {
		t.Run(how, func(t *testing.T) {
			victim := rawDial(t, gw.Addr, "root", "", up.DB, baseCaps)
			victim.send(0, append([]byte{wire.ComQuery}, "SELECT CONNECTION_ID()"...))
			rows := victim.until(isTerminatorAfter(2))
			upstreamID := string(rows[len(rows)-2][1:])
			start := time.Now()
			victim.send(0, append([]byte{wire.ComQuery}, "SELECT SLEEP(30)"...))
			time.Sleep(200 * time.Millisecond)
			switch how {
			case "announced":
				mustExec(t, admin, fmt.Sprintf("KILL QUERY %d", victim.connID))
			case "upstream":
				mustExec(t, admin, "KILL QUERY "+upstreamID)
			case "com_process_kill":
				killer := rawDial(t, gw.Addr, "root", "", "", baseCaps)
				p := killer.exchange(append([]byte{wire.ComProcessKill}, byte(victim.connID), byte(victim.connID>>8), byte(victim.connID>>16), byte(victim.connID>>24)), func([]byte) bool { return true })
				if p[0][0] != wire.HeaderOK {
					t.Fatalf("COM_PROCESS_KILL: %v", wire.ParseError(p[0]))
				}
			}
			// SLEEP interrupted by KILL QUERY answers 1 at once.
			victim.until(isTerminatorAfter(2))
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("the query ran %s: not killed", d)
			}
		})
	}
}

// isTerminatorAfter ends a text result set of one row without
// CLIENT_DEPRECATE_EOF: n terminators.
func isTerminatorAfter(n int) func([]byte) bool {
	seen := 0
	return func(p []byte) bool {
		if p[0] == wire.HeaderErr {
			return true
		}
		if isTerminator(p) {
			seen++
		}
		return seen == n
	}
}

func TestLimits(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "max_allowed_packet: 64kb, max_connections: 3", "")
	db := gw.Open(t)
	db.SetMaxOpenConns(1)
	_, err := db.Exec("SELECT ?", strings.Repeat("x", 100<<10))
	// go-sql-driver refuses it before sending when it knows the limit;
	// with interpolation the server's (Mecha's) answer arrives.
	if err == nil {
		t.Fatal("a 100 KiB query passed a 64 KiB limit")
	}
	raw := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	raw.send(0, append([]byte{wire.ComQuery}, strings.Repeat("y", 100<<10)...))
	p, _ := raw.read()
	if e := wire.ParseError(p); e.Code != 1153 || e.State != "08S01" || e.Message != "Got a packet bigger than 'max_allowed_packet' bytes" {
		t.Fatalf("oversized packet: %v", e)
	}
	if _, _, err := raw.tryRead(); err == nil {
		t.Fatal("connection still open after an oversized packet")
	}
	// The limit is on the client's total, not per connection.
	var held []*rawClient
	for i := 0; i < 3; i++ {
		held = append(held, rawDial(t, gw.Addr, "root", "", "", baseCaps))
	}
	c, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	p, _, err = wire.ReadPacket(bufioReader(c), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ParseError(p); e.Code != 1040 || e.Message != "Too many connections" {
		t.Fatalf("over max_connections: %v", e)
	}
	_ = held
}

// TestMalformedInput: garbage at every stage gets a MySQL error or a
// closed connection, never a crash or a hang, and other clients carry on.
func TestMalformedInput(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	inputs := [][]byte{
		{1, 0, 0, 1, 0},                // a one-byte handshake response
		{0xff, 0xff, 0xff, 1, 1, 2, 3}, // a 16 MiB packet that never comes
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		append([]byte{32, 0, 0, 1, 0, 0x0a, 0, 0, 0, 0, 0, 1, 45}, make([]byte, 23)...), // SSLRequest, no TLS configured
		append([]byte{40, 0, 0, 1, 5, 0, 0, 0}, make([]byte, 36)...),                    // pre-4.1 client
	}
	for i, in := range inputs {
		c, err := net.Dial("tcp", gw.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		br := bufioReader(c)
		if _, _, err := wire.ReadPacket(br, 1<<20, nil); err != nil {
			t.Fatalf("greeting: %v", err)
		}
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		p, _, err := wire.ReadPacket(br, 1<<20, nil)
		if err != nil {
			t.Errorf("input %d: no error packet: %v", i, err)
		} else if e := wire.ParseError(p); e.Code != 1043 || e.State != "08S01" || e.Message != "Bad handshake" {
			t.Errorf("input %d: answered %v", i, e)
		}
		c.Close()
	}
	// After login: a packet out of order, then a session that keeps working.
	raw := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	raw.send(5, []byte{wire.ComPing})
	p, _ := raw.read()
	if e := wire.ParseError(p); e.Code != 1156 {
		t.Fatalf("out of order: %v", e)
	}
	if got := scalar[int](t, gw.Open(t), "SELECT 11"); got != 11 {
		t.Fatal(got)
	}
}

func bufioReader(c net.Conn) *bufioR { return newBufioR(c) }

// TestLocalInfile: refused with the server's own error unless enabled,
// relayed when it is.
func TestLocalInfile(t *testing.T) {
	up := mysqltest.Shared(t)
	mysql.RegisterReaderHandler("mecha-rows", func() io.Reader {
		return strings.NewReader("1\tone\n2\ttwo\n3\tthree\n")
	})
	for _, enabled := range []bool{false, true} {
		t.Run(fmt.Sprint("enabled=", enabled), func(t *testing.T) {
			gw := mysqltest.StartGateway(t, up, fmt.Sprintf("local_infile: %v", enabled), "")
			db := gw.Open(t, "allowAllFiles=true")
			db.SetMaxOpenConns(1)
			table := fmt.Sprintf("infile_%v", enabled)
			mustExec(t, db, "CREATE TABLE "+table+" (id INT, name VARCHAR(10))")
			_, err := db.Exec("LOAD DATA LOCAL INFILE 'Reader::mecha-rows' INTO TABLE " + table)
			if !enabled {
				// The server's own refusal: 4166 on MariaDB, 1148 or 3948
				// on MySQL, for a session without CLIENT_LOCAL_FILES.
				if me := mysqlErr(err); me == nil || (me.Number != 4166 && me.Number != 1148 && me.Number != 3948) {
					t.Fatalf("LOAD DATA LOCAL while disabled: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := scalar[string](t, db, "SELECT GROUP_CONCAT(name ORDER BY id) FROM "+table); got != "one,two,three" {
				t.Fatalf("loaded %q", got)
			}
		})
	}
}

// TestStreamingAndMidResultDisconnect reads a large result through Mecha
// and abandons another one half-way: the abandoned upstream session is
// closed, not reused, and everything else carries on.
func TestStreamingAndMidResultDisconnect(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	db := gw.Open(t)
	const q = "WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 200000) SELECT n, REPEAT('x', 100) FROM seq"
	mustExec(t, db, "SET SESSION max_recursive_iterations = 1000000")
	conn, _ := db.Conn(context.Background())
	defer conn.Close()
	conn.ExecContext(context.Background(), "SET SESSION max_recursive_iterations = 1000000")
	rows, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	count, sum := 0, 0
	for rows.Next() {
		var n int
		var s string
		if err := rows.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		count++
		sum += n
	}
	if err := rows.Err(); err != nil || count != 200000 || sum != 200000*200001/2 {
		t.Fatalf("rows %d sum %d err %v", count, sum, err)
	}
	raw := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	res := raw.exchange(append([]byte{wire.ComQuery}, "SELECT CONNECTION_ID()"...), isTerminatorAfter(2))
	upstreamID := string(res[len(res)-2][1:])
	raw.send(0, append([]byte{wire.ComQuery}, "SET SESSION max_recursive_iterations = 1000000"...))
	raw.read()
	raw.send(0, append([]byte{wire.ComQuery}, q...))
	for i := 0; i < 100; i++ {
		raw.read()
	}
	raw.c.Close()
	// Its upstream session is closed (the server drops its query), not
	// kept for another client.
	direct := up.Open()
	apptest.Eventually(t, 10*time.Second, "the abandoned upstream session gone", func() bool {
		var n int
		err := direct.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + upstreamID).Scan(&n)
		return err == nil && n == 0
	})
	// A new client gets a clean session (not the abandoned one).
	if got := scalar[int](t, gw.Open(t), "SELECT 5"); got != 5 {
		t.Fatal(got)
	}
}

// TestUpstreamFailures: the upstream killed with clients idle and mid-
// query, restarted, and a session ended by wait_timeout.
func TestUpstreamFailures(t *testing.T) {
	up := mysqltest.Start(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	idle := rawDial(t, gw.Addr, "root", "", up.DB, baseCaps)
	busy := rawDial(t, gw.Addr, "root", "", up.DB, baseCaps)
	busy.send(0, append([]byte{wire.ComQuery}, "SELECT SLEEP(20)"...))
	time.Sleep(200 * time.Millisecond)
	up.Kill()
	// The client mid-query gets the lost-connection error, then EOF.
	p, _ := busy.read()
	if e := wire.ParseError(p); e.Code != 2013 || e.Message != "Lost connection to MySQL server during query" {
		t.Fatalf("mid-query: %v", e)
	}
	if _, _, err := busy.tryRead(); err == nil {
		t.Fatal("still open after the upstream was lost")
	}
	// The idle client's connection is closed too, as the server's would
	// be, so that its driver opens a new one.
	idle.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := idle.tryRead(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		t.Fatalf("idle client: %v", err)
	}
	// New clients get a clear error while the server is down...
	err := mysqltest.Open(t, gw.DSN("root", "", "timeout=5s")).Ping()
	if me := mysqlErr(err); me == nil || me.Number != 2003 {
		t.Fatalf("server down: %v", err)
	}
	apptest.Eventually(t, 5*time.Second, "backend DOWN", func() bool {
		return strings.Contains(readyz(t, gw), `"DOWN"`)
	})
	// ...and work again once it is back.
	up.Restart()
	db := gw.Open(t)
	if got := scalar[int](t, db, "SELECT 9"); got != 9 {
		t.Fatal(got)
	}
	apptest.Eventually(t, 5*time.Second, "backend UP", func() bool {
		return !strings.Contains(readyz(t, gw), `"DOWN"`)
	})
	// wait_timeout: the server ends an idle session; Mecha ends the client's.
	w := rawDial(t, gw.Addr, "root", "", up.DB, baseCaps)
	w.exchange(append([]byte{wire.ComQuery}, "SET SESSION wait_timeout = 1"...), func([]byte) bool { return true })
	w.c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, _, err := w.tryRead(); err == nil {
		t.Fatal("answered unasked")
	} else if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %s: %v", d, err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe"))
}

func readyz(t *testing.T, gw *mysqltest.Gateway) string {
	t.Helper()
	resp, err := httpGet("http://" + gw.M.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestConcurrentClients runs many clients at once through one gateway,
// each checking its own results.
func TestConcurrentClients(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	db := gw.Open(t, "interpolateParams=false")
	db.SetMaxOpenConns(16)
	mustExec(t, db, "CREATE TABLE c (worker INT, n INT, PRIMARY KEY (worker, n))")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				tx, err := db.Begin()
				if err != nil {
					errs <- err
					return
				}
				if _, err := tx.Exec("INSERT INTO c VALUES (?, ?)", w, n); err != nil {
					errs <- err
					return
				}
				var got int
				if err := tx.QueryRow("SELECT COUNT(*) FROM c WHERE worker = ?", w).Scan(&got); err != nil || got != n+1 {
					errs <- fmt.Errorf("worker %d: count %d at %d (%v)", w, got, n, err)
					return
				}
				if n%7 == 0 {
					err = tx.Rollback()
					if err == nil {
						_, err = db.Exec("INSERT INTO c VALUES (?, ?)", w, n)
					}
				} else {
					err = tx.Commit()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := scalar[int](t, up.Open(), "SELECT COUNT(*) FROM c"); got != 16*50 {
		t.Fatalf("rows %d, want %d", got, 16*50)
	}
}

// TestChangeUser: COM_CHANGE_USER logs the client in again as a Mecha
// user and resets its upstream session with the new database and
// collation; a wrong password is refused and ends the connection.
func TestChangeUser(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, `auth: {users: {root: "", app: app-pw}}`, "")
	r := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	query := func(q string) [][]byte {
		first := true
		after := isTerminatorAfter(2)
		return r.exchange(append([]byte{wire.ComQuery}, q...), func(p []byte) bool {
			if first && p[0] == wire.HeaderOK {
				return true
			}
			first = false
			return after(p)
		})
	}
	query("SET @before = 1")
	cu := &wire.ChangeUser{User: "app", AuthResponse: wire.NativeResponse(r.scramble, "app-pw"), DB: up.DB,
		Collation: 8, AuthPlugin: wire.NativePassword}
	p := r.exchange(cu.AppendPayload(nil, r.caps), func([]byte) bool { return true })
	if p[0][0] != wire.HeaderOK {
		t.Fatalf("change user: %v", wire.ParseError(p[0]))
	}
	res := query("SELECT CONCAT(DATABASE(), ' ', @@collation_connection, ' ', IFNULL(@before, 'reset'))")
	if got := string(res[len(res)-2]); !strings.HasSuffix(got, up.DB+" latin1_swedish_ci reset") {
		t.Fatalf("after change user: %q", got)
	}
	cu = &wire.ChangeUser{User: "app", AuthResponse: wire.NativeResponse(r.scramble, "wrong"), AuthPlugin: wire.NativePassword}
	p = r.exchange(cu.AppendPayload(nil, r.caps), func([]byte) bool { return true })
	if e := wire.ParseError(p[0]); e.Code != 1045 {
		t.Fatalf("wrong password: %v", e)
	}
	if _, _, err := r.tryRead(); err == nil {
		t.Fatal("connection open after a refused change user")
	}
}

// TestUpstreamTLS: with tls set on the backend, the upstream sessions are
// encrypted (the server reports a cipher for the session), and a server
// whose certificate the backend does not trust is refused.
func TestUpstreamTLS(t *testing.T) {
	certs := tlstest.Make(t, "db")
	up := mysqltest.Start(t, "--ssl-cert="+certs.Cert["db"], "--ssl-key="+certs.Key["db"], "--ssl-ca="+certs.CA)
	gw := mysqltest.StartGateway(t, up, "", fmt.Sprintf("tls: {ca_file: %q}", certs.CA))
	db := gw.Open(t)
	var name, cipher string
	if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("upstream session not encrypted")
	}
	// The same server, but Mecha trusts another authority: no session.
	other := tlstest.Make(t, "other")
	bad := mysqltest.StartGateway(t, up, "", fmt.Sprintf("tls: {ca_file: %q}", other.CA))
	err := bad.Open(t).Ping()
	if me := mysqlErr(err); me == nil || me.Number != 2003 || !strings.Contains(me.Message, "certificate") {
		t.Fatalf("untrusted upstream certificate: %v", err)
	}
}

// TestShutdownDrainsAndIdleTimeout: on shutdown a command in flight
// completes and its client is then disconnected; idle_timeout closes a
// client idle for longer.
func TestShutdownDrainsAndIdleTimeout(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "idle_timeout: 300ms", "")
	idle := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	idle.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := idle.tryRead(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle client past idle_timeout: %v, want the connection closed", err)
	}
	busy := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	busy.send(0, append([]byte{wire.ComQuery}, "SELECT SLEEP(1)"...))
	time.Sleep(200 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.M.Shutdown(ctx)
		close(done)
	}()
	res := busy.until(isTerminatorAfter(2))
	if got := string(res[len(res)-2]); got != "\x010" {
		t.Fatalf("the query in flight answered %q", got)
	}
	if _, _, err := busy.tryRead(); err == nil {
		t.Fatal("client still connected after shutdown")
	}
	<-done
	if c, err := net.DialTimeout("tcp", gw.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after shutdown")
	}
}

// TestWriteTimeout: a client that stops reading a large result is
// disconnected after write_timeout and its upstream session closed, so it
// cannot hold the session (and what it locks) forever.
func TestWriteTimeout(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "write_timeout: 500ms", "")
	raw := rawDial(t, gw.Addr, "root", "", "", baseCaps)
	res := raw.exchange(append([]byte{wire.ComQuery}, "SELECT CONNECTION_ID()"...), isTerminatorAfter(2))
	upstreamID := string(res[len(res)-2][1:])
	raw.exchange(append([]byte{wire.ComQuery}, "SET SESSION max_recursive_iterations = 1000000"...), func([]byte) bool { return true })
	raw.send(0, append([]byte{wire.ComQuery}, "WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 500000) SELECT n, REPEAT('x', 200) FROM seq"...))
	// Read nothing: Mecha's writes stall once the socket buffers fill.
	direct := up.Open()
	apptest.Eventually(t, 20*time.Second, "the stalled client's upstream session closed", func() bool {
		var n int
		err := direct.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + upstreamID).Scan(&n)
		return err == nil && n == 0
	})
}
