package backends

import (
	"bufio"
	"context"
	"net"
	"time"
)

// MySQLPassthrough is implemented by backends that are MySQL-protocol
// servers (MySQL, MariaDB, TiDB, ...). The MySQL frontend authenticates
// its clients itself, then gives each client an upstream session of its
// own and relays the client's commands and the server's responses
// unchanged.
type MySQLPassthrough interface {
	Backend
	// Server describes the upstream for the handshake the frontend sends
	// its clients. It connects once if no upstream handshake was seen yet.
	Server(ctx context.Context) (MySQLServer, error)
	// Session returns an upstream session, logged in with the backend's
	// own credentials and set up as p asks. An error the server sent is a
	// *wire.Error, for the frontend to relay with its code and state.
	Session(ctx context.Context, p MySQLSessionParams) (MySQLSession, error)
}

// MySQLServer is what the upstream announced in its handshake.
type MySQLServer struct {
	Version   string
	Caps      uint32
	Collation uint8
}

// MySQLSessionParams is how a client's session starts.
type MySQLSessionParams struct {
	// Caps is the capabilities the client and Mecha agreed on; the
	// session gets those the upstream also has.
	Caps      uint32
	Collation uint8
	DB        string
	// Attrs is the client's connection attributes, encoded as in the
	// handshake response.
	Attrs []byte
}

// MySQLSession is one upstream connection, used by one client at a time.
type MySQLSession interface {
	// Reader and Writer are the connection's buffered ends. The frontend
	// flushes Writer itself.
	Reader() *bufio.Reader
	Writer() *bufio.Writer
	// Caps is the capabilities the session was opened with.
	Caps() uint32
	// OK is the payload of the OK packet that ended the session's last
	// authentication (login or ChangeUser).
	OK() []byte
	// ChangeUser resets the session as COM_CHANGE_USER does (transaction
	// rolled back, variables, temporary tables and prepared statements
	// dropped) and applies p's database and collation.
	ChangeUser(ctx context.Context, p MySQLSessionParams) error
	// Alive reports, without blocking, that the server has not closed
	// the connection or sent anything unasked while it was idle.
	Alive() bool
	// SetDeadline bounds the next reads and writes; zero clears it.
	SetDeadline(t time.Time) error
	// ConnID is the upstream's connection id (for KILL).
	ConnID() uint32
	// NetConn is the connection to the upstream (under TLS, if any), for
	// watching it for the server's hang-up.
	NetConn() net.Conn
	// Release returns an idle session, between commands, to the backend's
	// pool; it is reset before its next use. Close discards it instead.
	Release()
	Close()
}
