package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// errPartNumber is S3's error for a part number out of range.
var errPartNumber = &blob.Error{Code: "InvalidArgument", Status: http.StatusBadRequest,
	Message: fmt.Sprintf("Part number must be an integer between 1 and %d, inclusive", blob.MaxParts)}

// checkUpload refuses an empty upload id: sent upstream, the request
// would be a PutObject or DeleteObject of the key.
func checkUpload(id string) error {
	if id == "" {
		return blob.ErrNoSuchUpload
	}
	return nil
}

// CreateMultipartUpload starts an upload upstream, with the object's
// metadata and tags.
func (s *Store) CreateMultipartUpload(ctx context.Context, bucket, key string, o blob.PutOptions) (string, error) {
	if len(key) > maxKeyLen {
		return "", blob.ErrKeyTooLong
	}
	h := toPutHeaders(&o)
	res, err := s.api().CreateMultipartUpload(ctx, &s3sdk.CreateMultipartUploadInput{
		Bucket: s.bucket(bucket), Key: ptr(key),
		ContentType: h.contentType, ContentEncoding: h.contentEncoding, ContentDisposition: h.contentDisposition,
		ContentLanguage: h.contentLanguage, CacheControl: h.cacheControl, Metadata: h.meta, Tagging: h.tagging,
	}, h.options)
	if err != nil {
		return "", s.mapError(ctx, "create multipart upload", err, nil)
	}
	return val(res.UploadId), nil
}

// UploadPart streams a part upstream, as PutObject streams an object.
func (s *Store) UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64) (blob.Part, error) {
	if err := checkUpload(uploadID); err != nil {
		return blob.Part{}, err
	}
	if part < 1 || part > blob.MaxParts {
		return blob.Part{}, errPartNumber
	}
	in := &s3sdk.UploadPartInput{Bucket: s.bucket(bucket), Key: ptr(key), UploadId: ptr(uploadID), PartNumber: ptr(int32(part))}
	var res *s3sdk.UploadPartOutput
	var n int64
	err := s.upload(ctx, "upload part", body, size, func(r io.Reader, size int64) error {
		in.Body, in.ContentLength, n = r, &size, size
		var err error
		res, err = s.once.UploadPart(ctx, in)
		return err
	})
	if err != nil {
		return blob.Part{}, err
	}
	return blob.Part{Number: part, ETag: blob.TrimETag(val(res.ETag)), Size: n, LastModified: serverTime(res.ResultMetadata)}, nil
}

// ListParts lists an upload's parts (ListParts).
func (s *Store) ListParts(ctx context.Context, bucket, key, uploadID string, marker, max int) (*blob.PartListing, error) {
	if err := checkUpload(uploadID); err != nil {
		return nil, err
	}
	in := &s3sdk.ListPartsInput{Bucket: s.bucket(bucket), Key: ptr(key), UploadId: ptr(uploadID)}
	if marker > 0 {
		in.PartNumberMarker = ptr(strconv.Itoa(marker))
	}
	if max > 0 {
		in.MaxParts = ptr(int32(min(max, 1000)))
	}
	res, err := s.api().ListParts(ctx, in)
	if err != nil {
		return nil, s.mapError(ctx, "list parts", err, nil)
	}
	out := &blob.PartListing{Truncated: val(res.IsTruncated)}
	for _, p := range res.Parts {
		out.Parts = append(out.Parts, blob.Part{Number: int(val(p.PartNumber)), ETag: blob.TrimETag(val(p.ETag)), Size: val(p.Size), LastModified: val(p.LastModified)})
	}
	out.NextMarker, _ = strconv.Atoi(val(res.NextPartNumberMarker))
	if out.NextMarker == 0 && len(out.Parts) > 0 {
		out.NextMarker = out.Parts[len(out.Parts)-1].Number
	}
	return out, nil
}

// CompleteMultipartUpload completes an upload upstream; the upstream
// checks the parts. The object's size comes from a HEAD of it.
func (s *Store) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []blob.CompletePart) (*blob.Info, error) {
	if err := checkUpload(uploadID); err != nil {
		return nil, err
	}
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: ptr(int32(p.Number)), ETag: ptr(quoteETag(p.ETag))}
	}
	res, err := s.api().CompleteMultipartUpload(ctx, &s3sdk.CompleteMultipartUploadInput{
		Bucket: s.bucket(bucket), Key: ptr(key), UploadId: ptr(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	if err != nil {
		return nil, s.mapError(ctx, "complete multipart upload", err, nil)
	}
	info := &blob.Info{Key: key, ETag: blob.TrimETag(val(res.ETag))}
	s.completeInfo(ctx, bucket, info)
	if info.Parts == 0 {
		info.Parts = len(parts)
	}
	if info.LastModified.IsZero() {
		info.LastModified = serverTime(res.ResultMetadata)
	}
	return info, nil
}

// AbortMultipartUpload aborts an upload upstream.
func (s *Store) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	if err := checkUpload(uploadID); err != nil {
		return err
	}
	_, err := s.api().AbortMultipartUpload(ctx, &s3sdk.AbortMultipartUploadInput{Bucket: s.bucket(bucket), Key: ptr(key), UploadId: ptr(uploadID)})
	return s.mapError(ctx, "abort multipart upload", err, blob.ErrNoSuchUpload)
}

// ListMultipartUploads lists the uploads in progress
// (ListMultipartUploads), names URL-encoded on the way when the
// upstream supports it.
func (s *Store) ListMultipartUploads(ctx context.Context, bucket string, q blob.UploadQuery) (*blob.UploadListing, error) {
	in := &s3sdk.ListMultipartUploadsInput{
		Bucket:       s.bucket(bucket),
		EncodingType: types.EncodingTypeUrl,
		MaxUploads:   ptr(int32(min(max(q.MaxUploads, 0), 1000))),
	}
	for _, f := range []struct {
		v   string
		dst **string
	}{{q.Prefix, &in.Prefix}, {q.Delimiter, &in.Delimiter}, {q.KeyMarker, &in.KeyMarker}, {q.UploadIDMarker, &in.UploadIdMarker}} {
		if f.v != "" {
			*f.dst = ptr(f.v)
		}
	}
	res, err := s.api().ListMultipartUploads(ctx, in)
	if err != nil {
		return nil, s.mapError(ctx, "list multipart uploads", err, nil)
	}
	out := &blob.UploadListing{}
	if q.MaxUploads <= 0 {
		return out, nil
	}
	dec := decoder(res.EncodingType)
	for _, u := range res.Uploads {
		out.Uploads = append(out.Uploads, blob.Upload{Key: dec(val(u.Key)), ID: val(u.UploadId), Initiated: val(u.Initiated)})
	}
	for _, p := range res.CommonPrefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, dec(val(p.Prefix)))
	}
	out.Truncated = val(res.IsTruncated)
	if out.Truncated {
		out.NextKeyMarker, out.NextUploadIDMarker = dec(val(res.NextKeyMarker)), val(res.NextUploadIdMarker)
	}
	return out, nil
}
