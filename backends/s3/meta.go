package s3

import (
	"encoding/base64"
	"maps"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// encodeMeta returns user metadata as it is sent upstream: a value that
// an HTTP header cannot carry as it is — non-ASCII, control characters,
// white space at either end (which HTTP drops) — is sent RFC 2047
// encoded (=?UTF-8?B?...?=), the form S3 itself uses for such values.
func encodeMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if needsEncoding(v) {
			v = "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
		}
		out[k] = v
	}
	return out
}

func needsEncoding(v string) bool {
	if v != strings.TrimSpace(v) || strings.HasPrefix(v, "=?") {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c >= 0x7f {
			return true
		}
	}
	return false
}

var wordDecoder mime.WordDecoder

// decodeMeta undoes encodeMeta, and decodes the RFC 2047 words S3 sends
// for values that are not ASCII.
func decodeMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if strings.Contains(v, "=?") {
			if d, err := wordDecoder.DecodeHeader(v); err == nil {
				v = d
			}
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

// escape percent-encodes s for a URL or a query, leaving only the
// unreserved characters (RFC 3986) and those in keep.
func escape(s, keep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~"+keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)+strconv.FormatUint(uint64(c)&15, 16)))
	}
	return b.String()
}

// encodeTags is a tag set as the x-amz-tagging header carries it.
func encodeTags(tags map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(tags) {
		parts = append(parts, escape(k, "")+"="+escape(tags[k], ""))
	}
	return strings.Join(parts, "&")
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// checksumOrder is the order in which a checksum is chosen to forward
// when a caller gives several (S3 takes one per request).
var checksumOrder = []string{"CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1"}

// pickChecksum returns the checksum to send upstream, if any.
func pickChecksum(sums map[string]string) (alg, value string) {
	for _, a := range checksumOrder {
		if v := sums[a]; v != "" {
			return a, v
		}
	}
	return "", ""
}

// defaultContentType is the type S3 gives an object stored without one.
const defaultContentType = "binary/octet-stream"

// headers are the parts of a GetObject or HeadObject answer that make
// an object's Info.
type headers struct {
	etag, contentType, contentEncoding, contentDisposition, contentLanguage, cacheControl, expires *string
	lastModified                                                                                   *time.Time
	meta                                                                                           map[string]string
	crc32, crc32c, crc64nvme, sha1, sha256                                                         *string
	partsCount                                                                                     *int32
}

func (h *headers) info(key string) blob.Info {
	i := blob.Info{
		Key:                key,
		ETag:               blob.TrimETag(val(h.etag)),
		LastModified:       val(h.lastModified),
		ContentType:        val(h.contentType),
		ContentEncoding:    val(h.contentEncoding),
		ContentDisposition: val(h.contentDisposition),
		ContentLanguage:    val(h.contentLanguage),
		CacheControl:       val(h.cacheControl),
		Expires:            val(h.expires),
		UserMeta:           decodeMeta(h.meta),
	}
	for alg, v := range map[string]*string{"CRC32": h.crc32, "CRC32C": h.crc32c, "CRC64NVME": h.crc64nvme, "SHA1": h.sha1, "SHA256": h.sha256} {
		if v != nil && *v != "" {
			if i.Checksums == nil {
				i.Checksums = map[string]string{}
			}
			i.Checksums[alg] = *v
		}
	}
	if i.ContentType == defaultContentType {
		i.ContentType = "" // what S3 answers for an object stored without a type
	}
	i.Parts = partsOf(i.ETag)
	if n := val(h.partsCount); n > 0 {
		i.Parts = int(n)
	}
	return i
}

// partsOf reads the number of parts from a multipart ETag ("...-N").
func partsOf(etag string) int {
	_, n, ok := strings.Cut(etag, "-")
	if !ok {
		return 0
	}
	p, err := strconv.Atoi(n)
	if err != nil || p < 1 {
		return 0
	}
	return p
}

// quoteETag puts an ETag in the quotes HTTP conditions want.
func quoteETag(e string) string { return `"` + blob.TrimETag(e) + `"` }

// tagMap turns an upstream tag set into a map.
func tagMap(set []types.Tag) map[string]string {
	if len(set) == 0 {
		return nil
	}
	out := make(map[string]string, len(set))
	for _, t := range set {
		out[val(t.Key)] = val(t.Value)
	}
	return out
}

// tagSet turns a map into an upstream tag set, sorted by key.
func tagSet(tags map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		out = append(out, types.Tag{Key: ptr(k), Value: ptr(tags[k])})
	}
	return out
}
