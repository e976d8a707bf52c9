package mysql_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/mecha-gateway/mecha/backends/mysql/mysqltest"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
)

// TestCommandsMatchDirect sends each command a client may send and
// compares, packet by packet, what comes back through Mecha with what the
// server itself answers, with and without CLIENT_DEPRECATE_EOF.
func TestCommandsMatchDirect(t *testing.T) {
	up := mysqltest.Shared(t)
	gw := mysqltest.StartGateway(t, up, "", "")
	setup := up.Open()
	for _, q := range []string{
		"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, price DECIMAL(8,2))",
		"INSERT INTO items VALUES (1,'apple',1.50),(2,'pear',2.25),(3,'fig',NULL),(4,'kiwi',0.99),(5,'plum',3.10)",
	} {
		if _, err := setup.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, caps := range []uint32{baseCaps, baseCaps | wire.ClientDeprecateEOF} {
		t.Run(fmt.Sprintf("deprecate_eof=%v", caps&wire.ClientDeprecateEOF != 0), func(t *testing.T) {
			direct := rawDial(t, up.Addr, "root", "", up.DB, caps)
			mecha := rawDial(t, gw.Addr, "root", "", up.DB, caps)
			deprecate := direct.caps&wire.ClientDeprecateEOF != 0
			if got := mecha.caps & wire.ClientDeprecateEOF; (got != 0) != deprecate {
				t.Fatalf("CLIENT_DEPRECATE_EOF negotiated differently: mecha %v, direct %v", got != 0, deprecate)
			}
			// A result set ends after two terminators without
			// CLIENT_DEPRECATE_EOF (columns, rows), after one with it.
			resultEnd := func() func([]byte) bool {
				seen, first := 0, true
				return func(p []byte) bool {
					if first && (p[0] == wire.HeaderErr || p[0] == wire.HeaderOK) {
						return true
					}
					first = false
					if isTerminator(p) {
						seen++
					}
					return seen == 2 || (deprecate && seen == 1)
				}
			}
			one := func([]byte) bool { return true }
			// Statement ids are the server's, global to it: each side's
			// own id goes into the commands that name the statement.
			const stmtMark = 0xfffffff0
			stmtID := func(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
			withStmt := func(cmd []byte, id uint32) []byte {
				return bytes.ReplaceAll(cmd, stmtID(stmtMark), stmtID(id))
			}
			var directStmt, mechaStmt uint32
			cases := []struct {
				name string
				cmd  []byte
				end  func() func([]byte) bool
			}{
				{"ping", []byte{wire.ComPing}, func() func([]byte) bool { return one }},
				{"init_db", append([]byte{wire.ComInitDB}, up.DB...), func() func([]byte) bool { return one }},
				{"init_db_unknown", append([]byte{wire.ComInitDB}, "no_such_db_x"...), func() func([]byte) bool { return one }},
				{"query", append([]byte{wire.ComQuery}, "SELECT id, name, price FROM items ORDER BY id"...), resultEnd},
				{"query_error", append([]byte{wire.ComQuery}, "SELEC 1"...), resultEnd},
				{"query_ok", append([]byte{wire.ComQuery}, "UPDATE items SET price = price WHERE id < 3"...), resultEnd},
				{"field_list", append(append([]byte{wire.ComFieldList}, "items"...), 0), func() func([]byte) bool { return isTerminator }},
				{"set_option_off", []byte{wire.ComSetOption, 1, 0}, func() func([]byte) bool { return one }},
				{"set_option_on", []byte{wire.ComSetOption, 0, 0}, func() func([]byte) bool { return one }},
				{"prepare", append([]byte{wire.ComStmtPrepare}, "SELECT id, name FROM items WHERE id > ? ORDER BY id"...), nil},
				{"execute", append(append([]byte{wire.ComStmtExecute}, stmtID(stmtMark)...), 0, 1, 0, 0, 0, 0, 1, byte(0x03), 0, 2, 0, 0, 0), resultEnd},
				// Re-executed without re-sending the parameters, as
				// sysbench and libmariadb do.
				{"execute_again", append(append([]byte{wire.ComStmtExecute}, stmtID(stmtMark)...), 0, 1, 0, 0, 0, 0, 0), resultEnd},
				// A read-only cursor: columns now, rows by COM_STMT_FETCH.
				{"execute_cursor", append(append([]byte{wire.ComStmtExecute}, stmtID(stmtMark)...), 1, 1, 0, 0, 0, 0, 1, byte(0x03), 0, 0, 0, 0, 0), func() func([]byte) bool { return isTerminator }},
				{"fetch", append(append([]byte{wire.ComStmtFetch}, stmtID(stmtMark)...), 2, 0, 0, 0), func() func([]byte) bool { return isTerminator }},
				{"fetch_rest", append(append([]byte{wire.ComStmtFetch}, stmtID(stmtMark)...), 10, 0, 0, 0), func() func([]byte) bool { return isTerminator }},
				{"stmt_reset", append([]byte{wire.ComStmtReset}, stmtID(stmtMark)...), func() func([]byte) bool { return one }},
				{"execute_unknown_stmt", append(append([]byte{wire.ComStmtExecute}, stmtID(99)...), 0, 1, 0, 0, 0), func() func([]byte) bool { return one }},
				{"multi_statement", append([]byte{wire.ComQuery}, "SELECT 1; SELECT name FROM items WHERE id = 2; DO 0"...), nil},
				{"reset_connection", []byte{wire.ComResetConnection}, func() func([]byte) bool { return one }},
				{"unknown_command", []byte{0x40, 1, 2}, func() func([]byte) bool { return one }},
			}
			for _, c := range cases {
				var want, got [][]byte
				switch c.name {
				case "prepare":
					want, got = prepare(t, direct, c.cmd, deprecate), prepare(t, mecha, c.cmd, deprecate)
					directStmt, _, _ = prepareCounts(want[0])
					mechaStmt, _, _ = prepareCounts(got[0])
					copy(got[0][1:5], want[0][1:5])
				case "multi_statement":
					want, got = multi(t, direct, c.cmd, deprecate), multi(t, mecha, c.cmd, deprecate)
				default:
					want, got = direct.exchange(withStmt(c.cmd, directStmt), c.end()), mecha.exchange(withStmt(c.cmd, mechaStmt), c.end())
				}
				if testing.Verbose() {
					t.Logf("%s: %q", c.name, got)
				}
				if !equalPackets(want, got) {
					t.Errorf("%s:\n direct %q\n mecha  %q", c.name, want, got)
				}
			}
			// COM_STATISTICS answers a line of counters that change.
			ds, ms := direct.exchange([]byte{wire.ComStatistics}, one), mecha.exchange([]byte{wire.ComStatistics}, one)
			if !bytes.HasPrefix(ms[0], []byte("Uptime: ")) || !bytes.HasPrefix(ds[0], []byte("Uptime: ")) {
				t.Errorf("statistics: direct %q, mecha %q", ds[0], ms[0])
			}
			// Mecha answers replication and server-internal commands
			// itself: a client session cannot take part in replication.
			for _, cmd := range []byte{wire.ComBinlogDump, wire.ComRegisterSlave, wire.ComBinlogDumpGTID, wire.ComTableDump, wire.ComSleep} {
				p := mecha.exchange([]byte{cmd, 0, 0, 0, 0}, one)
				if e := wire.ParseError(p[0]); e.Code != 1047 || e.State != "08S01" || e.Message != "Unknown command" {
					t.Errorf("command 0x%02x: %v", cmd, e)
				}
			}
			// The session still works after all that.
			res := mecha.exchange(append([]byte{wire.ComQuery}, "SELECT COUNT(*) FROM items"...), resultEnd())
			if !bytes.Contains(bytes.Join(res, nil), []byte("\x015")) {
				t.Errorf("count after the commands: %q", res)
			}
		})
	}
}

// prepare runs COM_STMT_PREPARE and reads its definitions.
func prepare(t *testing.T, r *rawClient, cmd []byte, deprecate bool) [][]byte {
	t.Helper()
	r.send(0, cmd)
	first, _ := r.read()
	out := [][]byte{first}
	if first[0] != wire.HeaderOK {
		return out
	}
	_, cols, params := prepareCounts(first)
	for _, k := range []int{params, cols} {
		if k == 0 {
			continue
		}
		if !deprecate {
			k++
		}
		for range k {
			p, _ := r.read()
			out = append(out, p)
		}
	}
	return out
}

// multi reads results until one without SERVER_MORE_RESULTS_EXISTS.
func multi(t *testing.T, r *rawClient, cmd []byte, deprecate bool) [][]byte {
	t.Helper()
	r.send(0, cmd)
	var out [][]byte
	for {
		p, _ := r.read()
		out = append(out, p)
		var status uint16
		switch {
		case p[0] == wire.HeaderErr:
			return out
		case p[0] == wire.HeaderOK:
			ok, _ := wire.ParseOK(p)
			status = ok.Status
		default:
			// A result set: columns, (EOF), rows, terminator.
			terms := 0
			for {
				q, _ := r.read()
				out = append(out, q)
				if isTerminator(q) {
					terms++
					if deprecate || terms == 2 {
						if q[0] == wire.HeaderEOF && !deprecate {
							status = wire.EOFStatus(q)
						} else {
							ok, _ := wire.ParseOK(q)
							status = ok.Status
						}
						break
					}
				}
			}
		}
		if status&wire.StatusMoreResultsExists == 0 {
			return out
		}
	}
}

func equalPackets(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
