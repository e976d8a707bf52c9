package sqlengine

// The engine never opens server-side cursors. A client may ask for one in
// COM_STMT_EXECUTE (flags CURSOR_TYPE_READ_ONLY and friends, as Connector/J
// with useCursorFetch or the C API with STMT_ATTR_CURSOR_TYPE do); MySQL
// lets a server answer such a request with a plain result set, and clients
// tell the two apart by SERVER_STATUS_CURSOR_EXISTS in the status flags
// after the column definitions. Two reasons to answer that way here:
//
//   - an open cursor is a statement still running, between the client's
//     fetches, so it holds the global lock: one client that opens a cursor
//     and stops fetching would stop every other client (error 1205);
//   - vitess runs a cursor's statement on a goroutine of its own, and it
//     and go-mysql-server then read and write the connection's status flags
//     from both goroutines without synchronisation (vitess conn.go
//     execPrepareStatement against go-mysql-server handler.go
//     resultForDefaultIter and setConnStatusFlags), a data race the race
//     detector reports.
//
// vitess takes the cursor type from the packet itself, so the server end of
// each in-process connection clears the cursor bits of every COM_STMT_EXECUTE
// on its way in. cursorFilter follows the client's packet framing for that.

const (
	comStmtExecuteByte = 0x17
	// cursorFlagsOffset is the position of the flags byte in a
	// COM_STMT_EXECUTE payload: command (1), statement id (4), flags.
	cursorFlagsOffset = 5
	// cursorTypeBits are CURSOR_TYPE_READ_ONLY, _FOR_UPDATE and _SCROLLABLE.
	cursorTypeBits = 0x07
)

// cursorFilter tracks MySQL packet boundaries in the client-to-server byte
// stream and clears the cursor type bits of COM_STMT_EXECUTE commands.
type cursorFilter struct {
	hdr       [4]byte
	hdrN      int  // header bytes collected
	remaining int  // payload bytes of the current packet not yet seen
	pos       int  // offset of the next payload byte
	command   bool // the current packet starts a command (sequence id 0)
	execute   bool // ... and it is COM_STMT_EXECUTE
}

// filter rewrites p, the next bytes of the stream, in place.
func (f *cursorFilter) filter(p []byte) {
	for i := 0; i < len(p); {
		if f.remaining == 0 {
			f.hdr[f.hdrN] = p[i]
			f.hdrN++
			i++
			if f.hdrN == 4 {
				f.hdrN = 0
				f.remaining = int(f.hdr[0]) | int(f.hdr[1])<<8 | int(f.hdr[2])<<16
				f.pos = 0
				// A command is the first packet of its exchange; packets
				// that continue a long payload, and answers within an
				// exchange (authentication), have a later sequence id.
				f.command = f.hdr[3] == 0
				f.execute = false
			}
			continue
		}
		if f.command && f.pos <= cursorFlagsOffset {
			switch f.pos {
			case 0:
				f.execute = p[i] == comStmtExecuteByte
			case cursorFlagsOffset:
				if f.execute {
					p[i] &^= cursorTypeBits
				}
			}
			f.pos++
			f.remaining--
			i++
			continue
		}
		n := min(f.remaining, len(p)-i)
		i += n
		f.pos += n
		f.remaining -= n
	}
}
