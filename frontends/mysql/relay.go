package mysql

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/mecha-gateway/mecha/frontends/mysql/wire"
)

// errUpstream wraps a failure of the upstream session.
type errUpstream struct{ err error }

func (e errUpstream) Error() string { return "upstream: " + e.err.Error() }
func (e errUpstream) Unwrap() error { return e.err }

// command serves one command whose header (payload length n, sequence id
// seq) was read.
func (c *conn) command(n int, seq uint8) error {
	start := time.Now()
	c.clean = false
	if seq != 0 {
		c.s.protoErrs.Inc()
		_ = c.sendErr(seq+1, wire.Errorf(1156, "08S01", "Got packets out of order"))
		return errors.New("packet out of order")
	}
	if n == 0 {
		c.clean = true
		return c.sendErr(1, wire.ErrUnknownCommand())
	}
	head, err := c.br.Peek(1)
	if err != nil {
		return err
	}
	cmd := head[0]
	idx := int(cmd)
	if idx >= wire.NumCommands {
		idx = wire.NumCommands
	}
	stats := c.s.stats.Get(idx)
	stats.Calls.Inc()
	isErr, err := c.dispatch(cmd, n)
	if isErr {
		stats.Errors.Inc()
	}
	stats.Latency.Observe(time.Since(start))
	if err != nil {
		return c.fail(err)
	}
	c.clean = true
	if c.br.Buffered() == 0 {
		if err := c.bw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// fail ends a connection after a command failed: an upstream failure is
// reported to the client as the lost connection it is.
func (c *conn) fail(err error) error {
	if errors.Is(err, errQuit) {
		return err
	}
	if errors.Is(err, wire.ErrPacketTooLarge) {
		c.s.protoErrs.Inc()
		_ = c.sendErr(c.seq+1, wire.ErrPacketTooLargeErr())
		return err
	}
	var up errUpstream
	if errors.As(err, &up) && !c.wfail {
		c.s.upLost.Inc()
		c.s.log.Warn("mysql upstream session lost", "conn", c.id, "err", up.err)
		_ = c.sendErr(c.seq+1, wire.Errorf(wire.CrServerLost, "HY000", "Lost connection to MySQL server during query"))
	}
	return err
}

// dispatch serves cmd and reports whether its answer was an error.
func (c *conn) dispatch(cmd byte, n int) (bool, error) {
	c.seq = 0
	switch cmd {
	case wire.ComQuit:
		_ = c.discard(n)
		c.clean = true
		return false, errQuit
	case wire.ComChangeUser:
		p, err := c.readCommand(n)
		if err != nil {
			return false, err
		}
		return c.changeUser(p)
	case wire.ComProcessKill:
		p, err := c.readCommand(n)
		if err != nil {
			return false, err
		}
		if len(p) == 5 {
			if up, ok := c.upstreamID(binary.LittleEndian.Uint32(p[1:])); ok {
				binary.LittleEndian.PutUint32(p[1:], up)
			}
		}
		return c.forwardPayload(cmd, p)
	case wire.ComQuery:
		if n <= maxKillQuery {
			if b, err := c.br.Peek(n); err == nil && isKill(b[1:]) {
				p, err := c.readCommand(n)
				if err != nil {
					return false, err
				}
				if q := rewriteKill(p[1:], c.upstreamID); q != nil {
					p = append([]byte{wire.ComQuery}, q...)
				}
				return c.forwardPayload(cmd, p)
			}
		}
	case wire.ComSleep, wire.ComConnect, wire.ComTime, wire.ComDelayedInsert, wire.ComBinlogDump,
		wire.ComTableDump, wire.ComConnectOut, wire.ComRegisterSlave, wire.ComDaemon, wire.ComBinlogDumpGTID:
		// Internal to the server, or replication, which a client session
		// through Mecha cannot take part in.
		if err := c.discard(n); err != nil {
			return false, err
		}
		c.seq = 0
		c.writePacket(1, wire.ErrUnknownCommand().AppendPayload(c.buf[:0]))
		return true, nil
	}
	if int(cmd) >= wire.NumCommands {
		if err := c.discard(n); err != nil {
			return false, err
		}
		c.writePacket(1, wire.ErrUnknownCommand().AppendPayload(c.buf[:0]))
		return true, nil
	}
	if err := c.forward(n); err != nil {
		return false, err
	}
	return c.response(cmd)
}

// upstreamID maps a connection id Mecha announced to its upstream
// session's id.
func (c *conn) upstreamID(id uint32) (uint32, bool) {
	if id < connIDBase {
		return 0, false
	}
	t := c.s.lookup(id)
	if t == nil {
		return 0, false
	}
	up := t.upID.Load()
	if up == 0 {
		return 0, false
	}
	return up &^ (1 << 31), true
}

// forward copies a command packet of n bytes, whose header was read, to
// the upstream, streaming it.
func (c *conn) forward(n int) error {
	if n > int(c.st.cfg.MaxAllowedPacket) {
		return wire.ErrPacketTooLarge
	}
	total, seq := 0, uint8(0)
	for {
		total += n
		if total > int(c.st.cfg.MaxAllowedPacket) {
			// Part of the packet is upstream already: the session ends.
			return wire.ErrPacketTooLarge
		}
		var h [4]byte
		h[0], h[1], h[2], h[3] = byte(n), byte(n>>8), byte(n>>16), seq
		if _, err := c.ubw.Write(h[:]); err != nil {
			return errUpstream{err}
		}
		for left := n; left > 0; {
			b, err := c.br.Peek(min(left, max(c.br.Buffered(), 1)))
			if len(b) == 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			if _, err := c.ubw.Write(b); err != nil {
				return errUpstream{err}
			}
			_, _ = c.br.Discard(len(b))
			left -= len(b)
		}
		if n < wire.MaxPacketLength {
			break
		}
		var err error
		if n, seq, err = wire.Header(c.br); err != nil {
			return err
		}
	}
	if err := c.ubw.Flush(); err != nil {
		return errUpstream{err}
	}
	return nil
}

// forwardPayload sends a command Mecha has read (and maybe rewritten).
func (c *conn) forwardPayload(cmd byte, p []byte) (bool, error) {
	if _, err := wire.WritePacket(c.ubw, 0, p); err != nil {
		return false, errUpstream{err}
	}
	if err := c.ubw.Flush(); err != nil {
		return false, errUpstream{err}
	}
	return c.response(cmd)
}

// response relays the upstream's answer to cmd and reports whether it
// was an error.
func (c *conn) response(cmd byte) (bool, error) {
	switch cmd {
	case wire.ComStmtClose, wire.ComStmtSendLongData:
		return false, nil
	case wire.ComQuery, wire.ComStmtExecute, wire.ComProcessInfo:
		return c.resultSets()
	case wire.ComStmtFetch:
		_, isErr, err := c.rows()
		return isErr, err
	case wire.ComStmtPrepare:
		return c.prepared()
	case wire.ComFieldList:
		return c.fieldList()
	}
	h, err := c.next()
	if err != nil {
		return false, err
	}
	isErr := h.first() == wire.HeaderErr
	return isErr, c.pass(h)
}

// header is an upstream packet whose header was read: its length,
// sequence id and first bytes, valid until pass.
type header struct {
	n    int
	seq  uint8
	head []byte
}

func (h header) first() byte {
	if len(h.head) == 0 {
		return 0
	}
	return h.head[0]
}

// terminator reports whether the packet ends a list of rows or columns:
// an EOF packet, or with CLIENT_DEPRECATE_EOF an OK packet with the EOF
// header (rows that begin with 0xfe are 16 MiB or longer).
func (h header) terminator() bool {
	return h.first() == wire.HeaderEOF && h.n < wire.MaxPacketLength
}

// status is a terminator's or OK packet's status flags.
func (c *conn) status(h header) uint16 {
	if h.first() == wire.HeaderEOF && !c.deprecateEOF {
		return wire.EOFStatus(h.head)
	}
	ok, _ := wire.ParseOK(h.head)
	return ok.Status
}

// peekLen is how much of a packet's start the relay looks at: enough for
// an OK packet's status.
const peekLen = 1 + 9 + 9 + 4

// next reads the next upstream packet's header, flushing what the client
// has been sent so far if the upstream has nothing more buffered.
func (c *conn) next() (header, error) {
	if c.ubr.Buffered() < 4 && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return header{}, err
		}
	}
	n, seq, err := wire.Header(c.ubr)
	if err != nil {
		return header{}, errUpstream{err}
	}
	head, err := c.ubr.Peek(min(n, peekLen))
	if err != nil {
		return header{}, errUpstream{err}
	}
	if n == 0 {
		return header{}, errUpstream{wire.ErrMalformed}
	}
	return header{n: n, seq: seq, head: head}, nil
}

// pass copies a packet to the client, with its continuation packets.
func (c *conn) pass(h header) error {
	n, seq := h.n, h.seq
	for {
		c.seq = seq
		if err := wire.CopyPacket(c.bw, c.ubr, n, seq); err != nil {
			if c.wfail {
				return err
			}
			return errUpstream{err}
		}
		if n < wire.MaxPacketLength {
			return nil
		}
		var err error
		if n, seq, err = wire.Header(c.ubr); err != nil {
			return errUpstream{err}
		}
	}
}

// passN copies n packets.
func (c *conn) passN(n uint64) error {
	for ; n > 0; n-- {
		h, err := c.next()
		if err != nil {
			return err
		}
		if err := c.pass(h); err != nil {
			return err
		}
	}
	return nil
}

// resultSets relays the answer to a query or statement execution: OK,
// ERR, LOCAL INFILE requests and result sets, as many as the server
// flags with SERVER_MORE_RESULTS_EXISTS.
func (c *conn) resultSets() (bool, error) {
	for {
		h, err := c.next()
		if err != nil {
			return false, err
		}
		switch h.first() {
		case wire.HeaderOK:
			more := c.status(h)&wire.StatusMoreResultsExists != 0
			if err := c.pass(h); err != nil || !more {
				return false, err
			}
			continue
		case wire.HeaderErr:
			return true, c.pass(h)
		case wire.HeaderLocalInfile:
			if err := c.pass(h); err != nil {
				return false, err
			}
			if err := c.infile(); err != nil {
				return false, err
			}
			continue
		}
		count, _, ok := wire.LenEnc(h.head)
		if !ok {
			return false, errUpstream{wire.ErrMalformed}
		}
		if err := c.pass(h); err != nil {
			return false, err
		}
		if err := c.passN(count); err != nil {
			return false, err
		}
		if !c.deprecateEOF {
			h, err := c.next()
			if err != nil {
				return false, err
			}
			st := c.status(h)
			if err := c.pass(h); err != nil {
				return false, err
			}
			if st&wire.StatusCursorExists != 0 {
				// Rows come with COM_STMT_FETCH.
				return false, nil
			}
		}
		more, isErr, err := c.rows()
		if err != nil || isErr || !more {
			return isErr, err
		}
	}
}

// rows relays rows up to their terminator (or an error) and reports
// whether more results follow.
func (c *conn) rows() (more, isErr bool, err error) {
	for {
		h, err := c.next()
		if err != nil {
			return false, false, err
		}
		switch {
		case h.first() == wire.HeaderErr:
			return false, true, c.pass(h)
		case h.terminator():
			more := c.status(h)&wire.StatusMoreResultsExists != 0
			return more, false, c.pass(h)
		}
		if err := c.pass(h); err != nil {
			return false, false, err
		}
	}
}

// prepared relays COM_STMT_PREPARE's answer: the statement, then its
// parameter and column definitions.
func (c *conn) prepared() (bool, error) {
	h, err := c.next()
	if err != nil {
		return false, err
	}
	if h.first() != wire.HeaderOK {
		return h.first() == wire.HeaderErr, c.pass(h)
	}
	if len(h.head) < 9 {
		return false, errUpstream{wire.ErrMalformed}
	}
	cols := uint64(binary.LittleEndian.Uint16(h.head[5:]))
	params := uint64(binary.LittleEndian.Uint16(h.head[7:]))
	if err := c.pass(h); err != nil {
		return false, err
	}
	for _, k := range []uint64{params, cols} {
		if k == 0 {
			continue
		}
		if !c.deprecateEOF {
			k++
		}
		if err := c.passN(k); err != nil {
			return false, err
		}
	}
	return false, nil
}

// fieldList relays COM_FIELD_LIST's column definitions.
func (c *conn) fieldList() (bool, error) {
	for {
		h, err := c.next()
		if err != nil {
			return false, err
		}
		end := h.first() == wire.HeaderErr || h.terminator()
		if err := c.pass(h); err != nil || end {
			return h.first() == wire.HeaderErr, err
		}
	}
}

// infile relays the file a client sends for LOAD DATA LOCAL INFILE, up to
// its empty last packet.
func (c *conn) infile() error {
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for {
		n, seq, err := wire.Header(c.br)
		if err != nil {
			return err
		}
		var h [4]byte
		h[0], h[1], h[2], h[3] = byte(n), byte(n>>8), byte(n>>16), seq
		if _, err := c.ubw.Write(h[:]); err != nil {
			return errUpstream{err}
		}
		if _, err := io.CopyN(c.ubw, c.br, int64(n)); err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	if err := c.ubw.Flush(); err != nil {
		return errUpstream{err}
	}
	return nil
}

// changeUser serves COM_CHANGE_USER: the client logs in again as a user
// of Mecha's, and the upstream session is reset for it.
func (c *conn) changeUser(p []byte) (bool, error) {
	cu, err := wire.ParseChangeUser(p, c.caps)
	if err != nil {
		c.s.protoErrs.Inc()
		return true, errors.Join(err, c.sendErr(1, wire.ErrBadHandshake()))
	}
	plugin := cu.AuthPlugin
	if c.caps&wire.ClientPluginAuth == 0 {
		plugin = wire.NativePassword
	}
	seq, err := c.authenticate(cu.User, plugin, cu.AuthResponse, 1)
	if err != nil {
		return true, err
	}
	coll := uint8(cu.Collation)
	ctx, cancel := context.WithTimeout(context.Background(), c.st.cfg.ConnectTimeout.D())
	defer cancel()
	if err := c.up.ChangeUser(ctx, c.sessionParams(coll, cu.DB, cu.Attrs)); err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			// The session is in no known state after a refused reset.
			return true, errors.Join(err, c.sendErr(seq, we))
		}
		c.seq = seq - 1
		return true, errUpstream{err}
	}
	c.seq = seq
	c.writePacket(seq, c.up.OK())
	return false, nil
}
