package mysql

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// cliOutput is what one run of a command-line client printed.
type cliOutput struct {
	stdout, stderr string
	code           int
}

// volatile matches what legitimately differs between two runs of the same
// command through Mecha and directly: connection ids, the port, timings
// and the server's running counters.
var volatile = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?m)^(Connection id:\s+)\d+$`), "${1}ID"},
	{regexp.MustCompile(`(?m)^(TCP port:?\s+)\d+$`), "${1}PORT"},
	{regexp.MustCompile(`(?m)^(Uptime:\t+).*$`), "${1}UPTIME"},
	{regexp.MustCompile(`(?m)^(Uptime: )\d+(  Threads: )\d+(  Questions: )\d+(  Slow queries: )\d+(  Opens: )\d+(  Open tables: )\d+(  Queries per second avg: )[0-9.]+$`),
		"${1}N${2}N${3}N${4}N${5}N${6}N${7}N"},
	{regexp.MustCompile(`(?m)^(Threads: )\d+(  Questions: )\d+(  Slow queries: )\d+(  Opens: )\d+(  Open tables: )\d+(  Queries per second avg: )[0-9.]+$`),
		"${1}N${2}N${3}N${4}N${5}N${6}N"},
	{regexp.MustCompile(`\(\d+\.\d+ sec\)`), "(T sec)"},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return s
}

// mariadb runs the mariadb CLI against port with args and stdin.
func (e *env) mariadb(t *testing.T, port, stdin string, args ...string) cliOutput {
	t.Helper()
	bin := need(t, "mariadb")
	args = append([]string{"--no-defaults", "-h", "127.0.0.1", "-P", port, "-u", "root"}, args...)
	out, errOut, code := run(t, stdin, bin, args...)
	return cliOutput{out, errOut, code}
}

// both runs the mariadb CLI through Mecha and directly and checks that
// the outputs are the same but for volatile values; it returns what ran
// through Mecha.
func (e *env) both(t *testing.T, stdin string, args ...string) cliOutput {
	t.Helper()
	via := e.mariadb(t, e.port, stdin, args...)
	direct := e.mariadb(t, e.upPort(), stdin, args...)
	if normalize(via.stdout) != normalize(direct.stdout) || normalize(via.stderr) != normalize(direct.stderr) || via.code != direct.code {
		t.Errorf("mariadb %q through Mecha differs from directly:\n--- Mecha (exit %d):\n%s%s\n--- MariaDB (exit %d):\n%s%s",
			args, via.code, via.stdout, via.stderr, direct.code, direct.stdout, direct.stderr)
	}
	return via
}

// TestMariaDBCLI runs the mariadb CLI in batch mode with -e in its output
// formats, through Mecha and directly: the outputs must match but for the
// connection id, port and timings.
func TestMariaDBCLI(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	execAll(t, e.direct(t, "multiStatements=true"),
		`CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, born DATE, score DECIMAL(6,2), photo BLOB, note TEXT) DEFAULT CHARSET=utf8mb4;
		INSERT INTO people VALUES
			(1, 'Ada', '1815-12-10', 99.50, X'00FF10', 'first\tprogrammer'),
			(2, 'Zoë 😀', '1990-01-02', NULL, NULL, 'line1\nline2'),
			(3, '中文', NULL, -1.25, '', NULL)`)
	db := e.up.DB
	query := "SELECT * FROM people ORDER BY id; SELECT COUNT(*) AS n, SUM(score) AS total FROM people"
	cases := []struct {
		args []string
		want string // a part of the output the run must contain
	}{
		{[]string{"--batch", db, "-e", query}, "2\tZoë 😀\t1990-01-02\tNULL\tNULL\tline1\\nline2\n"},
		{[]string{"--table", db, "-e", query}, "| 3 | 98.25 |"},
		{[]string{"--vertical", db, "-e", query}, "*************************** 3. row ***************************"},
		{[]string{"--xml", db, "-e", query}, `<field name="name">Zoë 😀</field>`},
		{[]string{"--html", db, "-e", query}, "<TD>Ada</TD>"},
		{[]string{"--batch", "--raw", "--skip-column-names", db, "-e", query}, "1\tAda\t1815-12-10\t99.50\t\x00\xff\x10\tfirst\tprogrammer\n"},
		{[]string{"--batch", "--binary-as-hex", db, "-e", "SELECT photo FROM people WHERE id = 1"}, "photo\n0x00FF10\n"},
		{[]string{"--batch", "-vvv", "--show-warnings", db, "-e",
			"SELECT CAST('abc' AS INT) AS f; SHOW WARNINGS; SELECT DATABASE(); USE information_schema; SELECT DATABASE(); SELECT CONNECTION_ID() > 0, CURRENT_USER()"},
			"Warning (Code 1292): Truncated incorrect INTEGER value: 'abc'"},
		{[]string{"--batch", db, "-e", "SHOW CREATE TABLE people; SHOW COLUMNS FROM people; SHOW INDEX FROM people"}, "PRIMARY KEY (`id`)"},
		{[]string{"--batch", db, "-e", "SELECT @@character_set_client, @@collation_connection, @@autocommit, @@sql_mode"}, "utf8mb4"},
		{[]string{"--batch", "--default-character-set=latin1", db, "-e", "SELECT @@character_set_client, name FROM people WHERE id = 2"}, "latin1\tZo\xeb ?\n"},
		{[]string{"--batch", db, "-e", "status"}, "Current database:\t" + db + "\n"},
		{[]string{"--batch", db, "-e", "SELECT * FROM no_such_table"}, ""},
		{[]string{"--batch", db, "-e", "SELEC 1"}, ""},
		// -e stops at the first error, --force or not.
		{[]string{"--batch", "--force", db, "-e", "SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 2 AS b"}, "a\n1\n"},
		{[]string{"--batch", "no_such_database_here", "-e", "SELECT 1"}, ""},
	}
	for _, c := range cases {
		// The CLI's default character set is utf8mb3; emoji need utf8mb4.
		args := append([]string{"--default-character-set=utf8mb4"}, c.args...)
		got := e.both(t, "", args...)
		if !strings.Contains(got.stdout, c.want) {
			t.Errorf("mariadb %q printed:\n%s%s\nwant it to contain %q", c.args, got.stdout, got.stderr, c.want)
		}
	}
	// Errors, exactly as MariaDB words them, with the CLI's exit status (in
	// batch mode the CLI repeats the failing statement first).
	errs := []struct {
		args   []string
		stderr string
		code   int
	}{
		{[]string{db, "-e", "SELECT * FROM no_such_table"}, "--------------\nSELECT * FROM no_such_table\n--------------\n\nERROR 1146 (42S02) at line 1: Table '" + db + ".no_such_table' doesn't exist\n", 1},
		{[]string{db, "-e", "SELEC 1"}, "--------------\nSELEC 1\n--------------\n\nERROR 1064 (42000) at line 1: You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'SELEC 1' at line 1\n", 1},
		{[]string{db, "-e", "INSERT INTO people (id) VALUES (1)"}, "--------------\nINSERT INTO people (id) VALUES (1)\n--------------\n\nERROR 1062 (23000) at line 1: Duplicate entry '1' for key 'PRIMARY'\n", 1},
		{[]string{"no_such_database_here", "-e", "SELECT 1"}, "ERROR 1049 (42000): Unknown database 'no_such_database_here'\n", 1},
	}
	for _, c := range errs {
		got := e.mariadb(t, e.port, "", append([]string{"--batch"}, c.args...)...)
		if got.stderr != c.stderr || got.code != c.code || got.stdout != "" {
			t.Errorf("mariadb %q: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, got.code, got.stdout, got.stderr, c.code, c.stderr)
		}
	}
}

// cliScript is a SQL script as a user pipes it into the CLI: DDL, DML with
// transactions, a procedure defined with DELIMITER, CALL with two result
// sets, \G, warnings and an error that --force goes past.
const cliScript = `-- a script on standard input
CREATE OR REPLACE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(20), balance DECIMAL(10,2) NOT NULL) ENGINE=InnoDB;
INSERT INTO accounts VALUES (1, 'alice', 100.00), (2, 'bob', 50.00), (3, 'carol', 0);
START TRANSACTION;
UPDATE accounts SET balance = balance - 30 WHERE id = 1;
UPDATE accounts SET balance = balance + 30 WHERE id = 2;
COMMIT;
START TRANSACTION;
DELETE FROM accounts;
ROLLBACK;
SELECT * FROM accounts ORDER BY id;
DELIMITER //
CREATE OR REPLACE PROCEDURE report(IN minimum DECIMAL(10,2))
BEGIN
  SELECT owner, balance FROM accounts WHERE balance >= minimum ORDER BY id;
  SELECT COUNT(*) AS accounts, SUM(balance) AS total FROM accounts;
END //
DELIMITER ;
CALL report(50);
SELECT owner, balance FROM accounts WHERE id = 2\G
SET SESSION sql_mode = '';
INSERT INTO accounts VALUES (4, 'a very long owner name indeed', 1);
SHOW WARNINGS;
INSERT INTO accounts VALUES (1, 'duplicate', 0);
SELECT 'after the error' AS status, COUNT(*) AS n FROM accounts;
UPDATE accounts SET balance = balance * 2 WHERE balance > 0;
SELECT id, owner, balance FROM accounts ORDER BY id;
`

// TestMariaDBCLIScript pipes a SQL script into the CLI through Mecha and
// directly (each run recreates its tables): same output, and the final
// state is checked on MariaDB.
func TestMariaDBCLIScript(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	for _, flags := range [][]string{{"--batch"}, {"--table", "-vvv"}} {
		args := append(append([]string{"--force"}, flags...), e.up.DB)
		got := e.both(t, cliScript, args...)
		if got.code != 0 || !strings.Contains(got.stderr, "ERROR 1062 (23000) at line 24: Duplicate entry '1' for key 'PRIMARY'") {
			t.Errorf("script %v: exit %d, stderr %q", flags, got.code, got.stderr)
		}
		if flags[0] == "--batch" {
			want := "id\towner\tbalance\n1\talice\t70.00\n2\tbob\t80.00\n3\tcarol\t0.00\n" +
				"owner\tbalance\nalice\t70.00\nbob\t80.00\n" +
				"accounts\ttotal\n3\t150.00\n" +
				"*************************** 1. row ***************************\n  owner: bob\nbalance: 80.00\n" +
				"Level\tCode\tMessage\nWarning\t1265\tData truncated for column 'owner' at row 1\n" +
				"status\tn\nafter the error\t4\n" +
				"id\towner\tbalance\n1\talice\t140.00\n2\tbob\t160.00\n3\tcarol\t0.00\n4\ta very long owner na\t2.00\n"
			if got.stdout != want {
				t.Errorf("script output:\n%s\nwant:\n%s", got.stdout, want)
			}
		}
		if !strings.Contains(got.stdout, "Rows matched: 3  Changed: 3  Warnings: 0") && flags[0] != "--batch" {
			t.Errorf("-vvv output lacks the UPDATE's info:\n%s", got.stdout)
		}
	}
	var sum string
	var n int
	must(t, e.direct(t).QueryRow("SELECT COUNT(*), SUM(balance) FROM accounts").Scan(&n, &sum))
	if n != 4 || sum != "302.00" {
		t.Errorf("MariaDB holds %d accounts with %s in all", n, sum)
	}
}

// TestMariaDBCLIInterrupt interrupts a long query with Ctrl-C: the CLI
// opens a second connection and sends KILL QUERY with the connection id
// Mecha announced, which Mecha must direct at the right upstream session.
func TestMariaDBCLIInterrupt(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	bin := need(t, "mariadb")
	cmd := exec.Command(bin, "--no-defaults", "-h", "127.0.0.1", "-P", e.port, "-u", "root", "--batch",
		"-e", "SELECT SLEEP(30) AS slept; SELECT 'not reached'", e.up.DB)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	must(t, cmd.Start())
	direct := e.direct(t)
	// Wait until the query runs upstream.
	apptest.Eventually(t, 10*time.Second, "SLEEP to run upstream", func() bool {
		return queryInt(t, direct, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%'") == 1
	})
	start := time.Now()
	must(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	if time.Since(start) > 10*time.Second {
		t.Errorf("the CLI took %v to end after Ctrl-C", time.Since(start))
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v", err)
	}
	if out.String() != "\nCtrl-C -- query killed.\n" || errOut.String() != "ERROR 1317 (70100) at line 1: Query execution was interrupted\n" {
		t.Errorf("after Ctrl-C: stdout %q, stderr %q", out.String(), errOut.String())
	}
	if n := queryInt(t, direct, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%'"); n != 0 {
		t.Errorf("the query still runs upstream")
	}
}

// admin runs mariadb-admin against port.
func (e *env) admin(t *testing.T, port string, args ...string) cliOutput {
	t.Helper()
	bin := need(t, "mariadb-admin")
	out, errOut, code := run(t, "", bin, append([]string{"--no-defaults", "-h", "127.0.0.1", "-P", port, "-u", "root"}, args...)...)
	return cliOutput{out, errOut, code}
}

// TestMariaDBAdmin runs mariadb-admin's commands, which use COM_PING,
// COM_STATISTICS, COM_PROCESS_KILL and queries, through Mecha and
// directly.
func TestMariaDBAdmin(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	same := func(args ...string) cliOutput {
		t.Helper()
		via, direct := e.admin(t, e.port, args...), e.admin(t, e.upPort(), args...)
		if normalize(via.stdout) != normalize(direct.stdout) || via.stderr != direct.stderr || via.code != direct.code {
			t.Errorf("mariadb-admin %q through Mecha differs from directly:\n--- Mecha (exit %d):\n%s%s\n--- MariaDB (exit %d):\n%s%s",
				args, via.code, via.stdout, via.stderr, direct.code, direct.stdout, direct.stderr)
		}
		return via
	}
	if got := same("ping"); got.stdout != "mysqld is alive\n" || got.code != 0 {
		t.Errorf("ping: %+v", got)
	}
	if got := same("status"); !regexp.MustCompile(`^Uptime: \d+  Threads: \d+  Questions: \d+  Slow queries: \d+  Opens: \d+  Open tables: \d+  Queries per second avg: [0-9.]+\n$`).MatchString(got.stdout) {
		t.Errorf("status: %+v", got)
	}
	if got := same("version"); !strings.Contains(got.stdout, "Server version\t\t10.") || !strings.Contains(got.stdout, "TCP port\t\t"+e.port+"\n") {
		t.Errorf("version: %+v", got)
	}
	// Several commands in one run, on one connection.
	if got := same("ping", "status", "ping"); strings.Count(got.stdout, "mysqld is alive\n") != 2 {
		t.Errorf("ping status ping: %+v", got)
	}
	// The server's variables, as one more result set to compare; the
	// per-session ones that differ by nature are left out.
	vars := func(port string) string {
		got := e.admin(t, port, "variables")
		if got.code != 0 {
			t.Fatalf("variables: %+v", got)
		}
		var keep []string
		for _, line := range strings.Split(got.stdout, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && (f[1] == "pseudo_thread_id" || f[1] == "timestamp" || strings.HasPrefix(f[1], "rand_seed") || strings.HasPrefix(f[1], "gtid_")) {
				continue
			}
			keep = append(keep, line)
		}
		return strings.Join(keep, "\n")
	}
	if via, direct := vars(e.port), vars(e.upPort()); via != direct || strings.Count(via, "\n") < 400 {
		t.Errorf("variables through Mecha (%d lines) differ from directly (%d lines)", strings.Count(via, "\n"), strings.Count(direct, "\n"))
	}
	// extended-status: the same status variables, whatever their values.
	names := func(port string) string {
		got := e.admin(t, port, "extended-status")
		var n []string
		for _, line := range strings.Split(got.stdout, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "|" {
				n = append(n, f[1])
			}
		}
		return strings.Join(n, " ")
	}
	if via, direct := names(e.port), names(e.upPort()); via != direct || !strings.Contains(via, "Com_stmt_execute") {
		t.Errorf("extended-status names through Mecha differ from directly:\n%s\n%s", via, direct)
	}
	// processlist shows the upstream session running SHOW PROCESSLIST.
	got := e.admin(t, e.port, "processlist")
	if got.code != 0 || !regexp.MustCompile(`\| \d+ +\| root +\| 127\.0\.0\.1:\d+ +\| +\| Query +\| \d+ +\| [a-z ]* +\| show processlist +\|`).MatchString(got.stdout) {
		t.Errorf("processlist: %+v", got)
	}
	// create and drop (queries), checked directly.
	name := e.up.DB + "_admin"
	if got := e.admin(t, e.port, "create", name); got.code != 0 || got.stdout != "" {
		t.Errorf("create: %+v", got)
	}
	if n := queryInt(t, e.direct(t), "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name); n != 1 {
		t.Errorf("database %s not created", name)
	}
	if got := e.admin(t, e.port, "--force", "drop", name); got.code != 0 || got.stdout != "Database \""+name+"\" dropped\n" {
		t.Errorf("drop: %+v", got)
	}
	if n := queryInt(t, e.direct(t), "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name); n != 0 {
		t.Errorf("database %s not dropped", name)
	}
	// kill: a client through Mecha, killed by its upstream thread id
	// (what SHOW PROCESSLIST and CONNECTION_ID() show) through Mecha.
	victim := e.via(t)
	victim.SetMaxOpenConns(1)
	id := queryInt(t, victim, "SELECT CONNECTION_ID()")
	if got := e.admin(t, e.port, "kill", fmt.Sprint(id)); got.code != 0 || got.stdout != "" {
		t.Errorf("kill %d: %+v", id, got)
	}
	apptest.Eventually(t, 5*time.Second, "the killed session to go", func() bool {
		return queryInt(t, e.direct(t), "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id) == 0
	})
	// The victim's client gets a new session (right away: see
	// TestDriverUpstreamSessionEnds).
	apptest.Eventually(t, 5*time.Second, "the victim to get a new session", func() bool {
		var n int64
		return victim.QueryRow("SELECT CONNECTION_ID()").Scan(&n) == nil && n != id
	})
	// Wrong credentials: Mecha checks its own users and answers as MySQL
	// does (MariaDB says 1698 without "using password" for a user it
	// does not know). ping counts a refused login as a live server.
	wrong := e.admin(t, e.port, "-u", "nobody", "ping")
	if wrong.code != 0 || !strings.Contains(wrong.stderr, "Access denied for user 'nobody'@'127.0.0.1' (using password: NO)") {
		t.Errorf("wrong user: %+v", wrong)
	}
}
