package mysql

import (
	"encoding/json"
	"strings"
	"testing"
)

// pyScript is the PyMySQL client the test runs.
const pyScript = "testdata/pymysql_client.py"

// TestPyMySQL runs a PyMySQL client (parameters, transactions,
// executemany, an unbuffered SSCursor over 100k rows, multi-statements,
// callproc, errors, COM_PING, COM_INIT_DB, COM_PROCESS_KILL) directly and
// through Mecha: both runs must pass the script's own checks and print the
// same lines, and the data the Mecha run left is checked on MariaDB.
func TestPyMySQL(t *testing.T) {
	t.Parallel()
	py := needPyMySQL(t)
	e := setup(t, "")
	runScript := func(port string) []string {
		t.Helper()
		out, errOut, code := run(t, "", py, pyScript, "127.0.0.1", port, "root", "", e.up.DB)
		if code != 0 {
			t.Fatalf("%s on port %s: exit %d\n%s%s", pyScript, port, code, out, errOut)
		}
		return strings.Split(strings.TrimSpace(out), "\n")
	}
	direct := runScript(e.upPort())
	via := runScript(e.port)
	if len(via) != len(direct) {
		t.Errorf("through Mecha %d lines, directly %d", len(via), len(direct))
	}
	for i := range min(len(via), len(direct)) {
		if via[i] != direct[i] {
			t.Errorf("line %d through Mecha: %s\ndirectly: %s", i+1, via[i], direct[i])
		}
	}
	results := map[string]string{}
	for _, line := range via {
		var kv []json.RawMessage
		if err := json.Unmarshal([]byte(line), &kv); err != nil || len(kv) != 2 {
			t.Fatalf("bad output line %q: %v", line, err)
		}
		var name string
		must(t, json.Unmarshal(kv[0], &name))
		results[name] = string(kv[1])
	}
	for name, want := range map[string]string{
		"done":                 "true",
		"sscursor_rows":        "100000",
		"sscursor_in_order":    "true",
		"executemany_insert":   "5000",
		"kill_ends_session":    "true",
		"multi_statement_sets": `[[[1]], [["two", 2]], [], [["multi"]]]`,
	} {
		if results[name] != want {
			t.Errorf("%s = %s, want %s", name, results[name], want)
		}
	}

	// What the Mecha run left, read directly.
	db := e.direct(t)
	checks := []struct {
		q    string
		want string
	}{
		{"SELECT CONCAT(COUNT(*), ' ', SUM(n), ' ', SUM(v LIKE 'many-%-é')) FROM py_many", "5000 32500 5000"},
		{"SELECT CONCAT(COUNT(*), ' ', SUM(id), ' ', MAX(LENGTH(v))) FROM py_big", "100000 5000050000 26"},
		{"SELECT GROUP_CONCAT(id, ':', v) FROM py_tx", "3:multi"},
		{"SELECT CONCAT(LENGTH(b), ' ', RIGHT(b, 3)) FROM py_large", "4194307 end"},
		{"SELECT CONCAT(name, '|', price, '|', data = ?, '|', created, '|', day, '|', flag, '|', nothing IS NULL) FROM py_items WHERE id = 1",
			"Zoë 😀 'quoted' \\back\\ \"dq\"|12.34|1|2024-02-29 23:59:58.123456|1999-12-31|1|1"},
	}
	for _, c := range checks {
		var args []any
		if strings.Contains(c.q, "?") {
			args = append(args, allBytes())
		}
		if got := queryString(t, db, c.q, args...); got != c.want {
			t.Errorf("%s = %q, want %q", c.q, got, c.want)
		}
	}
	// The commands that are not queries went through Mecha as themselves.
	for cmd, least := range map[string]float64{"COM_PING": 1, "COM_INIT_DB": 2, "COM_PROCESS_KILL": 2, "COM_QUIT": 50} {
		if got := e.g.Metric(t, `mecha_frontend_requests_total{frontend="db",protocol="mysql",command="`+cmd+`"}`); got < least {
			t.Errorf("Mecha counted %v %s, want at least %v", got, cmd, least)
		}
	}
}
