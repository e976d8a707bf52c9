package fs

import (
	"context"
	"os"
	"slices"
	"strings"

	"github.com/mecha-gateway/mecha/backends/blob"
)

// ListObjects walks the bucket's tree in key order. A plain directory
// walk is not in S3's order ("a/b" sorts after "a-b" but a directory "a"
// would come first), so each directory's names are decoded and sorted by
// the key prefix they stand for (names.go): an object d as P+d, a
// directory as P+c+"/", a continuation as P+x. No two of those overlap —
// all the keys under one sort between it and the next — so a depth-first
// walk meets keys in UTF-8 binary order. The walk skips subtrees that lie
// wholly before the page's start, and from a subtree whose keys all fall
// under one common prefix it takes only the first key.
func (s *Store) ListObjects(ctx context.Context, bucket string, q blob.ListQuery) (*blob.Listing, error) {
	r, err := s.fsroot()
	if err != nil {
		return nil, err
	}
	if err := s.checkBucket(r, bucket); err != nil {
		return nil, err
	}
	return blob.ListPage(q, func(from string, fn func(blob.Info) bool) error {
		w := &walker{s: s, ctx: ctx, q: q, from: from}
		var failed error
		emit := func(key string, dir *os.Root, metaName string) (bool, bool) {
			m, err := readMeta(dir, metaName)
			if err != nil {
				if notFound(err) {
					return true, false // deleted meanwhile
				}
				failed = s.ioError("list", err)
				return false, false
			}
			if m.Key != key {
				s.log.Warn("fs backend skips metadata that belongs to another key", "file", metaName, "key", m.Key, "want", key)
				return true, false
			}
			return fn(blob.Info{Key: key, Size: m.Size, ETag: m.ETag, LastModified: m.Modified}), true
		}
		top, err := r.OpenRoot(bucket)
		if err != nil {
			if notFound(err) {
				return blob.ErrNoSuchBucket
			}
			return s.ioError("list", err)
		}
		defer top.Close()
		if _, err := w.walk(top, "", emit); err != nil {
			return err
		}
		return failed
	})
}

// walker walks a bucket's tree from a key on. Each directory is opened
// relative to its parent, so that deep keys cost one open per level.
type walker struct {
	s    *Store
	ctx  context.Context
	q    blob.ListQuery
	from string
}

// emitFunc receives an object's key and the name of its metadata file in
// dir; it returns whether to go on, and whether it took the object (false
// when it was deleted meanwhile).
type emitFunc func(key string, dir *os.Root, metaName string) (more, took bool)

// walk visits dir, which stands for the key prefix prefix, and returns
// false once emit asked to stop.
func (w *walker) walk(dir *os.Root, prefix string, emit emitFunc) (bool, error) {
	if err := w.ctx.Err(); err != nil {
		return false, err
	}
	entries, err := readDirEntries(dir, ".")
	if err != nil {
		if notFound(err) {
			return true, nil // emptied and removed meanwhile
		}
		return false, w.s.ioError("list", err)
	}
	type item struct {
		key, name string
		kind      entryKind
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		switch kind, part, _ := w.s.parseEntry(e); kind {
		case kindDir, kindCont, kindMeta:
			items = append(items, item{prefix + part, e.Name(), kind})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.key, b.key) })
	for _, it := range items {
		if it.kind == kindMeta {
			if it.key < w.from {
				continue
			}
			if more, _ := emit(it.key, dir, it.name); !more {
				return false, nil
			}
			continue
		}
		// Every key under it.key starts with it.key: if that sorts
		// before from and from is not under it, they all do.
		if it.key < w.from && !strings.HasPrefix(w.from, it.key) {
			continue
		}
		sub, err := dir.OpenRoot(it.name)
		if err != nil {
			if notFound(err) {
				continue // emptied and removed meanwhile
			}
			return false, w.s.ioError("list", err)
		}
		more, err := w.walkSub(sub, it.key, emit)
		sub.Close()
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// walkSub walks the directory that stands for prefix; when all its keys
// fall under one common prefix, only as far as the first of them.
func (w *walker) walkSub(dir *os.Root, prefix string, emit emitFunc) (bool, error) {
	if !w.rollsUp(prefix) {
		return w.walk(dir, prefix, emit)
	}
	stop := false
	first := func(key string, d *os.Root, metaName string) (bool, bool) {
		more, took := emit(key, d, metaName)
		stop = !more
		return !took && more, took
	}
	if _, err := w.walk(dir, prefix, first); err != nil {
		return false, err
	}
	return !stop, nil
}

// rollsUp reports whether every key starting with p falls under one
// common prefix of the query: the delimiter occurs in p after the query's
// prefix, so its first occurrence in every such key is the same.
func (w *walker) rollsUp(p string) bool {
	q := w.q
	return q.Delimiter != "" && strings.HasPrefix(p, q.Prefix) && strings.Contains(p[len(q.Prefix):], q.Delimiter)
}
