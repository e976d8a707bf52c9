// Package memory is the `type: memory` blob backend: buckets of objects
// held in Mecha's own memory, with S3's semantics (backends/blob), up to a
// cap on the bytes held. For tests, development and caches: nothing
// survives a restart.
package memory

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

func init() {
	backends.RegisterType("memory", DefaultConfig, func(c *Config, env backends.Env) (backends.Backend, error) {
		return New(c, env)
	})
}

// Config is the `type: memory` backend's configuration.
type Config struct {
	backends.Base `yaml:",inline"`
	// MaxBytes caps the bytes held: objects, parts of multipart uploads in
	// progress, and bodies being received. A write that would pass it
	// fails with XMechaStorageFull (HTTP 507). 0 means no cap.
	MaxBytes configs.Size `yaml:"max_bytes"`
	// MultipartMaxAge is how long an unfinished multipart upload is kept
	// (its parts count against the cap); 0 keeps them until aborted.
	MultipartMaxAge configs.Duration `yaml:"multipart_max_age"`
}

// DefaultConfig returns the defaults: a 256 MiB cap, uploads kept a day.
func DefaultConfig() *Config {
	return &Config{MaxBytes: 256 << 20, MultipartMaxAge: configs.Duration(24 * time.Hour)}
}

// Validate checks the values.
func (c *Config) Validate() error {
	if c.MaxBytes < 0 {
		return configs.Errorf("max_bytes", "must not be negative (0: no cap)")
	}
	if c.MultipartMaxAge < 0 {
		return configs.Errorf("multipart_max_age", "must not be negative (0: never expire)")
	}
	return nil
}

// Limits S3 sets, which the store keeps too: a body of unknown length is
// cut off there rather than filling memory.
const (
	maxPutSize    = 5 << 30   // one PutObject or UploadPart
	maxObjectSize = 5 << 40   // a completed multipart upload
	chunkSize     = 256 << 10 // objects are held in chunks of this size
)

// Store is the memory store. One lock guards the buckets' maps; bodies
// are read and written outside it, and stored content is never changed
// once written, so readers of an old version need no lock at all.
type Store struct {
	name   string
	log    *slog.Logger
	max    int64
	health backends.HealthCell

	mu      sync.RWMutex
	buckets map[string]*bucket
	objects int // objects stored, over all buckets
	uploads int // uploads in progress

	// used is every byte reserved against the cap: content stored, parts
	// uploaded, and bodies being read. Reservations are made chunk by
	// chunk as bodies stream in.
	used atomic.Int64

	puts, gets, deletes, full metrics.Counter
	expiredUploads            metrics.Counter

	maxAge time.Duration
	stop   chan struct{}
	done   sync.WaitGroup
}

type bucket struct {
	created time.Time
	keys    []string // the keys of objects, sorted
	objects map[string]*object
	uploads map[string]*upload
}

// object is a stored object. It is never changed once stored: writes,
// tag changes included, store a new object, so that a reader holding the
// old one sees it whole.
type object struct {
	info blob.Info
	data *content
}

// content is an object's bytes, in chunks that are never written again.
type content struct {
	chunks [][]byte
	size   int64
}

type upload struct {
	id, key   string
	initiated time.Time
	meta      blob.PutOptions
	parts     map[int]*part
}

type part struct {
	blob.Part
	data *content
}

var (
	_ blob.Store        = (*Store)(nil)
	_ metrics.Collector = (*Store)(nil)
)

// New builds an empty store.
func New(cfg *Config, env backends.Env) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memory backend %s: %w", env.Name, err)
	}
	s := &Store{name: env.Name, log: env.Logger, max: int64(cfg.MaxBytes), buckets: map[string]*bucket{},
		maxAge: cfg.MultipartMaxAge.D(), stop: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Start reports the store UP (there is nothing to open) and starts
// removing abandoned multipart uploads.
func (s *Store) Start(ctx context.Context) error {
	s.health.Set(backends.StateUp, "")
	if s.maxAge > 0 {
		s.done.Add(1)
		go s.janitor(min(s.maxAge/4, time.Minute))
	}
	return nil
}

// janitor removes, every interval, the uploads older than maxAge.
func (s *Store) janitor(interval time.Duration) {
	defer s.done.Done()
	t := time.NewTicker(max(interval, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.expireUploads(time.Now().Add(-s.maxAge))
		}
	}
}

// expireUploads aborts the uploads initiated before cutoff.
func (s *Store) expireUploads(cutoff time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.buckets {
		for id, u := range b.uploads {
			if u.initiated.Before(cutoff) {
				for _, p := range u.parts {
					s.release(p.Size)
				}
				delete(b.uploads, id)
				s.uploads--
				s.expiredUploads.Inc()
			}
		}
	}
}

// Close stops the janitor and drops every bucket and what it holds.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.done.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.buckets {
		for _, o := range b.objects {
			s.release(o.info.Size)
		}
		for _, u := range b.uploads {
			for _, p := range u.parts {
				s.release(p.Size)
			}
		}
	}
	s.buckets = map[string]*bucket{}
	s.objects, s.uploads = 0, 0
	s.health.Set(backends.StateDown, "closed")
	return nil
}

// Health is UP once started.
func (s *Store) Health() backends.Health { return s.health.Get() }

// reserve accounts n more bytes, unless that would pass the cap.
func (s *Store) reserve(n int64) bool {
	for {
		u := s.used.Load()
		if s.max > 0 && u+n > s.max {
			s.full.Inc()
			return false
		}
		if s.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (s *Store) release(n int64) { s.used.Add(-n) }

// readBody reads body into new content, computing its MD5 and reserving
// its bytes against the cap as they arrive. size is the body's length or
// -1; limit the most it may hold. On error nothing stays reserved, and the
// error is the body's own when it failed.
func (s *Store) readBody(ctx context.Context, body io.Reader, size, limit int64) (*content, string, error) {
	if size > limit {
		return nil, "", blob.ErrEntityTooLarge
	}
	h := md5.New()
	c := &content{}
	reserved := int64(0)
	fail := func(err error) (*content, string, error) {
		s.release(reserved)
		return nil, "", err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		n := int64(chunkSize)
		if size >= 0 {
			if n = min(n, size-c.size); n == 0 {
				break
			}
		}
		buf := make([]byte, n)
		m, err := io.ReadFull(body, buf)
		if m > 0 {
			// Count what arrived before keeping it.
			if !s.reserve(int64(m)) {
				return fail(blob.ErrStorageFull)
			}
			reserved += int64(m)
			if int64(m) < n {
				// The last chunk of a body of unknown length: keep
				// only what it holds.
				buf = append([]byte(nil), buf[:m]...)
			}
			h.Write(buf)
			c.chunks = append(c.chunks, buf)
			c.size += int64(m)
		}
		if c.size > limit {
			return fail(blob.ErrEntityTooLarge)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if size >= 0 {
				return fail(blob.ErrIncompleteBody)
			}
			return c, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return fail(err)
		}
	}
	// A body of known length must end there: read on to its end, where a
	// frontend's body reports a bad checksum or signature.
	var one [1]byte
	m, err := io.ReadFull(body, one[:])
	if m > 0 {
		return fail(blob.ErrIncompleteBody)
	}
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return fail(err)
	}
	return c, hex.EncodeToString(h.Sum(nil)), nil
}

// checkConditions applies a write's preconditions to the object in place.
func checkConditions(cur *object, o *blob.PutOptions) error {
	if o.IfNoneMatch && cur != nil {
		return blob.ErrPreconditionFailed
	}
	if o.IfMatch != "" {
		if cur == nil || (o.IfMatch != "*" && blob.TrimETag(o.IfMatch) != cur.info.ETag) {
			return blob.ErrPreconditionFailed
		}
	}
	return nil
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// newInfo builds an object's Info from what a write gives, keeping none of
// the caller's maps.
func newInfo(key string, size int64, etag string, parts int, o *blob.PutOptions) blob.Info {
	return blob.Info{
		Key: key, Size: size, ETag: etag, LastModified: time.Now().UTC(), Parts: parts,
		ContentType: o.ContentType, ContentEncoding: o.ContentEncoding, ContentDisposition: o.ContentDisposition,
		ContentLanguage: o.ContentLanguage, CacheControl: o.CacheControl, Expires: o.Expires,
		UserMeta: cloneMap(o.UserMeta), Checksums: cloneMap(o.Checksums), Tags: cloneMap(o.Tags),
	}
}

// copyInfo returns a copy of i that its receiver may change.
func copyInfo(i *blob.Info) *blob.Info {
	c := *i
	c.UserMeta, c.Checksums, c.Tags = cloneMap(i.UserMeta), cloneMap(i.Checksums), cloneMap(i.Tags)
	return &c
}

// bucket returns the bucket, under s.mu.
func (s *Store) bucket(name string) (*bucket, error) {
	b := s.buckets[name]
	if b == nil {
		return nil, blob.ErrNoSuchBucket
	}
	return b, nil
}

// ListBuckets returns every bucket, sorted by name.
func (s *Store) ListBuckets(ctx context.Context) ([]blob.Bucket, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]blob.Bucket, 0, len(s.buckets))
	for name, b := range s.buckets {
		out = append(out, blob.Bucket{Name: name, Created: b.created})
	}
	slices.SortFunc(out, func(a, b blob.Bucket) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CreateBucket creates an empty bucket.
func (s *Store) CreateBucket(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[name] != nil {
		return blob.ErrBucketExists
	}
	s.buckets[name] = &bucket{created: time.Now().UTC(), objects: map[string]*object{}, uploads: map[string]*upload{}}
	return nil
}

// DeleteBucket removes a bucket without objects or uploads in progress.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(name)
	if err != nil {
		return err
	}
	if len(b.objects) > 0 || len(b.uploads) > 0 {
		return blob.ErrBucketNotEmpty
	}
	delete(s.buckets, name)
	return nil
}

// HeadBucket reports whether the bucket exists.
func (s *Store) HeadBucket(ctx context.Context, name string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, err := s.bucket(name)
	return err
}

// ListObjects lists a page of a bucket's keys, from its sorted index.
func (s *Store) ListObjects(ctx context.Context, name string, q blob.ListQuery) (*blob.Listing, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.bucket(name)
	if err != nil {
		return nil, err
	}
	return blob.ListPage(q, func(from string, fn func(blob.Info) bool) error {
		keys := b.keys
		for i := sort.SearchStrings(keys, from); i < len(keys); {
			k := keys[i]
			o := b.objects[k]
			if !fn(blob.Info{Key: k, Size: o.info.Size, ETag: o.info.ETag, LastModified: o.info.LastModified}) {
				return nil
			}
			i++
			// The keys after k that fall under the same common prefix
			// are grouped with it: jump past them.
			if cp, ok := rollup(k, q); ok {
				rest := keys[i:]
				i += sort.Search(len(rest), func(j int) bool { return !strings.HasPrefix(rest[j], cp) })
			}
		}
		return nil
	})
}

// rollup returns the common prefix q groups key under, if any.
func rollup(key string, q blob.ListQuery) (string, bool) {
	if q.Delimiter == "" || !strings.HasPrefix(key, q.Prefix) {
		return "", false
	}
	i := strings.Index(key[len(q.Prefix):], q.Delimiter)
	if i < 0 {
		return "", false
	}
	return key[:len(q.Prefix)+i+len(q.Delimiter)], true
}

// lookup returns the object at bucket/key.
func (s *Store) lookup(bucket, key string) (*object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return nil, err
	}
	o := b.objects[key]
	if o == nil {
		return nil, blob.ErrNoSuchKey
	}
	return o, nil
}

// HeadObject returns an object's metadata.
func (s *Store) HeadObject(ctx context.Context, bucket, key string) (*blob.Info, error) {
	o, err := s.lookup(bucket, key)
	if err != nil {
		return nil, err
	}
	return copyInfo(&o.info), nil
}

// GetObject opens an object or a range of it. The body reads the version
// found, whatever is written after.
func (s *Store) GetObject(ctx context.Context, bucket, key string, rng *blob.Range) (*blob.Object, error) {
	o, err := s.lookup(bucket, key)
	if err != nil {
		return nil, err
	}
	s.gets.Inc()
	start, end := int64(0), o.info.Size-1
	if rng != nil {
		var ok bool
		if start, end, ok = rng.Resolve(o.info.Size); !ok {
			return nil, blob.ErrInvalidRange
		}
	}
	return &blob.Object{Info: *copyInfo(&o.info), Body: o.data.open(start, end), Start: start, End: end, Partial: rng != nil}, nil
}

// PutObject reads body into memory, then stores it as the object.
func (s *Store) PutObject(ctx context.Context, bucket, key string, body io.Reader, size int64, o blob.PutOptions) (*blob.Info, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, err
	}
	// What fails before the body is read fails without reading it.
	if cur, err := s.lookup(bucket, key); err != nil && !errors.Is(err, blob.ErrNoSuchKey) {
		return nil, err
	} else if err := checkConditions(cur, &o); err != nil {
		return nil, err
	}
	c, etag, err := s.readBody(ctx, body, size, maxPutSize)
	if err != nil {
		return nil, fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return s.commit(bucket, &object{info: newInfo(key, c.size, etag, 0, &o), data: c}, &o)
}

// commit stores obj, whose bytes are reserved, in place of any object at
// its key, if the bucket still exists and o's conditions hold.
func (s *Store) commit(bucket string, obj *object, o *blob.PutOptions) (*blob.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		s.release(obj.info.Size)
		return nil, err
	}
	cur := b.objects[obj.info.Key]
	if err := checkConditions(cur, o); err != nil {
		s.release(obj.info.Size)
		return nil, err
	}
	s.storeLocked(b, cur, obj)
	s.puts.Inc()
	return copyInfo(&obj.info), nil
}

// storeLocked puts obj in place of cur (nil: a new key).
func (s *Store) storeLocked(b *bucket, cur, obj *object) {
	if cur != nil {
		s.release(cur.info.Size)
	} else {
		i, _ := slices.BinarySearch(b.keys, obj.info.Key)
		b.keys = slices.Insert(b.keys, i, obj.info.Key)
		s.objects++
	}
	b.objects[obj.info.Key] = obj
}

// DeleteObject removes an object, if there is one.
func (s *Store) DeleteObject(ctx context.Context, bucket, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return err
	}
	o := b.objects[key]
	if o == nil {
		return nil
	}
	delete(b.objects, key)
	if i, ok := slices.BinarySearch(b.keys, key); ok {
		b.keys = slices.Delete(b.keys, i, i+1)
	}
	s.objects--
	s.release(o.info.Size)
	s.deletes.Inc()
	return nil
}

// CopyObject copies without copying bytes: the copy shares the source's
// content, which never changes. It is still counted in full against the
// cap, as a copy the size of its source.
func (s *Store) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, o blob.CopyOptions) (*blob.Info, error) {
	if err := blob.CheckKey(dstKey); err != nil {
		return nil, err
	}
	src, err := s.lookup(srcBucket, srcKey)
	if err != nil {
		return nil, err
	}
	meta := blob.MetaOf(&src.info)
	if o.ReplaceMetadata {
		tags := meta.Tags
		meta = o.Meta
		meta.Tags, meta.Checksums = tags, src.info.Checksums
	}
	if o.ReplaceTags {
		meta.Tags = o.Meta.Tags
	}
	meta.IfMatch, meta.IfNoneMatch = o.Meta.IfMatch, o.Meta.IfNoneMatch
	etag := src.info.ETag
	if src.info.Parts > 0 {
		// A copy is a single object: its ETag is its content's MD5.
		h := md5.New()
		src.data.open(0, src.info.Size-1).(io.WriterTo).WriteTo(h)
		etag = hex.EncodeToString(h.Sum(nil))
	}
	if !s.reserve(src.info.Size) {
		return nil, blob.ErrStorageFull
	}
	return s.commit(dstBucket, &object{info: newInfo(dstKey, src.info.Size, etag, 0, &meta), data: src.data}, &meta)
}

// SetTags replaces an object's tags (by storing a changed copy of its
// metadata: readers of the object keep what they had).
func (s *Store) SetTags(ctx context.Context, bucket, key string, tags map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return err
	}
	cur := b.objects[key]
	if cur == nil {
		return blob.ErrNoSuchKey
	}
	info := *copyInfo(&cur.info)
	info.Tags = cloneMap(tags)
	b.objects[key] = &object{info: info, data: cur.data}
	return nil
}

// CollectMetrics exports the store's size and activity.
func (s *Store) CollectMetrics(w *metrics.Writer) {
	l := metrics.Label{Name: "backend", Value: s.name}
	s.mu.RLock()
	objects, uploads, buckets := s.objects, s.uploads, len(s.buckets)
	s.mu.RUnlock()
	w.Gauge("mecha_memory_buckets", "Buckets held.", float64(buckets), l)
	w.Gauge("mecha_memory_objects", "Objects held, over all buckets.", float64(objects), l)
	w.Gauge("mecha_memory_uploads", "Multipart uploads in progress.", float64(uploads), l)
	w.Gauge("mecha_memory_bytes", "Bytes held: objects, uploaded parts and bodies being received.", float64(s.used.Load()), l)
	w.Gauge("mecha_memory_max_bytes", "The cap on bytes held (0: none).", float64(s.max), l)
	w.Counter("mecha_memory_puts_total", "Objects written (puts, copies, completed uploads).", float64(s.puts.Load()), l)
	w.Counter("mecha_memory_gets_total", "Objects opened for reading.", float64(s.gets.Load()), l)
	w.Counter("mecha_memory_deletes_total", "Objects deleted.", float64(s.deletes.Load()), l)
	w.Counter("mecha_memory_full_total", "Writes refused because the cap was reached.", float64(s.full.Load()), l)
	w.Counter("mecha_memory_expired_uploads_total", "Multipart uploads removed for being older than multipart_max_age.", float64(s.expiredUploads.Load()), l)
}

// open returns a reader of bytes start to end (inclusive) of c.
func (c *content) open(start, end int64) io.ReadCloser {
	r := &reader{chunks: c.chunks, remain: end - start + 1}
	for len(r.chunks) > 0 && start >= int64(len(r.chunks[0])) {
		start -= int64(len(r.chunks[0]))
		r.chunks = r.chunks[1:]
	}
	r.off = int(start)
	return r
}

// reader reads content; it implements io.WriterTo so that copies to a
// response take the chunks as they are.
type reader struct {
	chunks [][]byte
	off    int
	remain int64
}

func (r *reader) next() []byte {
	for r.remain > 0 && len(r.chunks) > 0 {
		b := r.chunks[0][r.off:]
		if len(b) > 0 {
			return b[:min(int64(len(b)), r.remain)]
		}
		r.chunks, r.off = r.chunks[1:], 0
	}
	return nil
}

func (r *reader) advance(n int) {
	r.off += n
	r.remain -= int64(n)
}

func (r *reader) Read(p []byte) (int, error) {
	b := r.next()
	if b == nil {
		return 0, io.EOF
	}
	n := copy(p, b)
	r.advance(n)
	return n, nil
}

func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for b := r.next(); b != nil; b = r.next() {
		n, err := w.Write(b)
		r.advance(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (r *reader) Close() error {
	r.chunks, r.remain = nil, 0
	return nil
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
