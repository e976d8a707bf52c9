package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mariadb is the server both targets reach: a private mariadbd the
// benchmark started, or one given with -mysql.
type mariadb struct {
	addr     string
	user     string
	password string
	pid      int     // for CPU figures; 0 when unknown
	srv      *server // nil for a -mysql server
	opts     string
}

// startMariaDB initialises a data directory and starts a private mariadbd
// on a free port, root with an empty password.
func startMariaDB(dir, bufferPool string, extra []string) *mariadb {
	bin, err := lookTool("mariadbd")
	check(err)
	datadir := filepath.Join(dir, "mariadb-data")
	install, err := lookTool("mariadb-install-db")
	check(err)
	u := currentUser()
	out, err := runCmd(install, "--no-defaults", "--datadir="+datadir,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--user="+u)
	if err != nil {
		check(fmt.Errorf("mariadb-install-db: %v\n%s", err, out))
	}
	port := freePort()
	opts := []string{
		"--innodb-buffer-pool-size=" + bufferPool,
		"--innodb-log-file-size=256M",
		// The benchmark measures the gateway, not the disk: commits are
		// written to the log at once and synced about once a second.
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=1000",
		"--skip-log-bin",
		"--skip-name-resolve",
	}
	opts = append(opts, extra...)
	args := append([]string{"--no-defaults", "--datadir=" + datadir,
		"--socket=" + filepath.Join(dir, "mariadb.sock"), "--pid-file=" + filepath.Join(dir, "mariadb.pid"),
		"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port), "--user=" + u,
		"--log-error=" + filepath.Join(dir, "mariadb-error.log")}, opts...)
	s := start(dir, "mariadbd", bin, args...)
	s.log = filepath.Join(dir, "mariadb-error.log")
	s.grace = 60 * time.Second
	m := &mariadb{addr: fmt.Sprintf("127.0.0.1:%d", port), user: "root", srv: s, pid: s.pid(),
		opts: strings.Join(opts, " ")}
	m.waitUp(s, 60*time.Second)
	return m
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// runCmd runs a program to its end and returns its combined output.
func runCmd(bin string, args ...string) ([]byte, error) {
	c := newCmd(bin, args...)
	return c.CombinedOutput()
}

// waitUp polls until a login succeeds, failing if the server ends first.
func (m *mariadb) waitUp(s *server, limit time.Duration) {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if s.exited() {
			check(fmt.Errorf("mariadbd exited during start-up:\n%s", tail(s.log, 30)))
		}
		db := openDB(m.addr, m.user, m.password, "", "timeout=1s")
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(fmt.Errorf("mariadbd did not come up: %v\n%s", err, tail(s.log, 30)))
}

func (m *mariadb) describe() string {
	if m.srv == nil {
		if m.pid > 0 {
			return fmt.Sprintf(" (given with -mysql, pid %d)", m.pid)
		}
		return " (given with -mysql; its CPU is not reported without -mysql-pid)"
	}
	return fmt.Sprintf(" (private, pid %d: %s)", m.pid, m.opts)
}

func (m *mariadb) version() string {
	db := openDB(m.addr, m.user, m.password, "")
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		check(fmt.Errorf("MariaDB at %s: %v", m.addr, err))
	}
	return v
}

// openDB opens a go-sql-driver handle.
func openDB(addr, user, password, db string, params ...string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", addr, db
	dsn := cfg.FormatDSN()
	if len(params) > 0 {
		if strings.Contains(dsn, "?") {
			dsn += "&" + strings.Join(params, "&")
		} else {
			dsn += "?" + strings.Join(params, "&")
		}
	}
	h, err := sql.Open("mysql", dsn)
	check(err)
	return h
}

// mecha is a running Mecha with one MySQL frontend on the MariaDB.
type mecha struct {
	srv   *server
	addr  string
	admin string
	cfg   string
}

// startMecha writes a configuration and starts Mecha on it, waiting until
// the frontend accepts connections and /readyz answers 200.
func (b *bench) startMecha(name string) (*mecha, time.Duration) {
	b.seq++
	name = fmt.Sprintf("%s-%d", name, b.seq)
	port, admin := freePort(), freePort()
	backendExtra := ""
	if b.o.backendOpts != "" {
		backendExtra = ", " + b.o.backendOpts
	}
	cfg := filepath.Join(b.dir, name+".yaml")
	text := fmt.Sprintf(`admin: {listen: "127.0.0.1:%d"}
log: {level: info}
data_dir: %q
%s
frontends:
  - {name: db, protocol: mysql, listen: "127.0.0.1:%d", backend: up}
backends:
  up: {type: mysql, addr: %q, user: %q, password: %q%s}
`, admin, filepath.Join(b.dir, name+"-data"), b.o.mechaExtra, port, b.db.addr, b.db.user, b.db.password, backendExtra)
	check(os.WriteFile(cfg, []byte(text), 0o600))
	began := time.Now()
	s := start(b.dir, name, b.mecha, "run", "-c", cfg)
	m := &mecha{srv: s, addr: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", admin), cfg: cfg}
	waitPort(s, m.addr, 30*time.Second)
	waitReady(s, "http://"+m.admin+"/readyz", 30*time.Second)
	ready := time.Since(began)
	if b.o.verbose {
		fmt.Printf("  %s: pid %d, MySQL on %s, admin on %s, config %s, log %s\n", name, s.pid(), m.addr, m.admin, cfg, s.log)
	}
	return m, ready
}

// logProblems returns the warnings and errors of Mecha's log (slog text
// or JSON lines), at most n of them, and how many there were.
func (m *mecha) logProblems(n int) ([]string, int) {
	b, err := os.ReadFile(m.srv.log)
	if err != nil {
		return nil, 0
	}
	var out []string
	count := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") ||
			strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) ||
			strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			count++
			if len(out) < n {
				out = append(out, l)
			}
		}
	}
	return out, count
}

// metrics returns the lines of Mecha's /metrics that mention mysql.
func (m *mecha) metrics() []string {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + m.admin + "/metrics")
	if err != nil {
		return []string{"metrics: " + err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "#") || !strings.Contains(strings.ToLower(l), "mysql") || strings.Contains(l, "_bucket{") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// report prints what Mecha's log and metrics say after a suite, then
// stops it.
func (m *mecha) finish(verbose bool) {
	if m.srv.exited() {
		fmt.Printf("  !! Mecha exited during the suite:\n%s\n", tail(m.srv.log, 20))
		return
	}
	if verbose {
		fmt.Printf("  Mecha metrics (mysql):\n")
		for _, l := range m.metrics() {
			fmt.Printf("    %s\n", l)
		}
	}
	m.srv.stop()
	lines, n := m.logProblems(10)
	if n == 0 {
		fmt.Printf("  Mecha's log: no warnings or errors\n")
		return
	}
	fmt.Printf("  !! Mecha's log holds %d warning/error lines (first %d):\n", n, len(lines))
	for _, l := range lines {
		fmt.Printf("    %s\n", l)
	}
}
