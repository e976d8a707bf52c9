package memory

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/backends/blob"
	"github.com/mecha-gateway/mecha/backends/blob/blobtest"
	"github.com/mecha-gateway/mecha/backends/metrics"
	"github.com/mecha-gateway/mecha/configs"
)

func open(t *testing.T, maxBytes int64) *Store {
	t.Helper()
	s, err := New(&Config{MaxBytes: 0}, backends.Env{Name: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	s.max = maxBytes
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t, 0) })
}

func TestConformanceWithDefaultCap(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite runs uncapped already")
	}
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t, int64(DefaultConfig().MaxBytes)) })
}

func put(t *testing.T, s *Store, key string, n int) error {
	t.Helper()
	_, err := s.PutObject(t.Context(), "b", key, bytes.NewReader(make([]byte, n)), int64(n), blob.PutOptions{})
	return err
}

func TestCap(t *testing.T) {
	s := open(t, 1000)
	ctx := t.Context()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := put(t, s, "a", 600); err != nil {
		t.Fatal(err)
	}
	if err := put(t, s, "b", 401); !errors.Is(err, blob.ErrStorageFull) {
		t.Fatalf("put past the cap: %v", err)
	}
	if got := s.used.Load(); got != 600 {
		t.Fatalf("a refused put left %d bytes reserved, want 600", got)
	}
	if _, err := s.HeadObject(ctx, "b", "b"); !errors.Is(err, blob.ErrNoSuchKey) {
		t.Fatalf("refused object exists: %v", err)
	}
	if err := put(t, s, "b", 400); err != nil {
		t.Fatalf("put up to the cap: %v", err)
	}
	if err := put(t, s, "c", 0); err != nil {
		t.Fatalf("empty put at the cap: %v", err)
	}
	// A body of unknown length is counted as it streams.
	_, err := s.PutObject(ctx, "b", "d", strings.NewReader("x"), -1, blob.PutOptions{})
	if !errors.Is(err, blob.ErrStorageFull) {
		t.Fatalf("streamed put past the cap: %v", err)
	}
	// Replacing frees the old version's bytes.
	if err := s.DeleteObject(ctx, "b", "b"); err != nil {
		t.Fatal(err)
	}
	if err := put(t, s, "a", 100); err != nil {
		t.Fatal(err)
	}
	if got := s.used.Load(); got != 100 {
		t.Fatalf("after replacing 600 bytes by 100: %d bytes held", got)
	}
	// Parts count; aborting frees them; completing keeps only those used.
	id, err := s.CreateMultipartUpload(ctx, "b", "mp", blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p1, err := s.UploadPart(ctx, "b", "mp", id, 1, strings.NewReader(strings.Repeat("x", 300)), 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadPart(ctx, "b", "mp", id, 2, strings.NewReader(strings.Repeat("y", 300)), 300); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadPart(ctx, "b", "mp", id, 3, bytes.NewReader(make([]byte, 301)), 301); !errors.Is(err, blob.ErrStorageFull) {
		t.Fatalf("part past the cap: %v", err)
	}
	if got := s.used.Load(); got != 700 {
		t.Fatalf("with two parts: %d bytes held, want 700", got)
	}
	if _, err := s.CompleteMultipartUpload(ctx, "b", "mp", id, []blob.CompletePart{{Number: 1, ETag: p1.ETag}}); err != nil {
		t.Fatal(err)
	}
	if got := s.used.Load(); got != 400 {
		t.Fatalf("after completing with part 1 only: %d bytes held, want 400", got)
	}
	// A copy counts as its size.
	if _, err := s.CopyObject(ctx, "b", "mp", "b", "mp2", blob.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.used.Load(); got != 700 {
		t.Fatalf("after a copy: %d bytes held, want 700", got)
	}
	if err := put(t, s, "e", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CopyObject(ctx, "b", "mp", "b", "mp3", blob.CopyOptions{}); !errors.Is(err, blob.ErrStorageFull) {
		t.Fatalf("copy past the cap: %v", err)
	}
	id, _ = s.CreateMultipartUpload(ctx, "b", "mp", blob.PutOptions{})
	s.UploadPart(ctx, "b", "mp", id, 1, strings.NewReader("abc"), 3)
	if err := s.AbortMultipartUpload(ctx, "b", "mp", id); err != nil {
		t.Fatal(err)
	}
	if got := s.used.Load(); got != 701 {
		t.Fatalf("after an abort: %d bytes held, want 701", got)
	}
	// Failed bodies give back what they reserved.
	s.PutObject(ctx, "b", "short", strings.NewReader("abc"), 10, blob.PutOptions{})
	if got := s.used.Load(); got != 701 {
		t.Fatalf("after a short body: %d bytes held, want 701", got)
	}
	s.Close()
	if got := s.used.Load(); got != 0 {
		t.Fatalf("after close: %d bytes held", got)
	}
}

func TestConfig(t *testing.T) {
	if DefaultConfig().MaxBytes != 256<<20 {
		t.Fatalf("default cap %d", DefaultConfig().MaxBytes)
	}
	if err := (&Config{MaxBytes: -1}).Validate(); err == nil {
		t.Fatal("negative cap accepted")
	}
	if _, err := New(&Config{MaxBytes: -1}, backends.Env{Name: "m"}); err == nil {
		t.Fatal("New accepted a negative cap")
	}
	if m, ok := backends.Lookup("memory"); !ok || m.NewConfig().(*Config).MaxBytes != 256<<20 {
		t.Fatal("memory not registered with its defaults")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s, _ := New(DefaultConfig(), backends.Env{Name: "mem"})
	if s.Health().State != backends.StateInit {
		t.Fatalf("before start: %v", s.Health())
	}
	s.Start(t.Context())
	if s.Health().State != backends.StateUp {
		t.Fatalf("after start: %v", s.Health())
	}
	s.CreateBucket(t.Context(), "b")
	put(t, s, "k", 42)
	w := metrics.NewWriter()
	s.CollectMetrics(w)
	var out bytes.Buffer
	w.WriteTo(&out)
	for _, want := range []string{`mecha_memory_objects{backend="mem"} 1`, `mecha_memory_bytes{backend="mem"} 42`, `mecha_memory_max_bytes{backend="mem"} 268435456`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	s.Close()
	if s.Health().State != backends.StateDown {
		t.Fatalf("after close: %v", s.Health())
	}
}

// TestAbandonedUploadsExpire: an upload older than multipart_max_age is
// removed with its parts, and their bytes no longer count.
func TestAbandonedUploadsExpire(t *testing.T) {
	s, err := New(&Config{MaxBytes: 1 << 20, MultipartMaxAge: configs.Duration(50 * time.Millisecond)}, backends.Env{Name: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateBucket(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateMultipartUpload(ctx, "b", "k", blob.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadPart(ctx, "b", "k", id, 1, strings.NewReader("part data"), 9); err != nil {
		t.Fatal(err)
	}
	if s.used.Load() != 9 {
		t.Fatalf("used %d before expiry", s.used.Load())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := s.ListMultipartUploads(ctx, "b", blob.UploadQuery{MaxUploads: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Uploads) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned upload was never removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.ListParts(ctx, "b", "k", id, 0, 1000); err != blob.ErrNoSuchUpload {
		t.Fatalf("parts of an expired upload: %v", err)
	}
	if s.used.Load() != 0 || s.expiredUploads.Load() != 1 {
		t.Fatalf("used %d, expired %d after expiry", s.used.Load(), s.expiredUploads.Load())
	}
}
