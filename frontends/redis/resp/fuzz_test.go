package resp

import (
	"bytes"
	"testing"
)

// FuzzParse checks that no input crashes the parser or makes it claim
// more than it was given, that it parses the same whole or in pieces, and
// that what it would forward unchanged parses back to the same command.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "PING\r\n", "*0\r\n", "*-1\r\n", "\r\n",
		"ECHO \"a\\x41\\n\" 'b\\'c'\r\n", "*1\r\n$-1\r\n", "*1\rx$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*1\r\n$4\r\nPING\r\n",
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, input []byte, split uint8) {
		if len(input) > 1<<16 {
			return
		}
		limits := Limits{MaxBulkLen: 1 << 16, MaxMultibulkLen: 1 << 10, MaxInlineLen: 1 << 12}
		whole := &Parser{Limits: limits, Authenticated: true}
		var wholeCmds [][]byte
		var wholeErr error
		buf := input
		for len(buf) > 0 {
			cmd, n, err := whole.Parse(buf)
			if err != nil {
				wholeErr = err
				break
			}
			if n < 0 || n > len(buf) {
				t.Fatalf("consumed %d of %d", n, len(buf))
			}
			if n == 0 {
				break
			}
			size := 0
			for _, a := range cmd.Args {
				size += len(a)
			}
			if size > n {
				t.Fatalf("args of %d bytes from %d input bytes", size, n)
			}
			if cmd.Raw != nil {
				again := &Parser{Limits: limits, Authenticated: true}
				c2, n2, err := again.Parse(cmd.Raw)
				if err != nil || n2 != len(cmd.Raw) || !bytes.Equal(bytes.Join(c2.Args, []byte{0}), bytes.Join(cmd.Args, []byte{0})) {
					t.Fatalf("raw %q does not parse back: %v", cmd.Raw, err)
				}
			}
			wholeCmds = append(wholeCmds, bytes.Join(cmd.Args, []byte{0}))
			buf = buf[n:]
		}

		// The same input in pieces of split+1 bytes.
		step := int(split) + 1
		pieces := &Parser{Limits: limits, Authenticated: true}
		var pending []byte
		var pieceCmds [][]byte
		var pieceErr error
	feed:
		for i := 0; i < len(input); i += step {
			pending = append(pending, input[i:min(i+step, len(input))]...)
			for len(pending) > 0 {
				cmd, n, err := pieces.Parse(pending)
				if err != nil {
					pieceErr = err
					break feed
				}
				if n == 0 {
					break
				}
				pieceCmds = append(pieceCmds, bytes.Join(cmd.Args, []byte{0}))
				pending = append([]byte(nil), pending[n:]...)
			}
		}
		if (wholeErr == nil) != (pieceErr == nil) && !(wholeErr != nil && len(pieceCmds) >= len(wholeCmds)) {
			// Limits on header lines can trip at different points when a
			// header is split; the commands before must agree.
			if wholeErr == nil {
				t.Fatalf("pieces failed (%v) where whole did not", pieceErr)
			}
		}
		n := min(len(wholeCmds), len(pieceCmds))
		for i := 0; i < n; i++ {
			if !bytes.Equal(wholeCmds[i], pieceCmds[i]) {
				t.Fatalf("command %d differs: whole %q pieces %q", i, wholeCmds[i], pieceCmds[i])
			}
		}
	})
}

// FuzzReplyScanner checks that the scanner never crashes and finds the
// same reply boundaries whatever the chunking.
func FuzzReplyScanner(f *testing.F) {
	f.Add([]byte("+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n"), uint8(1))
	f.Add([]byte("%1\r\n+a\r\n|1\r\n+k\r\n+v\r\n:1\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, input []byte, split uint8) {
		if len(input) > 1<<16 {
			return
		}
		bounds := func(step int) ([]int, bool) {
			var s ReplyScanner
			var out []int
			pos := 0
			for pos < len(input) {
				p := input[pos:min(pos+step, len(input))]
				for len(p) > 0 {
					n, _, done, err := s.Scan(p)
					if err != nil {
						return out, false
					}
					if n <= 0 || n > len(p) {
						t.Fatalf("scanned %d of %d", n, len(p))
					}
					pos += n
					p = p[n:]
					if done {
						out = append(out, pos)
					}
				}
			}
			return out, true
		}
		whole, ok1 := bounds(len(input) + 1)
		split1, ok2 := bounds(int(split) + 1)
		n := min(len(whole), len(split1))
		for i := 0; i < n; i++ {
			if whole[i] != split1[i] {
				t.Fatalf("boundary %d: whole %d, split %d", i, whole[i], split1[i])
			}
		}
		if ok1 && ok2 && len(whole) != len(split1) {
			t.Fatalf("%d replies whole, %d split", len(whole), len(split1))
		}
	})
}
