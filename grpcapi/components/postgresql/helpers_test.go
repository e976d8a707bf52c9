package postgresql

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mecha-gateway/mecha/grpcapi/component"
	"github.com/mecha-gateway/mecha/grpcapi/components/internal/storetest"
)

// pgAddr and pgConn reach the machine's shared PostgreSQL.
const (
	pgAddr = "127.0.0.1:5432"
	pgConn = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
)

func connString(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "host=" + host + " port=" + port + " user=postgres dbname=test sslmode=disable"
}

// testTable returns a table name of this test alone and drops the table
// (and the trigger function Mecha creates) when the test ends.
func testTable(t *testing.T) string {
	t.Helper()
	name := storetest.UniqueName(t, "_")
	t.Cleanup(func() {
		exec(t, `DROP TABLE IF EXISTS `+quoteIdent(name)+` CASCADE`)
		exec(t, `DROP FUNCTION IF EXISTS `+quoteIdent(name+"_mecha_notify")+`() CASCADE`)
		exec(t, `DROP FUNCTION IF EXISTS `+quoteIdent(name+"_notify")+`() CASCADE`)
	})
	return name
}

// exec runs SQL on the shared server.
func exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgConn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func startConfig(t *testing.T, md map[string]string) *Config {
	t.Helper()
	return storetest.Start(t, NewConfig, &ConfigConfig{Base: component.Base{Type: "postgresql", Metadata: md}})
}

func startSequencer(t *testing.T, md map[string]string) *Sequencer {
	t.Helper()
	return storetest.Start(t, NewSequencer, &SequencerConfig{Base: component.Base{Type: "postgresql", Metadata: md}})
}
