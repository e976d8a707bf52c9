package sqlengine

import (
	"context"
	"strings"

	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/dolthub/vitess/go/vt/sqlparser"
)

// lockingHandler wraps go-mysql-server's protocol handler so that every
// command that reads or writes data runs while its connection owns the
// engine's global lock, and marks the data dirty after commands that may
// have changed it.
type lockingHandler struct {
	inner mysql.Handler
	e     *Engine
}

var _ mysql.Handler = (*lockingHandler)(nil)
var _ mysql.ExtendedHandler = (*lockingHandler)(nil)

// begin acquires the global lock for one command of c.
func (h *lockingHandler) begin(ctx context.Context, c *mysql.Conn) error {
	return h.e.lock.acquire(ctx, c.ConnectionID, h.e.opts.LockWaitTimeout)
}

// end releases the global lock after a command of c, keeping it while c has
// a transaction open. write says the command may have changed data.
func (h *lockingHandler) end(c *mysql.Conn, write bool) {
	if write {
		h.e.markDirty()
	}
	h.e.lock.release(c.ConnectionID, inTransaction(c))
}

// inTransaction reports whether c's session has a transaction open, as
// go-mysql-server tells the client in the status flags after each
// statement (an explicit one after BEGIN, or an implicit one while
// autocommit is off).
func inTransaction(c *mysql.Conn) bool {
	return c.StatusFlags&uint16(mysql.ServerInTransaction) != 0
}

func (h *lockingHandler) NewConnection(c *mysql.Conn) { h.inner.NewConnection(c) }

// ConnectionClosed drops the connection's session; a transaction it had open
// is discarded (its edits live only in the session) and the lock passes on.
func (h *lockingHandler) ConnectionClosed(c *mysql.Conn) {
	defer h.e.lock.drop(c.ConnectionID)
	h.inner.ConnectionClosed(c)
}

func (h *lockingHandler) ConnectionAborted(c *mysql.Conn, reason string) error {
	return h.inner.ConnectionAborted(c, reason)
}

// ComInitDB only looks the database up in the provider, which has its own
// mutex, and sets the session's current database: it needs no global lock,
// so that a login naming a database is not held up by another client's
// transaction.
func (h *lockingHandler) ComInitDB(c *mysql.Conn, schemaName string) error {
	return h.inner.ComInitDB(c, schemaName)
}

func (h *lockingHandler) ComQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) error {
	if isKill(query) {
		return h.inner.ComQuery(ctx, c, query, callback)
	}
	if err := h.begin(ctx, c); err != nil {
		return err
	}
	write := mayWrite(query)
	defer func() { h.end(c, write) }()
	return h.inner.ComQuery(ctx, c, query, callback)
}

func (h *lockingHandler) ComMultiQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) (string, error) {
	if isKill(query) {
		return h.inner.ComMultiQuery(ctx, c, query, callback)
	}
	if err := h.begin(ctx, c); err != nil {
		return "", err
	}
	// query is this statement followed by the rest of the client's text;
	// its first word is this statement's.
	write := mayWrite(query)
	defer func() { h.end(c, write) }()
	return h.inner.ComMultiQuery(ctx, c, query, callback)
}

// ComPrepare analyses the statement against the current schema, so it
// reads the catalog and runs under the lock.
func (h *lockingHandler) ComPrepare(ctx context.Context, c *mysql.Conn, query string, prepare *mysql.PrepareData) ([]*querypb.Field, error) {
	if err := h.begin(ctx, c); err != nil {
		return nil, err
	}
	defer func() { h.end(c, false) }()
	return h.inner.ComPrepare(ctx, c, query, prepare)
}

func (h *lockingHandler) ComStmtExecute(ctx context.Context, c *mysql.Conn, prepare *mysql.PrepareData, callback func(*sqltypes.Result) error) error {
	if err := h.begin(ctx, c); err != nil {
		return err
	}
	write := mayWrite(prepare.PrepareStmt)
	defer func() { h.end(c, write) }()
	return h.inner.ComStmtExecute(ctx, c, prepare, callback)
}

// ComResetConnection replaces the session: an open transaction is
// discarded with the old session and the lock passes on. It takes no lock:
// replacing a session touches no table data, and vitess answers this
// command with OK even after an error, so it must not fail on a lock wait.
func (h *lockingHandler) ComResetConnection(c *mysql.Conn) error {
	err := h.inner.ComResetConnection(c)
	c.StatusFlags &^= uint16(mysql.ServerInTransaction)
	h.e.lock.drop(c.ConnectionID)
	return err
}

func (h *lockingHandler) ParserOptionsForConnection(c *mysql.Conn) (sqlparser.ParserOptions, error) {
	return h.inner.ParserOptionsForConnection(c)
}

func (h *lockingHandler) WarningCount(c *mysql.Conn) uint16 { return h.inner.WarningCount(c) }

// The ExtendedHandler methods are not called by the MySQL protocol of this
// vitess version (they serve other protocols built on go-mysql-server); they
// are wrapped all the same so that no path runs a statement unlocked.

func (h *lockingHandler) extended() mysql.ExtendedHandler {
	x, _ := h.inner.(mysql.ExtendedHandler)
	return x
}

func (h *lockingHandler) ComParsedQuery(ctx context.Context, c *mysql.Conn, query string, parsed sqlparser.Statement, callback mysql.ResultSpoolFn) error {
	x := h.extended()
	if x == nil {
		return mysql.NewSQLError(mysql.ERUnknownComError, mysql.SSUnknownComError, "command not supported")
	}
	if err := h.begin(ctx, c); err != nil {
		return err
	}
	write := mayWrite(query)
	defer func() { h.end(c, write) }()
	return x.ComParsedQuery(ctx, c, query, parsed, callback)
}

func (h *lockingHandler) ComPrepareParsed(ctx context.Context, c *mysql.Conn, query string, parsed sqlparser.Statement, prepare *mysql.PrepareData) (mysql.ParsedQuery, []*querypb.Field, error) {
	x := h.extended()
	if x == nil {
		return nil, nil, mysql.NewSQLError(mysql.ERUnknownComError, mysql.SSUnknownComError, "command not supported")
	}
	if err := h.begin(ctx, c); err != nil {
		return nil, nil, err
	}
	defer func() { h.end(c, false) }()
	return x.ComPrepareParsed(ctx, c, query, parsed, prepare)
}

func (h *lockingHandler) ComBind(ctx context.Context, c *mysql.Conn, query string, parsedQuery mysql.ParsedQuery, prepare *mysql.PrepareData) (mysql.BoundQuery, []*querypb.Field, error) {
	x := h.extended()
	if x == nil {
		return nil, nil, mysql.NewSQLError(mysql.ERUnknownComError, mysql.SSUnknownComError, "command not supported")
	}
	if err := h.begin(ctx, c); err != nil {
		return nil, nil, err
	}
	defer func() { h.end(c, false) }()
	return x.ComBind(ctx, c, query, parsedQuery, prepare)
}

func (h *lockingHandler) ComExecuteBound(ctx context.Context, c *mysql.Conn, query string, boundQuery mysql.BoundQuery, callback mysql.ResultSpoolFn) error {
	x := h.extended()
	if x == nil {
		return mysql.NewSQLError(mysql.ERUnknownComError, mysql.SSUnknownComError, "command not supported")
	}
	if err := h.begin(ctx, c); err != nil {
		return err
	}
	write := mayWrite(query)
	defer func() { h.end(c, write) }()
	return x.ComExecuteBound(ctx, c, query, boundQuery, callback)
}

// readOnlyVerbs are the first words of statements that never change data or
// schema. Anything else (including unknown words, WITH, EXECUTE, CALL and
// executable /*! comments) counts as a possible write.
var readOnlyVerbs = map[string]bool{
	"select": true, "show": true, "describe": true, "desc": true, "explain": true,
	"use": true, "set": true, "begin": true, "start": true, "commit": true,
	"rollback": true, "savepoint": true, "release": true, "help": true,
	"do": true, "table": true, "values": true, "prepare": true, "deallocate": true,
	"kill": true,
}

// mayWrite reports whether query may change data or schema: false only when
// its first word is one of readOnlyVerbs.
func mayWrite(query string) bool {
	w := firstWord(query)
	return w == "" || !readOnlyVerbs[w]
}

// isKill reports whether query is a KILL statement. KILL only signals
// another connection (through go-mysql-server's process list, which has its
// own lock), so it runs without the global lock: it must be able to stop a
// statement that holds it.
func isKill(query string) bool { return firstWord(query) == "kill" }

// firstWord returns the first word of query in lower case, after blanks,
// comments and opening parentheses; "" if there is none or it starts with
// an executable comment (/*! ... */), whose content is not looked at.
func firstWord(query string) string {
	q := query
	for {
		q = strings.TrimLeft(q, " \t\r\n(;")
		switch {
		case strings.HasPrefix(q, "/*!"):
			return ""
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return ""
			}
			q = q[2+i+2:]
		case strings.HasPrefix(q, "#"), strings.HasPrefix(q, "-- "), strings.HasPrefix(q, "--\t"), strings.HasPrefix(q, "--\n"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
		default:
			end := strings.IndexFunc(q, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
			})
			if end < 0 {
				end = len(q)
			}
			return strings.ToLower(q[:end])
		}
	}
}
