package mysql

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
	"github.com/mecha-gateway/mecha/frontends/netio"
)

// Connection states, for the sweeper and Stop.
const (
	stateIdle     int32 = iota // waiting for the client's next command
	stateBusy                  // serving a command
	stateChecking              // the sweeper is looking at the upstream
	stateClosed
)

// maxAuthPacket bounds packets of the login exchange.
const maxAuthPacket = 64 << 10

// Buffer sizes: commands are mostly small; responses reach the client in
// writes of up to writeBufferSize.
const (
	readBufferSize  = 16 << 10
	writeBufferSize = 32 << 10
)

// conn is one client connection.
type conn struct {
	s    *Server
	st   *settings
	nc   net.Conn
	raw  net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	host string
	id   uint32
	tls  bool

	// wfail records that a write to the client failed, so that a failed
	// relay can tell which side broke.
	wfail bool

	caps     uint32 // agreed with the client
	user     string
	scramble []byte
	buf      []byte

	up           backends.MySQLSession
	ubr          *bufio.Reader
	ubw          *bufio.Writer
	upID         atomic.Uint32
	deprecateEOF bool
	unwatch      func()      // stops the hang-up watch of the upstream session
	watched      atomic.Bool // the hang-up watcher covers the upstream: no polling
	upDead       atomic.Bool // the server closed the upstream session
	clean        bool        // between commands: the session may go back to the pool
	seq          uint8       // sequence id of the last packet sent to the client

	state      atomic.Int32
	lastActive atomic.Int64
	stopping   atomic.Bool
}

// bufferedConn is a connection whose first bytes were read into a buffer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

type clientWriter struct{ c *conn }

func (w clientWriter) Write(p []byte) (int, error) {
	if t := w.c.st.cfg.WriteTimeout.D(); t > 0 {
		_ = w.c.nc.SetWriteDeadline(time.Now().Add(t))
	}
	n, err := w.c.nc.Write(p)
	if err != nil {
		w.c.wfail = true
	}
	return n, err
}

func newConn(s *Server, st *settings, nc net.Conn, id uint32) *conn {
	nc = netio.Wrap(nc)
	c := &conn{s: s, st: st, nc: nc, raw: nc, id: id}
	c.host, _, _ = net.SplitHostPort(nc.RemoteAddr().String())
	c.br = bufio.NewReaderSize(nc, readBufferSize)
	c.bw = bufio.NewWriterSize(clientWriter{c}, writeBufferSize)
	c.state.Store(stateBusy)
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

func (c *conn) serve() {
	defer c.finish()
	if err := c.handshake(); err != nil {
		c.s.log.Debug("mysql handshake failed", "client", c.nc.RemoteAddr().String(), "err", err)
		return
	}
	c.loop()
}

// finish closes the client and returns or closes the upstream session.
func (c *conn) finish() {
	c.state.Store(stateClosed)
	_ = c.nc.Close()
	if c.unwatch != nil {
		c.unwatch()
	}
	if c.up != nil {
		if c.clean && !c.upDead.Load() {
			if c.ubw.Flush() == nil {
				c.up.Release()
				return
			}
		}
		c.up.Close()
	}
}

// shutdown asks the connection to end after its current command.
func (c *conn) shutdown() {
	c.stopping.Store(true)
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		_ = c.raw.Close()
	}
}

// kill ends the connection now.
func (c *conn) kill() {
	c.state.Store(stateClosed)
	_ = c.raw.Close()
	if up := c.upstream(); up != nil {
		_ = up.SetDeadline(time.Now())
	}
}

func (c *conn) upstream() backends.MySQLSession {
	if c.upID.Load() == 0 {
		return nil
	}
	return c.up
}

// checkIdle closes an idle client whose upstream session has ended.
func (c *conn) checkIdle() {
	if !c.state.CompareAndSwap(stateIdle, stateChecking) {
		return
	}
	if c.up != nil && (c.upDead.Load() || !c.up.Alive()) {
		c.state.Store(stateClosed)
		c.s.upLost.Inc()
		c.s.log.Debug("mysql upstream session ended while the client was idle", "conn", c.id)
		_ = c.raw.Close()
		return
	}
	c.state.Store(stateIdle)
}

// writePacket queues a packet for the client.
func (c *conn) writePacket(seq uint8, payload []byte) {
	_, _ = wire.WritePacket(c.bw, seq, payload)
}

// sendErr sends an error to the client now.
func (c *conn) sendErr(seq uint8, e *wire.Error) error {
	c.buf = e.AppendPayload(c.buf[:0])
	c.writePacket(seq, c.buf)
	return c.bw.Flush()
}

// asWire turns a backend failure into the error the client gets.
func asWire(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return wire.Errorf(wire.CrConnectionError, "HY000", "Can't connect to MySQL server through Mecha: %v", err)
}

// readAuth reads a packet of the login exchange.
func (c *conn) readAuth() ([]byte, uint8, error) {
	p, seq, err := wire.ReadPacket(c.br, maxAuthPacket, nil)
	return p, seq, err
}

// handshake greets the client, logs it in and opens its upstream session.
func (c *conn) handshake() error {
	st := c.st
	deadline := time.Now().Add(st.cfg.ConnectTimeout.D())
	_ = c.nc.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	srv, err := st.backend.Server(ctx)
	if err != nil {
		return c.sendErr(0, asWire(err))
	}
	caps := srv.Caps&wire.Understood | wire.ClientProtocol41 | wire.ClientSecureConnection | wire.ClientPluginAuth
	caps &^= wire.ClientSSL
	if st.tls != nil {
		caps |= wire.ClientSSL
	}
	c.scramble = wire.NewScramble()
	g := wire.Greeting{ServerVersion: srv.Version, ConnID: c.id, AuthData: c.scramble, Caps: caps,
		Collation: srv.Collation, Status: wire.StatusAutocommit, AuthPlugin: st.plugin}
	c.writePacket(0, g.AppendPayload(nil))
	if err := c.bw.Flush(); err != nil {
		return err
	}
	pkt, seq, err := c.readAuth()
	if err != nil {
		if errors.Is(err, wire.ErrPacketTooLarge) {
			c.s.protoErrs.Inc()
			return c.sendErr(seq+1, wire.ErrBadHandshake())
		}
		return err
	}
	if wire.IsSSLRequest(pkt) {
		if st.tls == nil {
			c.s.protoErrs.Inc()
			return c.sendErr(seq+1, wire.ErrBadHandshake())
		}
		// The client may have sent its ClientHello right behind the
		// SSLRequest, into c.br's buffer: TLS reads through it.
		tc := tls.Server(bufferedConn{c.raw, c.br}, st.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		c.nc, c.tls = tc, true
		c.br = bufio.NewReaderSize(tc, readBufferSize)
		if pkt, seq, err = c.readAuth(); err != nil {
			return err
		}
	} else if st.cfg.RequireTLS {
		c.s.authFails.Inc()
		return c.sendErr(seq+1, wire.ErrInsecureTransport())
	}
	resp, err := wire.ParseHandshakeResponse(pkt)
	if err != nil {
		c.s.protoErrs.Inc()
		return c.sendErr(seq+1, wire.ErrBadHandshake())
	}
	c.caps = resp.Caps & caps
	plugin := resp.AuthPlugin
	if c.caps&wire.ClientPluginAuth == 0 {
		plugin = wire.NativePassword
	}
	next, err := c.authenticate(resp.User, plugin, resp.AuthResponse, seq+1)
	if err != nil {
		return err
	}
	p := c.sessionParams(resp.Collation, "", resp.Attrs)
	if c.caps&wire.ClientConnectWithDB != 0 {
		p.DB = resp.DB
	}
	up, err := st.backend.Session(ctx, p)
	if err != nil {
		return c.sendErr(next, asWire(err))
	}
	c.up, c.ubr, c.ubw = up, up.Reader(), up.Writer()
	c.deprecateEOF = up.Caps()&wire.ClientDeprecateEOF != 0
	c.upID.Store(up.ConnID() | 1<<31) // never 0 once attached
	c.unwatch = c.s.hup.Add(up.NetConn(), c.id)
	c.watched.Store(c.unwatch != nil)
	c.writePacket(next, up.OK())
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.clean = true
	return c.nc.SetDeadline(time.Time{})
}

// sessionParams describes the upstream session the client needs.
func (c *conn) sessionParams(collation uint8, db string, attrs []byte) backends.MySQLSessionParams {
	// The backend sets TLS, the database and attributes of the login
	// itself; leaving them out lets clients that differ only there share
	// idle sessions.
	caps := c.caps &^ (wire.ClientSSL | wire.ClientConnectWithDB | wire.ClientConnectAttrs)
	if !c.st.cfg.LocalInfile {
		// The server then refuses LOAD DATA LOCAL with its own error.
		caps &^= wire.ClientLocalFiles
	}
	return backends.MySQLSessionParams{Caps: caps, Collation: collation, DB: db, Attrs: attrs}
}

// authenticate checks user's credentials, answered with plugin as resp,
// switching plugin or completing caching_sha2_password's full
// authentication as needed. On success it returns the sequence id for the
// OK packet; on failure it has answered the client.
func (c *conn) authenticate(user, plugin string, resp []byte, seq uint8) (uint8, error) {
	st := c.st
	pw, known := st.users[user]
	if plugin != wire.NativePassword && plugin != wire.CachingSHA2 {
		// An unsupported or missing plugin: ask for the configured one.
		b := append([]byte{wire.HeaderAuthSwitch}, st.plugin...)
		b = append(b, 0)
		b = append(b, c.scramble...)
		b = append(b, 0)
		c.writePacket(seq, b)
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
		pkt, got, err := c.readAuth()
		if err != nil {
			return 0, err
		}
		plugin, resp, seq = st.plugin, pkt, got+1
	}
	ok := false
	switch plugin {
	case wire.NativePassword:
		if ok = known && wire.Equal(wire.NativeResponse(c.scramble, pw), resp); ok {
			c.s.authNative.Inc()
		}
	case wire.CachingSHA2:
		switch {
		case !known:
		case pw == "":
			if ok = len(resp) == 0; ok {
				c.s.authFast.Inc()
			}
		case len(resp) == 0:
		case c.s.sha2Cached(user, pw) && wire.Equal(wire.SHA2Response(c.scramble, pw), resp):
			c.writePacket(seq, []byte{wire.HeaderAuthMoreData, wire.SHA2FastAuthSuccess})
			seq++
			ok = true
			c.s.authFast.Inc()
		default:
			var err error
			ok, seq, err = c.sha2Full(user, pw, seq)
			if err != nil {
				return 0, err
			}
		}
	}
	if !ok {
		c.s.authFails.Inc()
		c.s.log.Info("mysql login refused", "user", user, "client", c.host)
		return 0, errors.Join(errAuth, c.sendErr(seq, wire.ErrAccessDenied(user, c.host, len(resp) > 0)))
	}
	c.user = user
	return seq, nil
}

var errAuth = errors.New("access denied")

// sha2Full runs caching_sha2_password's full authentication: the client
// sends its password in clear over TLS, or RSA-encrypted with the key it
// asks for.
func (c *conn) sha2Full(user, pw string, seq uint8) (bool, uint8, error) {
	c.writePacket(seq, []byte{wire.HeaderAuthMoreData, wire.SHA2FullAuth})
	if err := c.bw.Flush(); err != nil {
		return false, 0, err
	}
	pkt, got, err := c.readAuth()
	if err != nil {
		return false, 0, err
	}
	seq = got + 1
	var clear string
	switch {
	case c.tls:
		if len(pkt) > 0 && pkt[len(pkt)-1] == 0 {
			pkt = pkt[:len(pkt)-1]
		}
		clear = string(pkt)
	default:
		key, pub, err := c.s.rsaKey(c.st)
		if err != nil {
			return false, seq, nil
		}
		if len(pkt) == 1 && pkt[0] == wire.SHA2RequestPublicKey {
			c.writePacket(seq, append([]byte{wire.HeaderAuthMoreData}, pub...))
			if err := c.bw.Flush(); err != nil {
				return false, 0, err
			}
			if pkt, got, err = c.readAuth(); err != nil {
				return false, 0, err
			}
			seq = got + 1
		}
		if clear, err = wire.DecryptPassword(pkt, c.scramble, key); err != nil {
			return false, seq, nil
		}
	}
	if clear != pw {
		return false, seq, nil
	}
	c.s.sha2Remember(user, pw)
	c.s.authFull.Inc()
	return true, seq, nil
}

// loop serves commands until the client quits or a side fails.
func (c *conn) loop() {
	for {
		c.lastActive.Store(time.Now().UnixNano())
		if c.stopping.Load() {
			return
		}
		if c.upDead.Load() {
			// Closed by the server during the last command: end the
			// client's connection as the server ended the session.
			c.s.upLost.Inc()
			return
		}
		if !c.state.CompareAndSwap(stateBusy, stateIdle) {
			return
		}
		if t := c.st.cfg.IdleTimeout.D(); t > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(t))
		}
		n, seq, err := wire.Header(c.br)
		if !c.claim() || err != nil {
			return
		}
		if err := c.command(n, seq); err != nil {
			if !errors.Is(err, errQuit) {
				c.s.log.Debug("mysql connection ended", "conn", c.id, "err", err)
			}
			return
		}
	}
}

// claim marks the connection busy, waiting out a sweeper check; false if
// the connection was closed meanwhile.
func (c *conn) claim() bool {
	for !c.state.CompareAndSwap(stateIdle, stateBusy) {
		if c.state.Load() == stateClosed {
			return false
		}
		runtime.Gosched()
	}
	return true
}

var errQuit = errors.New("client quit")

// discard skips the rest of a client packet of n bytes (and its
// continuations).
func (c *conn) discard(n int) error {
	for {
		if _, err := c.br.Discard(n); err != nil {
			return err
		}
		if n < wire.MaxPacketLength {
			return nil
		}
		var err error
		if n, _, err = wire.Header(c.br); err != nil {
			return err
		}
	}
}

// readCommand reads the rest of a command packet whose header was read,
// refusing one over max_allowed_packet.
func (c *conn) readCommand(n int) ([]byte, error) {
	if n > int(c.st.cfg.MaxAllowedPacket) {
		return nil, wire.ErrPacketTooLarge
	}
	buf := c.buf[:0]
	if cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(c.br, buf); err != nil {
		return nil, err
	}
	if n == wire.MaxPacketLength {
		more, _, err := wire.ReadPacket(c.br, int(c.st.cfg.MaxAllowedPacket)-n, nil)
		if err != nil {
			return nil, err
		}
		buf = append(buf, more...)
	}
	c.buf = buf[:0]
	return buf, nil
}
