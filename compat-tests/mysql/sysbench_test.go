package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
)

// sysbench settings: small tables, a few thousand transactions.
const (
	sbTables    = 2
	sbTableSize = 10000
	sbThreads   = 4
	sbEvents    = 2000
)

// sysbench runs sysbench's oltp_read_write through Mecha.
func (e *env) sysbench(t *testing.T, command string, extra ...string) string {
	t.Helper()
	bin := need(t, "sysbench")
	args := append([]string{"oltp_read_write", "--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-port=" + e.port,
		"--mysql-user=root", "--mysql-password=", "--mysql-db=" + e.up.DB,
		fmt.Sprint("--tables=", sbTables), fmt.Sprint("--table-size=", sbTableSize)}, extra...)
	out, errOut, code := run(t, "", bin, append(args, command)...)
	if code != 0 {
		t.Fatalf("sysbench %s %v: exit %d\n%s%s", command, extra, code, out, errOut)
	}
	return out
}

// sbStat reads a number from sysbench's report ("transactions:", "read:").
func sbStat(t *testing.T, out, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(name) + `:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in sysbench's report:\n%s", name, out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// tableDigest reads a sysbench table through db and returns its row count
// and a SHA-256 of all its rows in id order.
func tableDigest(t *testing.T, db *sql.DB, table string, args ...any) (int, string) {
	t.Helper()
	q := "SELECT id, k, c, pad FROM " + table
	if len(args) > 0 {
		q += " WHERE id >= ?"
	}
	rows, err := db.Query(q+" ORDER BY id", args...)
	must(t, err)
	defer rows.Close()
	h := sha256.New()
	n := 0
	for rows.Next() {
		var id, k int64
		var c, pad string
		must(t, rows.Scan(&id, &k, &c, &pad))
		fmt.Fprintf(h, "%d|%d|%s|%s\n", id, k, c, pad)
		n++
	}
	must(t, rows.Err())
	return n, fmt.Sprintf("%x", h.Sum(nil))
}

// TestSysbench runs sysbench oltp_read_write through Mecha with prepared
// statements (--db-ps-mode=auto) and without (=disable), on a private
// MariaDB with READ COMMITTED (no gap-lock deadlocks, so a run has no
// reason to hit errors) and without a log flush at each commit. sysbench
// checks no results, so afterwards the tables are checked: oltp_read_write
// re-inserts every row it deletes, so each table still holds ids 1..N, and
// every row read through Mecha must equal the row read directly.
func TestSysbench(t *testing.T) {
	t.Parallel()
	need(t, "sysbench")
	up := mysqltest.Start(t, "--transaction-isolation=READ-COMMITTED", "--innodb-flush-log-at-trx-commit=0")
	e := setupOn(t, up, "")
	out := e.sysbench(t, "prepare")
	for i := 1; i <= sbTables; i++ {
		if want := fmt.Sprintf("Inserting %d records into 'sbtest%d'", sbTableSize, i); !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(out) {
			t.Fatalf("sysbench prepare:\n%s", out)
		}
	}
	checksums := func(db *sql.DB) map[string]int64 {
		m := map[string]int64{}
		rows, err := db.Query("CHECKSUM TABLE sbtest1, sbtest2")
		must(t, err)
		defer rows.Close()
		for rows.Next() {
			var name string
			var sum int64
			must(t, rows.Scan(&name, &sum))
			m[name] = sum
		}
		must(t, rows.Err())
		return m
	}
	direct := e.direct(t)
	before := checksums(direct)
	for seed, mode := range []string{"auto", "disable"} {
		t.Run(mode, func(t *testing.T) {
			executes := e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="COM_STMT_EXECUTE"}`)
			queries := e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="COM_QUERY"}`)
			out := e.sysbench(t, "run", "--db-ps-mode="+mode, fmt.Sprint("--threads=", sbThreads),
				fmt.Sprint("--events=", sbEvents), "--time=0", "--rand-type=uniform", fmt.Sprint("--rand-seed=", seed+1))
			// Each transaction: BEGIN, 10 point selects, 4 ranges, 2 updates,
			// a delete and an insert, COMMIT. sysbench counts a write only
			// if its affected-rows count is not 0 (else as "other"), so the
			// counts also check that every OK packet's count came through.
			// (A run with the seed of an earlier one would write the same
			// values and change nothing.)
			want := map[string]int64{
				"transactions":   sbEvents,
				"read":           14 * sbEvents,
				"write":          4 * sbEvents,
				"other":          2 * sbEvents,
				"total":          20 * sbEvents,
				"ignored errors": 0,
				"reconnects":     0,
			}
			for name, n := range want {
				if got := sbStat(t, out, name); got != n {
					t.Errorf("sysbench %s: %d, want %d", name, got, n)
				}
			}
			if t.Failed() {
				t.Logf("sysbench output:\n%s", out)
			}
			// The statements went as sysbench meant: prepared or as text.
			executes = e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="COM_STMT_EXECUTE"}`) - executes
			queries = e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="COM_QUERY"}`) - queries
			if mode == "auto" && executes < 20*sbEvents {
				t.Errorf("--db-ps-mode=auto: %v COM_STMT_EXECUTE through Mecha, want at least %d", executes, 20*sbEvents)
			}
			if mode == "disable" && (executes != 0 || queries < 20*sbEvents) {
				t.Errorf("--db-ps-mode=disable: %v COM_STMT_EXECUTE and %v COM_QUERY through Mecha", executes, queries)
			}

			via := e.via(t, "interpolateParams=false")
			after := checksums(direct)
			if got := checksums(via); fmt.Sprint(got) != fmt.Sprint(after) {
				t.Errorf("CHECKSUM TABLE through Mecha %v, directly %v", got, after)
			}
			if fmt.Sprint(after) == fmt.Sprint(before) {
				t.Errorf("the tables did not change: %v", after)
			}
			for i := 1; i <= sbTables; i++ {
				table := fmt.Sprint("sbtest", i)
				var count, distinct, lo, hi int64
				must(t, direct.QueryRow("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM "+table).Scan(&count, &distinct, &lo, &hi))
				if count != sbTableSize || distinct != sbTableSize || lo != 1 || hi != sbTableSize {
					t.Errorf("%s: %d rows, %d ids from %d to %d; want ids 1..%d", table, count, distinct, lo, hi, sbTableSize)
				}
				// Every row, by the binary protocol through Mecha and the text
				// protocol directly.
				vn, vsum := tableDigest(t, via, table, 0)
				dn, dsum := tableDigest(t, direct, table)
				if vn != dn || vsum != dsum || dn != sbTableSize {
					t.Errorf("%s through Mecha: %d rows, digest %s; directly %d rows, digest %s", table, vn, vsum, dn, dsum)
				}
			}
		})
	}
}

// item is a row of the deterministic workload's items table.
type item struct {
	owner, qty, updated int
	note                string
}

// workloadSteps is how many steps each worker of TestDeterministicWorkload
// runs.
const (
	workloadWorkers = 4
	workloadSteps   = 150
)

// workload applies worker w's known sequence of statements, through db
// when it is set, and to model (the expected state) always. Workers own
// disjoint ids, so the final state does not depend on how they interleave;
// the shared counters only add.
func workload(ctx context.Context, db *sql.DB, w int, model map[int]item) error {
	base := w * 10000
	exec := func(ex interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, q string, args ...any) error {
		if db == nil {
			return nil
		}
		_, err := ex.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("worker %d: %s: %w", w, q, err)
		}
		return nil
	}
	for s := 0; s < workloadSteps; s++ {
		id := base + s
		if err := exec(db, "INSERT INTO items (id, owner, qty, note, updated) VALUES (?, ?, ?, ?, 0)", id, w, s, fmt.Sprintf("w%d-s%d é😀", w, s)); err != nil {
			return err
		}
		model[id] = item{owner: w, qty: s, note: fmt.Sprintf("w%d-s%d é😀", w, s)}
		if s%3 == 2 {
			if err := exec(db, "UPDATE items SET qty = qty * 2 + ?, updated = ? WHERE id = ?", w, s, id-1); err != nil {
				return err
			}
			it := model[id-1]
			it.qty, it.updated = it.qty*2+w, s
			model[id-1] = it
		}
		if s%5 == 4 {
			if err := exec(db, "DELETE FROM items WHERE id IN (?, ?)", id-2, id-4); err != nil {
				return err
			}
			delete(model, id-2)
			delete(model, id-4)
		}
		if s%4 == 0 {
			// Upsert of an existing row.
			if err := exec(db, "INSERT INTO items (id, owner, qty, note, updated) VALUES (?, ?, 1, 'dup', ?) ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), note = CONCAT(note, '+')", id, w, s); err != nil {
				return err
			}
			it := model[id]
			it.qty++
			it.note += "+"
			model[id] = it
		}
		// A committed transaction and a rolled-back one.
		var tx *sql.Tx
		if db != nil {
			var err error
			if tx, err = db.BeginTx(ctx, nil); err != nil {
				return err
			}
		}
		if err := exec(tx, "UPDATE counters SET n = n + 1 WHERE name IN ('total', ?)", fmt.Sprint("w", w)); err != nil {
			return err
		}
		if err := exec(tx, "INSERT INTO ledger (worker, step, amount) VALUES (?, ?, ?), (?, ?, ?)", w, s, s, w, s, -s/2); err != nil {
			return err
		}
		if tx != nil {
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		if s%7 == 6 {
			if db != nil {
				var err error
				if tx, err = db.BeginTx(ctx, nil); err != nil {
					return err
				}
			}
			if err := exec(tx, "INSERT INTO items (id, owner, qty, note, updated) VALUES (?, ?, 0, 'rolled back', 0)", base+5000+s, w); err != nil {
				return err
			}
			if err := exec(tx, "UPDATE counters SET n = n + 1000 WHERE name = 'total'"); err != nil {
				return err
			}
			if err := exec(tx, "DELETE FROM items WHERE id = ?", id); err != nil {
				return err
			}
			if tx != nil {
				if err := tx.Rollback(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// TestDeterministicWorkload runs a known sequence of inserts, updates,
// upserts, deletes and transactions (committed and rolled back) through
// Mecha from several clients at once, by both protocols, and checks
// MariaDB's final state row by row, directly.
func TestDeterministicWorkload(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	execAll(t, e.direct(t),
		"CREATE TABLE items (id INT PRIMARY KEY, owner INT NOT NULL, qty INT NOT NULL, note VARCHAR(64) CHARACTER SET utf8mb4, updated INT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE counters (name VARCHAR(10) PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, worker INT, step INT, amount INT) ENGINE=InnoDB",
		"INSERT INTO counters VALUES ('total', 0), ('w0', 0), ('w1', 0), ('w2', 0), ('w3', 0)")
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, workloadWorkers)
	for w := 0; w < workloadWorkers; w++ {
		db := e.via(t, protocols[w%2].params...)
		db.SetMaxOpenConns(2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = workload(ctx, db, w, map[int]item{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	model := map[int]item{}
	for w := 0; w < workloadWorkers; w++ {
		_ = workload(ctx, nil, w, model)
	}

	direct := e.direct(t)
	rows, err := direct.Query("SELECT id, owner, qty, note, updated FROM items ORDER BY id")
	must(t, err)
	got := map[int]item{}
	for rows.Next() {
		var id int
		var it item
		must(t, rows.Scan(&id, &it.owner, &it.qty, &it.note, &it.updated))
		got[id] = it
	}
	must(t, rows.Err())
	rows.Close()
	if len(got) != len(model) {
		t.Errorf("MariaDB holds %d items, want %d", len(got), len(model))
	}
	for id, want := range model {
		if got[id] != want {
			t.Errorf("item %d: %+v, want %+v", id, got[id], want)
		}
	}
	for id := range got {
		if _, ok := model[id]; !ok {
			t.Errorf("unexpected item %d: %+v", id, got[id])
		}
	}
	counters := map[string]int64{}
	rows, err = direct.Query("SELECT name, n FROM counters")
	must(t, err)
	for rows.Next() {
		var name string
		var n int64
		must(t, rows.Scan(&name, &n))
		counters[name] = n
	}
	rows.Close()
	wantCounters := map[string]int64{"total": workloadWorkers * workloadSteps}
	for w := 0; w < workloadWorkers; w++ {
		wantCounters[fmt.Sprint("w", w)] = workloadSteps
	}
	if fmt.Sprint(counters) != fmt.Sprint(wantCounters) {
		t.Errorf("counters %v, want %v", counters, wantCounters)
	}
	var n, sum, workers int64
	must(t, direct.QueryRow("SELECT COUNT(*), SUM(amount), COUNT(DISTINCT worker) FROM ledger").Scan(&n, &sum, &workers))
	wantSum := int64(0)
	for s := 0; s < workloadSteps; s++ {
		wantSum += int64(s - s/2)
	}
	if n != 2*workloadWorkers*workloadSteps || sum != workloadWorkers*wantSum || workers != workloadWorkers {
		t.Errorf("ledger: %d rows, sum %d, %d workers; want %d, %d, %d", n, sum, workers, 2*workloadWorkers*workloadSteps, workloadWorkers*wantSum, workloadWorkers)
	}
}
