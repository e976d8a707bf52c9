package backends

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// RESPPassthrough is implemented by backends that are Redis servers, or
// speak RESP natively: the Redis frontend forwards commands to them
// unchanged and relays their replies unchanged. The frontend keeps the
// protocol's semantics (which commands need a connection of their own);
// the backend owns the upstream connections.
type RESPPassthrough interface {
	Backend
	// Databases is the number of logical databases the upstream has.
	Databases() int
	// Version is the upstream's Redis version, as HELLO and INFO report
	// it.
	Version() string
	// Submit queues a batch of commands that need no connection state
	// but the selected database on a shared, multiplexed upstream
	// connection and returns without waiting: the replies reach
	// call.Sink as they arrive. When Submit returns an error nothing was
	// sent and the sink is not called.
	Submit(ctx context.Context, call *RESPCall) error
	// Flush sends every request submitted with Deferred set.
	Flush()
	// Dedicated returns an upstream connection reserved for one client
	// (transactions, blocking commands, pub/sub), positioned on no
	// particular database: see RESPConn.DB.
	Dedicated(ctx context.Context) (RESPConn, error)
}

// RESPCall is one batch of commands sent through Submit. The caller must
// not touch it between Submit and the sink's Done.
type RESPCall struct {
	// DB is the logical database the commands run in.
	DB int
	// Req is the commands, RESP-encoded, back to back. Submit copies it.
	Req []byte
	// N is the number of replies Req produces.
	N int
	// Types receives the first byte of each reply as it completes ('-'
	// for an error), so that the caller can count errors per command.
	Types []byte
	// Sink receives the replies.
	Sink RESPSink
	// Parsed, when set, describes each command of Req as the frontend
	// parsed it, so that a backend that routes by key (Redis Cluster)
	// need not parse Req again. It is valid until Submit returns.
	Parsed []ParsedCommand
	// Deferred lets the request wait for Flush, so that a frontend that
	// knows more requests are coming (other clients it has just woken)
	// can send them upstream together. A caller that sets it must call
	// Flush once the batch is complete.
	Deferred bool
}

// ParsedCommand is one command of a RESPCall's request.
type ParsedCommand struct {
	Args [][]byte
	Info *resp.CommandInfo // nil for a command Redis does not know
	End  int               // offset in Req just past the command
}

// RESPSink receives the replies of a call, on the backend's reader
// goroutine. It must not block for long: other clients' replies wait
// behind it.
type RESPSink interface {
	// Deliver receives reply bytes in order, in pieces that may begin or
	// end inside a reply.
	Deliver(call *RESPCall, b []byte)
	// Done ends the call: err is nil once every reply was delivered.
	// Otherwise len(call.Types) replies arrived whole, and err wraps
	// ErrPartialReply if part of the next one was delivered.
	Done(call *RESPCall, err error)
}

// Exchange sends req (n commands) through b and returns the replies. It
// is for the few commands Mecha sends on its own behalf; client traffic
// uses Submit.
func Exchange(ctx context.Context, b RESPPassthrough, db int, req []byte, n int) ([]byte, error) {
	s := &collector{done: make(chan error, 1)}
	call := &RESPCall{DB: db, Req: req, N: n, Sink: s}
	if err := b.Submit(ctx, call); err != nil {
		return nil, err
	}
	select {
	case err := <-s.done:
		return s.out, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type collector struct {
	out  []byte
	done chan error
}

func (s *collector) Deliver(_ *RESPCall, b []byte) { s.out = append(s.out, b...) }
func (s *collector) Done(_ *RESPCall, err error)   { s.done <- err }

// RESPConn is an upstream connection reserved for one client. Reads and
// writes are raw RESP; the frontend scans replies itself.
type RESPConn interface {
	net.Conn
	// DB is the database the connection is on, or -1 when unknown.
	DB() int
	// SetDB records that the connection switched database.
	SetDB(db int)
	// UpstreamID is the upstream's CLIENT ID for the connection, or 0.
	UpstreamID() int64
	// Timeout is how long to wait for a reply that should not block.
	Timeout() time.Duration
	// Release gives the connection back. Only a connection whose state
	// is clean (no transaction, no subscription, no pending reply) may be
	// reused; any other is closed.
	Release(reusable bool)
}

// ErrUnavailable is returned when a backend cannot serve a request because
// its upstream is down or unreachable.
var ErrUnavailable = errors.New("backend unavailable")

// ErrTimeout is returned when a backend did not answer in time.
var ErrTimeout = errors.New("backend timed out")

// ErrPartialReply means part of a reply had already been passed to the
// client when the upstream failed: the client's stream cannot be
// repaired, and the frontend must close it.
var ErrPartialReply = errors.New("reply cut off")

// RESPRouter is implemented by passthrough backends that spread the
// keyspace over several servers (Redis Cluster). A client's dedicated
// connection must then reach the server of the keys it will use.
type RESPRouter interface {
	// DedicatedFor returns a dedicated connection to the server that
	// serves key (any server for a nil key).
	DedicatedFor(ctx context.Context, key []byte) (RESPConn, error)
	// Serves reports whether up, a connection from DedicatedFor, reaches
	// the server of key.
	Serves(up RESPConn, key []byte) bool
	// Redirected reads a redirection reply (-MOVED or -ASK) that arrived
	// on a dedicated connection and updates the backend's routing. It
	// reports whether reply was one.
	Redirected(reply []byte) bool
}

// RESPHomed is implemented by the dedicated connections of a RESPRouter:
// Home is the one server the connection reaches, for commands about the
// connection itself (CLIENT UNBLOCK of a client blocked on it).
type RESPHomed interface {
	Home() RESPPassthrough
}

// ErrorText is the error clients get when a backend fails them: the one
// place where backend failures become wire errors.
func ErrorText(backend string, err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return fmt.Sprintf("ERR backend '%s' timed out: %s", backend, trimSentinel(err, ErrTimeout))
	case errors.Is(err, ErrUnavailable):
		return fmt.Sprintf("ERR backend '%s' unavailable: %s", backend, trimSentinel(err, ErrUnavailable))
	}
	return fmt.Sprintf("ERR backend '%s' failed: %v", backend, err)
}

func trimSentinel(err, sentinel error) string {
	s := err.Error()
	p := sentinel.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
