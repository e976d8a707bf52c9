package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// Limits of a single upload (PutObject, UploadPart), S3's.
const (
	maxPutSize = 5 << 30
	// memSpool is how much of a body of unknown length is held in
	// memory; beyond it, the body goes to a file in spool_dir.
	memSpool = 1 << 20
)

// errRequestEnded is what a read of an upload's body gets once the
// upload's request has returned (the HTTP transport may still try).
var errRequestEnded = errors.New("s3 backend: the upload's request has ended")

// sendBody is an upload's body as the HTTP transport reads it: exactly
// size bytes of r, the last one held back until r has returned io.EOF
// right after it. The upstream completes a request only once it has all
// Content-Length bytes, so a body that fails — even on the read that
// returns its last bytes — or that is longer or shorter than size, can
// never be committed upstream: its request is cut short instead.
type sendBody struct {
	mu    sync.Mutex
	r     io.Reader
	size  int64
	n     int64 // bytes handed to the transport
	err   error // why the body failed (sticky)
	ended bool  // the request returned: r is no longer read
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.ended:
		return 0, errRequestEnded
	case b.err != nil:
		return 0, b.err
	case b.n == b.size:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if rest := b.size - 1 - b.n; rest > 0 {
		if int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := b.r.Read(p)
		b.n += int64(n)
		if err == io.EOF {
			err = blob.ErrIncompleteBody // shorter than size
		}
		if err != nil {
			b.err = err
		}
		return n, err
	}
	// Only the last byte is left: read it, and then the end of the body.
	var buf [2]byte
	got := 0
	for tries := 0; ; tries++ {
		n, err := b.r.Read(buf[got:])
		got += n
		switch {
		case got > 1:
			b.err = blob.ErrIncompleteBody // longer than size
		case err == io.EOF && got == 1:
			p[0] = buf[0]
			b.n++
			return 1, nil
		case err == io.EOF:
			b.err = blob.ErrIncompleteBody
		case err != nil:
			b.err = err
		case n == 0 && tries > 100:
			b.err = io.ErrNoProgress
		default:
			continue
		}
		return 0, b.err
	}
}

// end stops the transport from reading r any further, waiting for a
// read in progress, and returns why the body failed, if it did.
func (b *sendBody) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = true
	if b.err == nil && b.n != b.size {
		// Not read to the end: the request failed for another reason.
		return nil
	}
	return b.err
}

// upload sends an upload's body with send, which makes the SDK call
// with the reader and length to send, and returns send's error mapped,
// or the body's own failure, which comes first: a client whose body
// failed hears about its body.
func (s *Store) upload(ctx context.Context, op string, body io.Reader, size int64, send func(r io.Reader, size int64) error) error {
	if size < 0 {
		sp, err := s.spool(body)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		defer sp.close()
		body, size = sp.r, sp.size
	}
	if size > maxPutSize {
		return blob.ErrEntityTooLarge
	}
	if size == 0 {
		// The transport reads nothing of an empty body: read its end
		// here, where a failing body shows its error.
		if err := expectEnd(body); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return s.mapError(ctx, op, send(nil, 0), nil)
	}
	sb := &sendBody{r: body, size: size}
	err := send(sb, size)
	if berr := sb.end(); berr != nil {
		return fmt.Errorf("%s: %w", op, berr)
	}
	return s.mapError(ctx, op, err, nil)
}

// expectEnd reads a body that should be empty.
func expectEnd(r io.Reader) error {
	var b [1]byte
	for range 100 {
		n, err := r.Read(b[:])
		if n > 0 {
			return blob.ErrIncompleteBody
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// spooled is a body of unknown length read to its end, in memory or in
// a file, and its length.
type spooled struct {
	r     io.Reader
	size  int64
	file  *os.File
	unlnk bool // the file is unlinked already
}

func (sp *spooled) close() {
	if sp.file != nil {
		sp.file.Close()
		if !sp.unlnk {
			os.Remove(sp.file.Name())
		}
	}
}

// spool reads a body of unknown length to its end, so that it can be
// sent with the Content-Length S3 requires: in memory up to memSpool
// bytes, in a file beyond. A body that fails fails here, before
// anything is sent.
func (s *Store) spool(body io.Reader) (*spooled, error) {
	var mem bytes.Buffer
	n, err := mem.ReadFrom(io.LimitReader(body, memSpool+1))
	if err != nil {
		return nil, err
	}
	if n <= memSpool {
		return &spooled{r: bytes.NewReader(mem.Bytes()), size: n}, nil
	}
	f, err := os.CreateTemp(s.cfg.SpoolDir, "mecha-s3-spool-*")
	if err != nil {
		return nil, spoolError(err)
	}
	// Unlinked at once where the system allows: nothing is left behind,
	// whatever happens to the process.
	sp := &spooled{file: f, unlnk: os.Remove(f.Name()) == nil}
	if _, err := f.Write(mem.Bytes()); err != nil {
		sp.close()
		return nil, spoolError(err)
	}
	var readErr error
	m, err := io.Copy(f, io.LimitReader(readerFunc(func(p []byte) (int, error) {
		k, err := body.Read(p)
		if err != nil && err != io.EOF {
			readErr = err
		}
		return k, err
	}), maxPutSize+1-n))
	switch {
	case readErr != nil:
		sp.close()
		return nil, readErr
	case err != nil:
		sp.close()
		return nil, spoolError(err)
	case n+m > maxPutSize:
		sp.close()
		return nil, blob.ErrEntityTooLarge
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		sp.close()
		return nil, spoolError(err)
	}
	sp.r, sp.size = f, n+m
	return sp, nil
}

// spoolError is a failure to write a spool file.
func spoolError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("spool a body of unknown length: %w (%v)", blob.ErrStorageFull, err)
	}
	return fmt.Errorf("spool a body of unknown length: %w (%v)", blob.ErrInternal, err)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
