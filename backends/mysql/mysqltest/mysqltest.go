// Package mysqltest gives tests MySQL-protocol servers: the machine's
// MariaDB (with a database of the test's own) and private mariadbd
// instances started in a temporary directory, for tests that restart,
// kill or reconfigure their server.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// SharedAddr is the machine's MariaDB (MECHA_TEST_MYSQL overrides it),
// where root logs in with an empty password.
func SharedAddr() string {
	if a := os.Getenv("MECHA_TEST_MYSQL"); a != "" {
		return a
	}
	return "127.0.0.1:3306"
}

// Server is a MySQL-protocol server a test uses.
type Server struct {
	Addr string
	// DB is a database created for the test and dropped after it.
	DB string

	t       testing.TB
	dir     string
	args    []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	private bool
	bin     string
}

// DSN returns a go-sql-driver DSN for root on the server, in the test's
// database, with extra parameters appended ("multiStatements=true").
func (s *Server) DSN(params ...string) string {
	return DSN(s.Addr, "root", "", s.DB, params...)
}

// DSN builds a go-sql-driver DSN.
func DSN(addr, user, password, db string, params ...string) string {
	q := ""
	if len(params) > 0 {
		q = "?" + strings.Join(params, "&")
	}
	return fmt.Sprintf("%s:%s@tcp(%s)/%s%s", user, password, addr, db, q)
}

// Open opens a database handle on the server as root, closed when the
// test ends.
func (s *Server) Open(params ...string) *sql.DB {
	s.t.Helper()
	return Open(s.t, s.DSN(params...))
}

// Open opens dsn and closes it when the test ends.
func Open(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Shared returns the machine's MariaDB with a new database for the test.
func Shared(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs MariaDB")
	}
	s := &Server{Addr: SharedAddr(), t: t}
	if err := waitUp(s.Addr, 5*time.Second); err != nil {
		t.Fatalf("MariaDB at %s: %v (start it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd)", s.Addr, err)
	}
	s.createDB()
	return s
}

func (s *Server) createDB() {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s.DB = "mecha_test_" + hex.EncodeToString(b)
	root := Open(s.t, DSN(s.Addr, "root", "", ""))
	if _, err := root.Exec("CREATE DATABASE " + s.DB); err != nil {
		s.t.Fatalf("create database: %v", err)
	}
	s.t.Cleanup(func() {
		db, err := sql.Open("mysql", DSN(s.Addr, "root", "", ""))
		if err == nil {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + s.DB)
			db.Close()
		}
	})
}

// waitUp polls until a login as root succeeds.
func waitUp(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		var db *sql.DB
		db, err = sql.Open("mysql", DSN(addr, "root", "", "")+"?timeout=1s")
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Start starts a private mariadbd on a free port, with its data in a
// temporary directory, root with an empty password and a database for the
// test; args are extra server options ("--max-allowed-packet=64M"). It is
// stopped when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts mariadbd")
	}
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mariadbd"); serr == nil {
			bin = "/usr/sbin/mariadbd"
		} else {
			t.Fatalf("mariadbd not installed (apt-get install mariadb-server): %v", err)
		}
	}
	dir := t.TempDir()
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user="+currentUser())
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	s := &Server{t: t, dir: dir, private: true}
	s.args = append([]string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"),
		"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--bind-address=127.0.0.1", "--skip-name-resolve", "--user=" + currentUser(),
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--skip-log-bin",
		"--log-error=" + filepath.Join(dir, "error.log")}, args...)
	s.bin = bin
	s.Addr = freeAddr(t)
	s.Restart()
	t.Cleanup(s.Stop)
	s.createDB()
	return s
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Restart starts the private server again after Stop or Kill, on the
// same port and data.
func (s *Server) Restart() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(s.bin, append(s.args, "--port="+port)...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start mariadbd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	if err := waitUp(s.Addr, 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
		s.t.Fatalf("mariadbd did not come up: %v\n%s", err, log)
	}
}

// Kill stops the private server with SIGKILL.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop stops the private server cleanly.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// IsMySQLError reports whether err is a server error with the code.
func IsMySQLError(err error, code uint16) bool {
	me, ok := err.(*mysql.MySQLError)
	return ok && me.Number == code
}
