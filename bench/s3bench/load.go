package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// cell is one measurement: an operation on objects of one size.
type cell struct {
	op   string // PUT or GET
	size int64
}

func (c cell) String() string { return c.op + " " + sizeName(c.size) }

// cellResult is one run of a cell against one target.
type cellResult struct {
	ops      int
	errs     int
	firstErr error
	elapsed  time.Duration
	size     int64
	p50, p99 time.Duration
}

func (r cellResult) opsPerSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }
func (r cellResult) mbPerSec() float64  { return r.opsPerSec() * float64(r.size) / (1 << 20) }

// Objects written by PUT cells are overwritten in turn (putKeys per
// client), so a long run does not fill the disk; GET cells read getKeys
// objects loaded beforehand.
const (
	putKeys = 8
	getKeys = 64
)

// payloads are the bodies of PUTs and preloaded objects, one random
// buffer per size.
var (
	payloadsMu sync.Mutex
	payloads   = map[int64][]byte{}
)

func payload(size int64) []byte {
	payloadsMu.Lock()
	defer payloadsMu.Unlock()
	if p, ok := payloads[size]; ok {
		return p
	}
	p := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16), byte(size >> 24)})
	r.Read(p)
	payloads[size] = p
	return p
}

func cellsOf(o options) []cell {
	var cells []cell
	for _, s := range o.sizes {
		cells = append(cells, cell{"PUT", s}, cell{"GET", s})
	}
	return cells
}

func getKey(size int64, i int) string { return fmt.Sprintf("get/%s/%03d", sizeName(size), i) }

// preload writes the objects GET cells read, and reads each back once to
// check what the target returns.
func preload(t *target, o options) {
	ctx := context.Background()
	for _, size := range o.sizes {
		body := payload(size)
		for i := range getKeys {
			_, err := t.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(getKey(size, i)),
				Body: bytes.NewReader(body), ContentLength: aws.Int64(size)})
			if err != nil {
				check(fmt.Errorf("%s: preload %s: %w", t.name, getKey(size, i), err))
			}
			out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(getKey(size, i))})
			if err != nil {
				check(fmt.Errorf("%s: read back %s: %w", t.name, getKey(size, i), err))
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				check(fmt.Errorf("%s: read back %s: %d bytes, equal %t, %v", t.name, getKey(size, i), len(got), bytes.Equal(got, body), err))
			}
		}
	}
}

// warmUp opens every client's connection and runs each cell briefly,
// unmeasured.
func warmUp(t *target, o options) {
	o.duration = min(o.duration/10, 300*time.Millisecond)
	for _, c := range cellsOf(o) {
		if r := runCell(t, c, o); r.errs > 0 {
			check(fmt.Errorf("%s: warm-up %s: %d errors, first: %w", t.name, c, r.errs, r.firstErr))
		}
	}
}

// runCell runs one cell against one target: o.clients clients, each with
// one request in flight, for o.duration. Requests in flight at the end are
// finished and counted.
func runCell(t *target, c cell, o options) cellResult {
	ctx := context.Background()
	body := payload(c.size)
	lat := make([][]time.Duration, o.clients)
	errs := make([]int, o.clients)
	firstErrs := make([]error, o.clients)
	var wg sync.WaitGroup
	began := time.Now()
	deadline := began.Add(o.duration)
	for w := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			ls := make([]time.Duration, 0, 4096)
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				var err error
				switch c.op {
				case "PUT":
					_, err = t.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket),
						Key:  aws.String(fmt.Sprintf("put/%s/c%02d/%d", sizeName(c.size), w, i%putKeys)),
						Body: bytes.NewReader(body), ContentLength: aws.Int64(c.size)})
				case "GET":
					err = getOne(ctx, t, getKey(c.size, (w*7+i)%getKeys), c.size, buf)
				}
				if err != nil {
					errs[w]++
					if firstErrs[w] == nil {
						firstErrs[w] = err
					}
					continue
				}
				ls = append(ls, time.Since(t0))
			}
			lat[w] = ls
		}()
	}
	wg.Wait()
	r := cellResult{elapsed: time.Since(began), size: c.size}
	var all []time.Duration
	for w := range o.clients {
		all = append(all, lat[w]...)
		r.errs += errs[w]
		if r.firstErr == nil {
			r.firstErr = firstErrs[w]
		}
	}
	r.ops = len(all)
	if len(all) > 0 {
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		r.p50 = all[(len(all)-1)/2]
		r.p99 = all[(len(all)*99+99)/100-1]
	}
	return r
}

// getOne reads an object to the end and checks its length.
func getOne(ctx context.Context, t *target, key string, size int64, buf []byte) error {
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	var n int64
	for {
		m, err := out.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != size {
		return fmt.Errorf("GET %s: %d bytes, want %d", key, n, size)
	}
	return nil
}

// compare runs every cell against every target, round after round, and
// prints medians and the ratios of the first target to the others.
func compare(title string, targets []*target, o options, goal string) {
	for _, t := range targets {
		preload(t, o)
		warmUp(t, o)
	}
	// Every process once, though targets may share one (an upstream).
	var procs []*server
	var pids []int
	for _, t := range targets {
		for _, s := range t.procs {
			if !slices.Contains(procs, s) {
				procs = append(procs, s)
				pids = append(pids, s.pid())
			}
		}
	}
	watch := watchRSS(pids...)
	cells := cellsOf(o)
	// results[cell][target] = one result per round
	results := make([][][]cellResult, len(cells))
	for ci := range cells {
		results[ci] = make([][]cellResult, len(targets))
	}
	for r := range o.rounds {
		for ci, c := range cells {
			// Targets run back to back for each cell, in an order that
			// rotates, so that each comparison is made within seconds on
			// a noisy machine.
			for i := range targets {
				ti := (i + r + ci) % len(targets)
				res := runCell(targets[ti], c, o)
				results[ci][ti] = append(results[ci][ti], res)
				if o.verbose {
					fmt.Printf("  round %d %-9s %-11s %9.1f ops/s %8.1f MB/s  p50 %7.2f ms  p99 %7.2f ms  errors %d\n",
						r+1, c, targets[ti].name, res.opsPerSec(), res.mbPerSec(), ms(res.p50), ms(res.p99), res.errs)
				}
			}
		}
	}
	peaks := watch.stop()

	subject := targets[0].name
	fmt.Printf("\n%s\n%d clients, %s per cell and target, median of %d rounds (MB = 2^20 bytes); ratio = %s ops/s / other's, round by round, then the median\n",
		title, o.clients, o.duration, o.rounds, subject)
	fmt.Printf("%-10s %-14s %10s %9s %9s %9s %8s  %s\n", "cell", "target", "ops/s", "MB/s", "p50 ms", "p99 ms", "errors", "ratio")
	ratios := make([][]float64, len(targets))
	for ci, c := range cells {
		for ti, t := range targets {
			rs := results[ci][ti]
			var opsps, mbps, p50, p99 []float64
			errs := 0
			var firstErr error
			for _, x := range rs {
				opsps = append(opsps, x.opsPerSec())
				mbps = append(mbps, x.mbPerSec())
				p50 = append(p50, ms(x.p50))
				p99 = append(p99, ms(x.p99))
				errs += x.errs
				if firstErr == nil {
					firstErr = x.firstErr
				}
			}
			label := ""
			if ti == 0 {
				label = c.String()
			}
			ratio := ""
			if ti > 0 {
				var rr []float64
				for r := range rs {
					if rs[r].ops > 0 {
						rr = append(rr, results[ci][0][r].opsPerSec()/rs[r].opsPerSec())
					}
				}
				ratios[ti] = append(ratios[ti], median(rr))
				ratio = fmt.Sprintf("%s/%s %.2f", subject, t.name, median(rr))
			}
			fmt.Printf("%-10s %-14s %10.1f %9.1f %9.2f %9.2f %8d  %s\n", label, t.name, median(opsps), median(mbps), median(p50), median(p99), errs, ratio)
			if firstErr != nil {
				fmt.Printf("%-10s %-14s first error: %v\n", "", "", firstErr)
			}
		}
	}
	for ti, t := range targets[1:] {
		rs := ratios[ti+1]
		lo, hi := minMax(rs)
		fmt.Printf("%s/%s over all cells: median %.2f (per cell %.2f–%.2f)%s\n", subject, t.name, median(rs), lo, hi, goal)
	}
	var mem []string
	for i, s := range procs {
		mem = append(mem, fmt.Sprintf("%s %.1f MB", s.name, mb(peaks[i])))
	}
	fmt.Printf("peak RSS during the cells: %s\n", strings.Join(mem, ", "))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func minMax(xs []float64) (float64, float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// throughputSuite: Mecha on fs against versitygw on posix, same disk.
func throughputSuite(b *bench, vgwBin string) {
	fmt.Printf("\n== throughput: Mecha (S3 frontend, fs backend, fsync %t) vs versitygw %s (posix backend), same disk ==\n", b.o.fsync, versitygwVersion)
	backend, fs := b.storeBackend("mecha")
	name := "mecha"
	if !fs {
		fmt.Printf("NOTE: Mecha on memory, versitygw on disk: NOT a like-for-like comparison\n")
		name = "mecha(mem)"
	}
	m, mEndpoint := b.startMecha("mecha", backend)
	defer m.stop()
	v, vEndpoint := b.startVersitygw(vgwBin)
	defer v.stop()
	compare("S3 throughput: Mecha vs versitygw", []*target{
		newTarget(name, mEndpoint, "bench", b.o, m),
		newTarget("versitygw", vEndpoint, "bench", b.o, v),
	}, b.o, "")
}

// s3backendSuite: Mecha's s3 backend in front of a second Mecha on fs,
// against the client talking to that second Mecha directly.
func s3backendSuite(b *bench) {
	fmt.Printf("\n== s3backend: Mecha (s3 backend) → Mecha (fs backend) vs the client on the second Mecha directly ==\n")
	if err := b.validate("mecha-s3", s3Backend("http://127.0.0.1:1")); err != nil {
		fmt.Printf("skipped: s3 backend not available (%v)\n", err)
		return
	}
	upBackend, _ := b.storeBackend("upstream")
	up, upEndpoint := b.startMecha("upstream", upBackend)
	defer up.stop()
	front, frontEndpoint := b.startMecha("mecha-s3", s3Backend(upEndpoint))
	defer front.stop()
	compare("S3 throughput through the s3 backend: Mecha(s3) → Mecha(fs) vs that Mecha(fs) directly", []*target{
		newTarget("via-s3", frontEndpoint, "bench-via", b.o, front, up),
		newTarget("upstream", upEndpoint, "bench-direct", b.o, up),
	}, b.o, " — target ≥ 0.80")
}

// storeBackend is the YAML of Mecha's fs backend in a fresh directory, or
// of its memory backend (fs false, and a note printed) when the binary
// has no fs backend.
func (b *bench) storeBackend(name string) (yaml string, fs bool) {
	backend := b.fsBackend(name)
	err := b.validate(name, backend)
	if err == nil {
		return backend, true
	}
	if !strings.HasPrefix(err.Error(), "unavailable") {
		check(err)
	}
	fmt.Printf("NOTE: fs backend not available in %s; %s runs on type: memory instead\n", b.mecha, name)
	return "{type: memory, max_bytes: 0}", false
}
