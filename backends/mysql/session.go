package mysql

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
)

// maxAuthPacket bounds packets of the login exchange.
const maxAuthPacket = 1 << 20

// session is one upstream connection.
type session struct {
	b    *Backend
	raw  net.Conn // the TCP connection, under TLS if any
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer

	requested uint32 // the capabilities asked for: the pool's key
	caps      uint32 // those in effect
	scramble  []byte
	connID    uint32
	ok        []byte
	buf       []byte
	idleSince time.Time
	once      sync.Once
}

var _ backends.MySQLSession = (*session)(nil)

func (s *session) Reader() *bufio.Reader         { return s.br }
func (s *session) Writer() *bufio.Writer         { return s.bw }
func (s *session) Caps() uint32                  { return s.caps }
func (s *session) OK() []byte                    { return s.ok }
func (s *session) ConnID() uint32                { return s.connID }
func (s *session) NetConn() net.Conn             { return s.raw }
func (s *session) SetDeadline(t time.Time) error { return s.conn.SetDeadline(t) }
func (s *session) Release()                      { s.b.release(s) }
func (s *session) Close()                        { s.discard() }

// discard closes the connection, once.
func (s *session) discard() {
	s.once.Do(func() {
		_ = s.conn.Close()
		s.b.mu.Lock()
		s.b.open--
		s.b.mu.Unlock()
	})
}

// Alive peeks at the socket: an idle session has nothing to read.
func (s *session) Alive() bool {
	if s.br.Buffered() > 0 {
		return false
	}
	return peekIdle(s.raw)
}

func (s *session) read() ([]byte, uint8, error) {
	p, seq, err := wire.ReadPacket(s.br, maxAuthPacket, s.buf)
	if err == nil {
		s.buf = p[:0]
	}
	return p, seq, err
}

func (s *session) write(seq uint8, payload []byte) error {
	if _, err := wire.WritePacket(s.bw, seq, payload); err != nil {
		return err
	}
	return s.bw.Flush()
}

// login reads the greeting and logs in as the backend's user.
func (s *session) login(p backends.MySQLSessionParams) error {
	pkt, _, err := s.read()
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	g, err := wire.ParseGreeting(pkt)
	if err != nil {
		return err
	}
	if g.Caps&wire.ClientProtocol41 == 0 {
		return errors.New("upstream does not speak protocol 4.1")
	}
	s.b.server.Store(&backends.MySQLServer{Version: g.ServerVersion, Caps: g.Caps, Collation: g.Collation})
	s.connID = g.ConnID
	s.scramble = g.AuthData
	caps := p.Caps & g.Caps & wire.Understood
	caps |= wire.ClientProtocol41 | wire.ClientSecureConnection | wire.ClientLongPassword | wire.ClientTransactions
	caps |= g.Caps & (wire.ClientPluginAuth | wire.ClientPluginAuthLenencClientData)
	caps &^= wire.ClientSSL | wire.ClientConnectWithDB | wire.ClientConnectAttrs
	if p.DB != "" {
		caps |= wire.ClientConnectWithDB
	}
	if len(p.Attrs) > 0 && g.Caps&wire.ClientConnectAttrs != 0 {
		caps |= wire.ClientConnectAttrs
	}
	seq := uint8(1)
	resp := &wire.HandshakeResponse{Caps: caps, MaxPacket: wire.MaxPacketLength, Collation: p.Collation,
		User: s.b.cfg.User, DB: p.DB, Attrs: p.Attrs}
	if resp.Collation == 0 {
		resp.Collation = g.Collation
	}
	if s.b.tls != nil {
		if g.Caps&wire.ClientSSL == 0 {
			return errors.New("upstream does not offer TLS")
		}
		resp.Caps |= wire.ClientSSL
		if err := s.write(seq, resp.AppendSSLRequest(nil)); err != nil {
			return err
		}
		seq++
		tc := tls.Client(s.raw, s.b.tls)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		s.conn = tc
		s.br.Reset(tc)
		s.bw.Reset(tc)
	}
	s.caps = resp.Caps
	plugin := g.AuthPlugin
	if plugin != wire.NativePassword && plugin != wire.CachingSHA2 {
		plugin = wire.NativePassword
	}
	resp.AuthPlugin = plugin
	resp.AuthResponse = s.authResponse(plugin, s.scramble)
	if err := s.write(seq, resp.AppendPayload(nil)); err != nil {
		return err
	}
	if err := s.finishAuth(plugin, s.scramble, seq+1); err != nil {
		return err
	}
	if s.b.applyCollation && p.Collation != 0 {
		return s.setNames(p.Collation)
	}
	return nil
}

// authResponse answers a scramble for plugin.
func (s *session) authResponse(plugin string, scramble []byte) []byte {
	pw := s.b.cfg.Password.Reveal()
	switch plugin {
	case wire.CachingSHA2:
		return wire.SHA2Response(scramble, pw)
	case wire.ClearPassword:
		return append([]byte(pw), 0)
	}
	return wire.NativeResponse(scramble, pw)
}

// finishAuth reads the server's answers to a login or COM_CHANGE_USER,
// switching plugins and completing caching_sha2_password's full
// authentication as the server asks, until OK or ERR.
func (s *session) finishAuth(plugin string, scramble []byte, seq uint8) error {
	for {
		pkt, got, err := s.read()
		if err != nil {
			return err
		}
		seq = got + 1
		if len(pkt) == 0 {
			return wire.ErrMalformed
		}
		switch pkt[0] {
		case wire.HeaderOK:
			s.ok = append(s.ok[:0], pkt...)
			return nil
		case wire.HeaderErr:
			return wire.ParseError(pkt)
		case wire.HeaderAuthSwitch:
			name, n, ok := wire.NulString(pkt[1:])
			if !ok {
				return wire.ErrMalformed
			}
			plugin = string(name)
			data := pkt[1+n:]
			if len(data) > 0 && data[len(data)-1] == 0 {
				data = data[:len(data)-1]
			}
			scramble = append([]byte(nil), data...)
			switch plugin {
			case wire.NativePassword, wire.CachingSHA2:
			case wire.ClearPassword:
				if s.conn == s.raw {
					return errors.New("upstream asks for the cleartext password without TLS")
				}
			default:
				return fmt.Errorf("upstream asks for unsupported authentication plugin %q", plugin)
			}
			if err := s.write(seq, s.authResponse(plugin, scramble)); err != nil {
				return err
			}
		case wire.HeaderAuthMoreData:
			if plugin != wire.CachingSHA2 || len(pkt) < 2 {
				return fmt.Errorf("unexpected authentication data for plugin %q", plugin)
			}
			switch pkt[1] {
			case wire.SHA2FastAuthSuccess:
				// OK follows.
			case wire.SHA2FullAuth:
				pw := s.b.cfg.Password.Reveal()
				if s.conn != s.raw {
					if err := s.write(seq, append([]byte(pw), 0)); err != nil {
						return err
					}
					continue
				}
				if err := s.write(seq, []byte{wire.SHA2RequestPublicKey}); err != nil {
					return err
				}
				key, got, err := s.read()
				if err != nil {
					return err
				}
				if len(key) < 2 || key[0] != wire.HeaderAuthMoreData {
					return errors.New("upstream sent no public key")
				}
				enc, err := wire.EncryptPassword(pw, scramble, key[1:])
				if err != nil {
					return err
				}
				if err := s.write(got+1, enc); err != nil {
					return err
				}
			default:
				return fmt.Errorf("unexpected caching_sha2_password status %d", pkt[1])
			}
		default:
			return fmt.Errorf("unexpected packet 0x%02x during authentication", pkt[0])
		}
	}
}

// ChangeUser resets the session with COM_CHANGE_USER for p.
func (s *session) ChangeUser(ctx context.Context, p backends.MySQLSessionParams) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetDeadline(dl)
	} else {
		_ = s.conn.SetDeadline(time.Now().Add(s.b.cfg.ConnectTimeout.D()))
	}
	defer s.conn.SetDeadline(time.Time{})
	coll := p.Collation
	if coll == 0 {
		coll = wire.DefaultCollation
	}
	plugin := wire.NativePassword
	cu := &wire.ChangeUser{User: s.b.cfg.User, DB: p.DB, Collation: uint16(coll), AuthPlugin: plugin,
		AuthResponse: s.authResponse(plugin, s.scramble)}
	var attrs []byte
	if s.caps&wire.ClientConnectAttrs != 0 {
		attrs = p.Attrs
	}
	cu.Attrs = attrs
	if err := s.write(0, cu.AppendPayload(nil, s.caps)); err != nil {
		return err
	}
	return s.finishAuth(plugin, s.scramble, 1)
}

// reset ends whatever the session's last client left behind: its
// transaction is rolled back, its locks (row, table, GET_LOCK) released,
// temporary tables, variables and prepared statements dropped. It uses
// COM_RESET_CONNECTION, or COM_CHANGE_USER where the server lacks it.
func (s *session) reset() error {
	_ = s.conn.SetDeadline(time.Now().Add(s.b.cfg.ConnectTimeout.D()))
	defer s.conn.SetDeadline(time.Time{})
	if err := s.write(0, []byte{wire.ComResetConnection}); err != nil {
		return err
	}
	pkt, _, err := s.read()
	if err != nil {
		return err
	}
	if len(pkt) > 0 && pkt[0] == wire.HeaderOK {
		return nil
	}
	return s.ChangeUser(context.Background(), backends.MySQLSessionParams{Collation: wire.DefaultCollation})
}

// query runs a statement of Mecha's own on the session and returns the
// first column of its rows as text.
func (s *session) query(q string) ([]string, error) {
	if err := s.write(0, append([]byte{wire.ComQuery}, q...)); err != nil {
		return nil, err
	}
	pkt, _, err := s.read()
	if err != nil {
		return nil, err
	}
	switch pkt[0] {
	case wire.HeaderOK:
		return nil, nil
	case wire.HeaderErr:
		return nil, wire.ParseError(pkt)
	}
	cols, _, ok := wire.LenEnc(pkt)
	if !ok {
		return nil, wire.ErrMalformed
	}
	deprecate := s.caps&wire.ClientDeprecateEOF != 0
	skip := int(cols)
	if !deprecate {
		skip++
	}
	for range skip {
		if _, _, err := s.read(); err != nil {
			return nil, err
		}
	}
	var out []string
	for {
		pkt, _, err := s.read()
		if err != nil {
			return nil, err
		}
		switch {
		case len(pkt) > 0 && pkt[0] == wire.HeaderErr:
			return nil, wire.ParseError(pkt)
		case len(pkt) > 0 && pkt[0] == wire.HeaderEOF && len(pkt) < wire.MaxPacketLength:
			return out, nil
		}
		v, _, ok := wire.LenEncString(pkt)
		if !ok {
			v = nil // NULL
		}
		out = append(out, string(v))
	}
}

// ping sends COM_PING and reads its answer.
func (s *session) ping(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetDeadline(dl)
		defer s.conn.SetDeadline(time.Time{})
	}
	if err := s.write(0, []byte{wire.ComPing}); err != nil {
		return err
	}
	pkt, _, err := s.read()
	if err != nil {
		return err
	}
	if len(pkt) > 0 && pkt[0] == wire.HeaderErr {
		return wire.ParseError(pkt)
	}
	return nil
}
