package mysql

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
)

// TestLogin logs in to Mecha's own users (not the upstream's) with
// go-sql-driver and the mariadb CLI, by mysql_native_password and by
// caching_sha2_password (its full path over RSA, then its fast path).
func TestLogin(t *testing.T) {
	t.Parallel()
	up := mysqltest.Shared(t)
	for _, plugin := range []string{"mysql_native_password", "caching_sha2_password"} {
		t.Run(plugin, func(t *testing.T) {
			e := setupOn(t, up, "auth: {users: {app: app-pw, ops: 'p@ss w0rd;'}, plugin: "+plugin+"}")
			login := func(user, pw string) error {
				db, err := sql.Open("mysql", e.g.DSN(user, pw))
				must(t, err)
				defer db.Close()
				var got string
				if err := db.QueryRow("SELECT DATABASE()").Scan(&got); err != nil {
					return err
				}
				if got != up.DB {
					t.Errorf("%s logged in to database %q", user, got)
				}
				return nil
			}
			for i := 0; i < 2; i++ {
				if err := login("app", "app-pw"); err != nil {
					t.Errorf("app, login %d: %v", i+1, err)
				}
			}
			must(t, login("ops", "p@ss w0rd;"))
			denied := []struct{ user, pw, msg string }{
				{"app", "wrong", "Access denied for user 'app'@'127.0.0.1' (using password: YES)"},
				{"app", "", "Access denied for user 'app'@'127.0.0.1' (using password: NO)"},
				{"root", "", "Access denied for user 'root'@'127.0.0.1' (using password: NO)"},
				{"nobody", "x", "Access denied for user 'nobody'@'127.0.0.1' (using password: YES)"},
			}
			for _, d := range denied {
				err := login(d.user, d.pw)
				if !isMySQLErr(err, 1045, "28000") || !strings.HasSuffix(err.Error(), d.msg) {
					t.Errorf("%s with %q: %v, want 1045 (28000) %s", d.user, d.pw, err, d.msg)
				}
			}
			if plugin == "caching_sha2_password" {
				full := e.g.Metric(t, `mecha_frontend_logins_total{frontend="db",protocol="mysql",method="caching_sha2_password_full"}`)
				fast := e.g.Metric(t, `mecha_frontend_logins_total{frontend="db",protocol="mysql",method="caching_sha2_password_fast"}`)
				if full != 2 || fast != 1 {
					t.Errorf("caching_sha2_password logins: %v full, %v fast; want 2 (app, ops) and 1 (app again)", full, fast)
				}
			}

			// The mariadb CLI (mysql_native_password; it switches when
			// Mecha asks for caching_sha2_password first).
			got := e.mariadb(t, e.port, "", "-u", "app", "-papp-pw", "--batch", "--skip-column-names", up.DB, "-e", "SELECT 'in', DATABASE()")
			if got.code != 0 || got.stdout != "in\t"+up.DB+"\n" {
				t.Errorf("mariadb as app: %+v", got)
			}
			got = e.mariadb(t, e.port, "", "-u", "app", "-pnope", "--batch", up.DB, "-e", "SELECT 1")
			if got.code != 1 || got.stderr != "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)\n" {
				t.Errorf("mariadb with a wrong password: %+v", got)
			}
		})
	}
}
