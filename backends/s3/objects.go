package s3

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
)

// maxKeyLen is S3's limit on a key, in bytes.
const maxKeyLen = 1024

// errHeadMiss stands, inside this package, for a 404 to a HEAD, which
// has no body to tell a missing key from a missing bucket.
var errHeadMiss = &blob.Error{Code: "NotFound", Status: http.StatusNotFound, Message: "Not Found"}

// ListBuckets lists the upstream's buckets (those with bucket_prefix,
// without it), sorted by name.
func (s *Store) ListBuckets(ctx context.Context) ([]blob.Bucket, error) {
	in := &s3sdk.ListBucketsInput{}
	if s.cfg.BucketPrefix != "" {
		in.Prefix = ptr(s.cfg.BucketPrefix)
	}
	var out []blob.Bucket
	for {
		res, err := s.api().ListBuckets(ctx, in)
		if err != nil {
			return nil, s.mapError(ctx, "list buckets", err, nil)
		}
		for _, b := range res.Buckets {
			name, ok := strings.CutPrefix(val(b.Name), s.cfg.BucketPrefix)
			if ok && name != "" {
				out = append(out, blob.Bucket{Name: name, Created: val(b.CreationDate)})
			}
		}
		next := val(res.ContinuationToken)
		if next == "" || next == val(in.ContinuationToken) {
			break
		}
		in.ContinuationToken = &next
	}
	slices.SortFunc(out, func(a, b blob.Bucket) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CreateBucket creates a bucket, in the configured region.
func (s *Store) CreateBucket(ctx context.Context, bucket string) error {
	in := &s3sdk.CreateBucketInput{Bucket: s.bucket(bucket)}
	if s.cfg.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(s.cfg.Region)}
	}
	_, err := s.api().CreateBucket(ctx, in)
	return s.mapError(ctx, "create bucket", err, nil)
}

// DeleteBucket deletes a bucket; the upstream decides whether it is
// empty.
func (s *Store) DeleteBucket(ctx context.Context, bucket string) error {
	_, err := s.api().DeleteBucket(ctx, &s3sdk.DeleteBucketInput{Bucket: s.bucket(bucket)})
	return s.mapError(ctx, "delete bucket", err, blob.ErrNoSuchBucket)
}

// HeadBucket reports whether the bucket exists.
func (s *Store) HeadBucket(ctx context.Context, bucket string) error {
	_, err := s.api().HeadBucket(ctx, &s3sdk.HeadBucketInput{Bucket: s.bucket(bucket)})
	return s.mapError(ctx, "head bucket", err, blob.ErrNoSuchBucket)
}

// headMiss resolves a 404 to a HEAD of an object: the key is missing,
// or the whole bucket.
func (s *Store) headMiss(ctx context.Context, bucket string, err error) error {
	if err != errHeadMiss {
		return err
	}
	if berr := s.HeadBucket(ctx, bucket); errors.Is(berr, blob.ErrNoSuchBucket) {
		return blob.ErrNoSuchBucket
	}
	return blob.ErrNoSuchKey
}

// ListObjects lists a page with ListObjectsV2, q.After as start-after.
// Names come URL-encoded when the upstream supports it (keys may hold
// characters XML cannot). Entries at or before q.After are dropped,
// for upstreams that list again the common prefix a previous page ended
// with.
func (s *Store) ListObjects(ctx context.Context, bucket string, q blob.ListQuery) (*blob.Listing, error) {
	in := &s3sdk.ListObjectsV2Input{
		Bucket:       s.bucket(bucket),
		EncodingType: types.EncodingTypeUrl,
		MaxKeys:      ptr(int32(min(max(q.MaxKeys, 0), 1000))),
	}
	if q.Prefix != "" {
		in.Prefix = ptr(q.Prefix)
	}
	if q.Delimiter != "" {
		in.Delimiter = ptr(q.Delimiter)
	}
	if q.After != "" {
		in.StartAfter = ptr(q.After)
	}
	out := &blob.Listing{}
	for {
		res, err := s.api().ListObjectsV2(ctx, in)
		if err != nil {
			return nil, s.mapError(ctx, "list objects", err, nil)
		}
		if q.MaxKeys <= 0 {
			return out, nil // S3: an empty page, not truncated
		}
		dec := decoder(res.EncodingType)
		for _, o := range res.Contents {
			key := dec(val(o.Key))
			if key <= q.After {
				continue
			}
			out.Objects = append(out.Objects, blob.Info{Key: key, Size: val(o.Size), ETag: blob.TrimETag(val(o.ETag)), LastModified: val(o.LastModified)})
		}
		for _, p := range res.CommonPrefixes {
			if prefix := dec(val(p.Prefix)); prefix > q.After {
				out.CommonPrefixes = append(out.CommonPrefixes, prefix)
			}
		}
		out.Truncated = val(res.IsTruncated)
		next := val(res.NextContinuationToken)
		left := min(q.MaxKeys, 1000) - len(out.Objects) - len(out.CommonPrefixes)
		if left <= 0 || !out.Truncated || next == "" {
			break
		}
		// Entries were dropped: fill the page from the upstream's token.
		in.ContinuationToken, in.MaxKeys = &next, ptr(int32(left))
	}
	slices.SortFunc(out.Objects, func(a, b blob.Info) int { return strings.Compare(a.Key, b.Key) })
	slices.Sort(out.CommonPrefixes)
	if out.Truncated {
		if n := len(out.Objects); n > 0 {
			out.Next = out.Objects[n-1].Key
		}
		if n := len(out.CommonPrefixes); n > 0 && out.CommonPrefixes[n-1] > out.Next {
			out.Next = out.CommonPrefixes[n-1]
		}
	}
	return out, nil
}

// decoder returns the function that decodes names of a listing with
// encoding type t.
func decoder(t types.EncodingType) func(string) string {
	if t != types.EncodingTypeUrl {
		return func(s string) string { return s }
	}
	return func(s string) string {
		if d, err := url.QueryUnescape(s); err == nil {
			return d
		}
		return s
	}
}

// HeadObject returns an object's metadata, with its tags when it has
// any (a second request, GetObjectTagging: S3's HEAD gives only their
// number).
func (s *Store) HeadObject(ctx context.Context, bucket, key string) (*blob.Info, error) {
	res, err := s.api().HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: s.bucket(bucket), Key: ptr(key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return nil, s.headMiss(ctx, bucket, s.mapError(ctx, "head object", err, errHeadMiss))
	}
	h := headers{
		etag: res.ETag, contentType: res.ContentType, contentEncoding: res.ContentEncoding, contentDisposition: res.ContentDisposition,
		contentLanguage: res.ContentLanguage, cacheControl: res.CacheControl, expires: res.ExpiresString, lastModified: res.LastModified,
		meta: res.Metadata, crc32: res.ChecksumCRC32, crc32c: res.ChecksumCRC32C, crc64nvme: res.ChecksumCRC64NVME,
		sha1: res.ChecksumSHA1, sha256: res.ChecksumSHA256, partsCount: res.PartsCount,
	}
	info := h.info(key)
	info.Size = val(res.ContentLength)
	if val(res.TagCount) > 0 {
		if info.Tags, err = s.GetTags(ctx, bucket, key); err != nil {
			return nil, err
		}
	}
	return &info, nil
}

// GetTags returns an object's tags (GetObjectTagging). An upstream that
// refuses it (AccessDenied, NotImplemented) gives no tags rather than
// an error.
func (s *Store) GetTags(ctx context.Context, bucket, key string) (map[string]string, error) {
	res, err := s.api().GetObjectTagging(ctx, &s3sdk.GetObjectTaggingInput{Bucket: s.bucket(bucket), Key: ptr(key)})
	if err != nil {
		err = s.mapError(ctx, "get object tagging", err, nil)
		var be *blob.Error
		if errors.As(err, &be) && (be.Code == "AccessDenied" || be.Code == "NotImplemented") {
			return nil, nil
		}
		return nil, err
	}
	return tagMap(res.TagSet), nil
}

// rangeHeader is rng as an HTTP Range header.
func rangeHeader(rng *blob.Range) string {
	switch {
	case rng.Suffix > 0:
		return "bytes=-" + strconv.FormatInt(rng.Suffix, 10)
	case rng.Last < 0:
		return "bytes=" + strconv.FormatInt(rng.First, 10) + "-"
	}
	return "bytes=" + strconv.FormatInt(rng.First, 10) + "-" + strconv.FormatInt(rng.Last, 10)
}

// parseContentRange reads "bytes first-last/size".
func parseContentRange(v string) (first, last, size int64, ok bool) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	r, total, ok1 := strings.Cut(spec, "/")
	f, l, ok2 := strings.Cut(r, "-")
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(f, 10, 64)
	last, err2 = strconv.ParseInt(l, 10, 64)
	size, err3 = strconv.ParseInt(total, 10, 64)
	return first, last, size, err1 == nil && err2 == nil && err3 == nil && first <= last && last < size
}

// GetObject streams the object, or the range asked for, from the
// upstream. An upstream that ignores the range (answers 200 with the
// whole object) has it cut here.
func (s *Store) GetObject(ctx context.Context, bucket, key string, rng *blob.Range) (*blob.Object, error) {
	a, ok := answer{}, false
	if s.fast != nil && s.health.Get().State != backends.StateDown {
		a, ok = s.fast.get(ctx, s, *s.bucket(bucket), key, rng)
	}
	if !ok {
		in := &s3sdk.GetObjectInput{Bucket: s.bucket(bucket), Key: ptr(key), ChecksumMode: types.ChecksumModeEnabled}
		if rng != nil {
			in.Range = ptr(rangeHeader(rng))
		}
		res, err := s.api().GetObject(ctx, in, noResponseValidation)
		if err != nil {
			return nil, s.mapError(ctx, "get object", err, blob.ErrNoSuchKey)
		}
		a = answer{body: res.Body, length: val(res.ContentLength), contentRange: val(res.ContentRange), tagCount: val(res.TagCount),
			h: headers{
				etag: res.ETag, contentType: res.ContentType, contentEncoding: res.ContentEncoding, contentDisposition: res.ContentDisposition,
				contentLanguage: res.ContentLanguage, cacheControl: res.CacheControl, expires: res.ExpiresString, lastModified: res.LastModified,
				meta: res.Metadata, crc32: res.ChecksumCRC32, crc32c: res.ChecksumCRC32C, crc64nvme: res.ChecksumCRC64NVME,
				sha1: res.ChecksumSHA1, sha256: res.ChecksumSHA256, partsCount: res.PartsCount,
			}}
	}
	obj := &blob.Object{Info: a.h.info(key), Body: a.body}
	res := a
	length := a.length
	var err error
	if first, last, size, ok := parseContentRange(a.contentRange); ok {
		obj.Size, obj.Start, obj.End, obj.Partial = size, first, last, true
	} else {
		obj.Size, obj.Start, obj.End = length, 0, length-1
		if rng != nil {
			start, end, ok := rng.Resolve(length)
			if !ok {
				res.body.Close()
				return nil, blob.ErrInvalidRange
			}
			obj.Body = &rangeBody{r: res.body, skip: start, left: end - start + 1}
			obj.Start, obj.End, obj.Partial = start, end, true
		}
	}
	if res.tagCount > 0 {
		if obj.Tags, err = s.GetTags(ctx, bucket, key); err != nil {
			res.body.Close()
			return nil, err
		}
	}
	return obj, nil
}

// noResponseValidation keeps the SDK from checking a download's
// checksum as it streams: the client has the checksum headers to check
// it end to end, and the gateway does not pay for it twice.
func noResponseValidation(o *s3sdk.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		stack.Initialize.Remove("AWSChecksum:SetupOutputContext")
		stack.Deserialize.Remove("AWSChecksum:ValidateOutputPayloadChecksum")
		return nil
	})
}

// rangeBody is the bytes skip to skip+left of a whole object's body.
type rangeBody struct {
	r    io.ReadCloser
	skip int64
	left int64
}

func (b *rangeBody) Read(p []byte) (int, error) {
	if b.skip > 0 {
		n, err := io.CopyN(io.Discard, b.r, b.skip)
		b.skip -= n
		if err != nil {
			return 0, err
		}
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *rangeBody) Close() error { return b.r.Close() }

// putHeaders are the metadata of a write, in the SDK's form.
type putHeaders struct {
	contentType, contentEncoding, contentDisposition, contentLanguage, cacheControl *string
	meta                                                                            map[string]string
	tagging                                                                         *string
	// expires goes as a raw header: the SDK's field is a time, and S3
	// keeps the header's text as it is.
	expires string
}

func toPutHeaders(o *blob.PutOptions) putHeaders {
	h := putHeaders{
		contentType: nonEmpty(o.ContentType), contentEncoding: nonEmpty(o.ContentEncoding), contentDisposition: nonEmpty(o.ContentDisposition),
		contentLanguage: nonEmpty(o.ContentLanguage), cacheControl: nonEmpty(o.CacheControl), meta: encodeMeta(o.UserMeta), expires: o.Expires,
	}
	if len(o.Tags) > 0 {
		h.tagging = ptr(encodeTags(o.Tags))
	}
	return h
}

// options are the per-request options the headers need.
func (h *putHeaders) options(o *s3sdk.Options) {
	if h.expires != "" {
		o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("Expires", h.expires))
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// serverTime is when the upstream answered (its Date header), for what
// S3 answers without a Last-Modified; now if it sent none.
func serverTime(md middleware.Metadata) time.Time {
	if t, ok := awsmiddleware.GetServerTime(md); ok && !t.IsZero() {
		return t
	}
	return time.Now().UTC()
}

// PutObject streams body upstream as one PutObject request: with its
// length (a body of unknown length is spooled first), an unsigned
// payload, never retried. The checksum the client sent in a header goes
// along and the upstream checks it too. LastModified is the upstream's
// Date: S3 does not send Last-Modified for a PUT.
func (s *Store) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, o blob.PutOptions) (*blob.Info, error) {
	if len(key) > maxKeyLen {
		return nil, blob.ErrKeyTooLong
	}
	h := toPutHeaders(&o)
	in := &s3sdk.PutObjectInput{
		Bucket: s.bucket(bucket), Key: ptr(key),
		ContentType: h.contentType, ContentEncoding: h.contentEncoding, ContentDisposition: h.contentDisposition,
		ContentLanguage: h.contentLanguage, CacheControl: h.cacheControl, Metadata: h.meta, Tagging: h.tagging,
	}
	if o.IfNoneMatch {
		in.IfNoneMatch = ptr("*")
	}
	if o.IfMatch != "" {
		in.IfMatch = ptr(quoteETag(o.IfMatch))
	}
	switch alg, v := pickChecksum(o.Checksums); alg {
	case "CRC64NVME":
		in.ChecksumCRC64NVME = &v
	case "CRC32C":
		in.ChecksumCRC32C = &v
	case "CRC32":
		in.ChecksumCRC32 = &v
	case "SHA256":
		in.ChecksumSHA256 = &v
	case "SHA1":
		in.ChecksumSHA1 = &v
	}
	var etag string
	var date time.Time
	var n int64
	fast := s.fast != nil && s.health.Get().State != backends.StateDown
	err := s.upload(ctx, "put object", body, size, func(r io.Reader, size int64) error {
		n = size
		if fast {
			var err error
			etag, date, err = s.fast.put(ctx, s, *s.bucket(bucket), key, r, size, &h, &o)
			return err
		}
		in.Body, in.ContentLength = r, &size
		res, err := s.once.PutObject(ctx, in, h.options)
		if err == nil {
			etag, date = val(res.ETag), serverTime(res.ResultMetadata)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &blob.Info{Key: key, Size: n, ETag: blob.TrimETag(etag), LastModified: date}, nil
}

// DeleteObject deletes an object.
func (s *Store) DeleteObject(ctx context.Context, bucket, key string) error {
	_, err := s.api().DeleteObject(ctx, &s3sdk.DeleteObjectInput{Bucket: s.bucket(bucket), Key: ptr(key)})
	return s.mapError(ctx, "delete object", err, nil)
}

// copySource is x-amz-copy-source for an object: bucket/key,
// percent-encoded but for the slashes.
func (s *Store) copySource(bucket, key string) *string {
	return ptr(escape(s.cfg.BucketPrefix+bucket+"/"+key, "/"))
}

// CopyObject copies server-side (CopyObject), with the metadata and
// tagging directives o asks for. The size of the copy comes from a HEAD
// of it, as S3's answer gives only its ETag and time.
func (s *Store) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o blob.CopyOptions) (*blob.Info, error) {
	if len(dstKey) > maxKeyLen {
		return nil, blob.ErrKeyTooLong
	}
	in := &s3sdk.CopyObjectInput{Bucket: s.bucket(dstBucket), Key: ptr(dstKey), CopySource: s.copySource(srcBucket, srcKey)}
	var opts []func(*s3sdk.Options)
	if o.ReplaceMetadata {
		h := toPutHeaders(&o.Meta)
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.ContentType, in.ContentEncoding, in.ContentDisposition = h.contentType, h.contentEncoding, h.contentDisposition
		in.ContentLanguage, in.CacheControl, in.Metadata = h.contentLanguage, h.cacheControl, h.meta
		opts = append(opts, h.options)
	}
	if o.ReplaceTags {
		in.TaggingDirective = types.TaggingDirectiveReplace
		if len(o.Meta.Tags) > 0 {
			in.Tagging = ptr(encodeTags(o.Meta.Tags))
		}
	}
	if o.Meta.IfNoneMatch {
		in.IfNoneMatch = ptr("*")
	}
	if o.Meta.IfMatch != "" {
		in.IfMatch = ptr(quoteETag(o.Meta.IfMatch))
	}
	res, err := s.api().CopyObject(ctx, in, opts...)
	if err != nil {
		return nil, s.mapError(ctx, "copy object", err, nil)
	}
	info := &blob.Info{Key: dstKey, LastModified: serverTime(res.ResultMetadata)}
	if r := res.CopyObjectResult; r != nil {
		info.ETag = blob.TrimETag(val(r.ETag))
		if r.LastModified != nil {
			info.LastModified = *r.LastModified
		}
	}
	s.completeInfo(ctx, dstBucket, info)
	return info, nil
}

// completeInfo fills an Info the upstream answered without a size (a
// copy, a completed upload) from a HEAD of the object, if it is still
// the version written (same ETag).
func (s *Store) completeInfo(ctx context.Context, bucket string, info *blob.Info) {
	info.Parts = partsOf(info.ETag)
	res, err := s.api().HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: s.bucket(bucket), Key: ptr(info.Key)})
	if err != nil || blob.TrimETag(val(res.ETag)) != info.ETag {
		return
	}
	info.Size = val(res.ContentLength)
	if info.LastModified.IsZero() && res.LastModified != nil {
		info.LastModified = *res.LastModified
	}
}

// SetTags replaces an object's tags (PutObjectTagging), or removes them
// all (DeleteObjectTagging).
func (s *Store) SetTags(ctx context.Context, bucket, key string, tags map[string]string) error {
	if len(tags) == 0 {
		_, err := s.api().DeleteObjectTagging(ctx, &s3sdk.DeleteObjectTaggingInput{Bucket: s.bucket(bucket), Key: ptr(key)})
		return s.mapError(ctx, "delete object tagging", err, nil)
	}
	_, err := s.api().PutObjectTagging(ctx, &s3sdk.PutObjectTaggingInput{
		Bucket: s.bucket(bucket), Key: ptr(key), Tagging: &types.Tagging{TagSet: tagSet(tags)},
	})
	return s.mapError(ctx, "put object tagging", err, nil)
}
