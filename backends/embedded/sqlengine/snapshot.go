package sqlengine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/fulltext"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
)

// The snapshot is a SQL script: the statements that rebuild every database,
// table (with its rows and AUTO_INCREMENT counter), view, trigger and stored
// procedure. Each statement is framed so that it can be read back exactly,
// whatever it contains:
//
//	-- mecha sqlengine snapshot v1
//	-- stmt 27
//	CREATE DATABASE `shop` ...;
//	-- view 43
//	CREATE VIEW `v` AS SELECT ...;
//	-- end 2 sha256:<hex digest of every byte before this line>
//
// "-- <kind> N" announces N bytes of statement, followed by ";\n". Views are
// replayed after the other statements around them, in whatever order lets
// each find the views it reads. The final line makes a truncated or altered
// file an error rather than a partial load.
const (
	snapshotMagic = "-- mecha sqlengine snapshot v1"
	kindStmt      = "stmt"
	kindView      = "view"
	// insertBatchBytes bounds one INSERT of the snapshot. The memory engine
	// copies a table's row slices on every statement that writes to it, so
	// fewer, larger statements load faster.
	insertBatchBytes = 4 << 20
)

// snapshotWriter writes framed statements and the closing checksum.
type snapshotWriter struct {
	w     *bufio.Writer
	h     hash.Hash
	n     int64
	count int
	err   error
}

func newSnapshotWriter(w *bufio.Writer) *snapshotWriter {
	s := &snapshotWriter{w: w, h: sha256.New()}
	s.raw(snapshotMagic + "\n")
	s.raw("-- written " + time.Now().UTC().Format(time.RFC3339) + "; each statement is preceded by its kind and length\n")
	return s
}

func (s *snapshotWriter) raw(str string) {
	if s.err != nil {
		return
	}
	n, err := s.w.WriteString(str)
	s.n += int64(n)
	s.h.Write([]byte(str[:n]))
	s.err = err
}

func (s *snapshotWriter) frame(kind, stmt string) {
	s.raw("-- " + kind + " " + strconv.Itoa(len(stmt)) + "\n")
	s.raw(stmt)
	s.raw(";\n")
	s.count++
}

// finish writes the closing line and flushes.
func (s *snapshotWriter) finish() error {
	if s.err != nil {
		return s.err
	}
	end := fmt.Sprintf("-- end %d sha256:%x\n", s.count, s.h.Sum(nil))
	n, err := s.w.WriteString(end)
	s.n += int64(n)
	if err != nil {
		return err
	}
	return s.w.Flush()
}

// readSnapshot reads a snapshot of size bytes from r, calling fn (if not
// nil) with each statement in order. It fails on anything that is not a
// complete snapshot whose checksum matches, but fn may already have been
// called by then: verify first with fn == nil.
func readSnapshot(r *bufio.Reader, size int64, fn func(kind, stmt string) error) error {
	h := sha256.New()
	var off int64
	line := func() (string, error) {
		l, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return "", fmt.Errorf("truncated at byte %d: no end line", off+int64(len(l)))
			}
			return "", err
		}
		return l, nil
	}
	first, err := line()
	if err != nil {
		return err
	}
	if strings.TrimSuffix(first, "\n") != snapshotMagic {
		return errors.New("not a mecha sqlengine snapshot (bad first line)")
	}
	h.Write([]byte(first))
	off += int64(len(first))
	count := 0
	for {
		l, err := line()
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(l, "-- end "); ok {
			var n int
			var sum string
			if _, err := fmt.Sscanf(rest, "%d sha256:%s\n", &n, &sum); err != nil {
				return fmt.Errorf("bad end line at byte %d", off)
			}
			if n != count {
				return fmt.Errorf("end line at byte %d counts %d statements, file has %d", off, n, count)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != sum {
				return fmt.Errorf("checksum mismatch (file altered or damaged): end line says %s, content is %s", sum, got)
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return fmt.Errorf("data after the end line at byte %d", off+int64(len(l)))
			}
			return nil
		}
		h.Write([]byte(l))
		start := off
		off += int64(len(l))
		header := strings.TrimSuffix(l, "\n")
		if !strings.HasPrefix(header, "--") {
			return fmt.Errorf("unexpected line at byte %d: %.40q", start, header)
		}
		kind, length, _ := strings.Cut(strings.TrimPrefix(header, "-- "), " ")
		if !strings.HasPrefix(header, "-- ") || (kind != kindStmt && kind != kindView) {
			continue // a comment line
		}
		n, err := strconv.ParseInt(length, 10, 64)
		if err != nil || n < 0 || n > size-off {
			return fmt.Errorf("bad statement length %q at byte %d", length, start)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("truncated statement at byte %d", start)
		}
		h.Write(buf)
		off += int64(len(buf))
		if string(buf[n:]) != ";\n" {
			return fmt.Errorf("statement at byte %d is not terminated by \";\\n\"", start)
		}
		count++
		if fn != nil {
			if err := fn(kind, string(buf[:n])); err != nil {
				return fmt.Errorf("statement %d at byte %d (%.60q): %w", count, start, string(buf[:n]), err)
			}
		}
	}
}

// snapshotPath is the snapshot's file.
func (e *Engine) snapshotPath() string { return filepath.Join(e.opts.Dir, snapshotFile) }

func (e *Engine) snapshotExists() bool {
	_, err := os.Stat(e.snapshotPath())
	return err == nil
}

// load replays the snapshot, if there is one, into the empty engine. It
// reports whether there was one.
func (e *Engine) load() (bool, error) {
	if e.opts.Dir == "" {
		return false, nil
	}
	path := e.snapshotPath()
	_ = os.Remove(path + ".tmp") // left by a crash in the middle of a snapshot
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load snapshot %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("load snapshot %s: %w", path, err)
	}
	start := time.Now()
	// First check the whole file, so that a damaged one loads nothing.
	if err := readSnapshot(bufio.NewReaderSize(f, 1<<20), fi.Size(), nil); err != nil {
		return false, fmt.Errorf("load snapshot %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("load snapshot %s: %w", path, err)
	}
	ctx := e.internalContext(context.Background())
	var views []pendingView
	statements := 0
	err = readSnapshot(bufio.NewReaderSize(f, 1<<20), fi.Size(), func(kind, stmt string) error {
		statements++
		if kind == kindView {
			views = append(views, pendingView{db: ctx.GetCurrentDatabase(), stmt: stmt})
			return nil
		}
		if len(views) > 0 {
			if err := e.createViews(ctx, views); err != nil {
				return err
			}
			views = nil
		}
		return e.exec(ctx, stmt)
	})
	if err == nil && len(views) > 0 {
		err = e.createViews(ctx, views)
	}
	if err != nil {
		return false, fmt.Errorf("load snapshot %s: %w", path, err)
	}
	e.log.Info("sql engine loaded snapshot", "file", path, "bytes", fi.Size(),
		"statements", statements, "duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

type pendingView struct{ db, stmt string }

// createViews creates views in an order that lets each find the views it
// reads: it retries those that fail for as long as others succeed.
func (e *Engine) createViews(ctx *sql.Context, views []pendingView) error {
	current := ctx.GetCurrentDatabase()
	defer ctx.SetCurrentDatabase(current)
	for len(views) > 0 {
		var failed []pendingView
		var firstErr error
		for _, v := range views {
			ctx.SetCurrentDatabase(v.db)
			if err := e.exec(ctx, v.stmt); err != nil {
				failed = append(failed, v)
				if firstErr == nil {
					firstErr = fmt.Errorf("view in %s (%.60q): %w", v.db, v.stmt, err)
				}
			}
		}
		if len(failed) == len(views) {
			return firstErr
		}
		views = failed
	}
	return nil
}

// exec runs one statement of the engine's own and discards its result.
func (e *Engine) exec(ctx *sql.Context, stmt string) (err error) {
	defer recoverError(&err)
	_, iter, _, err := e.sqle.Query(ctx, stmt)
	if err != nil {
		return err
	}
	for {
		if _, err = iter.Next(ctx); err != nil {
			break
		}
	}
	cerr := iter.Close(ctx)
	if err != io.EOF {
		return err
	}
	return cerr
}

// queryRows runs one statement of the engine's own, calling fn with each
// row.
func (e *Engine) queryRows(ctx *sql.Context, stmt string, fn func(sql.Schema, sql.Row) error) (err error) {
	defer recoverError(&err)
	sch, iter, _, err := e.sqle.Query(ctx, stmt)
	if err != nil {
		return err
	}
	for {
		var row sql.Row
		row, err = iter.Next(ctx)
		if err != nil {
			break
		}
		if err = fn(sch, row); err != nil {
			break
		}
	}
	cerr := iter.Close(ctx)
	if err != io.EOF {
		return err
	}
	return cerr
}

// recoverError turns a panic of go-mysql-server into an error.
func recoverError(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("go-mysql-server panic: %v", r)
	}
}

// snapshotLoop writes a snapshot every SnapshotInterval if data may have
// changed since the last one.
func (e *Engine) snapshotLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if !e.dirty.Load() {
				continue
			}
			if err := e.snapshot(); err != nil {
				e.log.Error("sql engine snapshot failed; retrying at the next interval", "err", err)
			}
		}
	}
}

// snapshot waits for the global lock (for the statement or transaction in
// progress to finish), writes the data to a temporary file while holding
// it, then syncs and renames the file without it.
func (e *Engine) snapshot() error {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	// A transaction holds the engine until it ends, and the snapshot with
	// it; say so now and then rather than wait in silence.
	for waited := time.Duration(0); ; {
		err := e.lock.acquire(context.Background(), internalOwner, e.opts.LockWaitTimeout)
		if err == nil {
			break
		}
		if !isTimeout(err) {
			return err
		}
		waited += e.opts.LockWaitTimeout
		e.log.Warn("sql engine snapshot is waiting for a transaction that holds the engine",
			"waited", waited.Round(time.Second))
	}
	held := true
	unlock := func() {
		if held {
			held = false
			e.lock.release(internalOwner, false)
		}
	}
	defer unlock()
	return e.writeSnapshot(unlock)
}

// isTimeout reports whether err is the lock wait timeout.
func isTimeout(err error) bool {
	var se *mysql.SQLError
	return errors.As(err, &se) && se.Num == mysql.ERLockWaitTimeout
}

// snapshotLocked writes a snapshot while the caller holds the global lock.
func (e *Engine) snapshotLocked() error {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	return e.writeSnapshot(func() {})
}

// writeSnapshot writes the snapshot; the global lock is held on entry and
// unlock is called once the data has been read.
func (e *Engine) writeSnapshot(unlock func()) (err error) {
	start := time.Now()
	path := e.snapshotPath()
	tmp := path + ".tmp"
	defer func() {
		if err != nil {
			e.markDirty()
			_ = os.Remove(tmp)
			e.statsMu.Lock()
			e.stats.SnapshotErrors++
			e.statsMu.Unlock()
			err = fmt.Errorf("write snapshot %s: %w", path, err)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		unlock()
		return err
	}
	e.dirty.Store(false)
	sw := newSnapshotWriter(bufio.NewWriterSize(f, 1<<20))
	err = e.dump(e.internalContext(context.Background()), sw)
	if err == nil {
		err = sw.finish()
	}
	lockHeld := time.Since(start)
	unlock()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(e.opts.Dir); err != nil {
		return err
	}
	e.statsMu.Lock()
	e.stats.SnapshotsWritten++
	e.stats.SnapshotBytes += uint64(sw.n)
	e.stats.LastSnapshotBytes = uint64(sw.n)
	e.stats.LastSnapshotDuration = time.Since(start)
	e.stats.LastSnapshotLockHeld = lockHeld
	e.stats.LastSnapshotAt = time.Now()
	e.statsMu.Unlock()
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// dump writes the statements that rebuild the engine's data.
func (e *Engine) dump(ctx *sql.Context, sw *snapshotWriter) (err error) {
	defer recoverError(&err)
	// Values are written as this session shows them and read back by a
	// session with the same settings; NO_AUTO_VALUE_ON_ZERO keeps a 0 in an
	// AUTO_INCREMENT column a 0, as mysqldump does.
	for _, s := range []string{
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
		"SET SESSION foreign_key_checks = 0",
		"SET SESSION time_zone = '+00:00'",
	} {
		if err := e.exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		sw.frame(kindStmt, s)
	}
	dbs := e.provider.AllDatabases(ctx)
	sort.Slice(dbs, func(i, j int) bool { return dbs[i].Name() < dbs[j].Name() })
	for _, db := range dbs {
		if err := e.dumpDatabase(ctx, sw, db); err != nil {
			return fmt.Errorf("database %s: %w", db.Name(), err)
		}
	}
	for _, db := range dbs {
		vdb, ok := db.(sql.ViewDatabase)
		if !ok {
			continue
		}
		views, err := vdb.AllViews(ctx)
		if err != nil {
			return fmt.Errorf("views of %s: %w", db.Name(), err)
		}
		if len(views) == 0 {
			continue
		}
		sort.Slice(views, func(i, j int) bool { return views[i].Name < views[j].Name })
		sw.frame(kindStmt, "USE "+quoteIdent(db.Name()))
		for _, v := range views {
			sw.frame(kindView, v.CreateViewStatement)
		}
	}
	for _, db := range dbs {
		var stmts []string
		if tdb, ok := db.(sql.TriggerDatabase); ok {
			triggers, err := tdb.GetTriggers(ctx)
			if err != nil {
				return fmt.Errorf("triggers of %s: %w", db.Name(), err)
			}
			for _, t := range triggers { // in creation order, which is their firing order
				stmts = append(stmts, t.CreateStatement)
			}
		}
		if pdb, ok := db.(sql.StoredProcedureDatabase); ok {
			procs, err := pdb.GetStoredProcedures(ctx)
			if err != nil {
				return fmt.Errorf("procedures of %s: %w", db.Name(), err)
			}
			sort.Slice(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
			for _, p := range procs {
				stmts = append(stmts, p.CreateStatement)
			}
		}
		if len(stmts) == 0 {
			continue
		}
		sw.frame(kindStmt, "USE "+quoteIdent(db.Name()))
		for _, s := range stmts {
			sw.frame(kindStmt, s)
		}
	}
	return sw.err
}

// dumpDatabase writes a database, its tables and their rows.
func (e *Engine) dumpDatabase(ctx *sql.Context, sw *snapshotWriter, db sql.Database) error {
	qdb := quoteIdent(db.Name())
	var create string
	if err := e.queryRows(ctx, "SHOW CREATE DATABASE "+qdb, func(_ sql.Schema, r sql.Row) error {
		create = fmt.Sprint(r[1])
		return nil
	}); err != nil {
		return err
	}
	sw.frame(kindStmt, create)
	sw.frame(kindStmt, "USE "+qdb)

	names, err := db.GetTableNames(ctx)
	if err != nil {
		return err
	}
	sort.Strings(names)
	tables := make([]sql.Table, 0, len(names))
	internal := map[string]bool{} // FULLTEXT pseudo-index tables, rebuilt by their parent
	for _, name := range names {
		t, ok, err := db.GetTableInsensitive(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		tables = append(tables, t)
		if err := fulltextTables(ctx, t, internal); err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
	}
	for _, t := range tables {
		if internal[strings.ToLower(t.Name())] {
			continue
		}
		if err := e.dumpTable(ctx, sw, db.Name(), t); err != nil {
			return fmt.Errorf("table %s: %w", t.Name(), err)
		}
	}
	return nil
}

// fulltextTables adds the names of t's FULLTEXT pseudo-index tables to
// names.
func fulltextTables(ctx *sql.Context, t sql.Table, names map[string]bool) error {
	it, ok := t.(sql.IndexAddressableTable)
	if !ok {
		return nil
	}
	idxs, err := it.GetIndexes(ctx)
	if err != nil {
		return err
	}
	for _, idx := range idxs {
		ft, ok := idx.(fulltext.Index)
		if !ok || !idx.IsFullText() {
			continue
		}
		tn, err := ft.FullTextTableNames(ctx)
		if err != nil {
			return err
		}
		for _, n := range []string{tn.Config, tn.Position, tn.DocCount, tn.GlobalCount, tn.RowCount} {
			names[strings.ToLower(n)] = true
		}
	}
	return nil
}

// dumpTable writes a table's definition, rows and AUTO_INCREMENT counter.
func (e *Engine) dumpTable(ctx *sql.Context, sw *snapshotWriter, dbName string, t sql.Table) error {
	qt := quoteIdent(dbName) + "." + quoteIdent(t.Name())
	var create string
	if err := e.queryRows(ctx, "SHOW CREATE TABLE "+qt, func(_ sql.Schema, r sql.Row) error {
		create = fmt.Sprint(r[1])
		return nil
	}); err != nil {
		return err
	}
	sw.frame(kindStmt, create)

	sch := t.Schema()
	var cols []int // columns that take values (generated ones are computed)
	var head strings.Builder
	head.WriteString("INSERT INTO " + quoteIdent(t.Name()) + " (")
	for i, c := range sch {
		if c.Generated != nil {
			continue
		}
		if len(cols) > 0 {
			head.WriteByte(',')
		}
		head.WriteString(quoteIdent(c.Name))
		cols = append(cols, i)
	}
	head.WriteString(") VALUES ")

	var batch []byte
	rows := 0
	err := e.queryRows(ctx, "SELECT * FROM "+qt, func(rsch sql.Schema, r sql.Row) error {
		if len(r) != len(sch) {
			return fmt.Errorf("row has %d values, table has %d columns", len(r), len(sch))
		}
		if rows == 0 {
			batch = append(batch[:0], head.String()...)
		} else {
			batch = append(batch, ',')
		}
		batch = append(batch, '(')
		for k, i := range cols {
			if k > 0 {
				batch = append(batch, ',')
			}
			var err error
			batch, err = appendValue(ctx, batch, sch[i].Type, r[i])
			if err != nil {
				return fmt.Errorf("column %s: %w", sch[i].Name, err)
			}
		}
		batch = append(batch, ')')
		rows++
		if len(batch) >= insertBatchBytes {
			sw.frame(kindStmt, string(batch))
			rows = 0
		}
		return nil
	})
	if err != nil {
		return err
	}
	if rows > 0 {
		sw.frame(kindStmt, string(batch))
	}

	if ai, ok := t.(sql.AutoIncrementTable); ok && hasAutoIncrement(sch) {
		next, err := ai.PeekNextAutoIncrementValue(ctx)
		if err != nil {
			return err
		}
		// Inserting the rows moved the counter past the largest key; this
		// restores a counter that was further on (rows deleted, or set by
		// ALTER TABLE).
		sw.frame(kindStmt, "ALTER TABLE "+quoteIdent(t.Name())+" AUTO_INCREMENT = "+strconv.FormatUint(next, 10))
	}
	return nil
}

func hasAutoIncrement(sch sql.Schema) bool {
	for _, c := range sch {
		if c.AutoIncrement {
			return true
		}
	}
	return false
}

// appendValue appends v, a value of type typ as the engine stores it, as a
// SQL literal that the engine converts back to the same value.
func appendValue(ctx *sql.Context, b []byte, typ sql.Type, v any) ([]byte, error) {
	if v == nil {
		return append(b, "NULL"...), nil
	}
	switch t := typ.(type) {
	case sql.EnumType:
		if s, ok := v.(string); ok {
			return appendString(b, s), nil
		}
		idx, err := toUint64(v)
		if err != nil {
			return nil, err
		}
		s, ok := t.At(int(idx))
		if !ok {
			// Index 0: the empty "error value" a non-strict insert stores.
			return append(b, '0'), nil
		}
		return appendString(b, s), nil
	case sql.SetType:
		if s, ok := v.(string); ok {
			return appendString(b, s), nil
		}
		bits, err := toUint64(v)
		if err != nil {
			return nil, err
		}
		s, err := t.BitsToString(bits)
		if err != nil {
			return nil, err
		}
		return appendString(b, s), nil
	}
	switch x := v.(type) {
	case float32:
		// Not the shortest text of the float32 (what clients see): that may
		// round up past the largest FLOAT (3.4028235e+38), which the engine
		// then refuses. The float64 text converts back exactly.
		return strconv.AppendFloat(b, float64(x), 'g', -1, 64), nil
	case float64:
		return strconv.AppendFloat(b, x, 'g', -1, 64), nil
	}
	if types.IsTextOnly(typ) {
		switch x := v.(type) {
		case string:
			if utf8.ValidString(x) {
				return appendString(b, x), nil
			}
			return appendHex(b, []byte(x)), nil
		case []byte:
			return appendHex(b, x), nil
		}
	}
	val, err := typ.SQL(ctx, nil, v)
	if err != nil {
		return nil, err
	}
	if val.IsNull() {
		return append(b, "NULL"...), nil
	}
	raw := val.Raw()
	switch qt := val.Type(); {
	case sqltypes.IsIntegral(qt), sqltypes.IsFloat(qt), qt == sqltypes.Year:
		return append(b, raw...), nil
	case qt == sqltypes.Decimal:
		return appendString(b, string(raw)), nil
	case sqltypes.IsBinary(qt), qt == sqltypes.Bit, qt == sqltypes.Geometry, qt == sqltypes.Blob,
		qt == sqltypes.Binary, qt == sqltypes.VarBinary:
		return appendHex(b, raw), nil
	default:
		if utf8.Valid(raw) {
			return appendString(b, string(raw)), nil
		}
		return appendHex(b, raw), nil
	}
}

func toUint64(v any) (uint64, error) {
	switch x := v.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		return uint64(x), nil
	case int16:
		return uint64(x), nil
	case int32:
		return uint64(x), nil
	case int64:
		return uint64(x), nil
	case int:
		return uint64(x), nil
	}
	return 0, fmt.Errorf("unexpected value %T", v)
}

// appendString appends s as a quoted string literal.
func appendString(b []byte, s string) []byte {
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b = append(b, '\\', '0')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\\':
			b = append(b, '\\', '\\')
		case '\'':
			b = append(b, '\\', '\'')
		case 0x1a:
			b = append(b, '\\', 'Z')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}

// appendHex appends p as a hexadecimal literal; no bytes give an empty one.
func appendHex(b []byte, p []byte) []byte {
	b = append(b, "X'"...)
	b = hex.AppendEncode(b, p)
	return append(b, '\'')
}

// quoteIdent quotes a name with backticks.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}
