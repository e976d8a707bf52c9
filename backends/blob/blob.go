// Package blob is the object-store capability: buckets of objects, as S3
// has them. The S3 frontend (frontends/s3) serves every request from a
// Store; backends implement it (fs, memory, s3).
//
// The contract is S3's, reduced to what a store must decide itself:
// authentication, XML, headers, checksums other than the MD5 ETag, and
// conditions on reads are the frontend's. Bodies stream both ways: a
// store never needs a whole object in memory, and a store writes an
// object only once its body has been read to the end without error (the
// frontend's body reader fails on a bad checksum or signature, and the
// object must then not appear).
package blob

import (
	"context"
	"io"
	"time"

	"github.com/mecha-gateway/mecha/backends"
)

// Store is an object store.
type Store interface {
	backends.Backend

	// ListBuckets returns every bucket, sorted by name.
	ListBuckets(ctx context.Context) ([]Bucket, error)
	// CreateBucket creates a bucket: ErrBucketExists if it exists.
	// Names are checked by the frontend (S3's rules) before.
	CreateBucket(ctx context.Context, bucket string) error
	// DeleteBucket removes an empty bucket: ErrNoSuchBucket,
	// ErrBucketNotEmpty (objects or multipart uploads in progress).
	DeleteBucket(ctx context.Context, bucket string) error
	// HeadBucket reports whether the bucket exists (ErrNoSuchBucket).
	HeadBucket(ctx context.Context, bucket string) error

	// ListObjects lists a bucket's objects in UTF-8 binary order of their
	// keys, as S3 does. ListPage does the grouping: a store only needs to
	// enumerate keys in order (see ListPage).
	ListObjects(ctx context.Context, bucket string, q ListQuery) (*Listing, error)

	// HeadObject returns an object's metadata: ErrNoSuchBucket,
	// ErrNoSuchKey.
	HeadObject(ctx context.Context, bucket, key string) (*Info, error)
	// GetObject opens an object, or the part of it rng asks for (nil:
	// all of it). A range that starts past the end gives ErrInvalidRange;
	// an end past the end is cut to it. The caller closes Object.Body.
	// The body reads the version of the object Info describes, whatever
	// writes come after.
	GetObject(ctx context.Context, bucket, key string, rng *Range) (*Object, error)
	// PutObject stores body as the object, replacing any: atomically (a
	// reader sees the old object or the new one, never a part) and only
	// if body reads to io.EOF without error. size is the body's length,
	// or -1 when unknown; a body of another length gives
	// ErrIncompleteBody. The store computes the MD5 ETag.
	PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, o PutOptions) (*Info, error)
	// DeleteObject removes an object; removing one that does not exist is
	// not an error (S3 answers 204 either way). ErrNoSuchBucket.
	DeleteObject(ctx context.Context, bucket, key string) error
	// CopyObject copies src to dst: with src's metadata, or with o's
	// when o.ReplaceMetadata. Copying an object onto itself is allowed
	// only with new metadata (the frontend checks). Stores without a
	// cheaper way can use Copy.
	CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o CopyOptions) (*Info, error)
	// SetTags replaces an object's tag set (nil or empty: no tags).
	SetTags(ctx context.Context, bucket, key string, tags map[string]string) error

	// CreateMultipartUpload starts an upload and returns its id; o is the
	// object's metadata, kept until completion.
	CreateMultipartUpload(ctx context.Context, bucket, key string, o PutOptions) (string, error)
	// UploadPart stores one part (1 to 10000), replacing an earlier one of
	// the same number: ErrNoSuchUpload. Same body rules as PutObject.
	UploadPart(ctx context.Context, bucket, key, uploadID string, part int, body io.Reader, size int64) (Part, error)
	// ListParts lists an upload's parts in order, those numbered above
	// marker, at most max of them.
	ListParts(ctx context.Context, bucket, key, uploadID string, marker, max int) (*PartListing, error)
	// CompleteMultipartUpload assembles the parts named (in ascending
	// order, each ETag matching: ErrInvalidPartOrder, ErrInvalidPart;
	// every part but the last at least MinPartSize: ErrEntityTooSmall)
	// into the object, atomically, and ends the upload. The ETag is
	// MultipartETag's.
	CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, parts []CompletePart) (*Info, error)
	// AbortMultipartUpload ends an upload and drops its parts:
	// ErrNoSuchUpload.
	AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error
	// ListMultipartUploads lists the uploads in progress, by key and then
	// by initiation time.
	ListMultipartUploads(ctx context.Context, bucket string, q UploadQuery) (*UploadListing, error)
}

// TagGetter is implemented by stores for which reading an object's tags
// costs less than HeadObject's full Info (an upstream S3 reports only a
// tag count on HEAD).
type TagGetter interface {
	GetTags(ctx context.Context, bucket, key string) (map[string]string, error)
}

// MinPartSize is the smallest a part may be, the last part aside.
const MinPartSize = 5 << 20

// MaxParts is the largest part number.
const MaxParts = 10000

// Bucket is a bucket's name and creation time.
type Bucket struct {
	Name    string
	Created time.Time
}

// Info is an object's metadata.
type Info struct {
	Key          string
	Size         int64
	ETag         string // without quotes: hex MD5, or hex MD5 + "-N" for N parts
	LastModified time.Time
	// Headers S3 stores and returns as they were sent.
	ContentType        string
	ContentEncoding    string
	ContentDisposition string
	ContentLanguage    string
	CacheControl       string
	Expires            string
	// UserMeta holds the x-amz-meta-* headers, by lower-case name without
	// the prefix.
	UserMeta map[string]string
	// Checksums holds the additional checksums the object was written
	// with, by algorithm (CRC32, CRC32C, SHA1, SHA256), base64 as S3
	// sends them.
	Checksums map[string]string
	Tags      map[string]string
	Parts     int // parts of a multipart object; 0 otherwise
}

// Object is an opened object (GetObject).
type Object struct {
	Info
	Body io.ReadCloser
	// Start and End are the bytes Body holds (inclusive), and Partial
	// is set when they are a range of the object.
	Start, End int64
	Partial    bool
}

// Range is a byte range of an HTTP Range header: First to Last
// (inclusive, Last -1: to the end), or the last Suffix bytes when Suffix
// is positive.
type Range struct {
	First, Last int64
	Suffix      int64
}

// Resolve turns r into the inclusive bounds of an object of size bytes;
// ok is false when the range cannot be satisfied (416).
func (r Range) Resolve(size int64) (start, end int64, ok bool) {
	if r.Suffix > 0 {
		if size == 0 {
			return 0, 0, false
		}
		return max(0, size-r.Suffix), size - 1, true
	}
	if r.First >= size {
		return 0, 0, false
	}
	end = r.Last
	if end < 0 || end >= size {
		end = size - 1
	}
	return r.First, end, true
}

// PutOptions are an object's metadata as written.
type PutOptions struct {
	ContentType        string
	ContentEncoding    string
	ContentDisposition string
	ContentLanguage    string
	CacheControl       string
	Expires            string
	UserMeta           map[string]string
	// Checksums may gain entries while the body is read (a checksum sent
	// in the trailer of an aws-chunked body is known at its end only):
	// stores read it once the body has returned io.EOF.
	Checksums map[string]string
	Tags      map[string]string
	// IfNoneMatch: only if no object exists (If-None-Match: *), else
	// ErrPreconditionFailed. IfMatch: only if the object's ETag is this
	// one. Both checked atomically with the write.
	IfNoneMatch bool
	IfMatch     string
}

// CopyOptions are CopyObject's.
type CopyOptions struct {
	// ReplaceMetadata takes the metadata from Meta rather than the
	// source (x-amz-metadata-directive: REPLACE).
	ReplaceMetadata bool
	Meta            PutOptions
	// ReplaceTags takes the tags from Meta.Tags rather than the source
	// (x-amz-tagging-directive: REPLACE).
	ReplaceTags bool
}

// ListQuery selects a page of a bucket's listing.
type ListQuery struct {
	Prefix    string
	Delimiter string
	// After lists keys (and common prefixes) after this one only (the
	// marker, start-after or continuation token).
	After   string
	MaxKeys int // 0 lists nothing (S3: an empty, untruncated page)
}

// Listing is a page of a bucket's listing.
type Listing struct {
	Objects        []Info // Key, Size, ETag, LastModified only
	CommonPrefixes []string
	Truncated      bool
	// Next is the last key or common prefix of the page, to continue
	// after (set when Truncated).
	Next string
}

// Part is an uploaded part.
type Part struct {
	Number       int
	ETag         string
	Size         int64
	LastModified time.Time
}

// PartListing is a page of an upload's parts.
type PartListing struct {
	Parts      []Part
	Truncated  bool
	NextMarker int
}

// CompletePart names a part in CompleteMultipartUpload.
type CompletePart struct {
	Number int
	ETag   string // with or without quotes
}

// Upload is a multipart upload in progress.
type Upload struct {
	Key       string
	ID        string
	Initiated time.Time
}

// UploadQuery selects a page of the uploads in progress.
type UploadQuery struct {
	Prefix, Delimiter string
	KeyMarker         string
	UploadIDMarker    string
	MaxUploads        int
}

// UploadListing is a page of the uploads in progress.
type UploadListing struct {
	Uploads            []Upload
	CommonPrefixes     []string
	Truncated          bool
	NextKeyMarker      string
	NextUploadIDMarker string
}
