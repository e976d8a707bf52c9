package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/kv"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// The append-only log holds the commands that rebuild the dataset, in
// RESP (as Redis' AOF does): the writes as they happened, rewritten where
// replaying them verbatim would not give the same result (relative
// expiry times become absolute ones, random choices their outcome). A
// transaction's commands are wrapped in MULTI/EXEC so that a log cut in
// the middle of one loses all of it, not part.
//
// Commands are appended to a buffer under the store's lock; a writer
// goroutine writes the buffer to the file as soon as it can and syncs the
// file every second (fsync: everysec), so a killed process loses at most
// what the last second buffered. With fsync: always a write returns only
// once it is on disk.

const aofName = "appendonly.aof"

// Replayer executes one logged command against the store. The Redis
// translation layer provides it (translate/redis sets it in init), so
// that the log is replayed with the exact semantics it was written with.
var Replayer func(ctx context.Context, s kv.Store, db int, args [][]byte) error

type aof struct {
	s    *Store
	path string
	f    *os.File

	// under the store's mutex
	buf         []byte
	spare       []byte // the buffer last written, for reuse
	lastDB      int
	size        int64 // bytes in the file plus buf
	baseSize    int64 // size after the last rewrite
	rewriteTail []byte
	rewriting   bool
	lastSave    time.Time

	kick   chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup
	wmu    sync.Mutex // serialises file writes and syncs
	seq    uint64     // bytes appended, ever (under the store's mutex)
	synced uint64     // bytes known on disk (under wmu)
	err    error
}

func openAOF(s *Store, dir string) (*aof, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	a := &aof{s: s, path: filepath.Join(dir, aofName), lastDB: -1, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := a.load(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	st, _ := f.Stat()
	a.f, a.size, a.baseSize = f, st.Size(), st.Size()
	a.lastSave = time.Now()
	a.done.Add(1)
	go a.loop()
	return a, nil
}

// load replays the log into the store. An incomplete last command (a
// crash in the middle of a write) is cut off with a warning, as Redis
// does with aof-load-truncated; anything else that does not parse or
// replay stops the start with the offset of the problem.
func (a *aof) load() error {
	data, err := os.ReadFile(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if Replayer == nil {
		return errors.New("no replayer: the Redis translation layer is not compiled in")
	}
	began := time.Now()
	p := resp.Parser{Limits: resp.Limits{MaxBulkLen: math.MaxInt32, MaxMultibulkLen: math.MaxInt32, MaxInlineLen: 64 << 10}, Authenticated: true}
	ctx := context.Background()
	db := 0
	off := 0
	good := 0 // offset after the last complete command outside a transaction
	var multi [][][]byte
	inMulti := false
	commands := 0
	for off < len(data) {
		cmd, n, err := p.Parse(data[off:])
		if err != nil {
			return fmt.Errorf("log %s is corrupt at byte %d: %v (move it aside, or truncate it to %d bytes to keep what precedes)", a.path, off, err, good)
		}
		if n == 0 {
			break // incomplete tail
		}
		off += n
		args := make([][]byte, len(cmd.Args))
		for i, x := range cmd.Args {
			args[i] = bytes.Clone(x)
		}
		p.Release()
		if len(args) == 0 {
			continue
		}
		name := string(bytes.ToUpper(args[0]))
		switch {
		case name == "MULTI":
			inMulti, multi = true, multi[:0]
			continue
		case name == "EXEC":
			for _, c := range multi {
				if err := a.replay(ctx, &db, c); err != nil {
					return fmt.Errorf("log %s: replaying %q near byte %d: %v", a.path, c[0], off, err)
				}
				commands++
			}
			inMulti = false
			good = off
			continue
		case inMulti:
			multi = append(multi, args)
			continue
		}
		if err := a.replay(ctx, &db, args); err != nil {
			return fmt.Errorf("log %s: replaying %q near byte %d: %v", a.path, args[0], off, err)
		}
		commands++
		good = off
	}
	if good < len(data) {
		a.s.log.Warn("log ends with an incomplete command or transaction (a crash while writing); cutting it off",
			"path", a.path, "kept_bytes", good, "dropped_bytes", len(data)-good)
		if err := os.Truncate(a.path, int64(good)); err != nil {
			return fmt.Errorf("truncate log: %w", err)
		}
	}
	a.s.log.Info("log loaded", "path", a.path, "commands", commands, "bytes", good, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

func (a *aof) replay(ctx context.Context, db *int, args [][]byte) error {
	if bytes.EqualFold(args[0], []byte("SELECT")) && len(args) == 2 {
		n, err := strconv.Atoi(string(args[1]))
		if err != nil || n < 0 || n >= len(a.s.dbs) {
			return fmt.Errorf("bad SELECT %q", args[1])
		}
		*db = n
		return nil
	}
	return Replayer(ctx, a.s, *db, args)
}

// append adds a transaction's records (commands of them, SELECTs not
// counted); called with the store's mutex.
func (a *aof) append(records []byte, commands int) {
	if commands > 1 {
		records = wrapMulti(records)
	}
	a.buf = append(a.buf, records...)
	a.seq += uint64(len(records))
	a.size += int64(len(records))
	if a.rewriting {
		a.rewriteTail = append(a.rewriteTail, records...)
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
	if !a.rewriting && a.s.cfg.RewriteMinSize > 0 && a.size > int64(a.s.cfg.RewriteMinSize) &&
		a.size > a.baseSize+a.baseSize*int64(a.s.cfg.RewritePercentage)/100 {
		a.startRewrite()
	}
}

var (
	multiRecord = resp.AppendCommandStrings(nil, "MULTI")
	execRecord  = resp.AppendCommandStrings(nil, "EXEC")
)

func wrapMulti(records []byte) []byte {
	out := make([]byte, 0, len(records)+len(multiRecord)+len(execRecord))
	out = append(out, multiRecord...)
	out = append(out, records...)
	return append(out, execRecord...)
}

// loop writes the buffer as it fills and syncs every second.
func (a *aof) loop() {
	defer a.done.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-a.kick:
			// Let the connections that are ready run first, so that
			// their records leave in this write rather than one write
			// each (Redis writes its log once per event-loop turn).
			runtime.Gosched()
			a.flush(false)
		case <-t.C:
			a.flush(a.s.cfg.Fsync == "everysec")
		}
	}
}

// flush writes what is buffered and, when sync is set, syncs the file.
func (a *aof) flush(sync bool) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.s.mu.Lock()
	buf := a.buf
	a.buf = a.spare[:0]
	a.spare = nil
	seq := a.seq
	f := a.f
	a.s.mu.Unlock()
	if len(buf) > 0 {
		if _, err := f.Write(buf); err != nil && a.err == nil {
			a.err = err
			a.s.log.Error("writing the log failed; writes are no longer durable", "path", a.path, "err", err)
			a.s.health.Set(backends.StateDown, "log write failed: "+err.Error())
		}
	}
	if cap(buf) <= 1<<20 {
		a.s.mu.Lock()
		a.spare = buf[:0]
		a.s.mu.Unlock()
	}
	if sync && a.synced < seq {
		if err := f.Sync(); err != nil && a.err == nil {
			a.err = err
			a.s.log.Error("syncing the log failed", "path", a.path, "err", err)
		}
	}
	if sync {
		a.synced = seq
	}
}

// syncNow writes and syncs everything appended so far (fsync: always).
func (a *aof) syncNow() { a.flush(true) }

// close writes and syncs what is left and closes the file.
func (a *aof) close() error {
	close(a.stop)
	a.done.Wait()
	a.flush(true)
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.f.Close()
}

// startRewrite compacts the log: the dataset as it is now is written as
// the fewest commands that rebuild it, into a new file that replaces the
// old once the writes made meanwhile are appended to it. Called with the
// store's mutex held; the serialisation happens here, the disk work in
// the background.
func (a *aof) startRewrite() {
	a.rewriting = true
	a.rewriteTail = nil
	snapshot := a.s.snapshotLocked()
	go a.finishRewrite(snapshot)
}

func (a *aof) finishRewrite(snapshot []byte) {
	tmp := a.path + ".rewrite"
	err := func() error {
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := f.Write(snapshot); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		a.wmu.Lock()
		defer a.wmu.Unlock()
		a.s.mu.Lock()
		defer a.s.mu.Unlock()
		// What was written since the snapshot follows it; the old file's
		// unwritten buffer is part of that tail.
		tail := a.rewriteTail
		if _, err := f.Write(tail); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := os.Rename(tmp, a.path); err != nil {
			f.Close()
			return err
		}
		if d, err := os.Open(filepath.Dir(a.path)); err == nil {
			d.Sync()
			d.Close()
		}
		a.f.Close()
		a.f = f
		a.buf = nil
		a.synced = a.seq
		a.size = int64(len(snapshot) + len(tail))
		a.baseSize = a.size
		a.lastSave = time.Now()
		a.rewriting = false
		a.rewriteTail = nil
		return nil
	}()
	if err != nil {
		os.Remove(tmp)
		a.s.mu.Lock()
		a.rewriting = false
		a.rewriteTail = nil
		a.s.mu.Unlock()
		a.s.log.Error("log rewrite failed; the current log stays", "err", err)
		return
	}
	a.s.log.Info("log rewritten", "path", a.path, "bytes", len(snapshot))
}

// snapshotLocked serialises every key as commands; called with the
// store's mutex held. The log's next record starts with a SELECT.
func (s *Store) snapshotLocked() []byte {
	var out []byte
	now := nowMS()
	for db, d := range s.dbs {
		if d.keys.len() == 0 {
			continue
		}
		out = resp.AppendCommandStrings(out, "SELECT", strconv.Itoa(db))
		entries := make([]*entry, 0, d.keys.len())
		d.keys.each(func(e *entry) bool {
			if e.expireAt == 0 || e.expireAt > now {
				entries = append(entries, e)
			}
			return true
		})
		slices.SortFunc(entries, func(a, b *entry) int { return strings.Compare(a.keyString(), b.keyString()) })
		for _, e := range entries {
			out = appendKey(out, e)
		}
	}
	if s.aof != nil {
		s.aof.lastDB = -1
	}
	return out
}

// appendKey writes the commands that recreate one key.
func appendKey(out []byte, e *entry) []byte {
	key := e.keyBytes()
	const chunk = 64
	emit := func(name string, items [][]byte) {
		for len(items) > 0 {
			n := min(len(items), chunk)
			args := append([][]byte{[]byte(name), key}, items[:n]...)
			out = resp.AppendCommand(out, args...)
			items = items[n:]
		}
	}
	switch e.kind {
	case kv.KindString:
		if e.expireAt != 0 {
			return resp.AppendCommand(out, []byte("SET"), key, e.str(), []byte("PXAT"), []byte(strconv.FormatInt(e.expireAt, 10)))
		}
		return resp.AppendCommand(out, []byte("SET"), key, e.str())
	case kv.KindList:
		var items [][]byte
		e.obj().List.Each(0, e.obj().List.Len()-1, func(_ int, v []byte) bool { items = append(items, v); return true })
		emit("RPUSH", items)
	case kv.KindHash:
		var items [][]byte
		for f, v := range e.obj().Hash {
			items = append(items, []byte(f), v)
		}
		for len(items) > 0 {
			n := min(len(items), 2*chunk)
			out = resp.AppendCommand(out, append([][]byte{[]byte("HSET"), key}, items[:n]...)...)
			items = items[n:]
		}
	case kv.KindSet:
		var items [][]byte
		for m := range e.obj().Set {
			items = append(items, []byte(m))
		}
		emit("SADD", items)
	case kv.KindZSet:
		var items [][]byte
		e.obj().ZSet.Each(func(z kv.Entry) bool {
			items = append(items, []byte(formatScore(z.Score)), []byte(z.Member))
			return true
		})
		for len(items) > 0 {
			n := min(len(items), 2*chunk)
			out = resp.AppendCommand(out, append([][]byte{[]byte("ZADD"), key}, items[:n]...)...)
			items = items[n:]
		}
	}
	if e.expireAt != 0 {
		out = resp.AppendCommand(out, []byte("PEXPIREAT"), key, []byte(strconv.FormatInt(e.expireAt, 10)))
	}
	return out
}

func formatScore(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// encodeCommand appends args as RESP, after a SELECT when db >= 0.
func encodeCommand(dst []byte, db int, args [][]byte) []byte {
	if db >= 0 {
		dst = resp.AppendCommandStrings(dst, "SELECT", strconv.Itoa(db))
	}
	return resp.AppendCommand(dst, args...)
}
