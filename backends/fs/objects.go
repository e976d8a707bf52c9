package fs

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// Limits S3 sets, which the store keeps too: a body of unknown length is
// cut off there rather than filling the disk.
const (
	maxPutSize    = 5 << 30 // one PutObject or UploadPart
	maxObjectSize = 5 << 40 // a completed multipart upload
)

// meta is the metadata file of an object (E~m) or a part. It is written
// whole to a temporary file and renamed into place: that rename is the
// moment a write happens. Version names the data file it describes.
type meta struct {
	Key                string            `json:"key,omitempty"`
	Version            string            `json:"version"`
	Size               int64             `json:"size"`
	ETag               string            `json:"etag"`
	Modified           time.Time         `json:"modified"`
	Parts              int               `json:"parts,omitempty"`
	ContentType        string            `json:"content_type,omitempty"`
	ContentEncoding    string            `json:"content_encoding,omitempty"`
	ContentDisposition string            `json:"content_disposition,omitempty"`
	ContentLanguage    string            `json:"content_language,omitempty"`
	CacheControl       string            `json:"cache_control,omitempty"`
	Expires            string            `json:"expires,omitempty"`
	UserMeta           map[string]string `json:"user_meta,omitempty"`
	Checksums          map[string]string `json:"checksums,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
}

func newMeta(key string, size int64, etag string, parts int, o *blob.PutOptions) *meta {
	return &meta{
		Key: key, Size: size, ETag: etag, Modified: time.Now().UTC(), Parts: parts,
		ContentType: o.ContentType, ContentEncoding: o.ContentEncoding, ContentDisposition: o.ContentDisposition,
		ContentLanguage: o.ContentLanguage, CacheControl: o.CacheControl, Expires: o.Expires,
		UserMeta: cloneMap(o.UserMeta), Checksums: cloneMap(o.Checksums), Tags: cloneMap(o.Tags),
	}
}

func (m *meta) info() *blob.Info {
	return &blob.Info{
		Key: m.Key, Size: m.Size, ETag: m.ETag, LastModified: m.Modified, Parts: m.Parts,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, ContentDisposition: m.ContentDisposition,
		ContentLanguage: m.ContentLanguage, CacheControl: m.CacheControl, Expires: m.Expires,
		UserMeta: cloneMap(m.UserMeta), Checksums: cloneMap(m.Checksums), Tags: cloneMap(m.Tags),
	}
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// JSON cannot hold bytes that are not UTF-8 (encoding/json replaces them),
// and header values may carry such bytes. The header fields and maps are
// therefore written through wireOut: a string that is not valid UTF-8, or
// that starts with NUL, is written as NUL followed by its base64. Keys are
// valid UTF-8 (checkKey) and are written as they are.
func wireOut(s string) string {
	if utf8.ValidString(s) && !strings.HasPrefix(s, "\x00") {
		return s
	}
	return "\x00" + base64.StdEncoding.EncodeToString([]byte(s))
}

func wireIn(s string) string {
	if rest, ok := strings.CutPrefix(s, "\x00"); ok {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	return s
}

// mapStrings applies f to every header field and map entry.
func (m *meta) mapStrings(f func(string) string) {
	for _, p := range []*string{&m.ContentType, &m.ContentEncoding, &m.ContentDisposition, &m.ContentLanguage, &m.CacheControl, &m.Expires} {
		*p = f(*p)
	}
	for _, mp := range []*map[string]string{&m.UserMeta, &m.Checksums, &m.Tags} {
		if *mp == nil {
			continue
		}
		out := make(map[string]string, len(*mp))
		for k, v := range *mp {
			out[f(k)] = f(v)
		}
		*mp = out
	}
}

func (m *meta) marshal() []byte {
	w := *m
	w.mapStrings(wireOut)
	b, _ := json.Marshal(&w)
	return b
}

// readMeta reads a metadata file.
func readMeta(r *os.Root, name string) (*meta, error) {
	b, err := r.ReadFile(name)
	if err != nil {
		return nil, err
	}
	m := &meta{}
	if err := json.Unmarshal(b, m); err != nil || m.Version == "" || !validVersion(m.Version) {
		return nil, fmt.Errorf("metadata file %s is damaged (%v)", name, err)
	}
	m.mapStrings(wireIn)
	return m, nil
}

// notFound reports whether err means a file, or a directory on its path,
// does not exist.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// objPath is where an object lives, relative to the root.
type objPath struct {
	bucket string
	kp     keyPath
}

func (s *Store) objPath(bucket, key string) objPath {
	return objPath{bucket: bucket, kp: splitKey(key, s.fold)}
}

// dir is the object's directory.
func (p objPath) dir() string {
	if len(p.kp.dirs) == 0 {
		return p.bucket
	}
	return p.bucket + "/" + p.kp.dir()
}

func (p objPath) metaName() string           { return p.dir() + "/" + p.kp.name + "~m" }
func (p objPath) dataName(ver string) string { return p.dir() + "/" + p.kp.name + "~v" + ver }

var lockSeed = maphash.MakeSeed()

func (s *Store) keyLock(bucket, key string) *sync.Mutex {
	return &s.keyLocks[maphash.String(lockSeed, bucket+"\x00"+key)%uint64(len(s.keyLocks))]
}

// checkBucket returns ErrNoSuchBucket unless the bucket exists.
func (s *Store) checkBucket(r *os.Root, bucket string) error {
	if !validBucket(bucket) {
		return blob.ErrNoSuchBucket
	}
	if _, err := r.Stat(bucket + "/" + bucketFile); err != nil {
		if notFound(err) {
			return blob.ErrNoSuchBucket
		}
		return s.ioError("check bucket", err)
	}
	return nil
}

// loadMeta reads an object's metadata.
func (s *Store) loadMeta(r *os.Root, bucket, key string) (*meta, objPath, error) {
	p := s.objPath(bucket, key)
	if !validBucket(bucket) {
		return nil, p, blob.ErrNoSuchBucket
	}
	if err := blob.CheckKey(key); err != nil {
		return nil, p, err
	}
	m, err := readMeta(r, p.metaName())
	if err != nil {
		if notFound(err) {
			if err := s.checkBucket(r, bucket); err != nil {
				return nil, p, err
			}
			return nil, p, blob.ErrNoSuchKey
		}
		return nil, p, s.ioError("read metadata", err)
	}
	if m.Key != key {
		return nil, p, s.ioError("read metadata", fmt.Errorf("%s holds the metadata of %q, not %q", p.metaName(), m.Key, key))
	}
	return m, p, nil
}

// checkConditions applies a write's preconditions to the current object
// (nil: none).
func checkConditions(cur *meta, o *blob.PutOptions) error {
	if o.IfNoneMatch && cur != nil {
		return blob.ErrPreconditionFailed
	}
	if o.IfMatch != "" {
		if cur == nil || (o.IfMatch != "*" && blob.TrimETag(o.IfMatch) != cur.ETag) {
			return blob.ErrPreconditionFailed
		}
	}
	return nil
}

// ctxReader fails reads once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fileWriter remembers a write error, to tell it from the body's.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// writeBody streams body into a new temporary file, synced, and returns
// its name, length and MD5. size is the body's length or -1; limit the
// most it may hold. On error the file is gone, and the error is the
// body's own when the body failed.
func (s *Store) writeBody(ctx context.Context, r *os.Root, body io.Reader, size, limit int64) (string, int64, string, error) {
	return s.writeBodyTo(ctx, r, s.tempName("data"), nil, body, size, limit)
}

// writeBodyTo is writeBody into the new file tmp; mkdirs (when not nil)
// makes tmp's directories when they are missing.
func (s *Store) writeBodyTo(ctx context.Context, r *os.Root, tmp string, mkdirs func() error, body io.Reader, size, limit int64) (string, int64, string, error) {
	if size > limit {
		return "", 0, "", blob.ErrEntityTooLarge
	}
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	for attempt := 0; err != nil && notFound(err) && mkdirs != nil && attempt < 100; attempt++ {
		if err := mkdirs(); err != nil {
			return "", 0, "", err
		}
		f, err = r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		return "", 0, "", s.ioError("create temporary file", err)
	}
	fail := func(err error) (string, int64, string, error) {
		f.Close()
		r.Remove(tmp)
		return "", 0, "", err
	}
	h := md5.New()
	fw := &fileWriter{f: f}
	src := ctxReader{ctx, body}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	want := limit + 1
	if size >= 0 {
		want = size
	}
	n, err := io.CopyBuffer(io.MultiWriter(fw, h), io.LimitReader(src, want), *buf)
	switch {
	case fw.err != nil:
		return fail(s.ioError("write", fw.err))
	case err != nil:
		return fail(err)
	case size < 0 && n > limit:
		return fail(blob.ErrEntityTooLarge)
	case size >= 0 && n < size:
		return fail(blob.ErrIncompleteBody)
	case size >= 0:
		// The body must end here: read on to its end, where a
		// frontend's body reports a bad checksum or signature.
		var one [1]byte
		k, err := io.ReadFull(src, one[:])
		if k > 0 {
			return fail(blob.ErrIncompleteBody)
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return fail(err)
		}
	}
	if s.cfg.Fsync {
		if err := f.Sync(); err != nil {
			return fail(s.ioError("sync", err))
		}
	}
	if err := f.Close(); err != nil {
		r.Remove(tmp)
		return "", 0, "", s.ioError("close", err)
	}
	s.written.Add(uint64(n))
	return tmp, n, hex.EncodeToString(h.Sum(nil)), nil
}

// target is where commit puts a version: the metadata file dir/name~m
// and the data file dir/name~v<version>.
type target struct {
	dir, name string
	lock      *sync.Mutex // serialises commits to this name
	// mkdirs, for objects, creates the directories from the bucket's
	// down to dir, which come and go with the keys under them.
	mkdirs func() error
	// gone is the error when dir no longer exists (parts: the upload was
	// completed or aborted).
	gone error
}

// commit makes tmp, a complete data file in the temporary directory, the
// current version at t, with m (its Version set here) as its metadata,
// if check allows it given the current metadata (nil: none). In order:
//
//  1. the data file is renamed into t.dir under a name of its own, and
//     the directory synced: nothing refers to it yet;
//  2. the metadata, written and synced in the temporary directory, is
//     renamed over the current one under t.lock, and the directory
//     synced: from then on readers find the new version;
//  3. the previous version's data file is removed.
//
// A crash before 2 leaves an unreferenced data file (removed at the next
// start); after 2 and before 3, the previous one. Readers that opened the
// previous version's data file keep reading it whole.
func (s *Store) commit(r *os.Root, t target, tmp string, m *meta, check func(cur *meta) error) error {
	if m.Version == "" {
		m.Version = s.newVersion()
	}
	data := t.dir + "/" + t.name + "~v" + m.Version
	// A data file written in place already (PutObject) needs no rename.
	for attempt := 0; tmp != data; attempt++ {
		err := r.Rename(tmp, data)
		if err == nil {
			break
		}
		// The object's directories are made only when the rename finds
		// one missing (the first key under a prefix, or a directory a
		// delete emptied and removed meanwhile): most writes go to
		// directories that exist, and save the system calls.
		if notFound(err) && t.mkdirs != nil && attempt < 100 {
			if err := t.mkdirs(); err != nil {
				r.Remove(tmp)
				return err
			}
			continue
		}
		r.Remove(tmp)
		if notFound(err) && t.gone != nil {
			return t.gone
		}
		return s.ioError("rename data into place", err)
	}
	undo := func(err error) error {
		r.Remove(data)
		return err
	}
	if err := s.syncDir(r, t.dir); err != nil {
		return undo(s.ioError("sync directory", err))
	}
	metaTmp := s.tempName("meta")
	if err := s.writeFileSynced(r, metaTmp, m.marshal()); err != nil {
		return undo(s.ioError("write metadata", err))
	}
	metaName := t.dir + "/" + t.name + "~m"
	t.lock.Lock()
	cur, err := readMeta(r, metaName)
	if err != nil && !notFound(err) {
		t.lock.Unlock()
		r.Remove(metaTmp)
		return undo(s.ioError("read metadata", err))
	}
	if err := check(cur); err != nil {
		t.lock.Unlock()
		r.Remove(metaTmp)
		return undo(err)
	}
	if err := r.Rename(metaTmp, metaName); err != nil {
		t.lock.Unlock()
		r.Remove(metaTmp)
		return undo(s.ioError("rename metadata into place", err))
	}
	err = s.syncDir(r, t.dir)
	t.lock.Unlock()
	if err != nil {
		// The new version is in place, only perhaps not durable yet:
		// keep the old data file, which a crash could bring back.
		return s.ioError("sync directory", err)
	}
	if cur != nil {
		r.Remove(t.dir + "/" + t.name + "~v" + cur.Version)
	}
	return nil
}

// mkdirsFor returns the mkdirs of an object's target: it makes the
// directories from the bucket's down to the object's, again when a delete
// removes one meanwhile.
func (s *Store) mkdirsFor(r *os.Root, p objPath) func() error {
	if len(p.kp.dirs) == 0 {
		return nil
	}
	return func() error {
		var err error
		for attempt := 0; attempt < 100; attempt++ {
			if err = r.MkdirAll(p.dir(), 0o755); err == nil || !notFound(err) {
				break
			}
		}
		if err != nil {
			return s.ioError("create directory", err)
		}
		return nil
	}
}

// removeEmptyDirs removes the object's directories that are left empty,
// from the innermost up to (not including) the bucket's.
func (s *Store) removeEmptyDirs(r *os.Root, p objPath) {
	dirs := p.kp.dirs
	if len(dirs) == 0 || r.Remove(p.dir()) != nil {
		return // the common case: the directory still holds other keys
	}
	if len(dirs) < 2 {
		return
	}
	// Up the chain, each removal relative to its parent, opened once:
	// deep keys cost one open per level, not one per level and removal.
	parents := make([]*os.Root, 0, len(dirs)-1) // parents[i] holds dirs[i]
	defer func() {
		for _, d := range parents {
			d.Close()
		}
	}()
	d, err := r.OpenRoot(p.bucket)
	for i := 0; ; i++ {
		if err != nil {
			return
		}
		parents = append(parents, d)
		if i == len(dirs)-2 {
			break
		}
		d, err = d.OpenRoot(dirs[i])
	}
	for i := len(parents) - 1; i >= 0; i-- {
		if parents[i].Remove(dirs[i]) != nil {
			return // not empty (or already gone)
		}
	}
}

// commitObject commits an object's new version (see commit) and its
// directories, with o's preconditions checked at the moment of the
// rename.
func (s *Store) commitObject(r *os.Root, bucket, key, tmp string, m *meta, o *blob.PutOptions) (*blob.Info, error) {
	s.bucketsMu.RLock()
	defer s.bucketsMu.RUnlock()
	if err := s.checkBucket(r, bucket); err != nil {
		r.Remove(tmp)
		return nil, err
	}
	p := s.objPath(bucket, key)
	t := target{dir: p.dir(), name: p.kp.name, lock: s.keyLock(bucket, key), mkdirs: s.mkdirsFor(r, p)}
	if err := s.commit(r, t, tmp, m, func(cur *meta) error { return checkConditions(cur, o) }); err != nil {
		s.removeEmptyDirs(r, p)
		return nil, err
	}
	s.puts.Inc()
	return m.info(), nil
}

// ListBuckets returns every bucket, sorted by name.
func (s *Store) ListBuckets(ctx context.Context) ([]blob.Bucket, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	names, err := readDirNames(r, ".")
	if err != nil {
		return nil, s.ioError("list buckets", err)
	}
	slices.Sort(names)
	var out []blob.Bucket
	for _, n := range names {
		if !validBucket(n) {
			continue
		}
		b, err := r.ReadFile(n + "/" + bucketFile)
		if err != nil {
			continue // not a bucket, or deleted meanwhile
		}
		var bf struct {
			Created time.Time `json:"created"`
		}
		json.Unmarshal(b, &bf)
		out = append(out, blob.Bucket{Name: n, Created: bf.Created})
	}
	return out, nil
}

// CreateBucket creates a bucket's directory, with its creation time in
// it, by rename: a bucket exists whole or not at all.
func (s *Store) CreateBucket(ctx context.Context, bucket string) error {
	r, err := s.fsroot()
	if err != nil {
		return err
	}
	if !validBucket(bucket) {
		return &blob.Error{Code: "InvalidBucketName", Status: 400, Message: "The specified bucket is not valid."}
	}
	s.bucketsMu.Lock()
	defer s.bucketsMu.Unlock()
	if err := s.checkBucket(r, bucket); err == nil {
		return blob.ErrBucketExists
	}
	b, _ := json.Marshal(map[string]time.Time{"created": time.Now().UTC()})
	tmp := s.tempName("bucket")
	if err := r.Mkdir(tmp, 0o755); err != nil {
		return s.ioError("create bucket", err)
	}
	if err := s.writeFileSynced(r, tmp+"/"+bucketFile, b); err != nil {
		r.RemoveAll(tmp)
		return s.ioError("create bucket", err)
	}
	if err := s.syncDir(r, tmp); err != nil {
		r.RemoveAll(tmp)
		return s.ioError("create bucket", err)
	}
	if err := r.Rename(tmp, bucket); err != nil {
		r.RemoveAll(tmp)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			// A directory of that name that is not a bucket.
			return blob.ErrBucketExists
		}
		return s.ioError("create bucket", err)
	}
	if err := s.syncDir(r, "."); err != nil {
		return s.ioError("create bucket", err)
	}
	return nil
}

// DeleteBucket removes a bucket without objects or uploads in progress:
// its directory is renamed away (at once), then removed.
func (s *Store) DeleteBucket(ctx context.Context, bucket string) error {
	r, err := s.fsroot()
	if err != nil {
		return err
	}
	s.bucketsMu.Lock()
	defer s.bucketsMu.Unlock()
	if err := s.checkBucket(r, bucket); err != nil {
		return err
	}
	ups, err := readDirNames(r, uploadsDir+"/"+bucket)
	if err != nil && !notFound(err) {
		return s.ioError("delete bucket", err)
	}
	if len(ups) > 0 {
		return blob.ErrBucketNotEmpty
	}
	found, err := s.hasObjects(r, bucket)
	if err != nil {
		return s.ioError("delete bucket", err)
	}
	if found {
		return blob.ErrBucketNotEmpty
	}
	trash := s.tempName("trash")
	if err := r.Rename(bucket, trash); err != nil {
		return s.ioError("delete bucket", err)
	}
	if err := s.syncDir(r, "."); err != nil {
		s.log.Warn("fs backend could not sync the root after deleting a bucket", "bucket", bucket, "err", err)
	}
	r.RemoveAll(trash) // leftovers (empty directories, orphans) go too
	r.Remove(uploadsDir + "/" + bucket)
	return nil
}

// hasObjects reports whether a directory holds an object's metadata,
// however deep.
func (s *Store) hasObjects(r *os.Root, dir string) (bool, error) {
	d, err := r.OpenRoot(dir)
	if err != nil {
		if notFound(err) {
			return false, nil
		}
		return false, err
	}
	defer d.Close()
	entries, err := readDirEntries(d, ".")
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		switch kind, _, _ := s.parseEntry(e); kind {
		case kindMeta:
			return true, nil
		case kindDir, kindCont:
			if found, err := s.hasObjects(d, e.Name()); found || err != nil {
				return found, err
			}
		}
	}
	return false, nil
}

// HeadBucket reports whether the bucket exists.
func (s *Store) HeadBucket(ctx context.Context, bucket string) error {
	r, err := s.fsroot()
	if err != nil {
		return err
	}
	return s.checkBucket(r, bucket)
}

// HeadObject returns an object's metadata.
func (s *Store) HeadObject(ctx context.Context, bucket, key string) (*blob.Info, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	m, _, err := s.loadMeta(r, bucket, key)
	if err != nil {
		return nil, err
	}
	return m.info(), nil
}

// GetObject opens the current version's data file. The open file keeps
// reading that version whatever is written or deleted after.
func (s *Store) GetObject(ctx context.Context, bucket, key string, rng *blob.Range) (*blob.Object, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 100; attempt++ {
		m, p, err := s.loadMeta(r, bucket, key)
		if err != nil {
			return nil, err
		}
		start, end := int64(0), m.Size-1
		if rng != nil {
			var ok bool
			if start, end, ok = rng.Resolve(m.Size); !ok {
				return nil, blob.ErrInvalidRange
			}
		}
		f, err := r.Open(p.dataName(m.Version))
		if notFound(err) {
			continue // replaced since the metadata was read: read it again
		}
		if err != nil {
			return nil, s.ioError("open", err)
		}
		if st, err := f.Stat(); err != nil || st.Size() != m.Size {
			f.Close()
			return nil, s.ioError("open", fmt.Errorf("%s does not have the %d bytes its metadata says (%v)", p.dataName(m.Version), m.Size, err))
		}
		if start > 0 {
			if _, err := f.Seek(start, io.SeekStart); err != nil {
				f.Close()
				return nil, s.ioError("seek", err)
			}
		}
		s.gets.Inc()
		body := &fileBody{f: f, lr: io.LimitedReader{R: f, N: end - start + 1}}
		return &blob.Object{Info: *m.info(), Body: body, Start: start, End: end, Partial: rng != nil}, nil
	}
	return nil, s.ioError("open", fmt.Errorf("%s/%s keeps changing", bucket, key))
}

// fileBody reads a range of an open data file. Its WriteTo hands the
// file to the writer's ReadFrom, so that a copy to a socket can use
// sendfile.
type fileBody struct {
	f  *os.File
	lr io.LimitedReader
}

func (b *fileBody) Read(p []byte) (int, error)         { return b.lr.Read(p) }
func (b *fileBody) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, &b.lr) }
func (b *fileBody) Close() error                       { return b.f.Close() }

// PutObject streams body into a temporary file and commits it.
func (s *Store) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, o blob.PutOptions) (*blob.Info, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	if err := blob.CheckKey(key); err != nil {
		return nil, err
	}
	// What fails before the body is read fails without reading it.
	if err := s.checkBucket(r, bucket); err != nil {
		return nil, err
	}
	if o.IfNoneMatch || o.IfMatch != "" {
		m, _, err := s.loadMeta(r, bucket, key)
		if err != nil && !errors.Is(err, blob.ErrNoSuchKey) {
			return nil, err
		}
		if err := checkConditions(m, &o); err != nil {
			return nil, err
		}
	}
	// The data goes straight to its place under a version name of its
	// own: nothing refers to it until the metadata does (commit), a
	// failed write removes it, and the start sweep removes what a crash
	// left of one. That saves the rename a temporary file would need.
	p := s.objPath(bucket, key)
	version := s.newVersion()
	data, n, etag, err := s.writeBodyTo(ctx, r, p.dir()+"/"+p.kp.name+"~v"+version, s.mkdirsFor(r, p), body, size, maxPutSize)
	if err != nil {
		s.removeEmptyDirs(r, p)
		return nil, fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	m := newMeta(key, n, etag, 0, &o)
	m.Version = version
	return s.commitObject(r, bucket, key, data, m, &o)
}

// DeleteObject removes an object's metadata (the delete happens there),
// then its data file and the directories left empty.
func (s *Store) DeleteObject(ctx context.Context, bucket, key string) error {
	r, err := s.fsroot()
	if err != nil {
		return err
	}
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	s.bucketsMu.RLock()
	defer s.bucketsMu.RUnlock()
	if err := s.checkBucket(r, bucket); err != nil {
		return err
	}
	p := s.objPath(bucket, key)
	lock := s.keyLock(bucket, key)
	lock.Lock()
	cur, err := readMeta(r, p.metaName())
	if err != nil {
		lock.Unlock()
		if notFound(err) {
			return nil
		}
		return s.ioError("delete", err)
	}
	err = r.Remove(p.metaName())
	if err == nil {
		err = s.syncDir(r, p.dir())
	}
	lock.Unlock()
	if err != nil {
		return s.ioError("delete", err)
	}
	r.Remove(p.dataName(cur.Version))
	s.removeEmptyDirs(r, p)
	s.deletes.Inc()
	return nil
}

// CopyObject links the source's data file under a new name (data files
// are never written once in place, so two objects can share one) and
// commits it as the destination; where links are not possible it copies
// the bytes.
func (s *Store) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o blob.CopyOptions) (*blob.Info, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	if err := blob.CheckKey(dstKey); err != nil {
		return nil, err
	}
	if err := s.checkBucket(r, dstBucket); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 100; attempt++ {
		src, p, err := s.loadMeta(r, srcBucket, srcKey)
		if err != nil {
			return nil, err
		}
		data := p.dataName(src.Version)
		tmp := s.tempName("copy")
		if err := r.Link(data, tmp); err != nil {
			if notFound(err) {
				continue // replaced since the metadata was read
			}
			if tmp, err = s.copyData(ctx, r, data, src.Size); err != nil {
				if notFound(err) {
					continue
				}
				return nil, err
			}
		}
		etag := src.ETag
		if src.Parts > 0 {
			// A copy is a single object: its ETag is its content's MD5.
			if etag, err = s.md5File(r, tmp); err != nil {
				r.Remove(tmp)
				return nil, err
			}
		}
		meta := blob.MetaOf(src.info())
		if o.ReplaceMetadata {
			tags := meta.Tags
			meta = o.Meta
			meta.Tags, meta.Checksums = tags, src.Checksums
		}
		if o.ReplaceTags {
			meta.Tags = o.Meta.Tags
		}
		meta.IfMatch, meta.IfNoneMatch = o.Meta.IfMatch, o.Meta.IfNoneMatch
		return s.commitObject(r, dstBucket, dstKey, tmp, newMeta(dstKey, src.Size, etag, 0, &meta), &meta)
	}
	return nil, s.ioError("copy", fmt.Errorf("%s/%s keeps changing", srcBucket, srcKey))
}

// copyData copies a data file to a new temporary file.
func (s *Store) copyData(ctx context.Context, r *os.Root, data string, size int64) (string, error) {
	f, err := r.Open(data)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tmp, _, _, err := s.writeBody(ctx, r, f, size, maxObjectSize)
	return tmp, err
}

// md5File returns the MD5 of a file of the root.
func (s *Store) md5File(r *os.Root, name string) (string, error) {
	f, err := r.Open(name)
	if err != nil {
		return "", s.ioError("read", err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", s.ioError("read", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SetTags rewrites an object's metadata with new tags; its data file
// stays.
func (s *Store) SetTags(ctx context.Context, bucket, key string, tags map[string]string) error {
	r, err := s.fsroot()
	if err != nil {
		return err
	}
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	s.bucketsMu.RLock()
	defer s.bucketsMu.RUnlock()
	if err := s.checkBucket(r, bucket); err != nil {
		return err
	}
	p := s.objPath(bucket, key)
	lock := s.keyLock(bucket, key)
	lock.Lock()
	defer lock.Unlock()
	m, err := readMeta(r, p.metaName())
	if err != nil {
		if notFound(err) {
			return blob.ErrNoSuchKey
		}
		return s.ioError("set tags", err)
	}
	m.Tags = cloneMap(tags)
	tmp := s.tempName("meta")
	if err := s.writeFileSynced(r, tmp, m.marshal()); err != nil {
		return s.ioError("set tags", err)
	}
	if err := r.Rename(tmp, p.metaName()); err != nil {
		r.Remove(tmp)
		return s.ioError("set tags", err)
	}
	if err := s.syncDir(r, p.dir()); err != nil {
		return s.ioError("set tags", err)
	}
	return nil
}
