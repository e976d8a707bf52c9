package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
)

// Protocol modes of go-sql-driver: queries with arguments go as text with
// the arguments interpolated, or as server-side prepared statements (the
// binary protocol).
var protocols = []struct {
	name   string
	params []string
}{
	{"text", []string{"interpolateParams=true"}},
	{"binary", []string{"interpolateParams=false"}},
}

// utc is the session time zone of the type tests, so that TIMESTAMP values
// read back as written whatever the server's zone.
const utc = "time_zone=%27%2B00%3A00%27"

const typesTable = `CREATE TABLE types (
	id INT PRIMARY KEY,
	ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
	mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
	bi BIGINT, bu BIGINT UNSIGNED,
	de DECIMAL(30,10), f FLOAT, d DOUBLE,
	dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), y YEAR,
	ch CHAR(10), vc VARCHAR(255), bl BLOB, tx TEXT, j JSON, b BIT(64)
) DEFAULT CHARSET=utf8mb4`

const typesColumns = "ti, tu, si, su, mi, mu, i, iu, bi, bu, de, f, d, dt, dtm, ts, tm, y, ch, vc, bl, tx, j, b"

// allBytes is every byte value, for BLOB columns.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

const (
	longText = "text\n\ttab \\backslash 'quote' \"dq\" \x00nul; -- not a comment /* nor this */ é中文😀"
	jsonDoc  = `{"a": [1, 2.5, "x", null, true], "emoji": "😀", "nested": {"k": "v"}}`
	vcText   = "emoji 😀🚀 ünïcödé 中文 ﷽"
	chText   = "héllo😀"
)

// typeRows are the rows the type tests write, as go-sql-driver arguments:
// the minimum of every type, the maximum, and NULLs.
func typeRows() [][]any {
	return [][]any{
		{int8(math.MinInt8), uint8(0), int16(math.MinInt16), uint16(0), int32(-8388608), uint32(0),
			int32(math.MinInt32), uint32(0), int64(math.MinInt64), uint64(0),
			"-99999999999999999999.9999999999", float32(-1.5), -math.MaxFloat64,
			time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC), "-838:59:59.000000", 1901,
			"", "", []byte{}, "", "[]", uint64(0)},
		{int8(math.MaxInt8), uint8(math.MaxUint8), int16(math.MaxInt16), uint16(math.MaxUint16), int32(8388607), uint32(16777215),
			int32(math.MaxInt32), uint32(math.MaxUint32), int64(math.MaxInt64), uint64(math.MaxUint64),
			"99999999999999999999.9999999999", float32(3.5), 2.2250738585072014e-308,
			time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
			time.Date(2038, 1, 19, 3, 14, 7, 999999000, time.UTC), "838:59:59.999999", 2155,
			chText, vcText, allBytes(), longText, jsonDoc, uint64(math.MaxUint64)},
		{nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
			nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	}
}

// wantTypes is what each of typeRows reads back as, every column scanned
// into a string ("NULL" for NULL).
var wantTypes = [][]string{
	{"-128", "0", "-32768", "0", "-8388608", "0", "-2147483648", "0", "-9223372036854775808", "0",
		"-99999999999999999999.9999999999", "-1.5", "-1.7976931348623157e+308",
		"1000-01-01T00:00:00Z", "1000-01-01T00:00:00Z", "1970-01-01T00:00:01Z", "-838:59:59.000000", "1901",
		"", "", string(allBytes()[:0]), "", "[]", "\x00\x00\x00\x00\x00\x00\x00\x00"},
	{"127", "255", "32767", "65535", "8388607", "16777215", "2147483647", "4294967295", "9223372036854775807", "18446744073709551615",
		"99999999999999999999.9999999999", "3.5", "2.2250738585072014e-308",
		"9999-12-31T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2038-01-19T03:14:07.999999Z", "838:59:59.999999", "2155",
		chText, vcText, string(allBytes()), longText, jsonDoc, "\xff\xff\xff\xff\xff\xff\xff\xff"},
	{"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL",
		"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"},
}

// readTypes reads the types table, by the text protocol (no arguments) or
// the binary protocol (a prepared statement), every column as a string.
func readTypes(t *testing.T, db *sql.DB, binary bool) map[int][]string {
	t.Helper()
	q := "SELECT id, " + typesColumns + " FROM types"
	var args []any
	if binary {
		q += " WHERE id > ?"
		args = append(args, 0)
	}
	rows, err := db.Query(q+" ORDER BY id", args...)
	if err != nil {
		t.Fatalf("select types: %v", err)
	}
	defer rows.Close()
	got := map[int][]string{}
	for rows.Next() {
		var id int
		vals := make([]sql.NullString, 24)
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("scan types: %v", err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		got[id] = row
	}
	must(t, rows.Err())
	return got
}

// TestDriverTypes writes every common column type's extremes and NULLs
// through Mecha by both protocols and reads them back by both protocols,
// through Mecha and directly: all four reads must give exactly the values
// written.
func TestDriverTypes(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	execAll(t, e.direct(t), typesTable)
	for i, p := range protocols {
		db := e.via(t, append([]string{"parseTime=true", utc}, p.params...)...)
		ph := strings.TrimSuffix(strings.Repeat("?, ", 25), ", ")
		stmt := "INSERT INTO types (id, " + typesColumns + ") VALUES (" + ph + ")"
		for j, row := range typeRows() {
			if _, err := db.Exec(stmt, append([]any{10*i + j + 1}, row...)...); err != nil {
				t.Fatalf("%s insert row %d: %v", p.name, j, err)
			}
		}
	}
	for _, side := range []string{"mecha", "direct"} {
		for _, p := range protocols {
			params := append([]string{"parseTime=true", utc}, p.params...)
			db := e.direct(t, params...)
			if side == "mecha" {
				db = e.via(t, params...)
			}
			got := readTypes(t, db, p.name == "binary")
			if len(got) != 6 {
				t.Fatalf("%s/%s read %d rows, want 6", side, p.name, len(got))
			}
			for written := range protocols {
				for j, want := range wantTypes {
					id := 10*written + j + 1
					if !reflect.DeepEqual(got[id], want) {
						t.Errorf("%s/%s read of row %d (written by %s):\n got %q\nwant %q", side, p.name, id, protocols[written].name, got[id], want)
					}
				}
			}
		}
	}
	// Native Go types, as an application scans them (binary protocol).
	db := e.via(t, "parseTime=true", utc)
	var (
		bi  int64
		bu  uint64
		f   float32
		d   float64
		dtm time.Time
		vc  string
		bl  []byte
		b   []byte
		n   sql.NullInt64
	)
	must(t, db.QueryRow("SELECT bi, bu, f, d, dtm, vc, bl, b, i FROM types WHERE id = ?", 2).Scan(&bi, &bu, &f, &d, &dtm, &vc, &bl, &b, &n))
	if bi != math.MaxInt64 || bu != math.MaxUint64 || f != 3.5 || d != 2.2250738585072014e-308 ||
		!dtm.Equal(time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)) || vc != vcText ||
		string(bl) != string(allBytes()) || len(b) != 8 || !n.Valid || n.Int64 != math.MaxInt32 {
		t.Errorf("native scan = %v %v %v %v %v %q %d bytes %x %v", bi, bu, f, d, dtm, vc, len(bl), b, n)
	}
	must(t, db.QueryRow("SELECT i FROM types WHERE id = 3").Scan(&n))
	if n.Valid {
		t.Errorf("NULL INT scanned as %v", n)
	}
}

// TestDriverPreparedStatements re-executes server-side prepared
// statements many times on one connection and checks, with the session's
// own counters, that they were prepared once and executed every time.
func TestDriverPreparedStatements(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	ctx := context.Background()
	db := e.via(t, "interpolateParams=false")
	execAll(t, db, "CREATE TABLE ps (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT NULL)")
	conn, err := db.Conn(ctx)
	must(t, err)
	defer conn.Close()
	status := func(name string) int64 {
		var k string
		var v int64
		must(t, conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&k, &v))
		return v
	}
	prepared0, executed0 := status("Com_stmt_prepare"), status("Com_stmt_execute")

	sel, err := conn.PrepareContext(ctx, "SELECT ? + 1, CONCAT(?, '-x'), ?, ? IS NULL")
	must(t, err)
	const n = 1000
	for i := 0; i < n; i++ {
		var sum int64
		var s string
		var echo sql.NullString
		var isNull bool
		var arg any
		if i%3 != 0 {
			arg = fmt.Sprint("v", i)
		}
		must(t, sel.QueryRowContext(ctx, i, fmt.Sprint("s", i), arg, arg).Scan(&sum, &s, &echo, &isNull))
		if sum != int64(i+1) || s != fmt.Sprintf("s%d-x", i) || isNull != (arg == nil) || echo.Valid == (arg == nil) {
			t.Fatalf("execution %d: %d %q %v %v", i, sum, s, echo, isNull)
		}
	}
	must(t, sel.Close())

	tx, err := conn.BeginTx(ctx, nil)
	must(t, err)
	ins, err := tx.PrepareContext(ctx, "INSERT INTO ps (id, v, n) VALUES (?, ?, ?)")
	must(t, err)
	for i := 0; i < n; i++ {
		var v any
		if i%2 == 0 {
			v = int64(i) * 1e12
		}
		if _, err := ins.ExecContext(ctx, i, fmt.Sprint("row-", i), v); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	must(t, ins.Close())
	must(t, tx.Commit())

	if got := status("Com_stmt_prepare") - prepared0; got != 2 {
		t.Errorf("statements prepared upstream: %d, want 2", got)
	}
	if got := status("Com_stmt_execute") - executed0; got != 2*n {
		t.Errorf("statements executed upstream: %d, want %d", got, 2*n)
	}
	if got := e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="COM_STMT_EXECUTE"}`); got != 2*n {
		t.Errorf("Mecha counted %v COM_STMT_EXECUTE, want %d", got, 2*n)
	}
	direct := e.direct(t)
	var count, withN, sumN int64
	must(t, direct.QueryRow("SELECT COUNT(*), COUNT(n), COALESCE(SUM(n DIV 1000000000000), 0) FROM ps").Scan(&count, &withN, &sumN))
	if count != n || withN != n/2 || sumN != (n/2)*(n-2)/2 {
		t.Errorf("direct: %d rows, %d with n, sum %d", count, withN, sumN)
	}

	// A statement with many parameters and columns.
	const k = 300
	q := "SELECT " + strings.TrimSuffix(strings.Repeat("?, ", k), ", ")
	args := make([]any, k)
	dest := make([]any, k)
	got := make([]string, k)
	for i := range args {
		args[i] = fmt.Sprint("p", i)
		dest[i] = &got[i]
	}
	for round := 0; round < 20; round++ {
		must(t, db.QueryRow(q, args...).Scan(dest...))
		for i := range got {
			if got[i] != args[i] {
				t.Fatalf("round %d column %d = %q", round, i, got[i])
			}
		}
	}
}

// TestDriverTransactions checks commit, rollback, and that another
// client (through Mecha or directly) sees only committed data, with
// REPEATABLE READ and READ COMMITTED snapshots as MariaDB gives them.
func TestDriverTransactions(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	ctx := context.Background()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			db := e.via(t, p.params...)
			other := e.via(t, p.params...)
			direct := e.direct(t)
			table := "tx_" + p.name
			execAll(t, db, "CREATE TABLE "+table+" (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
			count := func(db *sql.DB) int64 { return queryInt(t, db, "SELECT COUNT(*) FROM "+table+" WHERE id > ?", 0) }

			// Rollback leaves nothing.
			tx, err := db.BeginTx(ctx, nil)
			must(t, err)
			for i := 1; i <= 3; i++ {
				_, err := tx.Exec("INSERT INTO "+table+" VALUES (?, ?)", i, i*10)
				must(t, err)
			}
			if n := queryInt(t, tx, "SELECT COUNT(*) FROM "+table); n != 3 {
				t.Fatalf("own uncommitted rows: %d", n)
			}
			if n := count(other); n != 0 {
				t.Fatalf("another client through Mecha sees %d uncommitted rows", n)
			}
			if n := count(direct); n != 0 {
				t.Fatalf("a direct client sees %d uncommitted rows", n)
			}
			must(t, tx.Rollback())
			if n := count(direct); n != 0 {
				t.Fatalf("%d rows after rollback", n)
			}

			// A REPEATABLE READ snapshot taken before a commit keeps its view;
			// a READ COMMITTED one sees the commit.
			rr, err := other.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
			must(t, err)
			rc, err := direct.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
			must(t, err)
			if n := queryInt(t, rr, "SELECT COUNT(*) FROM "+table); n != 0 {
				t.Fatalf("snapshot: %d", n)
			}
			tx, err = db.BeginTx(ctx, nil)
			must(t, err)
			for i := 1; i <= 5; i++ {
				_, err := tx.Exec("INSERT INTO "+table+" VALUES (?, ?)", i, i*10)
				must(t, err)
			}
			if n := queryInt(t, rc, "SELECT COUNT(*) FROM "+table); n != 0 {
				t.Fatalf("READ COMMITTED sees %d uncommitted rows", n)
			}
			must(t, tx.Commit())
			if n := queryInt(t, rr, "SELECT COUNT(*) FROM "+table); n != 0 {
				t.Errorf("REPEATABLE READ snapshot through Mecha sees %d rows committed after it began", n)
			}
			if n := queryInt(t, rc, "SELECT COUNT(*) FROM "+table); n != 5 {
				t.Errorf("READ COMMITTED sees %d rows after commit, want 5", n)
			}
			must(t, rr.Commit())
			must(t, rc.Commit())
			if n := count(other); n != 5 {
				t.Errorf("after commit another client through Mecha sees %d rows", n)
			}
			if sum := queryInt(t, direct, "SELECT SUM(v) FROM "+table); sum != 150 {
				t.Errorf("direct sum = %d", sum)
			}

			// A row lock held through Mecha blocks a direct writer until
			// commit; then the writer's update applies on top.
			tx, err = db.BeginTx(ctx, nil)
			must(t, err)
			_, err = tx.Exec("UPDATE "+table+" SET v = v + 1 WHERE id = ?", 1)
			must(t, err)
			done := make(chan error, 1)
			go func() {
				_, err := direct.Exec("UPDATE " + table + " SET v = v * 2 WHERE id = 1")
				done <- err
			}()
			select {
			case err := <-done:
				t.Fatalf("direct update did not wait for the lock held through Mecha: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			must(t, tx.Commit())
			must(t, <-done)
			if v := queryInt(t, direct, "SELECT v FROM "+table+" WHERE id = 1"); v != 22 {
				t.Errorf("v = %d, want (10+1)*2", v)
			}
		})
	}
}

// TestDriverMultiStatements runs several statements in one query and a
// stored procedure returning two result sets, by both protocols.
func TestDriverMultiStatements(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	setupDB := e.direct(t)
	execAll(t, setupDB,
		"CREATE TABLE m (id INT PRIMARY KEY, v VARCHAR(10))",
		"INSERT INTO m VALUES (1, 'a'), (2, 'b'), (3, 'c')",
		`CREATE PROCEDURE two(IN lim INT)
		BEGIN
			SELECT id, v FROM m WHERE id <= lim ORDER BY id;
			SELECT COUNT(*) AS n, 'second' AS label FROM m;
		END`)
	type set struct {
		cols []string
		rows [][]string
	}
	read := func(t *testing.T, rows *sql.Rows) []set {
		t.Helper()
		defer rows.Close()
		var sets []set
		for {
			cols, err := rows.Columns()
			must(t, err)
			s := set{cols: cols}
			for rows.Next() {
				vals := make([]sql.NullString, len(cols))
				dest := make([]any, len(cols))
				for i := range vals {
					dest[i] = &vals[i]
				}
				must(t, rows.Scan(dest...))
				r := make([]string, len(vals))
				for i, v := range vals {
					r[i] = v.String
				}
				s.rows = append(s.rows, r)
			}
			sets = append(sets, s)
			if !rows.NextResultSet() {
				break
			}
		}
		must(t, rows.Err())
		return sets
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			db := e.via(t, append([]string{"multiStatements=true"}, p.params...)...)
			rows, err := db.Query("SELECT 1 AS one; UPDATE m SET v = UPPER(v) WHERE id = 2; SELECT id, v FROM m ORDER BY id; SELECT 'x' AS a, NULL AS b")
			must(t, err)
			got := read(t, rows)
			want := []set{
				{[]string{"one"}, [][]string{{"1"}}},
				{[]string{"id", "v"}, [][]string{{"1", "a"}, {"2", "B"}, {"3", "c"}}},
				{[]string{"a", "b"}, [][]string{{"x", ""}}},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("multi-statement result sets = %v, want %v", got, want)
			}
			execAll(t, db, "UPDATE m SET v = LOWER(v); UPDATE m SET v = CONCAT(v, '!') WHERE id = 3")
			if v := queryString(t, db, "SELECT GROUP_CONCAT(v ORDER BY id) FROM m"); v != "a,b,c!" {
				t.Errorf("after multi-statement Exec: %q", v)
			}
			execAll(t, db, "UPDATE m SET v = 'c' WHERE id = 3")

			// CALL: two result sets and the procedure's final status; by the
			// binary protocol when arguments are not interpolated.
			rows, err = db.Query("CALL two(?)", 2)
			must(t, err)
			got = read(t, rows)
			want = []set{
				{[]string{"id", "v"}, [][]string{{"1", "a"}, {"2", "b"}}},
				{[]string{"n", "label"}, [][]string{{"3", "second"}}},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("CALL result sets = %v, want %v", got, want)
			}
			// The connection is in a clean state afterwards.
			if n := queryInt(t, db, "SELECT COUNT(*) FROM m WHERE id < ?", 10); n != 3 {
				t.Errorf("after CALL: %d", n)
			}
		})
	}
	// A multi-statement query failing half-way: the first result arrives,
	// then the error, and the connection goes on.
	db := e.via(t, "multiStatements=true")
	conn, err := db.Conn(context.Background())
	must(t, err)
	defer conn.Close()
	rows, err := conn.QueryContext(context.Background(), "SELECT 7; SELECT * FROM no_such_table; SELECT 8")
	must(t, err)
	var first int
	if !rows.Next() {
		t.Fatalf("no first result: %v", rows.Err())
	}
	must(t, rows.Scan(&first))
	for rows.Next() {
	}
	if rows.NextResultSet() {
		t.Errorf("a result set after the failing statement")
	}
	err = rows.Err()
	rows.Close()
	if !isMySQLErr(err, 1146, "42S02") || first != 7 {
		t.Errorf("failing multi-statement: first %d, err %v", first, err)
	}
	var nine int
	if err := conn.QueryRowContext(context.Background(), "SELECT 9").Scan(&nine); err != nil || nine != 9 {
		t.Errorf("after the error: %d, %v", nine, err)
	}
}

func queryString(t *testing.T, db interface {
	QueryRow(string, ...any) *sql.Row
}, q string, args ...any) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// isMySQLErr reports whether err is a server error with the errno and
// SQLSTATE.
func isMySQLErr(err error, code uint16, state string) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == code && string(me.SQLState[:]) == state
}

// randomBytes returns n bytes of a deterministic pseudo-random pattern
// that no run of equal bytes could fake.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// checkBlob writes value into table through db by each protocol and reads
// it back through db (both protocols) and through direct.
func checkBlob(t *testing.T, via func(params ...string) *sql.DB, direct *sql.DB, table string, size int) {
	t.Helper()
	// A third writer: with a small client-side maxAllowedPacket,
	// go-sql-driver sends a large parameter in COM_STMT_SEND_LONG_DATA
	// chunks before COM_STMT_EXECUTE.
	writers := append(protocols[:2:2], struct {
		name   string
		params []string
	}{"long-data", []string{"interpolateParams=false", "maxAllowedPacket=4194304"}})
	for i, p := range writers {
		value := randomBytes(size, byte(i))
		want := sha256.Sum256(value)
		db := via(p.params...)
		if _, err := db.Exec("INSERT INTO "+table+" (id, b) VALUES (?, ?)", i+1, value); err != nil {
			t.Fatalf("%s insert of %d bytes: %v", p.name, size, err)
		}
		for _, q := range protocols {
			var got []byte
			if err := via(q.params...).QueryRow("SELECT b FROM "+table+" WHERE id = ?", i+1).Scan(&got); err != nil {
				t.Fatalf("%s read of %d bytes written by %s: %v", q.name, size, p.name, err)
			}
			if len(got) != size || sha256.Sum256(got) != want {
				t.Errorf("%s read of the value written by %s through Mecha: %d bytes, differs", q.name, p.name, len(got))
			}
		}
		var sum []byte
		var n int
		must(t, direct.QueryRow("SELECT LENGTH(b), UNHEX(SHA2(b, 256)) FROM "+table+" WHERE id = ?", i+1).Scan(&n, &sum))
		if n != size || string(sum) != string(want[:]) {
			t.Errorf("MariaDB holds %d bytes for the value written by %s, sha256 %x", n, p.name, sum)
		}
	}
	// A large computed value in a row with other columns.
	db := via()
	var pre, post string
	var got []byte
	must(t, db.QueryRow("SELECT 'pre', REPEAT(CONCAT(CHAR(0), 'abc'), ?), 'post'", size/4).Scan(&pre, &got, &post))
	if pre != "pre" || post != "post" || len(got) != size/4*4 || string(got[size-8:]) != "\x00abc\x00abc" {
		t.Errorf("computed value: %q %d bytes %q", pre, len(got), post)
	}
}

// TestDriverLargeRows moves an 8 MB LONGBLOB through Mecha by both
// protocols on the machine's MariaDB (max_allowed_packet 16 MB).
func TestDriverLargeRows(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	direct := e.direct(t)
	execAll(t, direct, "CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)")
	if max := queryInt(t, direct, "SELECT @@max_allowed_packet"); max < 9<<20 {
		t.Fatalf("MariaDB's max_allowed_packet is %d: the test needs 9 MB", max)
	}
	checkBlob(t, func(params ...string) *sql.DB { return e.via(t, params...) }, direct, "big", 8<<20)
	checkLongData(t, e)
}

// checkLongData checks that checkBlob's long-data writer sent its value
// in several COM_STMT_SEND_LONG_DATA packets through Mecha.
func checkLongData(t *testing.T, e *env) {
	t.Helper()
	if n := e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="COM_STMT_SEND_LONG_DATA"}`); n < 2 {
		t.Errorf("Mecha relayed %v COM_STMT_SEND_LONG_DATA, want several", n)
	}
}

// TestDriverHugePackets moves a 20 MB value through Mecha with the
// driver's maxAllowedPacket=0 (it asks the server for its limit): the
// commands and rows are over 16 MiB and split into several physical
// packets each way.
func TestDriverHugePackets(t *testing.T) {
	t.Parallel()
	up := mysqltest.Start(t, "--max-allowed-packet=64M")
	e := setupOn(t, up, "")
	direct := e.direct(t)
	execAll(t, direct, "CREATE TABLE huge (id INT PRIMARY KEY, b LONGBLOB)")
	checkBlob(t, func(params ...string) *sql.DB {
		return e.via(t, append([]string{"maxAllowedPacket=0"}, params...)...)
	}, direct, "huge", 20<<20)
	checkLongData(t, e)
	if n := queryInt(t, e.via(t, "maxAllowedPacket=0"), "SELECT @@max_allowed_packet"); n != 64<<20 {
		t.Errorf("max_allowed_packet through Mecha = %d", n)
	}
}

// TestDriverInsertIDAndAffectedRows checks LAST_INSERT_ID and the
// affected-rows count, with clientFoundRows off (changed rows) and on
// (matched rows), against what MariaDB reports to a direct client.
func TestDriverInsertIDAndAffectedRows(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	type result struct {
		ids      []int64
		affected []int64
		lastID   int64
	}
	runOn := func(t *testing.T, db *sql.DB, table string) result {
		t.Helper()
		execAll(t, db, "CREATE TABLE "+table+" (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT, UNIQUE KEY (v)) AUTO_INCREMENT=1000")
		var r result
		conn, err := db.Conn(context.Background())
		must(t, err)
		defer conn.Close()
		ctx := context.Background()
		steps := []struct {
			q    string
			args []any
		}{
			{"INSERT INTO " + table + " (v) VALUES (?)", []any{1}},
			{"INSERT INTO " + table + " (v) VALUES (?), (?), (?)", []any{2, 3, 4}},
			{"UPDATE " + table + " SET v = v WHERE v <= ?", []any{2}},                              // matched 2, changed 0
			{"UPDATE " + table + " SET v = v + 10 WHERE v >= ?", []any{3}},                         // matched 2, changed 2
			{"INSERT INTO " + table + " (v) VALUES (?) ON DUPLICATE KEY UPDATE v = v", []any{1}},   // 0, or 1 found
			{"INSERT INTO " + table + " (v) VALUES (?) ON DUPLICATE KEY UPDATE v = 100", []any{1}}, // 2
			{"DELETE FROM " + table + " WHERE v > ?", []any{50}},
			{"INSERT INTO " + table + " (id, v) VALUES (?, ?)", []any{5000, 7}},
			{"INSERT INTO " + table + " (v) VALUES (?)", []any{8}},
		}
		for _, s := range steps {
			res, err := conn.ExecContext(ctx, s.q, s.args...)
			if err != nil {
				t.Fatalf("%s: %v", s.q, err)
			}
			id, _ := res.LastInsertId()
			n, _ := res.RowsAffected()
			r.ids = append(r.ids, id)
			r.affected = append(r.affected, n)
		}
		must(t, conn.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&r.lastID))
		return r
	}
	for _, p := range protocols {
		for _, found := range []bool{false, true} {
			name := fmt.Sprintf("%s/clientFoundRows=%v", p.name, found)
			t.Run(name, func(t *testing.T) {
				params := append([]string{fmt.Sprint("clientFoundRows=", found)}, p.params...)
				table := fmt.Sprintf("ai_%s_%v", p.name, found)
				got := runOn(t, e.via(t, params...), table+"_m")
				want := runOn(t, e.direct(t, params...), table+"_d")
				if !reflect.DeepEqual(got, want) {
					t.Errorf("through Mecha %+v, directly %+v", got, want)
				}
				// What MariaDB documents, so that equality above is not
				// equality of two broken answers.
				wantAffected := []int64{1, 3, 0, 2, 0, 2, 1, 1, 1}
				if found {
					wantAffected[2], wantAffected[4] = 2, 1
				}
				wantIDs := []int64{1000, 1001, 0, 0, 0, 1000, 0, 5000, 5001}
				if !reflect.DeepEqual(got.affected, wantAffected) {
					t.Errorf("affected rows %v, want %v", got.affected, wantAffected)
				}
				if !reflect.DeepEqual(got.ids, wantIDs) || got.lastID != 5001 {
					t.Errorf("insert ids %v, LAST_INSERT_ID %d; want %v, 5001", got.ids, got.lastID, wantIDs)
				}
			})
		}
	}
}

// TestDriverWarnings checks that a truncating INSERT reports its warning
// and that SHOW WARNINGS lists it, as MariaDB does directly.
func TestDriverWarnings(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	type warning struct {
		Level, Message string
		Code           int
	}
	collect := func(t *testing.T, db *sql.DB, table string, args bool) (int64, []warning) {
		t.Helper()
		ctx := context.Background()
		conn, err := db.Conn(ctx)
		must(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(ctx, "SET SESSION sql_mode = ''")
		must(t, err)
		_, err = conn.ExecContext(ctx, "CREATE OR REPLACE TABLE "+table+" (s VARCHAR(3), n TINYINT)")
		must(t, err)
		if args {
			_, err = conn.ExecContext(ctx, "INSERT INTO "+table+" VALUES (?, ?), (?, ?)", "abcdef", 1000, "ok", "x")
		} else {
			_, err = conn.ExecContext(ctx, "INSERT INTO "+table+" VALUES ('abcdef', 1000), ('ok', 'x')")
		}
		must(t, err)
		var count int64
		must(t, conn.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&count))
		// A SELECT that uses no table keeps the warnings: SHOW WARNINGS
		// still lists the INSERT's.
		rows, err := conn.QueryContext(ctx, "SHOW WARNINGS")
		must(t, err)
		defer rows.Close()
		var ws []warning
		for rows.Next() {
			var w warning
			must(t, rows.Scan(&w.Level, &w.Code, &w.Message))
			ws = append(ws, w)
		}
		must(t, rows.Err())
		return count, ws
	}
	for _, p := range protocols {
		for _, args := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/args=%v", p.name, args), func(t *testing.T) {
				// The same table name both times: messages name it.
				n, got := collect(t, e.via(t, p.params...), "w", args)
				dn, want := collect(t, e.direct(t, p.params...), "w", args)
				if n != dn || !reflect.DeepEqual(got, want) {
					t.Errorf("through Mecha %d %v; directly %d %v", n, got, dn, want)
				}
				if n != 3 || len(got) != 3 || got[0].Code != 1265 || got[0].Level != "Warning" ||
					got[0].Message != "Data truncated for column 's' at row 1" || got[1].Code != 1264 || got[2].Code != 1366 {
					t.Errorf("warnings: %d %v", n, got)
				}
			})
		}
	}
}

// TestDriverErrors checks that server errors reach the client with their
// errno, SQLSTATE and message, by both protocols, and that the connection
// goes on afterwards.
func TestDriverErrors(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	execAll(t, e.direct(t), "CREATE TABLE u (id INT PRIMARY KEY)", "INSERT INTO u VALUES (1)")
	cases := []struct {
		q     string
		args  []any
		code  uint16
		state string
	}{
		{"INSERT INTO u VALUES (?)", []any{1}, 1062, "23000"},
		{"SELEC 1 FROM u WHERE id = ?", []any{1}, 1064, "42000"},
		{"SELECT * FROM no_such_table WHERE id = ?", []any{1}, 1146, "42S02"},
		{"SELECT no_such_column FROM u WHERE id = ?", []any{1}, 1054, "42S22"},
		{"SELECT 1 / 0 FROM u WHERE id = ? AND (SELECT 1 UNION SELECT 2) > 0", []any{1}, 1242, "21000"},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			via, direct := e.via(t, p.params...), e.direct(t, p.params...)
			for _, c := range cases {
				_, err := via.Exec(c.q, c.args...)
				_, derr := direct.Exec(c.q, c.args...)
				var me, dme *mysql.MySQLError
				if !errors.As(err, &me) || !errors.As(derr, &dme) {
					t.Errorf("%s: through Mecha %v, directly %v", c.q, err, derr)
					continue
				}
				if me.Number != c.code || string(me.SQLState[:]) != c.state {
					t.Errorf("%s: error %d (%s) %q, want %d (%s)", c.q, me.Number, me.SQLState, me.Message, c.code, c.state)
				}
				if *me != *dme {
					t.Errorf("%s: through Mecha %+v, directly %+v", c.q, *me, *dme)
				}
				// Without arguments: always the text protocol.
				_, err = via.Exec(strings.ReplaceAll(c.q, "?", "1"))
				if !isMySQLErr(err, c.code, c.state) {
					t.Errorf("%s (text): %v", c.q, err)
				}
			}
			if n := queryInt(t, via, "SELECT COUNT(*) FROM u WHERE id = ?", 1); n != 1 {
				t.Errorf("after the errors: %d", n)
			}
		})
	}
}

// TestDriverLoadDataLocal streams a file with LOAD DATA LOCAL INFILE
// through Mecha when local_infile is on, many clients at once.
func TestDriverLoadDataLocal(t *testing.T) {
	t.Parallel()
	e := setup(t, "local_infile: true")
	execAll(t, e.direct(t), "CREATE TABLE li (id INT PRIMARY KEY, s VARCHAR(40), c INT)")
	const per, clients = 20000, 4
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		name := fmt.Sprint("data", c)
		mysql.RegisterReaderHandler(name, func() io.Reader {
			var b strings.Builder
			for i := 0; i < per; i++ {
				fmt.Fprintf(&b, "%d\tline %d of client %d é😀\t%d\n", c*per+i, i, c, i%7)
			}
			return strings.NewReader(b.String())
		})
		t.Cleanup(func() { mysql.DeregisterReaderHandler(name) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("mysql", e.g.DSN("root", ""))
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			res, err := db.Exec("LOAD DATA LOCAL INFILE 'Reader::" + name + "' INTO TABLE li CHARACTER SET utf8mb4")
			if err == nil {
				if n, _ := res.RowsAffected(); n != per {
					err = fmt.Errorf("client %d loaded %d rows", c, n)
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n, sum int64
	var last string
	must(t, e.direct(t).QueryRow("SELECT COUNT(*), SUM(c), (SELECT s FROM li WHERE id = ?) FROM li", clients*per-1).Scan(&n, &sum, &last))
	wantSum := int64(0)
	for i := 0; i < per; i++ {
		wantSum += int64(i % 7)
	}
	if n != clients*per || sum != clients*wantSum || last != fmt.Sprintf("line %d of client %d é😀", per-1, clients-1) {
		t.Errorf("loaded %d rows, sum %d, last %q", n, sum, last)
	}
}

// TestDriverLoadDataLocalOff checks that without local_infile the server
// refuses LOAD DATA LOCAL with its own error, and the connection goes on.
func TestDriverLoadDataLocalOff(t *testing.T) {
	t.Parallel()
	e := setup(t, "")
	execAll(t, e.direct(t), "CREATE TABLE li (id INT PRIMARY KEY)")
	mysql.RegisterReaderHandler("off", func() io.Reader { return strings.NewReader("1\n2\n") })
	t.Cleanup(func() { mysql.DeregisterReaderHandler("off") })
	db := e.via(t)
	db.SetMaxOpenConns(1)
	_, err := db.Exec("LOAD DATA LOCAL INFILE 'Reader::off' INTO TABLE li")
	if !isMySQLErr(err, 4166, "HY000") {
		t.Errorf("LOAD DATA LOCAL without local_infile: %v, want MariaDB's error 4166", err)
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM li"); n != 0 {
		t.Errorf("%d rows loaded", n)
	}
}
