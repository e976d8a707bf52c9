package fs

import (
	"os"
	"strings"
	"time"
)

// expireUploads removes the uploads initiated before now minus
// multipart_max_age, with their parts.
func (s *Store) expireUploads(r *os.Root, now time.Time) {
	age := s.cfg.MultipartMaxAge.D()
	if age <= 0 {
		return
	}
	buckets, err := readDirNames(r, uploadsDir)
	if err != nil {
		return
	}
	for _, bucket := range buckets {
		if !validBucket(bucket) {
			continue
		}
		ups, err := s.uploads(r, bucket)
		if err != nil {
			continue
		}
		for _, u := range ups {
			if !u.Initiated.Before(now.Add(-age)) {
				continue
			}
			lock := s.uploadLock(u.ID)
			lock.Lock()
			if _, err := r.Stat(uploadDir(bucket, u.ID) + "/" + uploadFileName); err == nil && s.removeUpload(r, bucket, u.ID) == nil {
				s.expired.Inc()
				s.log.Info("fs backend removed an abandoned multipart upload", "bucket", bucket, "key", u.Key, "upload", u.ID, "initiated", u.Initiated)
			}
			lock.Unlock()
		}
	}
}

// sweepOrphans removes the data files no metadata refers to that an
// earlier process left: a crash between a data file's rename and its
// metadata's (or before a replaced version was removed). Files of this
// process's own versions are left alone, being written now. It runs once
// at start, in the background, and stops when the store closes.
func (s *Store) sweepOrphans(r *os.Root) {
	names, err := readDirNames(r, ".")
	if err != nil {
		return
	}
	for _, b := range names {
		if validBucket(b) {
			s.sweepDir(r, b, b)
		}
	}
	buckets, _ := readDirNames(r, uploadsDir)
	for _, b := range buckets {
		ids, _ := readDirNames(r, uploadsDir+"/"+b)
		for _, id := range ids {
			if validUploadID(id) {
				s.sweepDir(r, uploadDir(b, id), uploadDir(b, id))
			}
		}
	}
}

// sweepDir sweeps the directory dir of r (path from the root, for the
// log) and those under it, each opened from its parent; it returns false
// once the store is closing.
func (s *Store) sweepDir(r *os.Root, dir, path string) bool {
	select {
	case <-s.stop:
		return false
	default:
	}
	d, err := r.OpenRoot(dir)
	if err != nil {
		return true
	}
	defer d.Close()
	entries, err := readDirEntries(d, ".")
	if err != nil {
		return true
	}
	current := map[string]string{} // encoded object name → its version
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), "~m"); ok {
			if m, err := readMeta(d, e.Name()); err == nil {
				current[name] = m.Version
			}
		}
	}
	for _, e := range entries {
		n := e.Name()
		name, v, ok := strings.Cut(n, "~v")
		switch {
		case ok && validVersion(v) && e.Type().IsRegular():
			if !strings.HasPrefix(v, s.boot+"-") && current[name] != v {
				if d.Remove(n) == nil {
					s.orphans.Inc()
					s.log.Info("fs backend removed a data file a crash left behind", "file", path+"/"+n)
				}
			}
		default:
			if kind, _, _ := s.parseEntry(e); kind == kindDir || kind == kindCont {
				if !s.sweepDir(d, n, path+"/"+n) {
					return false
				}
			}
		}
	}
	return true
}
