package mysql

import (
	"bytes"
	"strconv"
)

// maxKillQuery is the longest COM_QUERY looked at for a KILL statement.
const maxKillQuery = 128

// isKill reports whether a query starts with the KILL keyword.
func isKill(q []byte) bool {
	q = bytes.TrimLeft(q, " \t\r\n")
	return len(q) > 5 && bytes.EqualFold(q[:4], []byte("kill")) && isSpace(q[4])
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// rewriteKill rewrites `KILL [HARD|SOFT] [CONNECTION|QUERY] id` naming a
// connection id Mecha announced into the same statement naming the
// client's upstream session, so that KILL and the mysql CLI's Ctrl-C
// reach the right session. Other statements (ids the upstream gave out,
// KILL QUERY ID, KILL USER) are left alone: it returns nil.
func rewriteKill(q []byte, upstream func(uint32) (uint32, bool)) []byte {
	f := bytes.Fields(bytes.TrimRight(bytes.TrimSpace(q), ";"))
	if len(f) < 2 || !bytes.EqualFold(f[0], []byte("kill")) {
		return nil
	}
	i := 1
	if i < len(f)-1 && (bytes.EqualFold(f[i], []byte("hard")) || bytes.EqualFold(f[i], []byte("soft"))) {
		i++
	}
	if i < len(f)-1 && (bytes.EqualFold(f[i], []byte("connection")) || bytes.EqualFold(f[i], []byte("query"))) {
		i++
	}
	if i != len(f)-1 {
		return nil
	}
	id, err := strconv.ParseUint(string(f[i]), 10, 32)
	if err != nil {
		return nil
	}
	up, ok := upstream(uint32(id))
	if !ok {
		return nil
	}
	out := bytes.Join(f[:i], []byte(" "))
	out = append(out, ' ')
	return strconv.AppendUint(out, uint64(up), 10)
}
