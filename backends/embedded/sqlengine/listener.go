package sqlengine

import (
	"context"
	"net"
	"sync"
)

// memListener is a net.Listener that exists only inside the process: Dial
// creates a net.Pipe pair and hands the server end to Accept. There is no
// port and no socket file, so nothing outside the process can connect.
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	live map[*serverConn]struct{} // server ends handed out and not yet closed
}

var _ net.Listener = (*memListener)(nil)

func newMemListener() *memListener {
	return &memListener{
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
		live:  make(map[*serverConn]struct{}),
	}
}

// Accept waits for the next Dial and returns the server end of its pipe. It
// returns net.ErrClosed once the listener is closed.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		sc := &serverConn{Conn: c, l: l}
		l.mu.Lock()
		l.live[sc] = struct{}{}
		l.mu.Unlock()
		return sc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept return net.ErrClosed and Dial fail. Connections already
// handed out stay open.
func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr names the listener; it is not an address anything can dial.
func (l *memListener) Addr() net.Addr { return memAddr{} }

// Dial returns the client end of a new pipe once the server has accepted
// the other end, or an error if ctx ends or the listener is closed first.
func (l *memListener) Dial(ctx context.Context) (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}

// closeAll closes the server end of every connection still open, so that
// their clients see the connection end.
func (l *memListener) closeAll() {
	l.mu.Lock()
	conns := make([]*serverConn, 0, len(l.live))
	for c := range l.live {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// serverConn is the server end of a pipe. It clears cursor requests from
// COM_STMT_EXECUTE commands (cursor.go), and it reports a "unix" network
// address so that go-mysql-server treats the client as connected from
// "localhost" (as a socket client of a local MySQL is), which makes
// CURRENT_USER() read root@localhost rather than root@pipe.
type serverConn struct {
	net.Conn
	l      *memListener
	cursor cursorFilter // read by vitess' connection goroutine only
}

// Read reads what the client sent, with cursor requests removed (see
// cursor.go).
func (c *serverConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.cursor.filter(p[:n])
	return n, err
}

func (c *serverConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.live, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

func (*serverConn) LocalAddr() net.Addr  { return memAddr{} }
func (*serverConn) RemoteAddr() net.Addr { return memAddr{} }

// memAddr is the address of both ends of an in-process connection.
type memAddr struct{}

func (memAddr) Network() string { return "unix" }
func (memAddr) String() string  { return "mecha-embedded-sql" }
