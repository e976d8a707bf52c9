package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// An upload is a directory .uploads/<bucket>/<id>, created whole by
// rename, holding upload.json and its parts as objects hold their
// versions: NNNNN~m (the part's metadata) and NNNNN~v<version> (its
// data), replaced the same way (see commit).
const uploadFileName = "upload.json"

// uploadFile is an upload's upload.json.
type uploadFile struct {
	Key       string    `json:"key"`
	Initiated time.Time `json:"initiated"`
	// Meta holds the object's metadata (a meta without a version).
	Meta json.RawMessage `json:"meta"`
	// The conditions of the write, checked at completion.
	IfNoneMatch bool   `json:"if_none_match,omitempty"`
	IfMatch     string `json:"if_match,omitempty"`
}

// options returns the PutOptions the upload was created with.
func (u *uploadFile) options() (blob.PutOptions, error) {
	m := &meta{}
	if err := json.Unmarshal(u.Meta, m); err != nil {
		return blob.PutOptions{}, err
	}
	m.mapStrings(wireIn)
	o := blob.MetaOf(m.info())
	o.IfNoneMatch, o.IfMatch = u.IfNoneMatch, u.IfMatch
	return o, nil
}

// errPartNumber is S3's answer to a part number out of range.
var errPartNumber = &blob.Error{Code: "InvalidArgument", Status: 400, Message: "Part number must be an integer between 1 and 10000, inclusive"}

func uploadDir(bucket, id string) string { return uploadsDir + "/" + bucket + "/" + id }

func (s *Store) uploadLock(id string) *sync.Mutex {
	return &s.uploadLocks[maphash.String(lockSeed, id)%uint64(len(s.uploadLocks))]
}

// openUpload reads the upload id of key.
func (s *Store) openUpload(r *os.Root, bucket, key, id string) (*uploadFile, error) {
	if !validBucket(bucket) {
		return nil, blob.ErrNoSuchBucket
	}
	if !validUploadID(id) {
		return nil, blob.ErrNoSuchUpload
	}
	b, err := r.ReadFile(uploadDir(bucket, id) + "/" + uploadFileName)
	if err != nil {
		if notFound(err) {
			if err := s.checkBucket(r, bucket); err != nil {
				return nil, err
			}
			return nil, blob.ErrNoSuchUpload
		}
		return nil, s.ioError("read upload", err)
	}
	u := &uploadFile{}
	if err := json.Unmarshal(b, u); err != nil {
		return nil, s.ioError("read upload", fmt.Errorf("%s is damaged: %v", uploadDir(bucket, id), err))
	}
	if u.Key != key {
		return nil, blob.ErrNoSuchUpload
	}
	return u, nil
}

// CreateMultipartUpload creates the upload's directory, whole, by rename.
func (s *Store) CreateMultipartUpload(ctx context.Context, bucket, key string, o blob.PutOptions) (string, error) {
	r, err := s.fsroot()
	if err != nil {
		return "", err
	}
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	s.bucketsMu.RLock()
	defer s.bucketsMu.RUnlock()
	if err := s.checkBucket(r, bucket); err != nil {
		return "", err
	}
	id, at := newUploadID()
	m := newMeta("", 0, "", 0, &o)
	u := uploadFile{Key: key, Initiated: at, Meta: m.marshal(), IfNoneMatch: o.IfNoneMatch, IfMatch: o.IfMatch}
	b, _ := json.Marshal(&u)
	tmp := s.tempName("upload")
	if err := r.Mkdir(tmp, 0o755); err != nil {
		return "", s.ioError("create upload", err)
	}
	fail := func(err error) (string, error) {
		r.RemoveAll(tmp)
		return "", s.ioError("create upload", err)
	}
	if err := s.writeFileSynced(r, tmp+"/"+uploadFileName, b); err != nil {
		return fail(err)
	}
	if err := s.syncDir(r, tmp); err != nil {
		return fail(err)
	}
	parent := uploadsDir + "/" + bucket
	if err := r.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fail(err)
	}
	if err := r.Rename(tmp, parent+"/"+id); err != nil {
		return fail(err)
	}
	if err := s.syncDir(r, parent); err != nil {
		return "", s.ioError("create upload", err)
	}
	return id, nil
}

// UploadPart streams a part into a temporary file and commits it in the
// upload's directory.
func (s *Store) UploadPart(ctx context.Context, bucket, key, uploadID string, n int, body io.Reader, size int64) (blob.Part, error) {
	r, err := s.fsroot()
	if err != nil {
		return blob.Part{}, err
	}
	if _, err := s.openUpload(r, bucket, key, uploadID); err != nil {
		return blob.Part{}, err
	}
	if n < 1 || n > blob.MaxParts {
		return blob.Part{}, errPartNumber
	}
	tmp, size, etag, err := s.writeBody(ctx, r, body, size, maxPutSize)
	if err != nil {
		return blob.Part{}, fmt.Errorf("upload part %d of %s/%s: %w", n, bucket, key, err)
	}
	dir := uploadDir(bucket, uploadID)
	m := &meta{Size: size, ETag: etag, Modified: time.Now().UTC()}
	t := target{dir: dir, name: fmt.Sprintf("%05d", n), lock: s.uploadLock(uploadID), gone: blob.ErrNoSuchUpload}
	// Under the upload's lock: the upload is still there (not completed
	// or aborted while the part was read).
	check := func(*meta) error {
		if _, err := r.Stat(dir + "/" + uploadFileName); err != nil {
			if notFound(err) {
				return blob.ErrNoSuchUpload
			}
			return s.ioError("upload part", err)
		}
		return nil
	}
	if err := s.commit(r, t, tmp, m, check); err != nil {
		return blob.Part{}, err
	}
	return blob.Part{Number: n, ETag: etag, Size: size, LastModified: m.Modified}, nil
}

// readParts returns an upload's parts, by number, with their versions.
func (s *Store) readParts(r *os.Root, bucket, id string) (map[int]blob.Part, map[int]string, error) {
	dir := uploadDir(bucket, id)
	names, err := readDirNames(r, dir)
	if err != nil {
		if notFound(err) {
			return nil, nil, blob.ErrNoSuchUpload
		}
		return nil, nil, s.ioError("list parts", err)
	}
	parts, versions := map[int]blob.Part{}, map[int]string{}
	for _, name := range names {
		num, ok := strings.CutSuffix(name, "~m")
		if !ok || len(num) != 5 {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > blob.MaxParts {
			continue
		}
		m, err := readMeta(r, dir+"/"+name)
		if err != nil {
			if notFound(err) {
				continue
			}
			return nil, nil, s.ioError("list parts", err)
		}
		parts[n] = blob.Part{Number: n, ETag: m.ETag, Size: m.Size, LastModified: m.Modified}
		versions[n] = m.Version
	}
	return parts, versions, nil
}

// ListParts lists an upload's parts numbered above marker, at most max
// (1000 when max is not positive).
func (s *Store) ListParts(ctx context.Context, bucket, key, uploadID string, marker, max int) (*blob.PartListing, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	if _, err := s.openUpload(r, bucket, key, uploadID); err != nil {
		return nil, err
	}
	parts, _, err := s.readParts(r, bucket, uploadID)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1000
	}
	out := &blob.PartListing{}
	for _, n := range slices.Sorted(maps.Keys(parts)) {
		if n <= marker {
			continue
		}
		if len(out.Parts) == max {
			out.Truncated = true
			break
		}
		out.Parts = append(out.Parts, parts[n])
		out.NextMarker = n
	}
	return out, nil
}

// CompleteMultipartUpload streams the parts named into a temporary file
// (with copy_file_range where the system has it), commits it as the
// object, then removes the upload. The upload's lock is held throughout:
// parts arriving meanwhile wait, and then find the upload gone.
func (s *Store) CompleteMultipartUpload(ctx context.Context, bucket, key, uploadID string, want []blob.CompletePart) (*blob.Info, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	lock := s.uploadLock(uploadID)
	lock.Lock()
	defer lock.Unlock()
	u, err := s.openUpload(r, bucket, key, uploadID)
	if err != nil {
		return nil, err
	}
	o, err := u.options()
	if err != nil {
		return nil, s.ioError("complete", err)
	}
	uploaded, versions, err := s.readParts(r, bucket, uploadID)
	if err != nil {
		return nil, err
	}
	parts, err := blob.CheckParts(uploaded, want)
	if err != nil {
		return nil, err
	}
	var total int64
	etags := make([]string, 0, len(parts))
	for _, p := range parts {
		total += p.Size
		etags = append(etags, p.ETag)
	}
	if total > maxObjectSize {
		return nil, blob.ErrEntityTooLarge
	}
	// Fail early on the conditions, before the copy; they are checked
	// again at the commit.
	if o.IfNoneMatch || o.IfMatch != "" {
		cur, _, err := s.loadMeta(r, bucket, key)
		if err != nil && !errors.Is(err, blob.ErrNoSuchKey) {
			return nil, err
		}
		if err := checkConditions(cur, &o); err != nil {
			return nil, err
		}
	}
	tmp, err := s.assemble(ctx, r, uploadDir(bucket, uploadID), parts, versions)
	if err != nil {
		return nil, err
	}
	info, err := s.commitObject(r, bucket, key, tmp, newMeta(key, total, blob.MultipartETag(etags), len(parts), &o), &o)
	if err != nil {
		return nil, err
	}
	s.removeUpload(r, bucket, uploadID)
	return info, nil
}

// assemble copies parts, in order, into a new temporary file.
func (s *Store) assemble(ctx context.Context, r *os.Root, dir string, parts []blob.Part, versions map[int]string) (string, error) {
	tmp := s.tempName("assemble")
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", s.ioError("complete", err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		r.Remove(tmp)
		return "", err
	}
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		pf, err := r.Open(fmt.Sprintf("%s/%05d~v%s", dir, p.Number, versions[p.Number]))
		if err != nil {
			return fail(s.ioError("complete", err))
		}
		n, err := io.Copy(f, pf)
		pf.Close()
		if err != nil || n != p.Size {
			return fail(s.ioError("complete", fmt.Errorf("copy part %d: %d of %d bytes (%v)", p.Number, n, p.Size, err)))
		}
	}
	if s.cfg.Fsync {
		if err := f.Sync(); err != nil {
			return fail(s.ioError("complete", err))
		}
	}
	if err := f.Close(); err != nil {
		r.Remove(tmp)
		return "", s.ioError("complete", err)
	}
	return tmp, nil
}

// removeUpload renames an upload's directory away (at once), then
// removes it. The caller holds the upload's lock.
func (s *Store) removeUpload(r *os.Root, bucket, id string) error {
	trash := s.tempName("trash")
	if err := r.Rename(uploadDir(bucket, id), trash); err != nil {
		if notFound(err) {
			return blob.ErrNoSuchUpload
		}
		return s.ioError("remove upload", err)
	}
	if err := s.syncDir(r, uploadsDir+"/"+bucket); err != nil {
		s.log.Warn("fs backend could not sync after removing an upload", "upload", id, "err", err)
	}
	r.RemoveAll(trash)
	return nil
}

// AbortMultipartUpload removes an upload and its parts.
func (s *Store) AbortMultipartUpload(ctx context.Context, bucket, key, uploadID string) error {
	r, err := s.fsroot()
	if err != nil {
		return err
	}
	lock := s.uploadLock(uploadID)
	lock.Lock()
	defer lock.Unlock()
	if _, err := s.openUpload(r, bucket, key, uploadID); err != nil {
		return err
	}
	return s.removeUpload(r, bucket, uploadID)
}

// ListMultipartUploads lists the uploads in progress, by key and then by
// initiation.
func (s *Store) ListMultipartUploads(ctx context.Context, bucket string, q blob.UploadQuery) (*blob.UploadListing, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	if err := s.checkBucket(r, bucket); err != nil {
		return nil, err
	}
	all, err := s.uploads(r, bucket)
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(u blob.Upload) bool { return !strings.HasPrefix(u.Key, q.Prefix) })
	return blob.UploadPage(all, q), nil
}

// uploads reads every upload of a bucket.
func (s *Store) uploads(r *os.Root, bucket string) ([]blob.Upload, error) {
	ids, err := readDirNames(r, uploadsDir+"/"+bucket)
	if err != nil {
		if notFound(err) {
			return nil, nil
		}
		return nil, s.ioError("list uploads", err)
	}
	var out []blob.Upload
	for _, id := range ids {
		if !validUploadID(id) {
			continue
		}
		b, err := r.ReadFile(uploadDir(bucket, id) + "/" + uploadFileName)
		if err != nil {
			continue // completed or aborted meanwhile
		}
		var u uploadFile
		if json.Unmarshal(b, &u) != nil {
			continue
		}
		out = append(out, blob.Upload{Key: u.Key, ID: id, Initiated: u.Initiated})
	}
	return out, nil
}

// newUploadID returns an id that sorts after every id this process gave
// before (a time, in nanoseconds, made strictly increasing), then random
// bits, and the time it stands for.
func newUploadID() (string, time.Time) {
	for {
		last := lastUpload.Load()
		n := max(time.Now().UnixNano(), last+1)
		if lastUpload.CompareAndSwap(last, n) {
			return fmt.Sprintf("%016x%016x", n, rand.Uint64()), time.Unix(0, n).UTC()
		}
	}
}

var lastUpload atomic.Int64
