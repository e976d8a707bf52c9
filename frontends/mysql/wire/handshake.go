package wire

import (
	"encoding/binary"
)

// Greeting is the server's initial handshake packet (HandshakeV10).
type Greeting struct {
	ServerVersion string
	ConnID        uint32
	// AuthData is the scramble: 20 bytes for the built-in plugins.
	AuthData   []byte
	Caps       uint32
	Collation  uint8
	Status     uint16
	AuthPlugin string
}

// AppendPayload appends the greeting's payload.
func (g *Greeting) AppendPayload(b []byte) []byte {
	b = append(b, 10)
	b = append(b, g.ServerVersion...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, g.ConnID)
	part1 := g.AuthData
	if len(part1) > 8 {
		part1 = part1[:8]
	}
	b = append(b, part1...)
	for i := len(part1); i < 8; i++ {
		b = append(b, 0)
	}
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(g.Caps))
	b = append(b, g.Collation)
	b = binary.LittleEndian.AppendUint16(b, g.Status)
	b = binary.LittleEndian.AppendUint16(b, uint16(g.Caps>>16))
	if g.Caps&ClientPluginAuth != 0 {
		b = append(b, byte(len(g.AuthData)+1))
	} else {
		b = append(b, 0)
	}
	b = append(b, make([]byte, 10)...)
	if g.Caps&ClientSecureConnection != 0 {
		var part2 []byte
		if len(g.AuthData) > 8 {
			part2 = g.AuthData[8:]
		}
		b = append(b, part2...)
		for i := len(part2); i < 12; i++ {
			b = append(b, 0)
		}
		b = append(b, 0)
	}
	if g.Caps&ClientPluginAuth != 0 {
		b = append(b, g.AuthPlugin...)
		b = append(b, 0)
	}
	return b
}

// ParseGreeting decodes a HandshakeV10 payload. A payload starting with
// 0xff is an error the server sent instead (too many connections, host
// blocked): it is returned as *Error.
func ParseGreeting(p []byte) (*Greeting, error) {
	if len(p) > 0 && p[0] == HeaderErr {
		return nil, ParseError(p)
	}
	if len(p) < 1 || p[0] != 10 {
		return nil, ErrMalformed
	}
	g := &Greeting{}
	v, n, ok := NulString(p[1:])
	if !ok {
		return nil, ErrMalformed
	}
	g.ServerVersion = string(v)
	p = p[1+n:]
	if len(p) < 4+8+1+2 {
		return nil, ErrMalformed
	}
	g.ConnID = binary.LittleEndian.Uint32(p)
	g.AuthData = append([]byte(nil), p[4:12]...)
	p = p[13:]
	g.Caps = uint32(binary.LittleEndian.Uint16(p))
	p = p[2:]
	if len(p) < 1+2+2+1+10 {
		return g, nil
	}
	g.Collation = p[0]
	g.Status = binary.LittleEndian.Uint16(p[1:])
	g.Caps |= uint32(binary.LittleEndian.Uint16(p[3:])) << 16
	authLen := int(p[5])
	p = p[16:]
	if g.Caps&ClientSecureConnection != 0 {
		k := max(13, authLen-8)
		if k > len(p) {
			k = len(p)
		}
		part2 := p[:k]
		// The second part ends with a NUL that is not part of the scramble.
		if len(part2) > 0 && part2[len(part2)-1] == 0 {
			part2 = part2[:len(part2)-1]
		}
		g.AuthData = append(g.AuthData, part2...)
		p = p[k:]
	}
	if g.Caps&ClientPluginAuth != 0 {
		name, _, ok := NulString(p)
		if !ok {
			name = p // some servers omit the final NUL
		}
		g.AuthPlugin = string(name)
	}
	return g, nil
}

// HandshakeResponse is the client's reply to the greeting
// (HandshakeResponse41), or with SSL set and nothing after the fixed part,
// an SSLRequest.
type HandshakeResponse struct {
	Caps         uint32
	MaxPacket    uint32
	Collation    uint8
	User         string
	AuthResponse []byte
	DB           string
	AuthPlugin   string
	// Attrs is the connection attributes as sent: length-encoded key and
	// value strings back to back, without the total length.
	Attrs []byte
}

// sslRequestLength is the length of an SSLRequest packet.
const sslRequestLength = 32

// IsSSLRequest reports whether a response payload is an SSLRequest.
func IsSSLRequest(p []byte) bool {
	return len(p) == sslRequestLength && binary.LittleEndian.Uint32(p)&ClientSSL != 0
}

// ParseHandshakeResponse decodes a HandshakeResponse41. Clients that only
// speak the pre-4.1 protocol are refused with ErrMalformed.
func ParseHandshakeResponse(p []byte) (*HandshakeResponse, error) {
	if len(p) < 32 {
		return nil, ErrMalformed
	}
	r := &HandshakeResponse{
		Caps:      binary.LittleEndian.Uint32(p),
		MaxPacket: binary.LittleEndian.Uint32(p[4:]),
		Collation: p[8],
	}
	if r.Caps&ClientProtocol41 == 0 {
		return nil, ErrMalformed
	}
	p = p[32:]
	user, n, ok := NulString(p)
	if !ok {
		return nil, ErrMalformed
	}
	r.User = string(user)
	p = p[n:]
	switch {
	case r.Caps&ClientPluginAuthLenencClientData != 0:
		a, n, ok := LenEncString(p)
		if !ok {
			return nil, ErrMalformed
		}
		r.AuthResponse, p = a, p[n:]
	case r.Caps&ClientSecureConnection != 0:
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, ErrMalformed
		}
		r.AuthResponse, p = p[1:1+int(p[0])], p[1+int(p[0]):]
	default:
		a, n, ok := NulString(p)
		if !ok {
			return nil, ErrMalformed
		}
		r.AuthResponse, p = a, p[n:]
	}
	r.AuthResponse = append([]byte(nil), r.AuthResponse...)
	if r.Caps&ClientConnectWithDB != 0 && len(p) > 0 {
		db, n, ok := NulString(p)
		if !ok {
			return nil, ErrMalformed
		}
		r.DB, p = string(db), p[n:]
	}
	if r.Caps&ClientPluginAuth != 0 && len(p) > 0 {
		name, n, ok := NulString(p)
		if !ok {
			name, n = p, len(p)
		}
		r.AuthPlugin, p = string(name), p[n:]
	}
	if r.Caps&ClientConnectAttrs != 0 && len(p) > 0 {
		attrs, _, ok := LenEncString(p)
		if !ok || !validAttrs(attrs) {
			return nil, ErrMalformed
		}
		r.Attrs = append([]byte(nil), attrs...)
	}
	return r, nil
}

func validAttrs(b []byte) bool {
	for len(b) > 0 {
		_, n, ok := LenEncString(b)
		if !ok {
			return false
		}
		b = b[n:]
		_, n, ok = LenEncString(b)
		if !ok {
			return false
		}
		b = b[n:]
	}
	return true
}

// AttrPairs decodes connection attributes into key/value pairs.
func AttrPairs(b []byte) [][2]string {
	var out [][2]string
	for len(b) > 0 {
		k, n, ok := LenEncString(b)
		if !ok {
			return out
		}
		b = b[n:]
		v, n, ok := LenEncString(b)
		if !ok {
			return out
		}
		b = b[n:]
		out = append(out, [2]string{string(k), string(v)})
	}
	return out
}

// AppendPayload appends the response's payload. An SSLRequest is the
// first 32 bytes of it: use AppendSSLRequest.
func (r *HandshakeResponse) AppendPayload(b []byte) []byte {
	b = r.AppendSSLRequest(b)
	b = append(b, r.User...)
	b = append(b, 0)
	switch {
	case r.Caps&ClientPluginAuthLenencClientData != 0:
		b = AppendLenEncString(b, r.AuthResponse)
	case r.Caps&ClientSecureConnection != 0:
		b = append(b, byte(len(r.AuthResponse)))
		b = append(b, r.AuthResponse...)
	default:
		b = append(b, r.AuthResponse...)
		b = append(b, 0)
	}
	if r.Caps&ClientConnectWithDB != 0 {
		b = append(b, r.DB...)
		b = append(b, 0)
	}
	if r.Caps&ClientPluginAuth != 0 {
		b = append(b, r.AuthPlugin...)
		b = append(b, 0)
	}
	if r.Caps&ClientConnectAttrs != 0 {
		b = AppendLenEncString(b, r.Attrs)
	}
	return b
}

// AppendSSLRequest appends the fixed part that doubles as SSLRequest.
func (r *HandshakeResponse) AppendSSLRequest(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.Caps)
	b = binary.LittleEndian.AppendUint32(b, r.MaxPacket)
	b = append(b, r.Collation)
	return append(b, make([]byte, 23)...)
}

// ChangeUser is COM_CHANGE_USER's payload.
type ChangeUser struct {
	User         string
	AuthResponse []byte
	DB           string
	Collation    uint16
	AuthPlugin   string
	Attrs        []byte
}

// ParseChangeUser decodes a COM_CHANGE_USER payload (command byte
// included) sent by a client with capabilities caps.
func ParseChangeUser(p []byte, caps uint32) (*ChangeUser, error) {
	if len(p) < 1 || p[0] != ComChangeUser {
		return nil, ErrMalformed
	}
	p = p[1:]
	c := &ChangeUser{}
	user, n, ok := NulString(p)
	if !ok {
		return nil, ErrMalformed
	}
	c.User, p = string(user), p[n:]
	if caps&ClientSecureConnection != 0 {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, ErrMalformed
		}
		c.AuthResponse, p = append([]byte(nil), p[1:1+int(p[0])]...), p[1+int(p[0]):]
	} else {
		a, n, ok := NulString(p)
		if !ok {
			return nil, ErrMalformed
		}
		c.AuthResponse, p = append([]byte(nil), a...), p[n:]
	}
	db, n, ok := NulString(p)
	if !ok {
		if len(p) != 0 {
			return nil, ErrMalformed
		}
		return c, nil
	}
	c.DB, p = string(db), p[n:]
	if len(p) >= 2 {
		c.Collation, p = binary.LittleEndian.Uint16(p), p[2:]
	}
	if caps&ClientPluginAuth != 0 && len(p) > 0 {
		name, n, ok := NulString(p)
		if !ok {
			name, n = p, len(p)
		}
		c.AuthPlugin, p = string(name), p[n:]
	}
	if caps&ClientConnectAttrs != 0 && len(p) > 0 {
		attrs, _, ok := LenEncString(p)
		if !ok || !validAttrs(attrs) {
			return nil, ErrMalformed
		}
		c.Attrs = append([]byte(nil), attrs...)
	}
	return c, nil
}

// AppendPayload appends the COM_CHANGE_USER payload for a connection with
// capabilities caps.
func (c *ChangeUser) AppendPayload(b []byte, caps uint32) []byte {
	b = append(b, ComChangeUser)
	b = append(b, c.User...)
	b = append(b, 0)
	if caps&ClientSecureConnection != 0 {
		b = append(b, byte(len(c.AuthResponse)))
		b = append(b, c.AuthResponse...)
	} else {
		b = append(b, c.AuthResponse...)
		b = append(b, 0)
	}
	b = append(b, c.DB...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, c.Collation)
	if caps&ClientPluginAuth != 0 {
		b = append(b, c.AuthPlugin...)
		b = append(b, 0)
	}
	if caps&ClientConnectAttrs != 0 {
		b = AppendLenEncString(b, c.Attrs)
	}
	return b
}

// OK is the decoded fixed part of an OK packet (or of an EOF packet, whose
// warnings and status are at other offsets).
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
}

// ParseOK decodes an OK packet payload (header 0x00 or, as a result-set
// terminator, 0xfe) as far as its status and warnings.
func ParseOK(p []byte) (OK, bool) {
	var ok OK
	if len(p) < 1 {
		return ok, false
	}
	p = p[1:]
	v, n, good := LenEnc(p)
	if !good {
		return ok, false
	}
	ok.AffectedRows, p = v, p[n:]
	v, n, good = LenEnc(p)
	if !good {
		return ok, false
	}
	ok.LastInsertID, p = v, p[n:]
	if len(p) >= 2 {
		ok.Status = binary.LittleEndian.Uint16(p)
	}
	if len(p) >= 4 {
		ok.Warnings = binary.LittleEndian.Uint16(p[2:])
	}
	return ok, true
}

// EOFStatus decodes an EOF packet's (0xfe, length < 9) status flags.
func EOFStatus(p []byte) uint16 {
	if len(p) >= 5 {
		return binary.LittleEndian.Uint16(p[3:])
	}
	return 0
}

// AppendOK appends an OK packet payload.
func AppendOK(b []byte, header byte, affected, insertID uint64, status, warnings uint16) []byte {
	b = append(b, header)
	b = AppendLenEnc(b, affected)
	b = AppendLenEnc(b, insertID)
	b = binary.LittleEndian.AppendUint16(b, status)
	return binary.LittleEndian.AppendUint16(b, warnings)
}

// AppendEOF appends an EOF packet payload.
func AppendEOF(b []byte, status, warnings uint16) []byte {
	b = append(b, HeaderEOF)
	b = binary.LittleEndian.AppendUint16(b, warnings)
	return binary.LittleEndian.AppendUint16(b, status)
}
