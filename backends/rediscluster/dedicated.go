package rediscluster

import (
	"context"

	"github.com/mecha-gateway/mecha/backends"
)

// conn is a dedicated connection to one node.
type conn struct {
	backends.RESPConn
	node *node
}

// Home is the node the connection reaches, for commands about the
// connection itself (CLIENT UNBLOCK).
func (c *conn) Home() backends.RESPPassthrough { return c.node.Backend }

// Dedicated returns a dedicated connection to any master: for commands
// without keys (SUBSCRIBE, a MULTI whose first key is not known yet).
func (b *Backend) Dedicated(ctx context.Context) (backends.RESPConn, error) {
	return b.DedicatedFor(ctx, nil)
}

// DedicatedFor returns a dedicated connection to the master of key's slot.
func (b *Backend) DedicatedFor(ctx context.Context, key []byte) (backends.RESPConn, error) {
	l, err := b.currentLayout(ctx)
	if err != nil {
		return nil, err
	}
	n := l.any
	if key != nil {
		n = b.nodeOf(l, Slot(key))
	}
	up, err := n.Dedicated(ctx)
	if err != nil {
		b.requestRefresh()
		return nil, err
	}
	return &conn{RESPConn: up, node: n}, nil
}

// Serves reports whether up reaches the master of key's slot.
func (b *Backend) Serves(up backends.RESPConn, key []byte) bool {
	c, ok := up.(*conn)
	if !ok {
		return false
	}
	l := b.layout.Load()
	return l != nil && b.nodeOf(l, Slot(key)) == c.node
}

// Redirected updates the slot map from a MOVED reply that reached a
// dedicated connection, and reports whether reply was a redirection.
func (b *Backend) Redirected(reply []byte) bool {
	kind, slot, addr, ok := parseRedirect(reply)
	if !ok {
		return false
	}
	b.redirects.Inc()
	if kind == "MOVED" {
		if n := b.knownNode(addr); n != nil {
			b.moved(slot, n)
		} else {
			b.requestRefresh()
		}
	}
	return true
}
