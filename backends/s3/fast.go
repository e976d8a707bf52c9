package s3

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// fastPath sends GetObject and PutObject, the most frequent requests, as
// plain HTTP requests signed with the SDK's signer, without the SDK's
// operation machinery: per request that is a fifth of the allocations
// and, on small objects, most of the gateway's CPU (bench/s3bench's
// s3backend suite). A GetObject whose answer is not a success is sent
// again through the SDK, which retries, classifies and maps errors as
// for every other operation; a PutObject (never retried: its body is a
// one-shot stream) gets the error the SDK would have made of the answer.
type fastPath struct {
	http     *http.Client
	signer   *v4.Signer
	creds    *aws.Credentials // nil: anonymous
	endpoint string           // without a trailing slash
	region   string
}

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// answer is what a GetObject answer says of the object.
type answer struct {
	h            headers
	body         io.ReadCloser
	length       int64
	contentRange string
	tagCount     int32
}

// get sends GetObject; ok is false when the caller must use the SDK.
func (f *fastPath) get(ctx context.Context, s *Store, bucket, key string, rng *blob.Range) (answer, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.endpoint+"/"+escape(bucket, "")+"/"+escape(key, "/"), nil)
	if err != nil {
		return answer{}, false
	}
	req.Header.Set("x-amz-checksum-mode", "ENABLED")
	req.Header.Set("x-amz-content-sha256", emptySHA256)
	if rng != nil {
		req.Header.Set("Range", rangeHeader(rng))
	}
	if f.creds != nil {
		if err := f.signer.SignHTTP(ctx, *f.creds, req, emptySHA256, "s3", f.region, time.Now()); err != nil {
			return answer{}, false
		}
	}
	st := s.ops.Get(operationIndex["GetObject"])
	st.Calls.Inc()
	began := time.Now()
	resp, err := f.http.Do(req)
	st.Latency.Observe(time.Since(began))
	if err != nil {
		st.Errors.Inc()
		return answer{}, false
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		st.Errors.Inc()
		io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
		return answer{}, false
	}
	hd := resp.Header
	str := func(name string) *string {
		if v := hd.Get(name); v != "" {
			return &v
		}
		return nil
	}
	a := answer{body: resp.Body, length: resp.ContentLength, contentRange: hd.Get("Content-Range")}
	a.h = headers{etag: str("ETag"), contentType: str("Content-Type"), contentEncoding: str("Content-Encoding"),
		contentDisposition: str("Content-Disposition"), contentLanguage: str("Content-Language"), cacheControl: str("Cache-Control"),
		expires: str("Expires"), crc32: str("x-amz-checksum-crc32"), crc32c: str("x-amz-checksum-crc32c"),
		crc64nvme: str("x-amz-checksum-crc64nvme"), sha1: str("x-amz-checksum-sha1"), sha256: str("x-amz-checksum-sha256")}
	if t, err := http.ParseTime(hd.Get("Last-Modified")); err == nil {
		a.h.lastModified = &t
	}
	for name, vs := range hd {
		if m, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-"); ok && len(vs) > 0 {
			if a.h.meta == nil {
				a.h.meta = map[string]string{}
			}
			a.h.meta[m] = vs[0]
		}
	}
	if n, err := strconv.ParseInt(hd.Get("x-amz-mp-parts-count"), 10, 32); err == nil {
		parts := int32(n)
		a.h.partsCount = &parts
	}
	if n, err := strconv.ParseInt(hd.Get("x-amz-tagging-count"), 10, 32); err == nil {
		a.tagCount = int32(n)
	}
	return a, true
}

// put sends PutObject with body r of size bytes (never retried: the body
// is a one-shot stream) and returns the ETag and the upstream's Date. Its
// errors are those the SDK would give for the same answer, so that
// mapError treats them alike: a *smithyhttp.ResponseError holding the
// S3 error of the answer's XML, or the transport's own error.
func (f *fastPath) put(ctx context.Context, s *Store, bucket, key string, r io.Reader, size int64, h *putHeaders, o *blob.PutOptions) (string, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.endpoint+"/"+escape(bucket, "")+"/"+escape(key, "/"), r)
	if err != nil {
		return "", time.Time{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.GetBody = nil // a one-shot body: never resent
	hd := req.Header
	for name, v := range map[string]*string{"Content-Type": h.contentType, "Content-Encoding": h.contentEncoding,
		"Content-Disposition": h.contentDisposition, "Content-Language": h.contentLanguage, "Cache-Control": h.cacheControl,
		"x-amz-tagging": h.tagging} {
		if v != nil {
			hd.Set(name, *v)
		}
	}
	if h.expires != "" {
		hd.Set("Expires", h.expires)
	}
	for k, v := range h.meta {
		hd.Set("x-amz-meta-"+k, v)
	}
	if o.IfNoneMatch {
		hd.Set("If-None-Match", "*")
	}
	if o.IfMatch != "" {
		hd.Set("If-Match", quoteETag(o.IfMatch))
	}
	if alg, v := pickChecksum(o.Checksums); alg != "" {
		hd.Set("x-amz-checksum-"+strings.ToLower(alg), v)
	}
	hd.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
	if f.creds != nil {
		if err := f.signer.SignHTTP(ctx, *f.creds, req, "UNSIGNED-PAYLOAD", "s3", f.region, time.Now()); err != nil {
			return "", time.Time{}, err
		}
	}
	st := s.ops.Get(operationIndex["PutObject"])
	st.Calls.Inc()
	began := time.Now()
	resp, err := f.http.Do(req)
	st.Latency.Observe(time.Since(began))
	if err != nil {
		st.Errors.Inc()
		return "", time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		st.Errors.Inc()
		return "", time.Time{}, responseError(resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		date = time.Now().UTC()
	}
	return resp.Header.Get("ETag"), date, nil
}

// responseError is the error the SDK makes of an S3 error answer: the
// code and message of its XML document (none for an answer without one,
// which mapError then maps by status).
func responseError(resp *http.Response) error {
	var doc struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	api := &smithy.GenericAPIError{Code: http.StatusText(resp.StatusCode), Message: http.StatusText(resp.StatusCode)}
	if xml.Unmarshal(b, &doc) == nil && doc.Code != "" {
		api.Code, api.Message = doc.Code, doc.Message
	}
	return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: api}
}
