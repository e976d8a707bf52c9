// Package mysql runs unmodified MySQL clients (go-sql-driver/mysql, the
// mariadb and mariadb-admin CLIs, sysbench, PyMySQL) against Mecha's MySQL
// frontend relaying to a real MariaDB, and compares what they get with what
// the same clients get from MariaDB directly.
package mysql

import (
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
)

// env is Mecha with one MySQL frontend in front of a MariaDB, and the
// test's database on it.
type env struct {
	up   *mysqltest.Server
	g    *mysqltest.Gateway
	port string // Mecha's port
}

// setup starts Mecha in front of the machine's MariaDB, with a database of
// the test's own; frontendExtra is added to the frontend's settings.
func setup(t *testing.T, frontendExtra string) *env {
	t.Helper()
	return setupOn(t, mysqltest.Shared(t), frontendExtra)
}

// setupOn starts Mecha in front of up.
func setupOn(t *testing.T, up *mysqltest.Server, frontendExtra string) *env {
	t.Helper()
	g := mysqltest.StartGateway(t, up, frontendExtra, "")
	_, port, err := net.SplitHostPort(g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return &env{up: up, g: g, port: port}
}

// via opens go-sql-driver through Mecha as root, in the test's database.
func (e *env) via(t *testing.T, params ...string) *sql.DB {
	t.Helper()
	return e.g.Open(t, params...)
}

// direct opens go-sql-driver on MariaDB itself, in the test's database.
func (e *env) direct(t *testing.T, params ...string) *sql.DB {
	t.Helper()
	return mysqltest.Open(t, e.up.DSN(params...))
}

// upPort is MariaDB's port.
func (e *env) upPort() string {
	_, p, _ := net.SplitHostPort(e.up.Addr)
	return p
}

// installHint says how to install each external client.
var installHint = map[string]string{
	"mariadb":       "apt-get install mariadb-client",
	"mariadb-admin": "apt-get install mariadb-client",
	"sysbench":      "apt-get install sysbench",
	"pymysql":       "apt-get install python3-pymysql",
}

// missing skips or fails a test whose client is not installed: it fails
// (with how to install it) unless the run is -short or MECHA_COMPAT_OPTIONAL
// is set, as compat-tests/redis does; MECHA_REQUIRE_CLIENTS makes it fail
// even then.
func missing(t *testing.T, tool string, err error) {
	t.Helper()
	if os.Getenv("MECHA_REQUIRE_CLIENTS") == "" && (testing.Short() || os.Getenv("MECHA_COMPAT_OPTIONAL") != "") {
		t.Skipf("%s not installed: %v", tool, err)
	}
	t.Fatalf("%s not installed (%s): %v", tool, installHint[tool], err)
}

// need returns the path of a client program, or skips or fails the test.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		missing(t, tool, err)
	}
	return p
}

// python is Debian's python3, which has python3-pymysql; other Pythons on
// PATH may lack it.
const python = "/usr/bin/python3"

// needPyMySQL returns the Python that can import pymysql, or skips or
// fails the test.
func needPyMySQL(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(python, "-c", "import pymysql").CombinedOutput()
	if err != nil {
		missing(t, "pymysql", fmt.Errorf("%s -c 'import pymysql': %v: %s", python, err, bytes.TrimSpace(out)))
	}
	return python
}

// run runs a program with stdin and returns its standard output, standard
// error and exit code; it fails the test only if the program cannot start.
func run(t *testing.T, stdin string, prog string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Stdin = strings.NewReader(stdin)
	// The clients read no option files of the machine's user.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "MYSQL_HOME=/nonexistent")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errOut.String(), ee.ExitCode()
		}
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	return out.String(), errOut.String(), 0
}

// must fails the test on an error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// execAll runs statements on db, failing the test on an error.
func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// queryInt returns a single integer a query selects.
func queryInt(t *testing.T, db interface {
	QueryRow(string, ...any) *sql.Row
}, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
