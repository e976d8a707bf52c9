package sqlengine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// rawClient speaks the MySQL protocol by hand, as Mecha's relay does: a
// plain HandshakeResponse41 with mysql_native_password and an empty auth
// response, then single commands.
type rawClient struct {
	c   net.Conn
	seq byte
	// version is the server version of the handshake.
	version string
}

const (
	capLongPassword    = 1 << 0
	capConnectWithDB   = 1 << 3
	capProtocol41      = 1 << 9
	capTransactions    = 1 << 13
	capSecureConn      = 1 << 15
	capMultiResults    = 1 << 17
	capPluginAuth      = 1 << 19
	capDeprecateEOF    = 1 << 24
	comQuery           = 0x03
	comResetConnection = 0x1f
)

// dialRaw connects to e and logs in as user with an empty password,
// selecting db if it is not empty.
func dialRaw(t *testing.T, e *Engine, user, db string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.Dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawClient{c: c}
	hs, err := rc.read()
	if err != nil {
		t.Fatalf("read handshake: %v", err)
	}
	if hs[0] != 10 {
		t.Fatalf("handshake protocol version %d, want 10", hs[0])
	}
	end := bytes.IndexByte(hs[1:], 0)
	if end < 0 {
		t.Fatalf("handshake without server version: %q", hs)
	}
	rc.version = string(hs[1 : 1+end])
	if !bytes.Contains(hs, []byte("mysql_native_password\x00")) {
		t.Fatalf("handshake does not offer mysql_native_password: %q", hs)
	}

	caps := uint32(capLongPassword | capProtocol41 | capTransactions | capSecureConn |
		capMultiResults | capPluginAuth | capDeprecateEOF)
	if db != "" {
		caps |= capConnectWithDB
	}
	var p []byte
	p = binary.LittleEndian.AppendUint32(p, caps)
	p = binary.LittleEndian.AppendUint32(p, 1<<24)
	p = append(p, 45) // utf8mb4_general_ci
	p = append(p, make([]byte, 23)...)
	p = append(p, user...)
	p = append(p, 0)
	p = append(p, 0) // auth response: empty (empty password)
	if db != "" {
		p = append(p, db...)
		p = append(p, 0)
	}
	p = append(p, "mysql_native_password\x00"...)
	if err := rc.write(p); err != nil {
		t.Fatalf("write handshake response: %v", err)
	}
	resp, err := rc.read()
	if err != nil {
		t.Fatalf("read login result: %v", err)
	}
	if resp[0] != 0x00 {
		t.Fatalf("login of %q refused: %s", user, describe(resp))
	}
	return rc
}

// command sends one command and returns the first packet of the answer,
// reading and discarding the rest of a result set.
func (rc *rawClient) command(cmd byte, arg string) ([]byte, error) {
	rc.seq = 0
	if err := rc.write(append([]byte{cmd}, arg...)); err != nil {
		return nil, err
	}
	first, err := rc.read()
	if err != nil {
		return nil, err
	}
	if first[0] == 0x00 || first[0] == 0xff {
		return first, nil
	}
	// A result set: the column count, the column definitions (no EOF
	// after them with CLIENT_DEPRECATE_EOF), then rows up to an OK packet
	// with the 0xfe header.
	if first[0] >= 0xfb {
		return nil, fmt.Errorf("unexpected column count packet %q", first)
	}
	for i := 0; i < int(first[0]); i++ {
		if _, err := rc.read(); err != nil {
			return nil, err
		}
	}
	for {
		p, err := rc.read()
		if err != nil {
			return nil, err
		}
		if (p[0] == 0xfe && len(p) < 0xffffff) || p[0] == 0xff {
			return first, nil
		}
	}
}

// exec runs a statement that must answer OK.
func (rc *rawClient) exec(t *testing.T, sql string) {
	t.Helper()
	p, err := rc.command(comQuery, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if p[0] != 0x00 {
		t.Fatalf("%s: %s", sql, describe(p))
	}
}

func (rc *rawClient) write(payload []byte) error {
	h := []byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), rc.seq}
	rc.seq++
	_, err := rc.c.Write(append(h, payload...))
	return err
}

func (rc *rawClient) read() ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(rc.c, h[:]); err != nil {
		return nil, err
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	rc.seq = h[3] + 1
	p := make([]byte, n)
	if _, err := io.ReadFull(rc.c, p); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("empty packet")
	}
	return p, nil
}

// describe renders an ERR packet as "errno (state): message".
func describe(p []byte) string {
	if len(p) >= 9 && p[0] == 0xff {
		return fmt.Sprintf("error %d (%s): %s", binary.LittleEndian.Uint16(p[1:3]), p[4:9], p[9:])
	}
	return fmt.Sprintf("packet %q", p)
}

const (
	comStmtPrepare = 0x16
	comStmtExecute = 0x17
)

// prepare prepares a statement without parameters and returns its id.
func (rc *rawClient) prepare(t *testing.T, sql string) uint32 {
	t.Helper()
	rc.seq = 0
	if err := rc.write(append([]byte{comStmtPrepare}, sql...)); err != nil {
		t.Fatal(err)
	}
	p, err := rc.read()
	if err != nil {
		t.Fatal(err)
	}
	if p[0] != 0x00 || len(p) < 12 {
		t.Fatalf("prepare %s: %s", sql, describe(p))
	}
	id := binary.LittleEndian.Uint32(p[1:5])
	cols := int(binary.LittleEndian.Uint16(p[5:7]))
	params := int(binary.LittleEndian.Uint16(p[7:9]))
	for i := 0; i < cols+params; i++ { // no EOF packets with CLIENT_DEPRECATE_EOF
		if _, err := rc.read(); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// executeCursor executes a prepared statement over one INT column asking
// for a read-only cursor. It returns the rows that came with the answer and
// the status flags of the packet that ended it.
func (rc *rawClient) executeCursor(t *testing.T, id uint32) ([]int32, uint16) {
	t.Helper()
	rc.seq = 0
	p := []byte{comStmtExecute}
	p = binary.LittleEndian.AppendUint32(p, id)
	p = append(p, 0x01) // CURSOR_TYPE_READ_ONLY
	p = binary.LittleEndian.AppendUint32(p, 1)
	if err := rc.write(p); err != nil {
		t.Fatal(err)
	}
	first, err := rc.read()
	if err != nil {
		t.Fatal(err)
	}
	if first[0] != 1 {
		t.Fatalf("execute with cursor: %s, want a result set of one column", describe(first))
	}
	if _, err := rc.read(); err != nil { // the column definition
		t.Fatal(err)
	}
	var rows []int32
	for {
		p, err := rc.read()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case p[0] == 0xff:
			t.Fatalf("execute with cursor: %s", describe(p))
		case p[0] == 0xfe && len(p) < 0xffffff:
			// OK packet with the EOF header: affected rows and last
			// insert id (one byte each here), then the status flags.
			if len(p) < 5 {
				t.Fatalf("short end packet %q", p)
			}
			return rows, binary.LittleEndian.Uint16(p[3:5])
		case len(p) != 6:
			t.Fatalf("binary row of one INT: %d bytes, want 6", len(p))
		default:
			// 0x00, the NULL bitmap (one byte), the INT.
			rows = append(rows, int32(binary.LittleEndian.Uint32(p[2:6])))
		}
	}
}
