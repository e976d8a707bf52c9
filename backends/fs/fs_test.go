package fs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/blob/blobtest"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

// openAt starts a store on root and closes it at the end of the test.
func openAt(t *testing.T, root string, edit ...func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Root = root
	for _, e := range edit {
		e(cfg)
	}
	s, err := New(cfg, backends.Env{Name: "files"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if h := s.Health(); h.State != backends.StateUp {
		t.Fatalf("store on %s: %v %s", root, h.State, h.Detail)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return openAt(t, t.TempDir()) })
}

// Without fsync the store behaves the same (only durability differs).
func TestConformanceNoFsync(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite runs with fsync already")
	}
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return openAt(t, t.TempDir(), func(c *Config) { c.Fsync = false })
	})
}

// On a file system that ignores case the encoding escapes upper case: the
// whole suite again, with that encoding forced.
func TestConformanceFoldCase(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite runs with the case-sensitive encoding already")
	}
	blobtest.Run(t, func(t *testing.T) blob.Store {
		root := t.TempDir()
		os.WriteFile(filepath.Join(root, formatFile), []byte(`{"format":1,"fold_case":true}`), 0o644)
		s := openAt(t, root)
		if !s.fold {
			t.Fatal("format file not honoured")
		}
		return s
	})
}

func putString(t *testing.T, s *Store, bucket, key, data string) *blob.Info {
	t.Helper()
	info, err := s.PutObject(t.Context(), bucket, key, strings.NewReader(data), int64(len(data)), blob.PutOptions{})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return info
}

func getString(t *testing.T, s *Store, bucket, key string) string {
	t.Helper()
	obj, err := s.GetObject(t.Context(), bucket, key, nil)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tree lists every file and directory under dir, relative to it.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestTraversal(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.WriteFile(filepath.Join(base, "outside"), []byte("precious"), 0o644)
	s := openAt(t, root)
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	keys := []string{
		"../outside", "../../outside", "..", ".", "../", "./", "a/../../outside", "/outside", "//outside",
		"b/../../../outside", "..\\outside", "\\..\\outside", "C:\\outside", "nul\x00byte", "\x00",
		"~bucket.json", "~m", "x~m", "x~v00-1", "%2e%2e/outside", "..%2F..%2Foutside", ".mecha-fs.json",
		"../.tmp/x", "../.uploads/b/x", "../.lock", strings.Repeat("../", 300) + "outside",
		strings.Repeat("é", 200), strings.Repeat(".", 1024), strings.Repeat("a", 255) + "/" + strings.Repeat("b", 256),
	}
	for _, k := range keys {
		putString(t, s, "b", k, "v:"+k)
	}
	for _, k := range keys {
		if got := getString(t, s, "b", k); got != "v:"+k {
			t.Errorf("key %q reads %q", k, got)
		}
	}
	// Bucket names that are not plain names never reach the disk.
	for _, b := range []string{"..", ".", "../b", "b/..", "/b", "", ".tmp", ".uploads", "B", "a\x00", "~bucket.json", strings.Repeat("a", 256)} {
		if err := s.CreateBucket(ctx, b); err == nil {
			t.Errorf("bucket %q created", b)
		}
		if _, err := s.PutObject(ctx, b, "k", strings.NewReader("x"), 1, blob.PutOptions{}); !errors.Is(err, blob.ErrNoSuchBucket) {
			t.Errorf("put into bucket %q: %v", b, err)
		}
		if _, err := s.GetObject(ctx, b, "../outside", nil); !errors.Is(err, blob.ErrNoSuchBucket) {
			t.Errorf("get from bucket %q: %v", b, err)
		}
		if _, err := s.CreateMultipartUpload(ctx, b, "k", blob.PutOptions{}); !errors.Is(err, blob.ErrNoSuchBucket) {
			t.Errorf("upload into bucket %q: %v", b, err)
		}
		if _, err := s.ListObjects(ctx, b, blob.ListQuery{MaxKeys: 10}); !errors.Is(err, blob.ErrNoSuchBucket) {
			t.Errorf("list bucket %q: %v", b, err)
		}
	}
	// Upload ids that are paths go nowhere.
	for _, id := range []string{"../../b", "../b/x", ".", "..", "/etc"} {
		if _, err := s.UploadPart(ctx, "b", "k", id, 1, strings.NewReader("x"), 1); !errors.Is(err, blob.ErrNoSuchUpload) {
			t.Errorf("part of upload %q: %v", id, err)
		}
	}
	// Nothing outside the root changed, and inside it only our layout.
	if got := tree(t, base); got[0] != "outside" || !slices.Contains(got, "root") {
		t.Fatalf("outside the root: %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "outside")); string(b) != "precious" {
		t.Fatalf("file outside the root changed: %q", b)
	}
	for _, p := range tree(t, base) {
		if p != "outside" && p != "root" && !strings.HasPrefix(p, "root/") {
			t.Errorf("written outside the root: %s", p)
		}
		for _, c := range strings.Split(p, "/") {
			if len(c) > 255 || c == ".." || strings.ContainsAny(c, "\x00\\") {
				t.Errorf("unsafe name %q in %s", c, p)
			}
		}
	}
	top, _ := os.ReadDir(root)
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if want := []string{".lock", ".mecha-fs.json", ".tmp", ".uploads", "b"}; !slices.Equal(names, want) {
		t.Errorf("root holds %q, want %q", names, want)
	}
	// And all of it lists back, in order.
	l, err := s.ListObjects(ctx, "b", blob.ListQuery{MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, o := range l.Objects {
		listed = append(listed, o.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("listed %q\nwant %q", listed, want)
	}
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root)
	ctx := t.Context()
	s.CreateBucket(ctx, "photos")
	putString(t, s, "photos", "2024/cat.jpg", "meow")
	putString(t, s, "photos", "2024/", "")
	putString(t, s, "photos", "a", "x")
	putString(t, s, "photos", "a/b", "y")
	putString(t, s, "photos", "Über Straße", "z")
	putString(t, s, "photos", strings.Repeat("n", 70), "long")
	var files []string
	for _, p := range tree(t, filepath.Join(root, "photos")) {
		// Versions differ from run to run.
		if i := strings.Index(p, "~v"); i >= 0 {
			p = p[:i+2] + "*"
		}
		files = append(files, p)
	}
	want := []string{
		"%C3%9Cber%20Stra%C3%9Fe~m", "%C3%9Cber%20Stra%C3%9Fe~v*",
		"2024", "2024/cat.jpg~m", "2024/cat.jpg~v*", "2024/~m", "2024/~v*",
		"a", "a/b~m", "a/b~v*", "a~m", "a~v*",
		strings.Repeat("n", 64) + "~c", strings.Repeat("n", 64) + "~c/nnnnnn~m", strings.Repeat("n", 64) + "~c/nnnnnn~v*",
		"~bucket.json",
	}
	if !slices.Equal(files, want) {
		t.Errorf("layout:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	// The data file is the object's bytes, as they were sent.
	matches, _ := filepath.Glob(filepath.Join(root, "photos", "2024", "cat.jpg~v*"))
	if b, err := os.ReadFile(matches[0]); err != nil || string(b) != "meow" {
		t.Errorf("data file: %q %v", b, err)
	}
	// Deleting the last key under a directory removes the directory.
	s.DeleteObject(ctx, "photos", "2024/cat.jpg")
	s.DeleteObject(ctx, "photos", "2024/")
	if _, err := os.Stat(filepath.Join(root, "photos", "2024")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directory left: %v", err)
	}
}

func TestNames(t *testing.T) {
	for _, key := range []string{"a", "a/", "/", "//", "a//b", ".", "..", ".a", "a.", "~", "%", "%2F", "A", "é", "\x00", strings.Repeat("x", 63), strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("x", 64) + "/", strings.Repeat("x", 128), strings.Repeat("é", 100) + "/y"} {
		for _, fold := range []bool{false, true} {
			kp := splitKey(key, fold)
			// Decode the path back.
			got := ""
			for _, d := range kp.dirs {
				kind, part, _ := parseName(d, fold)
				if kind != kindDir && kind != kindCont {
					t.Fatalf("%q: directory name %q parses as %v", key, d, kind)
				}
				got += part
			}
			kind, part, _ := parseName(kp.name+"~m", fold)
			if kind != kindMeta {
				t.Fatalf("%q: object name %q parses as %v", key, kp.name, kind)
			}
			if got += part; got != key {
				t.Errorf("%q (fold %v) maps to %q, which decodes to %q", key, fold, kp.dirs, got)
			}
			for _, n := range append(kp.dirs, kp.name+"~v"+strings.Repeat("f", 8)+"-ffffffffffffffff") {
				if len(n) > 255 || n == "." || n == ".." || strings.HasPrefix(n, ".") || strings.ContainsAny(n, "/\x00\\") {
					t.Errorf("%q: unsafe name %q", key, n)
				}
				if fold && strings.ToLower(n) != n && !strings.Contains(n, "%") {
					t.Errorf("%q: upper case in %q on a case-folding file system", key, n)
				}
			}
		}
	}
	// Only canonical encodings are names of ours.
	for _, n := range []string{"%61", "%2e", "a%2", "a%zz", "abc~", "~x", "A~m", "a%2Fb", "x~c", "x~vXYZ", ".hidden"} {
		fold := n == "A~m"
		if kind, _, _ := parseName(n, fold); kind != kindOther {
			t.Errorf("%q parses as %v", n, kind)
		}
	}
}

func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root)
	ctx := t.Context()
	s.CreateBucket(ctx, "b")
	putString(t, s, "b", "kept", "old")
	putString(t, s, "b", "dir/kept", "old")
	s.Close()

	// A crash left: a half-written temporary file; a data file renamed
	// into place whose metadata never followed (for a new key and for an
	// existing one); an old version a replace did not get to remove; an
	// upload half created in the temporary directory.
	os.WriteFile(filepath.Join(root, tmpDir, "0123456789abcdef.data"), []byte("half"), 0o644)
	os.Mkdir(filepath.Join(root, tmpDir, "0123456789abcdef.upload"), 0o755)
	os.WriteFile(filepath.Join(root, "b", "new~vdeadbeef-1"), []byte("never committed"), 0o644)
	os.WriteFile(filepath.Join(root, "b", "dir", "kept~vdeadbeef-2"), []byte("never committed"), 0o644)
	os.WriteFile(filepath.Join(root, "b", "kept~vdeadbeef-3"), []byte("replaced"), 0o644)
	os.WriteFile(filepath.Join(root, "b", "foreign.txt"), []byte("not ours"), 0o644)

	s = openAt(t, root)
	if names, _ := os.ReadDir(filepath.Join(root, tmpDir)); len(names) != 0 {
		t.Errorf("temporary files left after start: %v", names)
	}
	l, err := s.ListObjects(ctx, "b", blob.ListQuery{MaxKeys: 100})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range l.Objects {
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []string{"dir/kept", "kept"}) {
		t.Errorf("listed %q", keys)
	}
	if got := getString(t, s, "b", "kept"); got != "old" {
		t.Errorf("kept reads %q", got)
	}
	if got := getString(t, s, "b", "dir/kept"); got != "old" {
		t.Errorf("dir/kept reads %q", got)
	}
	if _, err := s.HeadObject(ctx, "b", "new"); !errors.Is(err, blob.ErrNoSuchKey) {
		t.Errorf("uncommitted object visible: %v", err)
	}
	// The sweep runs in the background from start: wait for it, then
	// check what it removed.
	<-s.swept
	for _, p := range []string{"b/new~vdeadbeef-1", "b/dir/kept~vdeadbeef-2", "b/kept~vdeadbeef-3"} {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("orphan %s not removed: %v", p, err)
		}
	}
	if n := s.orphans.Load(); n != 3 {
		t.Errorf("%d orphans counted, want 3", n)
	}
	if _, err := os.Stat(filepath.Join(root, "b", "foreign.txt")); err != nil {
		t.Errorf("a file not ours was removed: %v", err)
	}
	if got := getString(t, s, "b", "kept"); got != "old" {
		t.Errorf("after the sweep kept reads %q", got)
	}
	// A bucket holding only files that are not objects is empty.
	if err := s.DeleteObject(ctx, "b", "kept"); err != nil {
		t.Fatal(err)
	}
	s.DeleteObject(ctx, "b", "dir/kept")
	if err := s.DeleteBucket(ctx, "b"); err != nil {
		t.Errorf("delete bucket with only foreign files: %v", err)
	}
}

// A store's own data files are never swept while it runs.
func TestSweepKeepsCurrentWrites(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root)
	s.CreateBucket(t.Context(), "b")
	putString(t, s, "b", "k", "v")
	// A data file of this process not (yet) referenced: being written.
	name := "pending~v" + s.boot + "-ffff"
	os.WriteFile(filepath.Join(root, "b", name), []byte("x"), 0o644)
	s.sweepOrphans(s.root.Load())
	if _, err := os.Stat(filepath.Join(root, "b", name)); err != nil {
		t.Errorf("a current write's file was swept: %v", err)
	}
	if got := getString(t, s, "b", "k"); got != "v" {
		t.Errorf("k reads %q", got)
	}
}

func TestMetadataConsistency(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root)
	ctx := t.Context()
	s.CreateBucket(ctx, "b")
	o := blob.PutOptions{
		ContentType: "text/plain",
		UserMeta:    map[string]string{"latin1": "caf\xe9", "nul": "\x00start", "ok": "fine"},
		Tags:        map[string]string{"\xff": "bad key"},
	}
	if _, err := s.PutObject(ctx, "b", "k", strings.NewReader("data"), 4, o); err != nil {
		t.Fatal(err)
	}
	head, err := s.HeadObject(ctx, "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	if head.UserMeta["latin1"] != "caf\xe9" || head.UserMeta["nul"] != "\x00start" || head.UserMeta["ok"] != "fine" || head.Tags["\xff"] != "bad key" {
		t.Errorf("bytes that are not UTF-8 did not round-trip: %q %q", head.UserMeta, head.Tags)
	}
	// The metadata file names the data file of the version it describes,
	// and that file holds exactly the object.
	m, err := readMeta(s.root.Load(), "b/k~m")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "b", "k~v"+m.Version))
	if err != nil || string(data) != "data" || m.Size != 4 || m.Key != "k" {
		t.Errorf("metadata %+v, data %q %v", m, data, err)
	}
	// Each write leaves exactly one data file: the current one.
	for i := range 5 {
		putString(t, s, "b", "k", strings.Repeat("x", i))
	}
	matches, _ := filepath.Glob(filepath.Join(root, "b", "k~v*"))
	m, _ = readMeta(s.root.Load(), "b/k~m")
	if len(matches) != 1 || filepath.Base(matches[0]) != "k~v"+m.Version {
		t.Errorf("data files after replaces: %q, metadata names %q", matches, m.Version)
	}
	// A data file that does not match its metadata is an error, not
	// silently wrong content.
	os.WriteFile(matches[0], []byte("tampered, longer"), 0o644)
	if _, err := s.GetObject(ctx, "b", "k", nil); !errors.Is(err, blob.ErrInternal) {
		t.Errorf("get of a damaged object: %v", err)
	}
	// Metadata that belongs to another key is refused.
	os.WriteFile(filepath.Join(root, "b", "k~m"), []byte(`{"key":"other","version":"`+m.Version+`","size":0}`), 0o644)
	if _, err := s.HeadObject(ctx, "b", "k"); !errors.Is(err, blob.ErrInternal) {
		t.Errorf("head of misplaced metadata: %v", err)
	}
	os.WriteFile(filepath.Join(root, "b", "k~m"), []byte(`{not json`), 0o644)
	if _, err := s.HeadObject(ctx, "b", "k"); !errors.Is(err, blob.ErrInternal) {
		t.Errorf("head of damaged metadata: %v", err)
	}
}

// A failed write leaves nothing behind: no temporary file, no data file,
// no directory.
func TestFailedWritesLeaveNothing(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root)
	ctx := t.Context()
	s.CreateBucket(ctx, "b")
	before := tree(t, root)
	bad := errors.New("client went away")
	if _, err := s.PutObject(ctx, "b", "deep/er/key", io.MultiReader(strings.NewReader("abc"), errReader{bad}), 10, blob.PutOptions{}); !errors.Is(err, bad) {
		t.Fatalf("put: %v", err)
	}
	if _, err := s.PutObject(ctx, "b", "deep/er/key", strings.NewReader("abc"), 10, blob.PutOptions{}); !errors.Is(err, blob.ErrIncompleteBody) {
		t.Fatalf("put: %v", err)
	}
	if _, err := s.PutObject(ctx, "b", "deep/er/key", strings.NewReader("abc"), 3, blob.PutOptions{IfMatch: "nope"}); !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Fatalf("put: %v", err)
	}
	putString(t, s, "b", "x", "1")
	if _, err := s.PutObject(ctx, "b", "x", strings.NewReader("2"), 1, blob.PutOptions{IfNoneMatch: true}); !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Fatalf("put: %v", err)
	}
	s.DeleteObject(ctx, "b", "x")
	if after := tree(t, root); !slices.Equal(before, after) {
		t.Errorf("files changed:\nbefore %q\nafter  %q", before, after)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestJanitor(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root, func(c *Config) { c.MultipartMaxAge = configs.Duration(time.Hour) })
	ctx := t.Context()
	s.CreateBucket(ctx, "b")
	old, _ := s.CreateMultipartUpload(ctx, "b", "old", blob.PutOptions{})
	s.UploadPart(ctx, "b", "old", old, 1, strings.NewReader("part"), 4)
	// Make "old" look initiated two hours ago.
	r := s.root.Load()
	var u uploadFile
	b, _ := r.ReadFile(uploadDir("b", old) + "/" + uploadFileName)
	jsonUnmarshal(t, b, &u)
	u.Initiated = u.Initiated.Add(-2 * time.Hour)
	r.WriteFile(uploadDir("b", old)+"/"+uploadFileName, jsonMarshal(t, u), 0o644)
	fresh, _ := s.CreateMultipartUpload(ctx, "b", "fresh", blob.PutOptions{})

	s.expireUploads(r, time.Now())
	if _, err := s.ListParts(ctx, "b", "old", old, 0, 10); !errors.Is(err, blob.ErrNoSuchUpload) {
		t.Errorf("abandoned upload still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, uploadsDir, "b", old)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned upload's files left: %v", err)
	}
	if _, err := s.ListParts(ctx, "b", "fresh", fresh, 0, 10); err != nil {
		t.Errorf("fresh upload removed: %v", err)
	}
	if s.expired.Load() != 1 {
		t.Errorf("expired counter %d", s.expired.Load())
	}
	// An hour and a minute later, the fresh one goes too.
	s.expireUploads(r, time.Now().Add(time.Hour+time.Minute))
	if _, err := s.ListParts(ctx, "b", "fresh", fresh, 0, 10); !errors.Is(err, blob.ErrNoSuchUpload) {
		t.Errorf("upload past its age kept: %v", err)
	}
	if err := s.DeleteBucket(ctx, "b"); err != nil {
		t.Errorf("delete bucket after expiry: %v", err)
	}

	// multipart_max_age 0 keeps uploads.
	s2 := openAt(t, t.TempDir(), func(c *Config) { c.MultipartMaxAge = 0 })
	s2.CreateBucket(ctx, "b")
	id, _ := s2.CreateMultipartUpload(ctx, "b", "k", blob.PutOptions{})
	s2.expireUploads(s2.root.Load(), time.Now().Add(1000*time.Hour))
	if _, err := s2.ListParts(ctx, "b", "k", id, 0, 10); err != nil {
		t.Errorf("upload expired with max age 0: %v", err)
	}
}

func TestHealth(t *testing.T) {
	base := t.TempDir()
	// The root is a file: DOWN, with the reason; requests get 503.
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	cfg := DefaultConfig()
	cfg.Root = file
	s, _ := New(cfg, backends.Env{Name: "files"})
	if s.Health().State != backends.StateInit {
		t.Fatalf("before start: %v", s.Health())
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("start fails instead of reporting DOWN: %v", err)
	}
	defer s.Close()
	h := s.Health()
	if h.State != backends.StateDown || !strings.Contains(h.Detail, file) {
		t.Fatalf("root is a file: %v %q", h.State, h.Detail)
	}
	var be *blob.Error
	if _, err := s.ListBuckets(t.Context()); !errors.As(err, &be) || be.Status != 503 || !strings.Contains(be.Message, file) {
		t.Fatalf("request while DOWN: %v", err)
	}
	// Once the path is usable, the store opens it.
	os.Remove(file)
	s.tryOpen()
	if h := s.Health(); h.State != backends.StateUp {
		t.Fatalf("after the root was fixed: %v %q", h.State, h.Detail)
	}
	if err := s.CreateBucket(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}

	// A second store on the same root is refused while the first runs.
	cfg2 := DefaultConfig()
	cfg2.Root = file
	s2, _ := New(cfg2, backends.Env{Name: "other"})
	s2.Start(t.Context())
	defer s2.Close()
	if h := s2.Health(); h.State != backends.StateDown || !strings.Contains(h.Detail, "another process") {
		t.Fatalf("second store on one root: %v %q", h.State, h.Detail)
	}

	// A root that stops being writable goes DOWN, and UP again.
	if os.Geteuid() != 0 {
		os.Chmod(filepath.Join(file, tmpDir), 0o500)
		s.checkHealth()
		if h := s.Health(); h.State != backends.StateDown || !strings.Contains(h.Detail, file) {
			t.Errorf("read-only root: %v %q", h.State, h.Detail)
		}
		os.Chmod(filepath.Join(file, tmpDir), 0o755)
		s.checkHealth()
		if h := s.Health(); h.State != backends.StateUp {
			t.Errorf("writable again: %v %q", h.State, h.Detail)
		}
	}
	s.Close()
	if h := s.Health(); h.State != backends.StateDown {
		t.Errorf("after close: %v", h)
	}
}

func TestDefaultsAndConfig(t *testing.T) {
	c := DefaultConfig()
	if c.MultipartMaxAge.D() != 24*time.Hour || !c.Fsync || c.Root != "" {
		t.Fatalf("defaults %+v", c)
	}
	if err := (&Config{MultipartMaxAge: -1}).Validate(); err == nil {
		t.Fatal("negative age accepted")
	}
	s, err := New(DefaultConfig(), backends.Env{Name: "blobs", DataDir: "/var/lib/mecha"})
	if err != nil || s.dir != filepath.Join("/var/lib/mecha", "objects") {
		t.Fatalf("default root %q %v", s.dir, err)
	}
	if m, ok := backends.Lookup("fs"); !ok || !m.NewConfig().(*Config).Fsync {
		t.Fatal("fs not registered with its defaults")
	}
}

// A store reopened on its root finds everything as it was, uploads
// included.
func TestReopen(t *testing.T) {
	root := t.TempDir()
	s := openAt(t, root)
	ctx := t.Context()
	s.CreateBucket(ctx, "b")
	putString(t, s, "b", "a/b/c", "abc")
	s.SetTags(ctx, "b", "a/b/c", map[string]string{"t": "1"})
	id, _ := s.CreateMultipartUpload(ctx, "b", "mp", blob.PutOptions{ContentType: "x/y", UserMeta: map[string]string{"m": "\xfe"}})
	p, _ := s.UploadPart(ctx, "b", "mp", id, 1, strings.NewReader("part one"), 8)
	s.Close()

	s = openAt(t, root)
	if got := getString(t, s, "b", "a/b/c"); got != "abc" {
		t.Errorf("after reopening: %q", got)
	}
	if h, _ := s.HeadObject(ctx, "b", "a/b/c"); h == nil || h.Tags["t"] != "1" {
		t.Errorf("tags after reopening: %+v", h)
	}
	info, err := s.CompleteMultipartUpload(ctx, "b", "mp", id, []blob.CompletePart{{Number: 1, ETag: p.ETag}})
	if err != nil {
		t.Fatalf("complete after reopening: %v", err)
	}
	if info.ContentType != "x/y" || info.UserMeta["m"] != "\xfe" || getString(t, s, "b", "mp") != "part one" {
		t.Errorf("completed after reopening: %+v", info)
	}
}

func TestMetrics(t *testing.T) {
	s := openAt(t, t.TempDir())
	s.CreateBucket(t.Context(), "b")
	putString(t, s, "b", "k", "12345")
	getString(t, s, "b", "k")
	w := metrics.NewWriter()
	s.CollectMetrics(w)
	var out bytes.Buffer
	w.WriteTo(&out)
	for _, want := range []string{`mecha_fs_puts_total{backend="files"} 1`, `mecha_fs_gets_total{backend="files"} 1`, `mecha_fs_written_bytes_total{backend="files"} 5`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
}

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// openFiles counts the process's open file descriptors (Linux).
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(fds)
}

// Every operation, failed ones included, gives back the files it opens.
func TestNoFileLeaks(t *testing.T) {
	s := openAt(t, t.TempDir())
	<-s.swept
	ctx := t.Context()
	s.CreateBucket(ctx, "b")
	before := openFiles(t)
	deep := strings.Repeat("d/", 100) + "k"
	for _, k := range []string{"k", "a/b/c", deep, strings.Repeat("x", 200), strings.Repeat("/", 50)} {
		putString(t, s, "b", k, "v")
		getString(t, s, "b", k)
		s.HeadObject(ctx, "b", k)
		obj, err := s.GetObject(ctx, "b", k, &blob.Range{First: 5, Last: -1})
		if err == nil {
			obj.Body.Close()
		}
		s.CopyObject(ctx, "b", k, "b", k+"-copy", blob.CopyOptions{})
		s.SetTags(ctx, "b", k, map[string]string{"a": "b"})
		s.PutObject(ctx, "b", k, strings.NewReader("short"), 10, blob.PutOptions{})
		s.PutObject(ctx, "b", k, strings.NewReader("x"), 1, blob.PutOptions{IfNoneMatch: true})
	}
	for _, q := range []blob.ListQuery{{MaxKeys: 1000}, {MaxKeys: 1}, {Delimiter: "/", MaxKeys: 2}, {Prefix: "d/d/", Delimiter: "/", MaxKeys: 5}} {
		if _, err := s.ListObjects(ctx, "b", q); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := s.CreateMultipartUpload(ctx, "b", deep, blob.PutOptions{})
	p, _ := s.UploadPart(ctx, "b", deep, id, 1, strings.NewReader("part"), 4)
	s.ListParts(ctx, "b", deep, id, 0, 10)
	s.ListMultipartUploads(ctx, "b", blob.UploadQuery{MaxUploads: 10})
	s.CompleteMultipartUpload(ctx, "b", deep, id, []blob.CompletePart{{Number: 1, ETag: p.ETag}})
	for _, k := range []string{"k", "a/b/c", deep, strings.Repeat("x", 200), strings.Repeat("/", 50)} {
		s.DeleteObject(ctx, "b", k)
		s.DeleteObject(ctx, "b", k+"-copy")
	}
	s.DeleteBucket(ctx, "b")
	if after := openFiles(t); after != before {
		t.Errorf("%d files open before, %d after", before, after)
	}
}
