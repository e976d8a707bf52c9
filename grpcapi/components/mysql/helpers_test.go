package mysql

import (
	"database/sql"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// mysqlAddr is the machine's shared MariaDB.
const mysqlAddr = "127.0.0.1:3306"

func dsn(addr string) string { return "root:@tcp(" + addr + ")/test" }

// testTable returns a table name of this test alone and drops the table
// when the test ends.
func testTable(t *testing.T) string {
	t.Helper()
	name := storetest.UniqueName(t, "_")
	t.Cleanup(func() { execSQL(t, "DROP TABLE IF EXISTS "+quoteIdent(name)) })
	return name
}

func execSQL(t *testing.T, q string, args ...any) {
	t.Helper()
	db, err := sql.Open("mysql", dsn(mysqlAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func startSequencer(t *testing.T, md map[string]string) *Sequencer {
	t.Helper()
	return storetest.Start(t, NewSequencer, &SequencerConfig{Base: component.Base{Type: "mysql", Metadata: md}})
}

// quiet keeps the driver's "unexpected EOF" logs of the down tests out of
// the output.
func init() { mysql.SetLogger(mysql.Logger(nopLogger{})) }

type nopLogger struct{}

func (nopLogger) Print(...any) {}
