package sigv4

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strings"
)

// The bounds of the aws-chunked decoder. Data passes through without
// being held, so none of them depends on the size of the body.
const (
	// MinChunkSize is the smallest size of a chunk that is not the last
	// one with data, as S3 requires.
	MinChunkSize = 8192
	// MaxSignedChunkSize is the largest signed chunk: the bytes a chunk
	// passes on before its signature is checked. SDKs send 64 KiB. An
	// unsigned chunk is bounded only by x-amz-decoded-content-length.
	MaxSignedChunkSize = 16 << 20
	// MaxChunkLineSize is the longest line (with its CRLF) that starts a
	// chunk: the size in hex and the chunk signature.
	MaxChunkLineSize = 256
	// MaxTrailerLineSize is the longest line of the trailing headers.
	MaxTrailerLineSize = 1024
	// MaxTrailerSize is the most bytes all trailing headers, with the
	// trailer signature and the empty line that ends them, may take.
	MaxTrailerSize = 8 << 10
	// maxHexDigits is the most hex digits of a chunk size: 60 bits, which
	// cannot overflow an int64.
	maxHexDigits = 15
	// maxTrailingNewlines is how many CR or LF bytes may follow the end of
	// the trailing headers (minio-go ends its unsigned trailer with one
	// CRLF more than it needs).
	maxTrailingNewlines = 4
	// readBufferSize is the decoder's read buffer; every line must fit.
	readBufferSize = 4096
)

// The states of the decoder.
const (
	stateHeader  = iota // before the line that starts a chunk
	stateData           // inside the data of a chunk
	stateDataEnd        // after the data, before its CRLF
	stateDone           // the body ended well
)

// chunkedReader decodes an aws-chunked body as it is read:
//
//	<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n … 0[;chunk-signature=<sig>]\r\n
//	[<name>:<value>\r\n …][x-amz-trailer-signature:<sig>\r\n]\r\n
//
// It hashes the data of each chunk as it passes and checks the chunk's
// signature at the chunk's end, so an error comes, at the latest, with
// the Read after the last byte of a bad chunk, and never after io.EOF.
type chunkedReader struct {
	src  *bufio.Reader
	body io.Closer

	signed        bool            // each chunk carries a signature
	allowTrailers bool            // trailing headers may follow the last chunk
	signedTrailer bool            // the trailing headers carry a signature
	declared      map[string]bool // the names x-amz-trailer announced

	chain chain
	mac   hash.Hash             // HMAC under the signing key, reused
	hash  hash.Hash             // SHA-256 of the current chunk or trailer
	prev  [2 * sha256.Size]byte // hex of the previous signature
	sig   [sha256.Size]byte     // signature the current chunk claims
	sum   [sha256.Size]byte     // scratch for hashes
	mine  [sha256.Size]byte     // scratch for computed signatures
	sts   []byte                // scratch for strings to sign

	want, got, left int64 // declared length, bytes decoded, bytes left in the chunk
	prevSmall       bool  // the previous chunk was below MinChunkSize
	state           int
	trailer         http.Header
	err             error
}

// newChunkedReader decodes body in the given streaming mode. decoded is
// x-amz-decoded-content-length, declared the names x-amz-trailer gave.
func newChunkedReader(body io.ReadCloser, mode payloadMode, c chain, decoded int64, declared map[string]bool) *chunkedReader {
	cr := &chunkedReader{
		src:           bufio.NewReaderSize(body, readBufferSize),
		body:          body,
		signed:        mode.signedChunks(),
		allowTrailers: mode == payloadStreamingTrailer || mode == payloadStreamingUnsignedTrailer,
		declared:      declared,
		chain:         c,
		hash:          sha256.New(),
		sts:           make([]byte, 0, 256),
		want:          decoded,
	}
	cr.signedTrailer = cr.signed && cr.allowTrailers
	if cr.signed {
		cr.mac = hmac.New(sha256.New, c.key)
		copy(cr.prev[:], c.seed)
	}
	return cr
}

// Read decodes data into p.
func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.err == nil {
		switch c.state {
		case stateHeader:
			c.err = c.readChunkLine()
		case stateData:
			if len(p) == 0 {
				return 0, nil
			}
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.src.Read(p)
			c.left -= int64(n)
			c.got += int64(n)
			if c.signed {
				c.hash.Write(p[:n])
			}
			if c.left == 0 {
				c.state = stateDataEnd
			}
			if err != nil {
				c.err = readError(err, ErrIncompleteChunkedBody)
			}
			if n > 0 {
				return n, nil
			}
		case stateDataEnd:
			c.err = c.endChunk()
		case stateDone:
			return 0, io.EOF
		}
	}
	return 0, c.err
}

// Close closes the request body.
func (c *chunkedReader) Close() error { return c.body.Close() }

// trailers returns the trailing headers once the body ended well.
func (c *chunkedReader) trailers() http.Header {
	if c.state != stateDone || c.err != nil {
		return nil
	}
	return c.trailer.Clone()
}

// readChunkLine reads the line that starts a chunk.
func (c *chunkedReader) readChunkLine() error {
	line, err := c.readLine(MaxChunkLineSize, true, ErrIncompleteChunkedBody)
	if err != nil {
		return err
	}
	digits := 0
	for digits < len(line) && isHex(line[digits]) {
		digits++
	}
	if digits == 0 || digits > maxHexDigits {
		return ErrIncompleteChunkedBody
	}
	var size int64
	for _, d := range line[:digits] {
		size = size<<4 | int64(unhex(d))
	}
	ext := line[digits:]
	if c.signed {
		const prefix = ";chunk-signature="
		if !bytes.HasPrefix(ext, []byte(prefix)) || len(ext) != len(prefix)+2*sha256.Size {
			return ErrIncompleteChunkedBody
		}
		if _, err := hex.Decode(c.sig[:], ext[len(prefix):]); err != nil {
			return ErrSignatureDoesNotMatch
		}
	} else if len(ext) != 0 {
		return ErrIncompleteChunkedBody
	}
	if size == 0 {
		return c.finish()
	}
	if c.prevSmall {
		return ErrInvalidChunkSize
	}
	if c.signed && size > MaxSignedChunkSize || size > c.want-c.got {
		return ErrIncompleteChunkedBody
	}
	c.prevSmall = size < MinChunkSize
	c.left = size
	c.hash.Reset()
	c.state = stateData
	return nil
}

// endChunk reads the CRLF after the data of a chunk and checks the
// chunk's signature.
func (c *chunkedReader) endChunk() error {
	for _, want := range [2]byte{'\r', '\n'} {
		b, err := c.src.ReadByte()
		if err != nil {
			return readError(err, ErrIncompleteChunkedBody)
		}
		if b != want {
			return ErrIncompleteChunkedBody
		}
	}
	if c.signed && !c.verifyChunk() {
		return ErrSignatureDoesNotMatch
	}
	c.state = stateHeader
	return nil
}

// finish handles the last chunk (of size zero): its signature, the
// decoded length, the trailing headers and the end of the body.
func (c *chunkedReader) finish() error {
	if c.signed {
		c.hash.Reset()
		if !c.verifyChunk() {
			return ErrSignatureDoesNotMatch
		}
	}
	if c.got != c.want {
		return ErrIncompleteChunkedBody
	}
	if err := c.readTrailers(); err != nil {
		return err
	}
	for i := 0; ; i++ {
		b, err := c.src.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return readError(err, ErrIncompleteChunkedBody)
		}
		if i >= maxTrailingNewlines || b != '\r' && b != '\n' {
			return ErrIncompleteChunkedBody
		}
	}
	c.state = stateDone
	return nil
}

// readTrailers reads the trailing headers up to the empty line that ends
// them, and checks them against x-amz-trailer and their signature.
func (c *chunkedReader) readTrailers() error {
	c.trailer = http.Header{}
	c.hash.Reset()
	total, skipped, signature := 0, false, false
	for {
		line, err := c.readLine(MaxTrailerLineSize, false, ErrMalformedTrailer)
		if err == ErrIncompleteChunkedBody && skipped {
			// The body ended where it could have: the trailer
			// signature is what is missing.
			return ErrMalformedTrailer
		}
		if err != nil {
			return err
		}
		if total += len(line) + 2; total > MaxTrailerSize {
			return ErrMalformedTrailer
		}
		if len(line) == 0 {
			// minio-go puts an empty line between its signed trailing
			// headers and their signature.
			if c.signedTrailer && !signature && !skipped && len(c.trailer) > 0 {
				skipped = true
				continue
			}
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || signature {
			return ErrMalformedTrailer
		}
		lower := strings.ToLower(string(bytes.TrimSpace(name)))
		if c.signedTrailer && lower == "x-amz-trailer-signature" {
			if !decodeInto(c.sig[:], bytes.TrimSpace(value)) {
				return ErrSignatureDoesNotMatch
			}
			signature = true
			continue
		}
		key := http.CanonicalHeaderKey(lower)
		if _, dup := c.trailer[key]; dup || !c.allowTrailers || skipped || !c.declared[lower] {
			return ErrMalformedTrailer
		}
		c.hash.Write(line)
		c.hash.Write([]byte{'\n'})
		c.trailer.Set(key, string(bytes.TrimSpace(value)))
	}
	if len(c.trailer) != len(c.declared) || c.signedTrailer && !signature {
		return ErrMalformedTrailer
	}
	if c.signedTrailer && !c.verify("AWS4-HMAC-SHA256-TRAILER", false) {
		return ErrSignatureDoesNotMatch
	}
	return nil
}

// verifyChunk checks the signature of the chunk whose data c.hash holds.
func (c *chunkedReader) verifyChunk() bool {
	return c.verify("AWS4-HMAC-SHA256-PAYLOAD", true)
}

// verify computes the signature of a chunk or of the trailer from the
// previous signature and the hash in c.hash, compares it in constant time
// with c.sig, and makes it the previous signature.
func (c *chunkedReader) verify(kind string, chunk bool) bool {
	s := append(c.sts[:0], kind...)
	s = append(s, '\n')
	s = append(s, c.chain.stamp...)
	s = append(s, '\n')
	s = append(s, c.chain.scope...)
	s = append(s, '\n')
	s = append(s, c.prev[:]...)
	s = append(s, '\n')
	if chunk {
		s = append(s, emptySHA256...)
		s = append(s, '\n')
	}
	s = hex.AppendEncode(s, c.hash.Sum(c.sum[:0]))
	c.sts = s
	c.mac.Reset()
	c.mac.Write(s)
	mine := c.mac.Sum(c.mine[:0])
	hex.Encode(c.prev[:], mine)
	return hmac.Equal(mine, c.sig[:])
}

// readLine reads one line of at most max bytes with its terminator, which
// is CRLF, or with crlf unset LF with or without CR before it. The line
// returned, without its terminator, is valid until the next read. A line
// too long or without CRLF is the error bad.
func (c *chunkedReader) readLine(max int, crlf bool, bad error) ([]byte, error) {
	line, err := c.src.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > max:
		return nil, bad
	case err != nil:
		return nil, readError(err, ErrIncompleteChunkedBody)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1], nil
	}
	if crlf {
		return nil, bad
	}
	return line, nil
}

// decodeInto decodes exactly 2*len(dst) hex digits into dst.
func decodeInto(dst []byte, s []byte) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, s)
	return err == nil
}

// readError turns the end of the input, where more was due, into
// truncated; other errors of the connection pass as they are.
func readError(err, truncated error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return truncated
	}
	return err
}
