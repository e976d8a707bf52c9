package redis

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/frontends/redis/resp"
)

// dedicated is an upstream connection reserved for one client at a time.
type dedicated struct {
	net.Conn
	b        *Backend
	db       int
	id       int64
	gen      uint64
	idleFrom time.Time
	closed   atomic.Bool
}

var _ backends.RESPConn = (*dedicated)(nil)

// Dedicated returns an idle pooled connection, or dials a new one.
func (b *Backend) Dedicated(ctx context.Context) (backends.RESPConn, error) {
	gen := b.gen.Load()
	b.poolMu.Lock()
	for len(b.idle) > 0 {
		d := b.idle[len(b.idle)-1]
		b.idle = b.idle[:len(b.idle)-1]
		if d.gen != gen || time.Since(d.idleFrom) > b.cfg.IdleTimeout.D() {
			b.poolMu.Unlock()
			d.close()
			b.poolMu.Lock()
			continue
		}
		b.poolMu.Unlock()
		return d, nil
	}
	b.poolMu.Unlock()
	nc, err := b.dial(ctx)
	if err != nil {
		b.requestProbe()
		return nil, err
	}
	id, err := fetchClientID(nc, b.cfg.ReadTimeout.D())
	if err != nil {
		nc.Close()
		b.requestProbe()
		return nil, err
	}
	b.dedicatedN.Add(1)
	return &dedicated{Conn: nc, b: b, gen: gen, id: id}, nil
}

// DB is the database the connection is on.
func (d *dedicated) DB() int { return d.db }

// UpstreamID is the upstream's id for the connection.
func (d *dedicated) UpstreamID() int64 { return d.id }

// Timeout is the backend's read timeout.
func (d *dedicated) Timeout() time.Duration { return d.b.cfg.ReadTimeout.D() }

// SetDB records a SELECT sent on the connection.
func (d *dedicated) SetDB(db int) { d.db = db }

// Release returns the connection to the pool, or closes it.
func (d *dedicated) Release(reusable bool) {
	b := d.b
	d.SetDeadline(time.Time{})
	if !reusable || b.closed.Load() || d.gen != b.gen.Load() {
		d.close()
		return
	}
	d.idleFrom = time.Now()
	b.poolMu.Lock()
	if len(b.idle) >= b.cfg.MaxIdle {
		b.poolMu.Unlock()
		d.close()
		return
	}
	b.idle = append(b.idle, d)
	b.poolMu.Unlock()
}

func (d *dedicated) close() {
	d.Conn.Close()
	if !d.closed.Swap(true) {
		d.b.dedicatedN.Add(-1)
	}
}

// dropIdle closes every idle pooled connection.
func (b *Backend) dropIdle() {
	b.poolMu.Lock()
	idle := b.idle
	b.idle = nil
	b.poolMu.Unlock()
	for _, d := range idle {
		d.close()
	}
}

// fetchClientID asks the upstream for the connection's CLIENT ID, which
// CLIENT UNBLOCK needs. An upstream without CLIENT ID yields 0.
func fetchClientID(nc net.Conn, timeout time.Duration) (int64, error) {
	replies, err := roundTrip(nc, resp.AppendCommandStrings(nil, "CLIENT", "ID"), 1, timeout)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", backends.ErrUnavailable, errText(err))
	}
	r := replies[0]
	if r[0] != ':' {
		return 0, nil
	}
	id, _ := strconv.ParseInt(string(r[1:len(r)-2]), 10, 64)
	return id, nil
}
