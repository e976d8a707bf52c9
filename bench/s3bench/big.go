package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// rssGoal is the most resident memory Mecha may use while a big object
// passes through it.
const rssGoal = 64 << 20

// genBlock is the size of the generator's repeated block.
const genBlock = 1 << 20

// genBase is the generator's block: random bytes, made once.
var genBase = func() []byte {
	b := make([]byte, genBlock)
	rand.NewChaCha8([32]byte{'s', '3', 'b', 'e', 'n', 'c', 'h'}).Read(b)
	return b
}()

// genReader is a deterministic stream of size bytes made without holding
// it: genBase over and over, each repetition stamped with its index in its
// first 8 bytes, so that a block lost, repeated or moved changes the
// hash. It can seek, for the SDK's payload hash of a single PutObject.
type genReader struct{ size, off int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.off < g.size {
		in := int(g.off % genBlock)
		m := min(len(p)-n, genBlock-in, int(g.size-g.off))
		copy(p[n:n+m], genBase[in:in+m])
		if in < 8 {
			var stamp [8]byte
			binary.LittleEndian.PutUint64(stamp[:], uint64(g.off/genBlock)+1)
			copy(p[n:n+m], stamp[in:])
		}
		n += m
		g.off += int64(m)
	}
	return n, nil
}

func (g *genReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += g.off
	case io.SeekEnd:
		offset += g.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	g.off = offset
	return offset, nil
}

// streamOnly hides everything but Read, so that the multipart manager
// reads the body as a stream of unknown length, part by part.
type streamOnly struct{ io.Reader }

// expectedHash is the SHA-256 of the generator's stream of size bytes.
func expectedHash(size int64) string {
	h := sha256.New()
	_, err := io.CopyBuffer(h, &genReader{size: size}, make([]byte, genBlock))
	check(err)
	return hex.EncodeToString(h.Sum(nil))
}

// bigSuite passes one big object through Mecha on fs, then through
// Mecha's s3 backend in front of a second Mecha on fs.
func bigSuite(b *bench) {
	size := b.o.bigSize
	fmt.Printf("\n== big: one %s object up and down through Mecha; RSS sampled every 50 ms (goal: peak ≤ %d MB) ==\n", sizeName(size), rssGoal>>20)
	began := time.Now()
	want := expectedHash(size)
	if b.o.verbose {
		fmt.Printf("  generator stream: sha256 %s (%.1f s to hash)\n", want, time.Since(began).Seconds())
	}

	backend := b.fsBackend("big")
	if err := b.validate("big", backend); err != nil {
		fmt.Printf("skipped: big needs the fs backend (%v)\n", err)
		return
	}
	m, endpoint := b.startMecha("mecha-big", backend)
	bigRun(newTarget("mecha(fs)", endpoint, "big", b.o, m), b.o, want)
	m.stop()

	if err := b.validate("mecha-big-s3", s3Backend("http://127.0.0.1:1")); err != nil {
		fmt.Printf("\nmecha(s3→fs): skipped: s3 backend not available (%v)\n", err)
		return
	}
	up, upEndpoint := b.startMecha("upstream-big", b.fsBackend("upstream-big"))
	defer up.stop()
	front, frontEndpoint := b.startMecha("mecha-big-s3", s3Backend(upEndpoint))
	defer front.stop()
	bigRun(newTarget("mecha(s3→fs)", frontEndpoint, "big", b.o, front, up), b.o, want)
}

// bigRun uploads the object (multipart, then as one PutObject when asked),
// downloads each copy with a hash, and prints times and peak RSS of every
// process of t.
func bigRun(t *target, o options, want string) {
	size := o.bigSize
	fmt.Printf("\n%s (%s)\n", t.name, t.endpoint)
	var idle []string
	for _, s := range t.procs {
		idle = append(idle, fmt.Sprintf("%s %.1f MB", s.name, mb(rss(s.pid()))))
	}
	fmt.Printf("  RSS before: %s\n", strings.Join(idle, ", "))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var overall []int64

	step := func(what string, fn func() error) {
		pids := make([]int, len(t.procs))
		for i, s := range t.procs {
			pids[i] = s.pid()
		}
		w := watchRSS(pids...)
		began := time.Now()
		err := fn()
		elapsed := time.Since(began)
		peaks := w.stop()
		if overall == nil {
			overall = make([]int64, len(peaks))
		}
		var mem []string
		for i, s := range t.procs {
			overall[i] = max(overall[i], peaks[i])
			mem = append(mem, fmt.Sprintf("%s %.1f MB", s.name, mb(peaks[i])))
		}
		status := "ok"
		if err != nil {
			status = "FAILED: " + err.Error()
		}
		fmt.Printf("  %-46s %7.1f s %7.1f MB/s  peak RSS %s  %s\n", what, elapsed.Seconds(), mb(size)/elapsed.Seconds(), strings.Join(mem, ", "), status)
	}

	key := "big-multipart"
	step(fmt.Sprintf("upload: multipart, %s parts, %d in flight", sizeName(o.partSize), o.partConc), func() error {
		up := manager.NewUploader(t.client, func(u *manager.Uploader) {
			u.PartSize = o.partSize
			u.Concurrency = o.partConc
		})
		_, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key),
			Body: streamOnly{&genReader{size: size}}})
		return err
	})
	step("download: GetObject stream, sha256 verified", func() error { return download(ctx, t, key, size, want) })
	if o.singlePut {
		step("upload: one PutObject, known length", func() error {
			_, err := t.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket), Key: aws.String("big-single"),
				Body: &genReader{size: size}, ContentLength: aws.Int64(size)})
			return err
		})
		step("download: GetObject stream, sha256 verified", func() error { return download(ctx, t, "big-single", size, want) })
	}
	var mem []string
	verdict := "ok"
	for i, s := range t.procs {
		mem = append(mem, fmt.Sprintf("%s %.1f MB", s.name, mb(overall[i])))
	}
	if overall[0] > rssGoal {
		verdict = "OVER"
	}
	fmt.Printf("  peak RSS over all steps: %s (goal for %s: ≤ %d MB: %s)\n", strings.Join(mem, ", "), t.procs[0].name, rssGoal>>20, verdict)
	for _, k := range []string{"big-multipart", "big-single"} {
		t.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(k)})
	}
}

// download reads an object as one GetObject stream through SHA-256 and
// checks its length and hash.
func download(ctx context.Context, t *target, key string, size int64, want string) error {
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, out.Body, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("after %d bytes: %w", n, err)
	}
	if n != size {
		return fmt.Errorf("%d bytes, want %d", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 %s, want %s", got, want)
	}
	return nil
}
