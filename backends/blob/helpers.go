package blob

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ListPage builds a page of a listing for q from a store's keys. each
// must call fn with the objects whose keys are >= from, in UTF-8 binary
// order of their keys, until fn returns false; from is q.After or
// q.Prefix, whichever is greater. ListPage groups keys under common
// prefixes, skips q.After itself and keys outside the prefix, and stops
// after MaxKeys entries.
func ListPage(q ListQuery, each func(from string, fn func(Info) bool) error) (*Listing, error) {
	out := &Listing{}
	if q.MaxKeys <= 0 {
		return out, nil
	}
	from := max(q.After, q.Prefix)
	count := 0
	lastPrefix := ""
	err := each(from, func(o Info) bool {
		if o.Key <= q.After {
			return true
		}
		if !strings.HasPrefix(o.Key, q.Prefix) {
			// Keys come in order: once past the prefix, none follows.
			return o.Key < q.Prefix
		}
		entry, isPrefix := o.Key, false
		if q.Delimiter != "" {
			rest := o.Key[len(q.Prefix):]
			if i := strings.Index(rest, q.Delimiter); i >= 0 {
				entry, isPrefix = q.Prefix+rest[:i+len(q.Delimiter)], true
				if entry == lastPrefix || entry <= q.After {
					return true // grouped already, or on an earlier page
				}
			}
		}
		if count == q.MaxKeys {
			out.Truncated = true
			return false
		}
		count++
		out.Next = entry
		if isPrefix {
			lastPrefix = entry
			out.CommonPrefixes = append(out.CommonPrefixes, entry)
		} else {
			out.Objects = append(out.Objects, o)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if !out.Truncated {
		out.Next = ""
	}
	return out, nil
}

// CheckKey refuses the keys S3 does: empty, longer than 1024 bytes, or
// not UTF-8.
func CheckKey(key string) error {
	switch {
	case len(key) > 1024:
		return ErrKeyTooLong
	case key == "" || !utf8.ValidString(key):
		return ErrInvalidKey
	}
	return nil
}

// MultipartETag is the ETag S3 gives an object assembled from parts: the
// MD5 of the parts' binary MD5s, then "-" and the number of parts.
func MultipartETag(partETags []string) string {
	h := md5.New()
	for _, e := range partETags {
		b, err := hex.DecodeString(TrimETag(e))
		if err != nil {
			b = []byte(e)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(partETags))
}

// TrimETag drops the quotes around an ETag.
func TrimETag(e string) string { return strings.Trim(e, `"`) }

// CheckParts checks CompleteMultipartUpload's list of parts against the
// parts uploaded (by number) and returns the parts to assemble, in order.
func CheckParts(uploaded map[int]Part, want []CompletePart) ([]Part, error) {
	if len(want) == 0 {
		return nil, &Error{"MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	out := make([]Part, 0, len(want))
	for i, w := range want {
		if i > 0 && w.Number <= want[i-1].Number {
			return nil, ErrInvalidPartOrder
		}
		p, ok := uploaded[w.Number]
		if !ok || TrimETag(w.ETag) != TrimETag(p.ETag) {
			return nil, ErrInvalidPart
		}
		out = append(out, p)
	}
	for _, p := range out[:len(out)-1] {
		if p.Size < MinPartSize {
			return nil, ErrEntityTooSmall
		}
	}
	return out, nil
}

// Copy is CopyObject for stores without a cheaper way: it reads the
// source and writes the destination, streaming.
func Copy(ctx context.Context, s Store, srcBucket, srcKey, dstBucket, dstKey string, o CopyOptions) (*Info, error) {
	src, err := s.GetObject(ctx, srcBucket, srcKey, nil)
	if err != nil {
		return nil, err
	}
	defer src.Body.Close()
	meta := MetaOf(&src.Info)
	if o.ReplaceMetadata {
		tags := meta.Tags
		meta = o.Meta
		meta.Tags = tags
		meta.Checksums = src.Checksums
	}
	if o.ReplaceTags {
		meta.Tags = o.Meta.Tags
	}
	meta.IfMatch, meta.IfNoneMatch = o.Meta.IfMatch, o.Meta.IfNoneMatch
	return s.PutObject(ctx, dstBucket, dstKey, src.Body, src.Size, meta)
}

// MetaOf returns the metadata of an object as PutOptions, to write it
// again.
func MetaOf(i *Info) PutOptions {
	return PutOptions{
		ContentType: i.ContentType, ContentEncoding: i.ContentEncoding, ContentDisposition: i.ContentDisposition,
		ContentLanguage: i.ContentLanguage, CacheControl: i.CacheControl, Expires: i.Expires,
		UserMeta: i.UserMeta, Checksums: i.Checksums, Tags: i.Tags,
	}
}

// UploadPage builds a page of uploads for q, as ListPage does for
// objects: sorted by key, then initiation (upload ids sort the same way);
// those up to the key marker skipped — for the marker's key itself, those
// up to the upload id marker; keys grouped under common prefixes; at most
// MaxUploads entries.
func UploadPage(all []Upload, q UploadQuery) *UploadListing {
	slices.SortFunc(all, func(a, b Upload) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), a.Initiated.Compare(b.Initiated), strings.Compare(a.ID, b.ID))
	})
	out := &UploadListing{}
	if q.MaxUploads <= 0 {
		return out
	}
	count := 0
	lastPrefix := ""
	for _, u := range all {
		if !strings.HasPrefix(u.Key, q.Prefix) {
			continue
		}
		if q.KeyMarker != "" && (u.Key < q.KeyMarker || (u.Key == q.KeyMarker && (q.UploadIDMarker == "" || u.ID <= q.UploadIDMarker))) {
			continue
		}
		prefix := ""
		if q.Delimiter != "" {
			if i := strings.Index(u.Key[len(q.Prefix):], q.Delimiter); i >= 0 {
				prefix = u.Key[:len(q.Prefix)+i+len(q.Delimiter)]
				if prefix == lastPrefix || prefix <= q.KeyMarker {
					continue
				}
			}
		}
		if count == q.MaxUploads {
			out.Truncated = true
			break
		}
		count++
		if prefix != "" {
			lastPrefix = prefix
			out.CommonPrefixes = append(out.CommonPrefixes, prefix)
			out.NextKeyMarker, out.NextUploadIDMarker = prefix, ""
		} else {
			out.Uploads = append(out.Uploads, u)
			out.NextKeyMarker, out.NextUploadIDMarker = u.Key, u.ID
		}
	}
	if !out.Truncated {
		out.NextKeyMarker, out.NextUploadIDMarker = "", ""
	}
	return out
}
