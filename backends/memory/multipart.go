package memory

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// errPartNumber is S3's answer to a part number out of range.
var errPartNumber = &blob.Error{Code: "InvalidArgument", Status: 400, Message: "Part number must be an integer between 1 and 10000, inclusive"}

// CreateMultipartUpload starts an upload of key; o is kept for the
// object (and its conditions, IfNoneMatch and IfMatch, are checked at
// completion).
func (s *Store) CreateMultipartUpload(ctx context.Context, bucket, key string, o blob.PutOptions) (string, error) {
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return "", err
	}
	id, at := newUploadID()
	o.UserMeta, o.Checksums, o.Tags = cloneMap(o.UserMeta), cloneMap(o.Checksums), cloneMap(o.Tags)
	b.uploads[id] = &upload{id: id, key: key, initiated: at, meta: o, parts: map[int]*part{}}
	s.uploads++
	return id, nil
}

// upload returns an upload of key in bucket, under s.mu.
func (s *Store) upload(bucket, key, id string) (*bucket, *upload, error) {
	b, err := s.bucket(bucket)
	if err != nil {
		return nil, nil, err
	}
	u := b.uploads[id]
	if u == nil || u.key != key {
		return nil, nil, blob.ErrNoSuchUpload
	}
	return b, u, nil
}

// UploadPart reads a part into memory and stores it in its upload.
func (s *Store) UploadPart(ctx context.Context, bucket, key, uploadID string, n int, body io.Reader, size int64) (blob.Part, error) {
	s.mu.RLock()
	_, _, err := s.upload(bucket, key, uploadID)
	s.mu.RUnlock()
	if err != nil {
		return blob.Part{}, err
	}
	if n < 1 || n > blob.MaxParts {
		return blob.Part{}, errPartNumber
	}
	c, etag, err := s.readBody(ctx, body, size, maxPutSize)
	if err != nil {
		return blob.Part{}, fmt.Errorf("upload part %d of %s/%s: %w", n, bucket, key, err)
	}
	p := &part{Part: blob.Part{Number: n, ETag: etag, Size: c.size, LastModified: time.Now().UTC()}, data: c}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, u, err := s.upload(bucket, key, uploadID)
	if err != nil {
		// Completed or aborted while the part was read.
		s.release(c.size)
		return blob.Part{}, err
	}
	if old := u.parts[n]; old != nil {
		s.release(old.Size)
	}
	u.parts[n] = p
	return p.Part, nil
}

// ListParts lists an upload's parts numbered above marker, at most max
// (1000 when max is not positive).
func (s *Store) ListParts(ctx context.Context, bucket, key, uploadID string, marker, max int) (*blob.PartListing, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, u, err := s.upload(bucket, key, uploadID)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1000
	}
	nums := slices.Sorted(maps.Keys(u.parts))
	out := &blob.PartListing{}
	for _, n := range nums {
		if n <= marker {
			continue
		}
		if len(out.Parts) == max {
			out.Truncated = true
			break
		}
		out.Parts = append(out.Parts, u.parts[n].Part)
		out.NextMarker = n
	}
	return out, nil
}

// CompleteMultipartUpload makes the parts named into the object. The
// object takes the parts' chunks as they are: nothing is copied.
func (s *Store) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, want []blob.CompletePart) (*blob.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, u, err := s.upload(bucket, key, uploadID)
	if err != nil {
		return nil, err
	}
	uploaded := make(map[int]blob.Part, len(u.parts))
	for n, p := range u.parts {
		uploaded[n] = p.Part
	}
	parts, err := blob.CheckParts(uploaded, want)
	if err != nil {
		return nil, err
	}
	c := &content{}
	etags := make([]string, 0, len(parts))
	for _, p := range parts {
		c.chunks = append(c.chunks, u.parts[p.Number].data.chunks...)
		c.size += p.Size
		etags = append(etags, p.ETag)
	}
	if c.size > maxObjectSize {
		return nil, blob.ErrEntityTooLarge
	}
	cur := b.objects[key]
	if err := checkConditions(cur, &u.meta); err != nil {
		return nil, err
	}
	// The parts used become the object's bytes; the others are freed.
	for n, p := range u.parts {
		if i, ok := slices.BinarySearchFunc(parts, n, func(p blob.Part, n int) int { return cmp.Compare(p.Number, n) }); !ok || parts[i].Number != n {
			s.release(p.Size)
		}
	}
	delete(b.uploads, uploadID)
	s.uploads--
	obj := &object{info: newInfo(key, c.size, blob.MultipartETag(etags), len(parts), &u.meta), data: c}
	s.storeLocked(b, cur, obj)
	s.puts.Inc()
	return copyInfo(&obj.info), nil
}

// AbortMultipartUpload drops an upload and its parts.
func (s *Store) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, u, err := s.upload(bucket, key, uploadID)
	if err != nil {
		return err
	}
	for _, p := range u.parts {
		s.release(p.Size)
	}
	delete(b.uploads, uploadID)
	s.uploads--
	return nil
}

// ListMultipartUploads lists the uploads in progress, by key and then by
// initiation.
func (s *Store) ListMultipartUploads(ctx context.Context, bucket string, q blob.UploadQuery) (*blob.UploadListing, error) {
	s.mu.RLock()
	b, err := s.bucket(bucket)
	var all []blob.Upload
	if err == nil {
		for _, u := range b.uploads {
			if strings.HasPrefix(u.key, q.Prefix) {
				all = append(all, blob.Upload{Key: u.key, ID: u.id, Initiated: u.initiated})
			}
		}
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return blob.UploadPage(all, q), nil
}
