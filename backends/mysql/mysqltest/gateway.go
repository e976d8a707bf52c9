package mysqltest

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/cmd/mecha/app"
	"github.com/mecha-gateway/mecha/cmd/mecha/app/apptest"
)

// Gateway is Mecha with a MySQL frontend in front of an upstream server.
type Gateway struct {
	M        *app.Mecha
	Addr     string
	Upstream *Server
}

// StartGateway starts Mecha with a `protocol: mysql` frontend named "db"
// relaying to up. frontendExtra and backendExtra are YAML flow-mapping
// entries added to the frontend and backend ("auth: {users: {app: pw}}").
func StartGateway(t testing.TB, up *Server, frontendExtra, backendExtra string) *Gateway {
	t.Helper()
	if frontendExtra != "" {
		frontendExtra = ", " + frontendExtra
	}
	if backendExtra != "" {
		backendExtra = ", " + backendExtra
	}
	m := apptest.Start(t, fmt.Sprintf(`
admin: {listen: "127.0.0.1:0"}
frontends:
  - {name: db, protocol: mysql, listen: "127.0.0.1:0", backend: upstream %s}
backends:
  upstream: {type: mysql, addr: "%s", user: root, password: "", health_interval: 200ms %s}
`, frontendExtra, up.Addr, backendExtra))
	return &Gateway{M: m, Addr: apptest.Addr(t, m, "db"), Upstream: up}
}

// DSN is a go-sql-driver DSN for user on the gateway, in the upstream
// test database.
func (g *Gateway) DSN(user, password string, params ...string) string {
	return DSN(g.Addr, user, password, g.Upstream.DB, params...)
}

// Open opens the gateway as root (no password) in the test database.
func (g *Gateway) Open(t testing.TB, params ...string) *sql.DB {
	t.Helper()
	return Open(t, g.DSN("root", "", params...))
}

// Metric returns the sum of the gateway's samples of a metric whose line
// starts with prefix (name and optionally labels).
func (g *Gateway) Metric(t testing.TB, prefix string) float64 {
	t.Helper()
	body := apptest.Metrics(t, g.M)
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
