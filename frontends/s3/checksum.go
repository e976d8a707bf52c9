package s3

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strings"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// checksumAlgorithms are S3's additional checksums, by the name in
// x-amz-checksum-<name> (lower case) and x-amz-sdk-checksum-algorithm.
var checksumAlgorithms = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// crc64NVME is the CRC-64/NVME polynomial, reversed as hash/crc64 takes it.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// checkedBody reads a request body and, at its end, checks Content-MD5
// and the additional checksum (from a header, or from the trailer of an
// aws-chunked body), failing the read that would have returned io.EOF
// when one does not match: the store then drops what it wrote.
type checkedBody struct {
	r        io.Reader
	size     int64 // -1: unknown
	n        int64
	md5      hash.Hash
	wantMD5  []byte
	alg      string // lower case, "" when none
	sum      hash.Hash
	want     string // base64; "" when it comes in the trailer
	trailer  func() http.Header
	sums     map[string]string // filled with the checksum once verified
	finished bool
}

// body returns the request's body, checked; sums (when not nil) receives
// the additional checksum, by upper-case algorithm name, for the store.
func (rq *request) body(sums map[string]string) (*checkedBody, error) {
	h := rq.r.Header
	c := &checkedBody{r: rq.auth.Body, size: rq.auth.DecodedLength, trailer: rq.auth.Trailer, sums: sums}
	if v := h.Get("Content-MD5"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) != md5.Size {
			return nil, errInvalidDigest
		}
		c.md5, c.wantMD5 = md5.New(), b
	}
	// The checksum named in a header, in the trailer, or only by the
	// algorithm (then computed and kept).
	alg := strings.ToLower(h.Get("x-amz-sdk-checksum-algorithm"))
	for name := range checksumAlgorithms {
		if v := h.Get("x-amz-checksum-" + name); v != "" {
			if c.alg != "" {
				return nil, &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."}
			}
			c.alg, c.want = name, v
		}
	}
	if t := strings.ToLower(h.Get("x-amz-trailer")); t != "" {
		name, ok := strings.CutPrefix(t, "x-amz-checksum-")
		if !ok || checksumAlgorithms[name] == nil || c.alg != "" {
			return nil, &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "The value specified in the x-amz-trailer header is not supported"}
		}
		c.alg = name
	}
	if c.alg == "" && alg != "" {
		if checksumAlgorithms[alg] == nil {
			return nil, &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "Value for x-amz-sdk-checksum-algorithm header is invalid."}
		}
		c.alg = alg
	}
	if alg != "" && alg != c.alg {
		return nil, &blob.Error{Code: "InvalidRequest", Status: http.StatusBadRequest, Message: "Value for x-amz-sdk-checksum-algorithm header is invalid."}
	}
	if c.alg != "" {
		c.sum = checksumAlgorithms[c.alg]()
		if c.want != "" && sums != nil {
			sums[strings.ToUpper(c.alg)] = c.want
		}
	}
	return c, nil
}

func (c *checkedBody) Read(p []byte) (int, error) {
	if c.finished {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if c.md5 != nil {
			c.md5.Write(p[:n])
		}
		if c.sum != nil {
			c.sum.Write(p[:n])
		}
		if c.size >= 0 && c.n > c.size {
			return 0, blob.ErrIncompleteBody
		}
	}
	if err == io.EOF {
		if verr := c.verify(); verr != nil {
			return n, verr
		}
		c.finished = true
	}
	return n, err
}

// verify checks what the body's end makes known.
func (c *checkedBody) verify() error {
	if c.size >= 0 && c.n != c.size {
		return blob.ErrIncompleteBody
	}
	if c.md5 != nil && !bytes.Equal(c.md5.Sum(nil), c.wantMD5) {
		return errBadDigest
	}
	if c.sum == nil {
		return nil
	}
	got := base64.StdEncoding.EncodeToString(c.sum.Sum(nil))
	want := c.want
	if want == "" && c.trailer != nil {
		want = c.trailer().Get("x-amz-checksum-" + c.alg)
	}
	if want != "" && want != got {
		return &blob.Error{Code: "BadDigest", Status: http.StatusBadRequest,
			Message: "The " + strings.ToUpper(c.alg) + " you specified did not match the calculated checksum."}
	}
	if c.sums != nil {
		c.sums[strings.ToUpper(c.alg)] = got
	}
	return nil
}

// drain reads what is left of the body (a request answered without
// reading it all), up to a bound, so that the connection can be reused.
func (c *checkedBody) drain() { io.CopyN(io.Discard, c.r, 1<<20) }
