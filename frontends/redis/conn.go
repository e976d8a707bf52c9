package redis

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
	translate "github.com/mecha-gateway/mecha/translate/redis"
)

const (
	initialBuffer = 16 << 10
	// spillAt is how much of a large reply is held before it is written
	// to the client, so that replies of any size pass in bounded memory.
	spillAt = 256 << 10
)

// Connection modes, for shutdown and CLIENT LIST.
const (
	modeIdle int32 = iota
	modeBusy
	modeBlocked
	modeDuplex
)

// cmd is a parsed command and what the table says of it.
type cmd struct {
	args [][]byte
	raw  []byte
	info *resp.CommandInfo
	id   int // index in the command metrics
}

// conn is one client connection. Its session state is owned by the serve
// goroutine; the fields other goroutines read (CLIENT LIST, KILL,
// shutdown) are atomics or behind infoMu.
type conn struct {
	s       *Server
	nc      net.Conn
	id      int64
	created time.Time
	raddr   string
	laddr   string

	authed    bool
	db        int
	replyOff  bool // CLIENT REPLY OFF
	skipReply bool // CLIENT REPLY SKIP: drop the next command's reply
	quit      bool // close once the replies so far are written

	infoMu  sync.Mutex
	user    string
	name    string
	libName string
	libVer  string

	dbShared   atomic.Int32
	lastActive atomic.Int64
	lastCmd    atomic.Int32
	mode       atomic.Int32
	killed     atomic.Bool
	blockedOn  atomic.Int64 // upstream CLIENT ID while blocked
	// blockedHome is the server blockedOn is on, for a backend of
	// several servers (a cluster), or nil.
	blockedHome atomic.Pointer[homeRef]
	// redir, while a dedicated connection's replies are read, turns
	// cluster redirections into errors; redirected records one.
	redir      backends.RESPRouter
	redirected bool

	in     []byte
	r, w   int
	parser resp.Parser
	cmds   []cmd
	out    []byte // replies produced by this goroutine, not yet in the outbox
	req    []byte
	types  []byte // reply types of the commands run on a dedicated connection

	// ob carries every byte to the client, in order.
	ob *outbox
	// inflight counts calls submitted to shared connections whose
	// replies have not all been relayed; drained is signalled when it
	// drops to zero.
	inflight atomic.Int32
	drained  chan struct{}

	// Readiness from the frontend's own epoll (plain TCP on Linux): raw
	// is nil when the connection uses ordinary reads.
	raw       syscall.RawConn
	fd        int32
	readable  chan struct{}
	stopRead  chan struct{}
	stopOnce  sync.Once
	maybeMore bool
	deferred  bool        // submitted requests await endRound's flush
	hup       atomic.Bool // the peer closed its side (or the socket failed)
	waiting   atomic.Bool // parked for readiness
	counted   atomic.Bool // woken as part of a round it has not finished
	rfn       func(fd uintptr) bool
	rbuf      []byte
	rn        int
	rerr      error
	idle      *time.Timer

	// sess is the client's translation-layer session (stores that do not
	// speak RESP).
	sess *translate.Session
	// kvUnblock ends the session's blocking command (CLIENT UNBLOCK).
	kvUnblock atomic.Pointer[context.CancelCauseFunc]

	pin    *pinned
	dmu    sync.Mutex // guards duplex against kill()
	duplex *duplex
	// input read by the watcher of a blocking command
	side  []byte
	upbuf []byte
	scan  resp.ReplyScanner
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:         s,
		nc:        nc,
		id:        s.nextID.Add(1),
		created:   time.Now(),
		raddr:     nc.RemoteAddr().String(),
		laddr:     nc.LocalAddr().String(),
		in:        make([]byte, initialBuffer),
		out:       make([]byte, 0, initialBuffer),
		drained:   make(chan struct{}, 1),
		readable:  make(chan struct{}, 1),
		stopRead:  make(chan struct{}),
		maybeMore: true,
	}
	c.ob = newOutbox(nc, int(s.set.Load().cfg.Limits.MaxOutputBuffer),
		func() time.Duration { return s.set.Load().cfg.WriteTimeout.D() },
		c.kill,
		func(n int) {
			s.netOut.Add(uint64(n))
			s.flushes.Inc()
		})
	c.lastCmd.Store(-1)
	c.lastActive.Store(c.created.UnixNano())
	return c
}

// shutdown asks the connection to finish what it has read and close. A
// client waiting for pushes or a blocking command has nothing in flight
// that can finish, so it is closed at once.
func (c *conn) shutdown() {
	switch c.mode.Load() {
	case modeBlocked, modeDuplex:
		c.kill()
	default:
		c.nc.SetReadDeadline(time.Now())
		c.stopReading()
	}
}

// stopReading wakes a goroutine waiting for input so that it sees the
// connection is ending.
func (c *conn) stopReading() { c.stopOnce.Do(func() { close(c.stopRead) }) }

// wakeRead tells the connection its socket has data.
func (c *conn) wakeRead() {
	select {
	case c.readable <- struct{}{}:
	default:
	}
}

// idleTimer returns a channel that fires after the idle timeout, or nil.
func (c *conn) idleTimer() <-chan time.Time {
	t := c.s.set.Load().cfg.IdleTimeout.D()
	if t <= 0 || c.duplex != nil || c.pin != nil {
		return nil
	}
	if c.idle == nil {
		c.idle = time.NewTimer(t)
	} else {
		c.idle.Reset(t)
	}
	return c.idle.C
}

// kill closes the connection under the client's feet.
func (c *conn) kill() {
	c.killed.Store(true)
	c.stopReading()
	c.nc.Close()
	c.dmu.Lock()
	if d := c.duplex; d != nil {
		d.up.Close()
	}
	c.dmu.Unlock()
}

func (c *conn) serve() {
	defer c.cleanup()
	st := c.s.set.Load()
	c.authed = !st.authNeed
	c.setUser("default")
	if st.kv != nil {
		c.sess = st.kv.NewSession(func(b []byte) { c.ob.write(b) })
		c.sess.Local = c.localInExec
		// INFO's blocked_clients counts a client once its wait is in
		// place, as Redis does (a push after that serves it in turn).
		c.sess.Blocked = func(b bool) {
			if b {
				c.s.blocked.Add(1)
			} else {
				c.s.blocked.Add(-1)
			}
		}
	}
	for {
		if !c.fill() {
			return
		}
		c.mode.Store(modeBusy)
		c.lastActive.Store(time.Now().UnixNano())
		if c.sess != nil {
			c.sess.BeginBatch()
		}
		ok := c.process()
		c.endRound()
		if c.sess != nil {
			c.sess.EndBatch()
		}
		if !ok {
			return
		}
		if c.s.closing.Load() || c.killed.Load() {
			return
		}
		if c.duplex != nil {
			c.mode.Store(modeDuplex)
		} else {
			c.mode.Store(modeIdle)
		}
	}
}

// fill reads more input. It returns false when the client is gone.
func (c *conn) fill() bool {
	if len(c.side) > 0 {
		// Bytes the blocking-command watcher read while we waited.
		c.ensure(len(c.side))
		c.w += copy(c.in[c.w:], c.side)
		c.side = c.side[:0]
		return true
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.in) > 4*initialBuffer {
			c.in = make([]byte, initialBuffer)
		}
	}
	c.ensure(1)
	st := c.s.set.Load()
	if c.s.closing.Load() {
		return false
	}
	if t := st.cfg.IdleTimeout.D(); t > 0 && c.duplex == nil && c.pin == nil && c.raw == nil {
		c.nc.SetReadDeadline(time.Now().Add(t))
	}
	n, err := c.read(c.in[c.w:])
	if n > 0 {
		c.w += n
		c.s.netIn.Add(uint64(n))
		return true
	}
	if err != nil {
		return false
	}
	return true
}

// read reads from the client.
func (c *conn) read(buf []byte) (int, error) {
	if c.raw != nil {
		return c.readRaw(buf)
	}
	return c.nc.Read(buf)
}

// ensure makes room for at least n more bytes after c.w, moving the
// pending command to the front or growing the buffer (doubling, so that
// what is allocated stays proportional to what the client has sent).
func (c *conn) ensure(n int) {
	if len(c.in)-c.w >= n {
		return
	}
	pending := c.w - c.r
	if c.r > 0 && len(c.in)-pending >= n && pending < len(c.in)/2 {
		copy(c.in, c.in[c.r:c.w])
		c.r, c.w = 0, pending
		return
	}
	size := len(c.in) * 2
	for size-pending < n {
		size *= 2
	}
	nb := make([]byte, size)
	copy(nb, c.in[c.r:c.w])
	c.in = nb
	c.r, c.w = 0, pending
}

// process parses and runs every complete command in the input, then
// writes all their replies at once. It returns false when the connection
// must close.
func (c *conn) process() bool {
	st := c.s.set.Load()
	c.parser.Limits = st.limits
	for {
		c.parser.Authenticated = c.authed
		cmds := c.cmds[:0]
		var perr error
		for c.r < c.w {
			pc, n, err := c.parser.Parse(c.in[c.r:c.w])
			if err != nil {
				perr = err
				break
			}
			if n == 0 {
				break
			}
			c.r += n
			if len(pc.Args) == 0 {
				continue
			}
			k := cmd{args: pc.Args, raw: pc.Raw, info: resp.Lookup(pc.Args[0])}
			k.id = metricID(&k)
			cmds = append(cmds, k)
			// Redis parses one command at a time, so a pipelined AUTH
			// lifts the unauthenticated limits for what follows it.
			if !c.authed && k.info != nil && (k.info.Name == "auth" || k.info.Name == "hello") {
				break
			}
		}
		c.cmds = cmds
		if len(cmds) > 0 {
			c.execute(st, cmds)
		}
		c.parser.Release()
		clear(c.cmds)
		if perr != nil {
			c.s.protoErrs.Inc()
			c.drain()
			c.out = resp.AppendError(c.out, "ERR "+perr.Error())
			c.flushOut()
			return false
		}
		if c.quit || c.killed.Load() {
			c.flushOut()
			return false
		}
		if len(cmds) == 0 || c.r == c.w || c.parser.Pending() {
			break
		}
	}
	if c.parser.Pending() && int64(c.w-c.r) > int64(st.cfg.Limits.MaxQueryBuffer) {
		c.s.protoErrs.Inc()
		c.s.log.Warn("closing client that reached max query buffer length", "client", c.raddr, "bytes", c.w-c.r)
		c.flushOut()
		return false
	}
	if !c.flushOut() {
		return false
	}
	// A client that sends faster than it reads waits here, as TCP would
	// make it wait for Redis.
	if c.ob.backlog() > spillAt {
		return c.ob.wait()
	}
	return true
}

// flushOut moves this goroutine's replies into the outbox.
func (c *conn) flushOut() bool {
	if len(c.out) == 0 {
		return true
	}
	ok := c.ob.write(c.out)
	if cap(c.out) > 4*initialBuffer {
		c.out = make([]byte, 0, initialBuffer)
	} else {
		c.out = c.out[:0]
	}
	return ok
}

// drain waits until every reply of the calls submitted so far has been
// relayed, so that what this goroutine writes next comes after them.
//
// Everything that may wait (a local command, a dedicated connection, a
// blocking command) drains first, so this is also where the client leaves
// its round: a client that waits must not hold the others' requests back.
func (c *conn) drain() {
	c.endRound()
	if c.inflight.Load() > 0 {
		c.s.set.Load().flush() // our own deferred requests must go out
		c.deferred = false
	}
	for c.inflight.Load() > 0 {
		<-c.drained
	}
}

// endRound ends this client's part of a round of clients woken together:
// the last one to finish sends the round's deferred requests upstream in
// one write. A client outside any round flushes when no round is open.
func (c *conn) endRound() {
	if c.counted.Swap(false) {
		if c.s.round.Add(-1) > 0 {
			return
		}
		// The last of the round sends everyone's requests.
		c.deferred = false
		c.s.set.Load().flush()
		return
	}
	if c.deferred && c.s.round.Load() == 0 {
		c.deferred = false
		c.s.set.Load().flush()
	}
}

// callDone is the end of a submitted call.
func (c *conn) callDone() {
	if c.inflight.Add(-1) == 0 {
		select {
		case c.drained <- struct{}{}:
		default:
		}
	}
}

func (c *conn) cleanup() {
	c.drain()
	if c.sess != nil {
		c.sess.Close()
	}
	if d := c.duplex; d != nil {
		d.stop()
		if !d.keepPin {
			d.up.Release(false)
		}
		c.dmu.Lock()
		c.duplex = nil
		c.dmu.Unlock()
	}
	if !c.killed.Load() {
		c.ob.wait() // the last replies (QUIT's +OK, a protocol error) go out
	}
	if c.s.ready != nil {
		c.s.ready.remove(c)
		c.waiting.Store(false)
		c.endRound()
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	if c.pin != nil {
		c.pin.up.Release(false)
		c.pin = nil
	}
	c.nc.Close()
	c.mode.Store(modeIdle)
}

// metricID is the index of k in the command metrics.
func metricID(k *cmd) int {
	id := unknownCommand
	if k.info != nil {
		id = k.info.ID
		if len(k.info.Subcommands) > 0 && len(k.args) > 1 {
			if sub := k.info.Sub(k.args[1]); sub != nil {
				id = sub.ID
			}
		}
	}
	return id
}

// record counts a command in the metrics.
func (c *conn) record(k *cmd, isErr bool, d time.Duration) {
	c.recordID(k.id, isErr, d)
}

// recordID counts the command with metrics index id.
func (c *conn) recordID(id int, isErr bool, d time.Duration) {
	s := c.s.stats.Get(id)
	s.Calls.Inc()
	if isErr {
		s.Errors.Inc()
	}
	s.Latency.Observe(d)
}

// setDB changes the selected database.
func (c *conn) setDB(db int) {
	c.db = db
	c.dbShared.Store(int32(db))
}

// ctx returns the context for backend calls.
func (c *conn) ctx() context.Context { return context.Background() }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
