package main

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// workloadMetric is what each workload is judged by: queries per second
// for point selects (one query a transaction), transactions per second
// for the others.
var workloadMetric = map[string]string{
	"oltp_point_select": "qps",
	"oltp_read_only":    "tps",
	"oltp_read_write":   "tps",
}

func goal(workload string) float64 {
	if workload == "oltp_point_select" {
		return pointSelectGoal
	}
	return transactionGoal
}

// cell is one sysbench configuration.
type cell struct {
	workload string
	threads  int
	ps       string
}

func (c cell) String() string {
	return fmt.Sprintf("%s -threads %d --db-ps-mode=%s", c.workload, c.threads, c.ps)
}

// sbRun is one sysbench run's result.
type sbRun struct {
	ok         bool
	failure    string
	tps, qps   float64
	latAvg     float64 // ms
	lat95      float64 // ms
	queries    int64
	errors     int64 // "ignored errors"
	reconnects int64
	mechaCPU   time.Duration // Mecha's CPU during the run (through Mecha only)
	dbCPU      time.Duration // MariaDB's
	clientCPU  time.Duration // sysbench's own
}

func (r sbRun) value(workload string) float64 {
	if workloadMetric[workload] == "qps" {
		return r.qps
	}
	return r.tps
}

// perQuery is d per query, in µs.
func (r sbRun) perQuery(d time.Duration) float64 {
	if r.queries == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(r.queries)
}

// endpoint is where sysbench connects: MariaDB directly or Mecha.
type endpoint struct {
	name     string
	addr     string
	user     string
	password string
	mecha    *mecha // nil for direct
}

const (
	direct  = 0
	through = 1
)

var (
	reTransactions = regexp.MustCompile(`transactions:\s+(\d+)\s+\(([\d.]+) per sec\.\)`)
	reQueries      = regexp.MustCompile(`queries:\s+(\d+)\s+\(([\d.]+) per sec\.\)`)
	reErrors       = regexp.MustCompile(`ignored errors:\s+(\d+)`)
	reReconnects   = regexp.MustCompile(`reconnects:\s+(\d+)`)
	reLatAvg       = regexp.MustCompile(`(?m)^\s+avg:\s+([\d.]+)`)
	reLat95        = regexp.MustCompile(`(?m)^\s+95th percentile:\s+([\d.]+)`)
)

// sysbenchArgs are the options every sysbench command gets for e.
func (b *bench) sysbenchArgs(e endpoint) []string {
	host, port, _ := strings.Cut(e.addr, ":")
	args := []string{"--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + e.user, "--mysql-db=" + b.o.db,
		"--tables=" + strconv.Itoa(b.o.tables), "--table-size=" + strconv.Itoa(b.o.tableSize)}
	if e.password != "" {
		args = append(args, "--mysql-password="+e.password)
	}
	return args
}

// runSysbench runs one workload against e for d and parses its report.
func (b *bench) runSysbench(e endpoint, c cell, d time.Duration) (sbRun, string) {
	secs := int((d + time.Second - 1) / time.Second)
	args := append([]string{c.workload}, b.sysbenchArgs(e)...)
	args = append(args, "--threads="+strconv.Itoa(c.threads), "--time="+strconv.Itoa(secs),
		"--db-ps-mode="+c.ps, "--report-interval=0")
	args = append(args, b.o.sysbenchArg...)
	args = append(args, "run")

	cmd := newCmd("sysbench", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	mechaPid := 0
	if e.mecha != nil {
		mechaPid = e.mecha.srv.pid()
	}
	m0, d0 := cpuTime(mechaPid), cpuTime(b.db.pid)
	var r sbRun
	if err := cmd.Start(); err != nil {
		r.failure = err.Error()
		return r, ""
	}
	defer track(cmd)()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	limit := time.Duration(secs)*time.Second + 60*time.Second
	var err error
	select {
	case err = <-waited:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-waited
		r.failure = fmt.Sprintf("hung: sysbench had not ended %s after it started (killed)", limit)
		return r, out.String()
	}
	r.mechaCPU, r.dbCPU = cpuTime(mechaPid)-m0, cpuTime(b.db.pid)-d0
	if cmd.ProcessState != nil {
		r.clientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	text := out.String()
	if err != nil {
		r.failure = fmt.Sprintf("sysbench: %v: %s", err, firstLines(fatalLines(text), 3))
		return r, text
	}
	mt, mq := reTransactions.FindStringSubmatch(text), reQueries.FindStringSubmatch(text)
	if mt == nil || mq == nil {
		r.failure = "no transactions/queries figures in sysbench's output"
		return r, text
	}
	r.tps, _ = strconv.ParseFloat(mt[2], 64)
	r.queries, _ = strconv.ParseInt(mq[1], 10, 64)
	r.qps, _ = strconv.ParseFloat(mq[2], 64)
	if m := reErrors.FindStringSubmatch(text); m != nil {
		r.errors, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reReconnects.FindStringSubmatch(text); m != nil {
		r.reconnects, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reLatAvg.FindStringSubmatch(text); m != nil {
		r.latAvg, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reLat95.FindStringSubmatch(text); m != nil {
		r.lat95, _ = strconv.ParseFloat(m[1], 64)
	}
	r.ok = true
	return r, text
}

// fatalLines keeps sysbench's FATAL and error lines.
func fatalLines(text string) string {
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "FATAL") || strings.Contains(l, "ALERT") || strings.Contains(strings.ToLower(l), "error") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	if len(keep) == 0 {
		return strings.TrimSpace(tailText(text, 5))
	}
	return strings.Join(keep, " | ")
}

func firstLines(s string, n int) string {
	parts := strings.Split(s, " | ")
	if len(parts) > n {
		parts = append(parts[:n], fmt.Sprintf("(%d more)", len(parts)-n))
	}
	return strings.Join(parts, " | ")
}

func tailText(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// prepareSysbench creates the database and sysbench's tables, directly
// on MariaDB (or reuses them on a -mysql server that already has them).
func (b *bench) prepareSysbench(e endpoint) {
	db := openDB(b.db.addr, b.db.user, b.db.password, "")
	defer db.Close()
	if b.db.srv == nil && b.sysbenchTablesReady() {
		fmt.Printf("  reusing %s's %d sysbench tables of %d rows\n", b.o.db, b.o.tables, b.o.tableSize)
		return
	}
	for _, q := range []string{"DROP DATABASE IF EXISTS `" + b.o.db + "`", "CREATE DATABASE `" + b.o.db + "`"} {
		if _, err := db.Exec(q); err != nil {
			check(fmt.Errorf("%s: %v", q, err))
		}
	}
	began := time.Now()
	threads := max(1, min(b.o.tables, runtime.NumCPU()))
	args := append([]string{"oltp_read_write"}, b.sysbenchArgs(e)...)
	args = append(args, "--threads="+strconv.Itoa(threads), "prepare")
	out, err := newCmd("sysbench", args...).CombinedOutput()
	if err != nil {
		check(fmt.Errorf("sysbench prepare: %v\n%s", err, tailText(string(out), 20)))
	}
	fmt.Printf("  prepared %d tables of %d rows in %s (%.1f s)\n", b.o.tables, b.o.tableSize, b.o.db, time.Since(began).Seconds())
}

// sysbenchTablesReady reports whether the database holds the tables with
// the rows asked for.
func (b *bench) sysbenchTablesReady() bool {
	db := openDB(b.db.addr, b.db.user, b.db.password, b.o.db)
	defer db.Close()
	for i := 1; i <= b.o.tables; i++ {
		var n int
		if err := db.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM sbtest%d", i)).Scan(&n); err != nil || n != b.o.tableSize {
			return false
		}
	}
	return true
}

// sysbenchSuite runs every cell against MariaDB directly and through
// Mecha, round after round, and prints medians and ratios.
func sysbenchSuite(b *bench, sum *summary) {
	o := b.o
	fmt.Printf("\n== sysbench: Mecha (protocol: mysql, type: mysql) vs MariaDB directly; %d tables × %d rows, %s per run ==\n",
		o.tables, o.tableSize, o.duration)
	directEP := endpoint{name: "direct", addr: b.db.addr, user: b.db.user, password: b.db.password}
	b.prepareSysbench(directEP)

	m, ready := b.startMecha("mecha-sysbench")
	mechaEP := endpoint{name: "mecha", addr: m.addr, user: "root", mecha: m}
	eps := [2]endpoint{directEP, mechaEP}
	time.Sleep(200 * time.Millisecond)
	idle := rss(m.srv.pid())
	fmt.Printf("  Mecha ready in %s (pid %d), RSS idle %.1f MB\n", ready.Round(100*time.Microsecond), m.srv.pid(), mb(idle))
	peak := watchRSS(m.srv.pid(), 100*time.Millisecond)

	var cells []cell
	for _, w := range o.workloads {
		for _, t := range o.threads {
			for _, ps := range o.psModes {
				cells = append(cells, cell{w, t, ps})
			}
		}
	}
	var notes []string
	if o.warmup > 0 {
		wc := cell{"oltp_point_select", slicesMax(o.threads), "auto"}
		for _, e := range eps {
			r, text := b.runSysbench(e, wc, o.warmup)
			if !r.ok {
				notes = append(notes, fmt.Sprintf("warm-up %s (%s): %s", e.name, wc, r.failure))
				if o.verbose {
					fmt.Printf("  warm-up %s failed:\n%s\n", e.name, tailText(text, 15))
				}
			}
		}
	}

	results := map[cell]*[2][]sbRun{}
	for _, c := range cells {
		results[c] = &[2][]sbRun{}
	}
	for r := 0; r < o.rounds; r++ {
		for ci, c := range cells {
			order := []int{direct, through}
			if (r+ci)%2 == 1 {
				order = []int{through, direct}
			}
			for _, ti := range order {
				e := eps[ti]
				if m.srv.exited() {
					check(fmt.Errorf("Mecha exited during the sysbench suite:\n%s", tail(m.srv.log, 20)))
				}
				run, text := b.runSysbench(e, c, o.duration)
				results[c][ti] = append(results[c][ti], run)
				if !run.ok {
					notes = append(notes, fmt.Sprintf("round %d, %s, %s: FAILED: %s", r+1, e.name, c, run.failure))
					if o.verbose {
						fmt.Printf("  sysbench output:\n%s\n", tailText(text, 25))
					}
				} else if run.errors > 0 || run.reconnects > 0 {
					notes = append(notes, fmt.Sprintf("round %d, %s, %s: %d ignored errors, %d reconnects", r+1, e.name, c, run.errors, run.reconnects))
				}
				if o.verbose {
					status := "ok"
					if !run.ok {
						status = "FAILED"
					}
					fmt.Printf("  round %d %-6s %-17s thr %2d ps %-7s %10.1f tps %10.1f qps  avg %6.3f ms  p95 %6.3f ms  err %d rec %d  cpu µs/q: mecha %.1f mariadb %.1f sysbench %.1f  %s\n",
						r+1, e.name, c.workload, c.threads, c.ps, run.tps, run.qps, run.latAvg, run.lat95, run.errors, run.reconnects,
						run.perQuery(run.mechaCPU), run.perQuery(run.dbCPU), run.perQuery(run.clientCPU), status)
				}
			}
		}
	}
	peakRSS, _ := peak.stop()

	fmt.Printf("\nsysbench, median of %d rounds; mecha/direct is the median of the per-round ratios; goal: point_select ≥ %.2f× QPS, read_only and read_write ≥ %.2f× TPS\n",
		o.rounds, pointSelectGoal, transactionGoal)
	fmt.Printf("%-17s %3s %-7s %6s %11s %11s %8s %-7s %9s %9s %9s %9s %7s\n",
		"workload", "thr", "ps-mode", "metric", "direct", "mecha", "m/direct", "goal", "avg ms d", "avg ms m", "p95 ms d", "p95 ms m", "err d/m")
	var all []float64
	byWorkload := map[string][]float64{}
	var below []string
	for _, c := range cells {
		d, mm := results[c][direct], results[c][through]
		var dv, mv, ratios, dl, ml, d95, m95 []float64
		var derr, merr int64
		failed := 0
		for r := range d {
			if d[r].ok {
				dv, dl, d95 = append(dv, d[r].value(c.workload)), append(dl, d[r].latAvg), append(d95, d[r].lat95)
			}
			if mm[r].ok {
				mv, ml, m95 = append(mv, mm[r].value(c.workload)), append(ml, mm[r].latAvg), append(m95, mm[r].lat95)
			}
			if d[r].ok && mm[r].ok && d[r].value(c.workload) > 0 {
				ratios = append(ratios, mm[r].value(c.workload)/d[r].value(c.workload))
			}
			if !d[r].ok || !mm[r].ok {
				failed++
			}
			derr += d[r].errors + d[r].reconnects
			merr += mm[r].errors + mm[r].reconnects
		}
		ratio := median(ratios)
		verdict := "ok"
		switch {
		case len(ratios) == 0:
			verdict = "n/a"
		case ratio < goal(c.workload):
			verdict = "BELOW"
			below = append(below, fmt.Sprintf("%s thr %d ps %s (%.2f)", c.workload, c.threads, c.ps, ratio))
		}
		if len(ratios) > 0 {
			all = append(all, ratio)
			byWorkload[c.workload] = append(byWorkload[c.workload], ratio)
		}
		errs := fmt.Sprintf("%d/%d", derr, merr)
		if failed > 0 {
			errs += fmt.Sprintf(" %d FAILED", failed)
		}
		fmt.Printf("%-17s %3d %-7s %6s %11.1f %11.1f %8.2f %-7s %9.3f %9.3f %9.3f %9.3f %7s\n",
			c.workload, c.threads, c.ps, workloadMetric[c.workload], median(dv), median(mv), ratio,
			fmt.Sprintf("%.1f", goal(c.workload))+verdictMark(verdict), median(dl), median(ml), median(d95), median(m95), errs)
	}

	fmt.Printf("\nCPU per query, µs (median of rounds; queries as sysbench counts them, BEGIN/COMMIT included)\n")
	fmt.Printf("%-17s %3s %-7s %8s %14s %14s %14s %14s\n", "workload", "thr", "ps-mode", "mecha", "mariadb via m", "mariadb direct", "sysbench via m", "sysbench direct")
	for _, c := range cells {
		d, mm := results[c][direct], results[c][through]
		var mc, dbm, dbd, cm, cd []float64
		for r := range d {
			if mm[r].ok {
				mc, dbm, cm = append(mc, mm[r].perQuery(mm[r].mechaCPU)), append(dbm, mm[r].perQuery(mm[r].dbCPU)), append(cm, mm[r].perQuery(mm[r].clientCPU))
			}
			if d[r].ok {
				dbd, cd = append(dbd, d[r].perQuery(d[r].dbCPU)), append(cd, d[r].perQuery(d[r].clientCPU))
			}
		}
		db := func(xs []float64) string {
			if b.db.pid == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", median(xs))
		}
		fmt.Printf("%-17s %3d %-7s %8.1f %14s %14s %14.1f %14.1f\n", c.workload, c.threads, c.ps, median(mc), db(dbm), db(dbd), median(cm), median(cd))
	}
	fmt.Printf("(CPU times come from /proc/PID/stat in %.0f Hz ticks; a 10 ms tick is coarse for short runs)\n", clockTicks)

	fmt.Printf("\nMecha RSS: idle %.1f MB, peak during the suite %.1f MB (sampled every 100 ms), VmHWM %.1f MB\n",
		mb(idle), mb(peakRSS), mb(hwm(m.srv.pid())))
	if len(notes) == 0 {
		fmt.Printf("sysbench reported 0 ignored errors and 0 reconnects in every run\n")
	} else {
		fmt.Printf("!! sysbench errors, reconnects or failures:\n")
		for _, n := range notes {
			fmt.Printf("   %s\n", n)
		}
	}
	m.finish(o.verbose)

	// Summary.
	workloads := make([]string, 0, len(byWorkload))
	for w := range byWorkload {
		workloads = append(workloads, w)
	}
	sort.Strings(workloads)
	var per []string
	for _, w := range workloads {
		per = append(per, fmt.Sprintf("%s %.2f", strings.TrimPrefix(w, "oltp_"), median(byWorkload[w])))
	}
	sum.add("sysbench: Mecha/direct over %d cells: median %.2f, min %.2f, max %.2f; per workload (median): %s",
		len(all), median(all), minOf(all), maxOf(all), strings.Join(per, ", "))
	if len(below) > 0 {
		sum.add("sysbench: %d of %d cells below goal: %s", len(below), len(cells), strings.Join(below, "; "))
	} else if len(all) > 0 {
		sum.add("sysbench: every cell meets its goal (point_select ≥ %.1f, read_only/read_write ≥ %.1f)", pointSelectGoal, transactionGoal)
	}
	if len(notes) > 0 {
		sum.add("sysbench: %d runs with errors, reconnects or failures (listed above the summary)", len(notes))
	} else {
		sum.add("sysbench: 0 errors, 0 reconnects")
	}
	sum.add("sysbench: Mecha RSS idle %.1f MB, peak %.1f MB", mb(idle), mb(peakRSS))
}

func verdictMark(v string) string {
	switch v {
	case "ok":
		return " ok"
	case "BELOW":
		return " LOW"
	}
	return " -"
}

func slicesMax(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}
