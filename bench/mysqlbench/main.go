// Command mysqlbench measures Mecha's MySQL frontend (`protocol: mysql`)
// relaying to a MariaDB (`type: mysql` backend) side by side with the same
// MariaDB reached directly, in one run, in two suites:
//
//   - sysbench: oltp_point_select, oltp_read_only and oltp_read_write
//     with 1 and 8 threads, with server-side prepared statements
//     (--db-ps-mode=auto) and without (disable), against MariaDB and
//     through Mecha; QPS or TPS, the ratio Mecha/direct taken round by
//     round, sysbench's errors and reconnects, and the CPU each process
//     spends per query;
//   - big: `SELECT * FROM big` (1,000,000 rows of about 110 bytes)
//     streamed by go-sql-driver/mysql, as a text query and as a prepared
//     statement, directly and through Mecha; elapsed time, ratio, and
//     Mecha's peak resident memory while the rows pass through it.
//
// It starts its own mariadbd on a free port of 127.0.0.1 in a temporary
// directory (or uses -mysql ADDR), starts Mecha as a separate process
// (-mecha, default bin/mecha, as `make build` makes it) with a
// configuration written for the run, prepares the tables once, then runs
// every cell against both targets in turn, in an order that alternates,
// round after round, and prints medians and ratios.
//
//	go run ./bench/mysqlbench -mecha bin/mecha -rounds 1 -duration 5s
//	go run ./bench/mysqlbench -suite big -rounds 5
//	go run ./bench/mysqlbench -workloads oltp_point_select -threads 8 -psmodes auto -v
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Targets: the least share of direct MariaDB's throughput Mecha should
// keep, the most time a big SELECT may take through Mecha relative to
// directly, and the most resident memory Mecha may use while it passes.
const (
	pointSelectGoal = 0.7
	transactionGoal = 0.8
	bigTimeGoal     = 1.3
	rssGoal         = 64 << 20
)

// options are the command line's settings.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	workloads   []string
	threads     []int
	psModes     []string
	tables      int
	tableSize   int
	db          string
	bigRows     int
	bigRounds   int
	bigModes    []string
	verbose     bool
	sysbenchArg []string
	mechaExtra  string // top-level YAML added to Mecha's config
	backendOpts string // extra options of Mecha's mysql backend
}

func main() {
	mechaBin := flag.String("mecha", "bin/mecha", "mecha binary (`make build` makes bin/mecha); empty: build ./cmd/mecha into the temporary directory")
	suites := flag.String("suite", "sysbench,big", "suites to run: sysbench (oltp_* workloads, direct vs through Mecha), big (a 1M-row SELECT streamed, time and Mecha's peak RSS)")
	rounds := flag.Int("rounds", 3, "rounds per cell (medians are reported)")
	duration := flag.Duration("duration", 10*time.Second, "how long each sysbench run lasts (whole seconds)")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured sysbench run against each target before the rounds (0: none)")
	workloads := flag.String("workloads", "oltp_point_select,oltp_read_only,oltp_read_write", "sysbench workloads")
	threads := flag.String("threads", "1,8", "sysbench thread counts")
	psModes := flag.String("psmodes", "auto,disable", "sysbench --db-ps-mode values (auto: server-side prepared statements; disable: text queries)")
	tables := flag.Int("tables", 4, "sysbench --tables")
	tableSize := flag.Int("table-size", 100000, "sysbench --table-size")
	db := flag.String("db", "sbtest", "database of the benchmark's tables (dropped and created again on a private server; reused on -mysql when it already holds the tables)")
	bigRows := flag.Int("big-rows", 1000000, "rows of the big suite's table")
	bigRounds := flag.Int("big-rounds", 5, "rounds of the big suite (each SELECT takes about a second; 0: as -rounds)")
	bigModes := flag.String("big-modes", "text,prepared", "how the big SELECT is sent: text (COM_QUERY) and/or prepared (COM_STMT_EXECUTE, binary rows)")
	mysqlAddr := flag.String("mysql", "", "use this MySQL/MariaDB server (host:port) instead of starting a private mariadbd")
	mysqlUser := flag.String("mysql-user", "root", "user at the -mysql server (also Mecha's backend login)")
	mysqlPassword := flag.String("mysql-password", "", "password at the -mysql server")
	mysqlPid := flag.Int("mysql-pid", 0, "pid of the -mysql server, for its CPU per query (0: not reported)")
	bufferPool := flag.String("buffer-pool", "256M", "private mariadbd's --innodb-buffer-pool-size")
	mariadbArgs := flag.String("mariadb-args", "", "extra options for the private mariadbd, space-separated (later ones win), e.g. \"--innodb-flush-log-at-trx-commit=1\"")
	sysbenchArgs := flag.String("sysbench-args", "", "extra options for every sysbench run, space-separated, e.g. \"--rand-type=uniform\"")
	mechaExtra := flag.String("mecha-config", "", "top-level YAML added to Mecha's config, e.g. \"max_procs: 2\"")
	backendOpts := flag.String("backend", "", "extra options of Mecha's mysql backend, e.g. \"max_idle: 16\"")
	verbose := flag.Bool("v", false, "print every run's results and the servers' log paths")
	flag.Parse()

	o := options{rounds: *rounds, duration: *duration, warmup: *warmup, tables: *tables, tableSize: *tableSize,
		db: *db, bigRows: *bigRows, bigRounds: *bigRounds, verbose: *verbose, mechaExtra: *mechaExtra, backendOpts: *backendOpts,
		workloads: splitList(*workloads), psModes: splitList(*psModes), bigModes: splitList(*bigModes),
		sysbenchArg: strings.Fields(*sysbenchArgs)}
	for _, t := range splitList(*threads) {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			check(fmt.Errorf("bad -threads value %q", t))
		}
		o.threads = append(o.threads, n)
	}
	if o.bigRounds <= 0 {
		o.bigRounds = o.rounds
	}
	if o.duration < time.Second {
		o.duration = time.Second
	}
	if o.rounds < 1 || o.tables < 1 || o.tableSize < 1 || o.bigRows < 1 {
		check(fmt.Errorf("-rounds, -tables, -table-size and -big-rows must be positive"))
	}
	for _, w := range o.workloads {
		if _, ok := workloadMetric[w]; !ok {
			check(fmt.Errorf("unknown workload %q (oltp_point_select, oltp_read_only, oltp_read_write)", w))
		}
	}
	for _, m := range o.psModes {
		if m != "auto" && m != "disable" {
			check(fmt.Errorf("unknown -psmodes value %q (auto, disable)", m))
		}
	}
	for _, m := range o.bigModes {
		if m != "text" && m != "prepared" {
			check(fmt.Errorf("unknown -big-modes value %q (text, prepared)", m))
		}
	}
	var suiteList []string
	for _, s := range splitList(*suites) {
		if s != "sysbench" && s != "big" {
			check(fmt.Errorf("unknown suite %q (sysbench, big)", s))
		}
		suiteList = append(suiteList, s)
	}
	need := []string{"mariadbd", "mariadb-install-db"}
	if *mysqlAddr != "" {
		need = nil
	}
	if contains(suiteList, "sysbench") {
		need = append(need, "sysbench")
	}
	for _, tool := range need {
		if _, err := lookTool(tool); err != nil {
			fmt.Fprintf(os.Stderr, "mysqlbench: %s not found (apt-get install mariadb-server sysbench)\n", tool)
			os.Exit(2)
		}
	}

	dir, err := os.MkdirTemp("", "mysqlbench")
	check(err)
	tmpDir = dir
	defer cleanup()
	onInterrupt(cleanup)

	bin := *mechaBin
	if bin == "" {
		bin = filepath.Join(dir, "mecha")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mecha")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		check(build.Run())
	}
	if _, err := os.Stat(bin); err != nil {
		check(fmt.Errorf("mecha binary: %v (run `make build`, or pass -mecha \"\" to build one)", err))
	}
	bin, err = filepath.Abs(bin)
	check(err)

	b := &bench{dir: dir, mecha: bin, o: o}
	if *mysqlAddr != "" {
		b.db = &mariadb{addr: *mysqlAddr, user: *mysqlUser, password: *mysqlPassword, pid: *mysqlPid}
	} else {
		b.db = startMariaDB(dir, *bufferPool, strings.Fields(*mariadbArgs))
	}

	fmt.Printf("mysqlbench: %d CPUs, Go %s, %d rounds, %s per sysbench run\n", runtime.NumCPU(), runtime.Version(), o.rounds, o.duration)
	if out, err := exec.Command(bin, "version").Output(); err == nil {
		fmt.Printf("mysqlbench: %s (%s)\n", strings.TrimSpace(string(out)), bin)
	}
	if out, err := exec.Command("sysbench", "--version").Output(); err == nil {
		fmt.Printf("mysqlbench: %s\n", strings.TrimSpace(string(out)))
	}
	fmt.Printf("mysqlbench: MariaDB %s at %s%s\n", b.db.version(), b.db.addr, b.db.describe())
	fmt.Printf("mysqlbench: load average at start: %s\n", loadavg())

	var sum summary
	for _, s := range suiteList {
		switch s {
		case "sysbench":
			sysbenchSuite(b, &sum)
		case "big":
			bigSuite(b, &sum)
		}
	}
	sum.print()
	fmt.Printf("\nmysqlbench: load average at end: %s\n", loadavg())
}

// bench is what the suites share: the temporary directory, the Mecha
// binary, the MariaDB and the options.
type bench struct {
	dir   string
	mecha string
	db    *mariadb
	o     options
	seq   int
}

// summary collects each suite's headline figures for the end of the run.
type summary struct {
	lines []string
}

func (s *summary) add(format string, args ...any) {
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

func (s *summary) print() {
	if len(s.lines) == 0 {
		return
	}
	fmt.Printf("\n== summary ==\n")
	for _, l := range s.lines {
		fmt.Println(l)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lookTool finds a program in PATH or, for the server's, in /usr/sbin.
func lookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
		return "/usr/sbin/" + name, nil
	}
	return "", err
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures: how busy the
// machine was besides the benchmark.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// tmpDir is the run's temporary directory, removed on the way out.
var tmpDir string

var (
	cleanOnce   sync.Once
	interrupted atomic.Bool
)

// cleanup stops every process the benchmark started and removes the
// temporary directory, once; a second caller waits for the first.
func cleanup() {
	cleanOnce.Do(func() {
		killClients()
		stopAll()
		if tmpDir != "" {
			os.RemoveAll(tmpDir)
		}
	})
}

func check(err error) {
	if err != nil {
		if interrupted.Load() {
			select {} // the interrupt handler cleans up and exits
		}
		fmt.Fprintln(os.Stderr, "mysqlbench:", err)
		cleanup()
		os.Exit(1)
	}
}
