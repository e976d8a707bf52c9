package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// bigRun is one big SELECT's result.
type bigRun struct {
	ok       bool
	failure  string
	elapsed  time.Duration
	rows     int
	peak     int64 // Mecha's sampled peak RSS (through Mecha only)
	samples  int
	mechaCPU time.Duration
	dbCPU    time.Duration
}

// bigQuery is the big suite's statement, sent as a text query or
// prepared.
const bigQuery = "SELECT * FROM big"

// prepareBig creates the big table with its rows unless it is there.
func (b *bench) prepareBig() {
	root := openDB(b.db.addr, b.db.user, b.db.password, "")
	if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS `" + b.o.db + "`"); err != nil {
		check(fmt.Errorf("create database %s: %v", b.o.db, err))
	}
	root.Close()
	db := openDB(b.db.addr, b.db.user, b.db.password, b.o.db)
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM big").Scan(&n); err == nil && n == b.o.bigRows {
		fmt.Printf("  reusing %s.big (%d rows)\n", b.o.db, n)
		return
	}
	began := time.Now()
	for _, q := range []string{"DROP TABLE IF EXISTS big",
		"CREATE TABLE big (id INT PRIMARY KEY, a VARCHAR(100) NOT NULL, b INT NOT NULL) ENGINE=InnoDB"} {
		if _, err := db.Exec(q); err != nil {
			check(fmt.Errorf("%s: %v", q, err))
		}
	}
	// MariaDB's Sequence engine makes the rows in the server; elsewhere
	// they are sent in batches.
	pad := "abcdefghijklmnopqrstuvwxyz0123456789"
	_, err := db.Exec(fmt.Sprintf("INSERT INTO big SELECT seq, RPAD(CONCAT('row ', seq, ' '), 100, '%s'), seq %% 1000 FROM seq_1_to_%d", pad, b.o.bigRows))
	if err != nil {
		if b.o.verbose {
			fmt.Printf("  no Sequence engine (%v): inserting in batches\n", err)
		}
		if _, err := db.Exec("TRUNCATE TABLE big"); err != nil {
			check(err)
		}
		const batch = 2000
		var sb strings.Builder
		for lo := 1; lo <= b.o.bigRows; lo += batch {
			sb.Reset()
			sb.WriteString("INSERT INTO big VALUES ")
			for id := lo; id < lo+batch && id <= b.o.bigRows; id++ {
				if id > lo {
					sb.WriteByte(',')
				}
				a := fmt.Sprintf("row %d ", id)
				for len(a) < 100 {
					a += pad[:min(len(pad), 100-len(a))]
				}
				fmt.Fprintf(&sb, "(%d,'%s',%d)", id, a, id%1000)
			}
			if _, err := db.Exec(sb.String()); err != nil {
				check(fmt.Errorf("fill big: %v", err))
			}
		}
	}
	fmt.Printf("  created %s.big with %d rows in %.1f s\n", b.o.db, b.o.bigRows, time.Since(began).Seconds())
}

// runBig streams the big SELECT once over db, sent as mode (text or
// prepared), sampling Mecha's RSS every 20 ms when m is set.
func (b *bench) runBig(db *sql.DB, mode string, m *mecha) bigRun {
	mechaPid := 0
	if m != nil {
		mechaPid = m.srv.pid()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var w *peakRSS
	if mechaPid > 0 {
		w = watchRSS(mechaPid, 20*time.Millisecond)
	}
	m0, d0 := cpuTime(mechaPid), cpuTime(b.db.pid)
	began := time.Now()
	var r bigRun
	err := func() error {
		var rows *sql.Rows
		var err error
		if mode == "prepared" {
			var stmt *sql.Stmt
			stmt, err = db.PrepareContext(ctx, bigQuery)
			if err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
			defer stmt.Close()
			rows, err = stmt.QueryContext(ctx)
		} else {
			rows, err = db.QueryContext(ctx, bigQuery)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r.rows++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("after %d rows: %w", r.rows, err)
		}
		return rows.Close()
	}()
	r.elapsed = time.Since(began)
	r.mechaCPU, r.dbCPU = cpuTime(mechaPid)-m0, cpuTime(b.db.pid)-d0
	if w != nil {
		r.peak, r.samples = w.stop()
	}
	switch {
	case err != nil:
		r.failure = err.Error()
		if ctx.Err() != nil {
			r.failure = "hung: no end within 10 minutes: " + r.failure
		}
	case r.rows != b.o.bigRows:
		r.failure = fmt.Sprintf("%d rows, want %d", r.rows, b.o.bigRows)
	default:
		r.ok = true
	}
	return r
}

// bigSuite streams a big table's rows to a Go client directly and
// through Mecha, and watches Mecha's memory meanwhile.
func bigSuite(b *bench, sum *summary) {
	o := b.o
	fmt.Printf("\n== big: %s (%d rows of ~110 bytes) streamed by go-sql-driver/mysql, directly and through Mecha; Mecha's VmRSS sampled every 20 ms ==\n",
		bigQuery, o.bigRows)
	b.prepareBig()

	m, ready := b.startMecha("mecha-big")
	pid := m.srv.pid()
	time.Sleep(200 * time.Millisecond)
	idle := rss(pid)

	dbs := [2]*sql.DB{
		openDB(b.db.addr, b.db.user, b.db.password, o.db),
		openDB(m.addr, "root", "", o.db),
	}
	for i, db := range dbs {
		defer db.Close()
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		if err := db.Ping(); err != nil {
			check(fmt.Errorf("ping %s: %v", [2]string{"MariaDB", "Mecha"}[i], err))
		}
	}
	time.Sleep(100 * time.Millisecond)
	idleConn := rss(pid)
	fmt.Printf("  Mecha ready in %s (pid %d); RSS idle %.1f MB, %.1f MB with the client logged in\n",
		ready.Round(100*time.Microsecond), pid, mb(idle), mb(idleConn))

	type series struct{ runs [2][]bigRun }
	results := map[string]*series{}
	var notes []string
	for _, mode := range o.bigModes {
		results[mode] = &series{}
	}
	for r := 0; r < o.bigRounds; r++ {
		for mi, mode := range o.bigModes {
			order := []int{direct, through}
			if (r+mi)%2 == 1 {
				order = []int{through, direct}
			}
			for _, ti := range order {
				if m.srv.exited() {
					check(fmt.Errorf("Mecha exited during the big suite:\n%s", tail(m.srv.log, 20)))
				}
				var mm *mecha
				if ti == through {
					mm = m
				}
				run := b.runBig(dbs[ti], mode, mm)
				results[mode].runs[ti] = append(results[mode].runs[ti], run)
				name := [2]string{"direct", "mecha"}[ti]
				if !run.ok {
					notes = append(notes, fmt.Sprintf("round %d, %s, %s: FAILED after %.1f s: %s", r+1, name, mode, run.elapsed.Seconds(), run.failure))
				}
				if o.verbose {
					status := "ok"
					if !run.ok {
						status = "FAILED: " + run.failure
					}
					extra := ""
					if mm != nil {
						extra = fmt.Sprintf("  mecha peak RSS %.1f MB (%d samples), cpu %.0f ns/row", mb(run.peak), run.samples, float64(run.mechaCPU.Nanoseconds())/float64(max(1, run.rows)))
					}
					fmt.Printf("  round %d %-6s %-8s %7.3f s %9.0f rows/s  mariadb cpu %.0f ns/row%s  %s\n", r+1, name, mode,
						run.elapsed.Seconds(), float64(run.rows)/run.elapsed.Seconds(), float64(run.dbCPU.Nanoseconds())/float64(max(1, run.rows)), extra, status)
				}
			}
		}
	}
	hwmAfter := hwm(pid)
	time.Sleep(time.Second)
	idleAfter := rss(pid)

	fmt.Printf("\nbig SELECT, median of %d rounds; mecha/direct is the median of the per-round time ratios (goal ≤ %.1f); Mecha's peak RSS is the highest sample of any round (goal ≤ %d MB)\n",
		o.bigRounds, bigTimeGoal, rssGoal>>20)
	fmt.Printf("%-9s %9s %9s %9s %-8s %12s %12s %10s %-6s %11s %11s %11s\n",
		"mode", "direct s", "mecha s", "m/direct", "goal", "rows/s d", "rows/s m", "peak RSS", "goal", "mecha ns/r", "maria ns/r d", "maria ns/r m")
	var ratios []float64
	ratioOf := map[string]float64{}
	var worstPeak int64
	for _, mode := range o.bigModes {
		d, mm := results[mode].runs[direct], results[mode].runs[through]
		var dt, mt, rs, mc, dbd, dbm []float64
		var peakMode int64
		for r := range d {
			if d[r].ok {
				dt = append(dt, d[r].elapsed.Seconds())
				dbd = append(dbd, float64(d[r].dbCPU.Nanoseconds())/float64(d[r].rows))
			}
			if mm[r].ok {
				mt = append(mt, mm[r].elapsed.Seconds())
				mc = append(mc, float64(mm[r].mechaCPU.Nanoseconds())/float64(mm[r].rows))
				dbm = append(dbm, float64(mm[r].dbCPU.Nanoseconds())/float64(mm[r].rows))
			}
			peakMode = max(peakMode, mm[r].peak)
			if d[r].ok && mm[r].ok {
				rs = append(rs, mm[r].elapsed.Seconds()/d[r].elapsed.Seconds())
			}
		}
		worstPeak = max(worstPeak, peakMode)
		ratio := median(rs)
		tv := "n/a"
		if len(rs) > 0 {
			ratios = append(ratios, ratio)
			ratioOf[mode] = ratio
			tv = fmt.Sprintf("%.1f", bigTimeGoal) + verdictMark(map[bool]string{true: "ok", false: "BELOW"}[ratio <= bigTimeGoal])
		}
		rv := fmt.Sprintf("%d", rssGoal>>20) + verdictMark(map[bool]string{true: "ok", false: "BELOW"}[peakMode <= rssGoal])
		rowsPer := func(ts []float64) float64 {
			if median(ts) == 0 {
				return 0
			}
			return float64(o.bigRows) / median(ts)
		}
		dbs := func(xs []float64) string {
			if b.db.pid == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f", median(xs))
		}
		fmt.Printf("%-9s %9.3f %9.3f %9.2f %-8s %12.0f %12.0f %7.1f MB %-6s %11.0f %11s %11s\n",
			mode, median(dt), median(mt), ratio, tv, rowsPer(dt), rowsPer(mt), mb(peakMode), rv, median(mc), dbs(dbd), dbs(dbm))
	}
	fmt.Printf("\nMecha RSS: idle %.1f MB after start, %.1f MB with a client logged in, %.1f MB one second after the last query; VmHWM (peak of the process' life) %.1f MB\n",
		mb(idle), mb(idleConn), mb(idleAfter), mb(hwmAfter))
	if len(notes) > 0 {
		fmt.Printf("!! failures:\n")
		for _, n := range notes {
			fmt.Printf("   %s\n", n)
		}
	}
	m.finish(o.verbose)

	rssVerdict := "ok"
	if max(worstPeak, hwmAfter) > rssGoal {
		rssVerdict = "OVER"
	}
	timeVerdict := "ok"
	if len(ratios) == 0 || maxOf(ratios) > bigTimeGoal {
		timeVerdict = "OVER"
	}
	var per []string
	for _, mode := range o.bigModes {
		if r, ok := ratioOf[mode]; ok {
			per = append(per, fmt.Sprintf("%s %.2f", mode, r))
		} else {
			per = append(per, mode+" n/a")
		}
	}
	sum.add("big: %d-row SELECT, time Mecha/direct %s (goal ≤ %.1f: %s)", o.bigRows, strings.Join(per, ", "), bigTimeGoal, timeVerdict)
	sum.add("big: Mecha peak RSS %.1f MB sampled, VmHWM %.1f MB (goal ≤ %d MB: %s); idle %.1f MB", mb(worstPeak), mb(hwmAfter), rssGoal>>20, rssVerdict, mb(idle))
	if len(notes) > 0 {
		sum.add("big: %d failed runs (listed above the summary)", len(notes))
	}
}
