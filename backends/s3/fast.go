package s3

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// fastPath sends GetObject, the most frequent request, as a plain HTTP
// request signed with the SDK's signer, without the SDK's operation
// machinery: per request that is a fifth of the allocations and, on
// small objects, most of the gateway's CPU (bench/s3bench's s3backend
// suite). Only successful answers are read this way; anything else (an
// error status, no answer) is sent again through the SDK, which retries,
// classifies and maps errors as for every other operation.
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
