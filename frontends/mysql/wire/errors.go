package wire

import (
	"fmt"
)

// Error is a MySQL error: what an ERR packet carries.
type Error struct {
	Code    uint16
	State   string // five characters
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("Error %d (%s): %s", e.Code, e.State, e.Message)
}

// Errorf builds an Error; the state defaults to HY000.
func Errorf(code uint16, state, format string, args ...any) *Error {
	if state == "" {
		state = "HY000"
	}
	return &Error{Code: code, State: state, Message: fmt.Sprintf(format, args...)}
}

// AppendPayload appends the error's ERR packet payload (protocol 4.1).
func (e *Error) AppendPayload(b []byte) []byte {
	b = append(b, HeaderErr, byte(e.Code), byte(e.Code>>8), '#')
	st := e.State
	for len(st) < 5 {
		st += "0"
	}
	b = append(b, st[:5]...)
	return append(b, e.Message...)
}

// ParseError decodes an ERR packet payload.
func ParseError(p []byte) *Error {
	if len(p) < 3 || p[0] != HeaderErr {
		return &Error{Code: 2027, State: "HY000", Message: "Malformed packet"}
	}
	e := &Error{Code: uint16(p[1]) | uint16(p[2])<<8, State: "HY000"}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}

// Errors Mecha answers itself, with the codes and texts MySQL uses.
const (
	ErUnknownComError      = 1047 // 08S01 Unknown command
	ErAccessDenied         = 1045 // 28000
	ErHandshake            = 1043 // 08S01 Bad handshake
	ErNetPacketTooLarge    = 1153 // 08S01
	ErNetReadError         = 1158 // 08S01
	ErConCount             = 1040 // 08004 Too many connections
	ErNotSupportedAuthMode = 1251 // 08004
	ErSecureTransport      = 3159 // HY000
	ErNotAllowedCommand    = 1148 // 42000
	ErUnknownError         = 1105 // HY000
	CrConnectionError      = 2003
	CrServerLost           = 2013
)

// Common gateway-side errors.
func ErrUnknownCommand() *Error { return Errorf(ErUnknownComError, "08S01", "Unknown command") }
func ErrBadHandshake() *Error   { return Errorf(ErHandshake, "08S01", "Bad handshake") }
func ErrTooManyConnections() *Error {
	return Errorf(ErConCount, "08004", "Too many connections")
}
func ErrPacketTooLargeErr() *Error {
	return Errorf(ErNetPacketTooLarge, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
}

// ErrAccessDenied is MySQL's answer to a wrong user or password.
func ErrAccessDenied(user, host string, withPassword bool) *Error {
	using := "NO"
	if withPassword {
		using = "YES"
	}
	return Errorf(ErAccessDenied, "28000", "Access denied for user '%s'@'%s' (using password: %s)", user, host, using)
}

// ErrInsecureTransport answers a client without TLS where TLS is required.
func ErrInsecureTransport() *Error {
	return Errorf(ErSecureTransport, "HY000", "Connections using insecure transport are prohibited while --require_secure_transport=ON.")
}
