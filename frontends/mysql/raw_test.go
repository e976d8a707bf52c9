package mysql_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
)

// rawClient speaks the protocol packet by packet, to check what goes over
// the wire and to send what no driver sends.
type rawClient struct {
	t        testing.TB
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	caps     uint32
	connID   uint32
	scramble []byte
}

// baseCaps is what a modern client asks for, without CLIENT_DEPRECATE_EOF.
const baseCaps = wire.ClientLongPassword | wire.ClientFoundRows | wire.ClientLongFlag | wire.ClientConnectWithDB |
	wire.ClientProtocol41 | wire.ClientTransactions | wire.ClientSecureConnection | wire.ClientMultiStatements |
	wire.ClientMultiResults | wire.ClientPSMultiResults | wire.ClientPluginAuth | wire.ClientPluginAuthLenencClientData

// rawDial logs in as user with password (mysql_native_password).
func rawDial(t testing.TB, addr, user, password, db string, caps uint32) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawClient{t: t, c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	p, _ := r.read()
	g, err := wire.ParseGreeting(p)
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	r.connID = g.ConnID
	r.scramble = g.AuthData
	r.caps = caps & g.Caps
	resp := &wire.HandshakeResponse{Caps: r.caps, MaxPacket: 1 << 24, Collation: 45, User: user,
		AuthResponse: wire.NativeResponse(g.AuthData, password), DB: db, AuthPlugin: wire.NativePassword}
	if db == "" {
		resp.Caps &^= wire.ClientConnectWithDB
	}
	r.send(1, resp.AppendPayload(nil))
	p, _ = r.read()
	if p[0] == wire.HeaderAuthSwitch {
		name, n, _ := wire.NulString(p[1:])
		if string(name) != wire.NativePassword {
			t.Fatalf("switch to %s", name)
		}
		r.send(3, wire.NativeResponse(bytes.TrimRight(p[1+n:], "\x00"), password))
		p, _ = r.read()
	}
	if p[0] != wire.HeaderOK {
		t.Fatalf("login: %v", wire.ParseError(p))
	}
	return r
}

func (r *rawClient) send(seq uint8, payload []byte) {
	r.t.Helper()
	if _, err := wire.WritePacket(r.bw, seq, payload); err != nil {
		r.t.Fatal(err)
	}
	if err := r.bw.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) read() ([]byte, uint8) {
	r.t.Helper()
	p, seq, err := r.tryRead()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p, seq
}

func (r *rawClient) tryRead() ([]byte, uint8, error) {
	return wire.ReadPacket(r.br, 1<<30, nil)
}

// until reads packets until one satisfies end (included).
func (r *rawClient) until(end func(p []byte) bool) [][]byte {
	r.t.Helper()
	var out [][]byte
	for {
		p, _ := r.read()
		out = append(out, p)
		if end(p) {
			return out
		}
	}
}

func isTerminator(p []byte) bool {
	return len(p) > 0 && (p[0] == wire.HeaderErr || (p[0] == wire.HeaderEOF && len(p) < 9))
}

// exchange runs one command and returns the response packets: end tells
// when the response is complete.
func (r *rawClient) exchange(cmd []byte, end func(p []byte) bool) [][]byte {
	r.t.Helper()
	r.send(0, cmd)
	return r.until(end)
}

// afterColumnsOK decodes a prepare OK packet's column and parameter counts.
func prepareCounts(p []byte) (stmt uint32, cols, params int) {
	return binary.LittleEndian.Uint32(p[1:]), int(binary.LittleEndian.Uint16(p[5:])), int(binary.LittleEndian.Uint16(p[7:]))
}
