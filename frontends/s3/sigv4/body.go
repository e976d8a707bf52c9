package sigv4

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// plainBody is an UNSIGNED-PAYLOAD body: the bytes as they come, with a
// body that ends before its Content-Length reported as S3 does.
type plainBody struct {
	body io.ReadCloser
}

// Read reads from the request body.
func (b *plainBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	return n, bodyError(err)
}

// Close closes the request body.
func (b *plainBody) Close() error { return b.body.Close() }

// hashedBody is a body whose SHA-256 x-amz-content-sha256 declared: the
// bytes pass through as they come and are hashed on the way; the end of
// the body is reported only if the hash matches.
type hashedBody struct {
	body io.ReadCloser
	hash hash.Hash
	want [sha256.Size]byte
	err  error
}

// Read reads from the request body. At its end it returns io.EOF if the
// hash matches and ErrContentSHA256Mismatch if not.
func (b *hashedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	b.hash.Write(p[:n])
	if err == io.EOF {
		var sum [sha256.Size]byte
		if b.hash.Sum(sum[:0]); sum != b.want {
			err = ErrContentSHA256Mismatch
		}
	}
	b.err = bodyError(err)
	return n, b.err
}

// Close closes the request body.
func (b *hashedBody) Close() error { return b.body.Close() }

// bodyError turns a body that ended before its Content-Length into S3's
// IncompleteBody; other errors pass as they are.
func bodyError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return blob.ErrIncompleteBody
	}
	return err
}
