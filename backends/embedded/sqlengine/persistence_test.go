package sqlengine

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// allTypesSchema covers the value encodings of the snapshot.
var allTypesSchema = []string{
	`CREATE TABLE vals (
		id INT PRIMARY KEY,
		i8 TINYINT, u8 TINYINT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
		f FLOAT, d DOUBLE, dec1 DECIMAL(65,30), dec2 DECIMAL(10,0),
		dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(3) NULL, da DATE, tm TIME, yr YEAR,
		ch CHAR(10), vc VARCHAR(100), tx TEXT, lt LONGTEXT,
		bn BINARY(4), vb VARBINARY(300), bl BLOB, lb LONGBLOB,
		bt BIT(64), bt1 BIT(1), js JSON,
		en ENUM('small','medium','large'), st SET('a','b','c'),
		g GEOMETRY, pt POINT,
		KEY k_vc (vc), UNIQUE KEY u_dec (dec2)
	)`,
}

var allTypesRows = []string{
	// Every column NULL.
	`INSERT INTO vals (id) VALUES (1)`,
	`INSERT INTO vals VALUES (2,
		-128, 255, -9223372036854775808, 18446744073709551615,
		3.4028234663852886e38, 1.7976931348623157e308, '-12345678901234567890123456789012345.123456789012345678901234567890', 42,
		'2024-02-29 23:59:59.999999', '1000-01-01 00:00:00', '2038-01-19 03:14:07.499', '9999-12-31', '-838:59:59', 2155,
		'fixed', 'quote '' backslash \\ nul \0 nl \n cr \r ctrlz \Z tab 	 end', 'héllo wörld 日本語 🙂', REPEAT('x', 70000),
		x'00ff7f80', x'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff', x'', x'5c27220a0d1a00',
		b'1111111111111111111111111111111111111111111111111111111111111111', b'1', '{"a": [1, 2.5, "x\\"y", null, true], "b": {"c": "日本"}}',
		'large', 'a,c',
		ST_GeomFromText('LINESTRING(0 0, 1 1.5, -2 3)'), ST_GeomFromText('POINT(-71.064544 42.28787)'))`,
	`INSERT INTO vals (id, i8, f, d, dec1, dt, tm, ch, vc, tx, bn, vb, js, en, st, bt1)
		VALUES (3, 0, -1.5, 0.1, '0.000000000000000000000000000001', '1970-01-01 00:00:00.000001', '00:00:00.5',
		'', '', '', x'00', x'00', '"just a string"', 'small', '', b'0')`,
}

// tableDump is everything a client can see of a table.
func tableDump(t *testing.T, db querier, table string) [][]string {
	t.Helper()
	create := rowsText(t, db, "SHOW CREATE TABLE "+table)
	return append(create, rowsText(t, db, "SELECT * FROM "+table+" ORDER BY 1")...)
}

// firstDifference describes the first cell where got and want differ, or
// returns "" if they are equal.
func firstDifference(got, want [][]string) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return fmt.Sprintf("row %d has %d columns, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			if got[i][j] != want[i][j] {
				return fmt.Sprintf("row %d column %d: got %.200q, want %.200q", i, j, got[i][j], want[i][j])
			}
		}
	}
	return ""
}

func TestPersistenceRoundTrip(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, Options{Dir: dir})
	db := connect(t, e, "test")
	mustExec(t, db, allTypesSchema...)
	mustExec(t, db, allTypesRows...)
	mustExec(t, db,
		"CREATE TABLE seq (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))",
		"INSERT INTO seq (note) VALUES ('a'), ('b'), ('c'), ('d')",
		"DELETE FROM seq WHERE id >= 3", // the counter stays at 5
		"CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(50))",
		"CREATE TRIGGER seq_audit AFTER INSERT ON seq FOR EACH ROW INSERT INTO audit (msg) VALUES (CONCAT('seq ', NEW.id))",
	)
	// The snapshot writes views sorted by name: a_view comes first and
	// must wait for z_view, which it reads, when the snapshot is loaded.
	mustExec(t, db,
		"CREATE VIEW z_view AS SELECT id, note FROM seq",
		"CREATE VIEW a_view AS SELECT id FROM z_view WHERE id > 1",
		"CREATE PROCEDURE add_note(IN n VARCHAR(20)) BEGIN INSERT INTO seq (note) VALUES (n); END",
		"CREATE DATABASE shop",
		"CREATE TABLE shop.parent (id INT PRIMARY KEY)",
		"CREATE TABLE shop.child (id INT PRIMARY KEY, parent INT, FOREIGN KEY (parent) REFERENCES shop.parent (id))",
		"INSERT INTO shop.parent VALUES (1), (2)",
		"INSERT INTO shop.child VALUES (10, 1), (11, 2)",
		"CREATE TABLE shop.docs (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY ft_body (body))",
		"INSERT INTO shop.docs VALUES (1, 'the quick brown fox'), (2, 'lazy dogs sleep')",
	)
	tables := []string{"test.vals", "test.seq", "test.audit", "shop.parent", "shop.child", "shop.docs"}
	before := map[string][][]string{}
	for _, tb := range tables {
		before[tb] = tableDump(t, db, tb)
	}
	if n := len(before["test.vals"]); n != 4 {
		t.Fatalf("vals has %d rows + definition, want 3 + 1", n-1)
	}

	db.Close()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	check := func(t *testing.T, db *sql.DB, extra map[string][][]string) {
		t.Helper()
		for _, tb := range tables {
			want := before[tb]
			if x, ok := extra[tb]; ok {
				want = x
			}
			if diff := firstDifference(tableDump(t, db, tb), want); diff != "" {
				t.Errorf("%s after reopening: %s", tb, diff)
			}
		}
	}

	e2 := openEngine(t, Options{Dir: dir})
	db2 := connect(t, e2, "test")
	check(t, db2, nil)
	if got := rowsText(t, db2, "SELECT id FROM a_view ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"2"}}) {
		t.Errorf("view after reopening: %q", got)
	}
	if got := rowsText(t, db2, "SELECT id FROM shop.docs WHERE MATCH(body) AGAINST ('fox')"); !reflect.DeepEqual(got, [][]string{{"1"}}) {
		t.Errorf("full-text search after reopening: %q", got)
	}
	if _, err := db2.Exec("INSERT INTO shop.child VALUES (12, 99)"); err == nil {
		t.Error("foreign key not enforced after reopening")
	}
	// The AUTO_INCREMENT counter, the trigger and the procedure survive.
	mustExec(t, db2, "CALL add_note('e')")
	if got := rowsText(t, db2, "SELECT id, note FROM seq ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"1", "a"}, {"2", "b"}, {"5", "e"}}) {
		t.Errorf("seq after an insert following the reopen: %q (want the counter to continue at 5)", got)
	}
	if got := rowsText(t, db2, "SELECT msg FROM audit ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"seq 5"}}) {
		t.Errorf("audit rows written by the trigger: %q", got)
	}
	after := map[string][][]string{
		"test.seq":   tableDump(t, db2, "test.seq"),
		"test.audit": tableDump(t, db2, "test.audit"),
	}
	db2.Close()
	if err := e2.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	// A snapshot of loaded data loads the same again.
	e3 := openEngine(t, Options{Dir: dir})
	check(t, connect(t, e3, "test"), after)
}

func TestUncommittedWorkIsNotKept(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, Options{Dir: dir, SnapshotInterval: -1})
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	c := conn(t, db)
	mustExec(t, c, "BEGIN", "INSERT INTO t VALUES (2)")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.SnapshotsWritten != 1 {
		t.Fatalf("%d snapshots written with periodic snapshots off, want 1 (at Close)", s.SnapshotsWritten)
	}
	e2 := openEngine(t, Options{Dir: dir})
	if got := rowsText(t, connect(t, e2, "test"), "SELECT id FROM t"); !reflect.DeepEqual(got, [][]string{{"1"}}) {
		t.Fatalf("rows after reopening: %q, want only the committed one", got)
	}
}

// TestCrashRecovery copies the data directory of a running engine once the
// periodic snapshot has caught up with a write, as a crash would leave it,
// and opens a new engine on the copy.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, Options{Dir: dir, SnapshotInterval: 50 * time.Millisecond})
	db := connect(t, e, "test")
	mustExec(t, db,
		"CREATE TABLE events (id INT PRIMARY KEY, what VARCHAR(40))",
		"INSERT INTO events VALUES (1, 'crash-marker-one'), (2, 'crash-marker-two')",
	)
	path := filepath.Join(dir, snapshotFile)
	// The stats are counted once the file is in place.
	eventually(t, 10*time.Second, "the periodic snapshot to hold the write", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && bytes.Contains(b, []byte("crash-marker-two")) && e.Stats().SnapshotsWritten > 0
	})
	s := e.Stats()
	if s.SnapshotsWritten == 0 || s.LastSnapshotBytes == 0 || s.SnapshotBytes < s.LastSnapshotBytes || s.LastSnapshotAt.IsZero() {
		t.Fatalf("stats after a periodic snapshot: %+v", s)
	}

	copyDir := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(copyDir, en.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e2 := openEngine(t, Options{Dir: copyDir})
	got := rowsText(t, connect(t, e2, "test"), "SELECT id, what FROM events ORDER BY id")
	want := [][]string{{"1", "crash-marker-one"}, {"2", "crash-marker-two"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows in the copy: %q, want %q", got, want)
	}
}

func TestCorruptSnapshot(t *testing.T) {
	// A valid snapshot to damage.
	src := t.TempDir()
	e := openEngine(t, Options{Dir: src})
	mustExec(t, connect(t, e, "test"), "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO t VALUES (1, 'original-value')")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(src, snapshotFile))
	if err != nil {
		t.Fatal(err)
	}

	var badSQL bytes.Buffer
	w := bufio.NewWriter(&badSQL)
	sw := newSnapshotWriter(w)
	sw.frame(kindStmt, "CREATE TABLE broken (")
	if err := sw.finish(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"empty file", nil, "truncated"},
		{"not a snapshot", []byte("hello world\n"), "not a mecha sqlengine snapshot"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"end line missing", good[:bytes.LastIndex(good, []byte("-- end "))], "truncated"},
		{"altered value", bytes.Replace(good, []byte("original-value"), []byte("altered!-value"), 1), "checksum mismatch"},
		{"data after the end", append(append([]byte{}, good...), "SELECT 1;\n"...), "data after the end line"},
		{"statement that fails", badSQL.Bytes(), "CREATE TABLE broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, snapshotFile)
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			e, err := Open(Options{Dir: dir, Logger: quietLogger()})
			if err == nil {
				e.Close()
				t.Fatal("Open succeeded on a damaged snapshot")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s and say %q", err, path, tc.want)
			}
			// The damaged file is left alone for the operator.
			if b, _ := os.ReadFile(path); !bytes.Equal(b, tc.content) {
				t.Fatal("Open changed the damaged snapshot")
			}
		})
	}
}

func TestDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	e := openEngine(t, Options{Dir: dir})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	if got := rowsText(t, connect(t, e, ""), "SHOW DATABASES"); !reflect.DeepEqual(got, [][]string{{"information_schema"}, {"test"}}) {
		t.Errorf("databases of a new engine: %q", got)
	}

	if e2, err := Open(Options{Dir: dir, Logger: quietLogger()}); err == nil {
		e2.Close()
		t.Fatal("a second engine opened the same directory")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v, want an in-use error", err)
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(filepath.Join(dir, snapshotFile))
	if err != nil {
		t.Fatalf("no snapshot after closing a new engine: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotFile+".tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary snapshot file left behind: %v", err)
	}
	// The directory is free again; the test database came back from the
	// snapshot (a dropped one would stay dropped).
	e2 := openEngine(t, Options{Dir: dir})
	mustExec(t, connect(t, e2, ""), "DROP DATABASE test")
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	e3 := openEngine(t, Options{Dir: dir})
	if got := rowsText(t, connect(t, e3, ""), "SHOW DATABASES"); !reflect.DeepEqual(got, [][]string{{"information_schema"}}) {
		t.Errorf("databases after dropping test and reopening: %q", got)
	}
}

func TestSnapshotOnlyAfterWrites(t *testing.T) {
	dir := t.TempDir()
	e := openEngine(t, Options{Dir: dir, SnapshotInterval: 20 * time.Millisecond})
	db := connect(t, e, "test")
	mustExec(t, db, "CREATE TABLE t (id INT)")
	eventually(t, 5*time.Second, "a snapshot after CREATE TABLE", func() bool {
		return !e.dirty.Load() && e.Stats().SnapshotsWritten > 0
	})
	written := e.Stats().SnapshotsWritten
	for _, q := range []string{"SELECT * FROM t", "SHOW TABLES", "/* c */ SELECT 1", "DESCRIBE t"} {
		rowsText(t, db, q)
		if e.dirty.Load() {
			t.Fatalf("%q marked the data as changed", q)
		}
	}
	mustExec(t, db, "INSERT INTO t VALUES (1)")
	eventually(t, 5*time.Second, "a snapshot after INSERT", func() bool { return e.Stats().SnapshotsWritten > written })
}
