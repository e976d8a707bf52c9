// Command s3bench measures Mecha's S3 frontend side by side with what it
// stands in for, in one run, in three suites:
//
//   - throughput: PUT and GET of small and large objects by concurrent
//     aws-sdk-go-v2 clients against Mecha on the `fs` backend and against
//     versitygw (v1.7.0, posix backend) on the same disk;
//   - big: one 2 GiB object uploaded (multipart, and as one PutObject)
//     and downloaded through Mecha, on `fs` and through the `s3` backend,
//     with Mecha's peak resident memory;
//   - s3backend: the throughput cells through Mecha's `s3` backend in
//     front of a second Mecha (on `fs`), against the client talking to that
//     second Mecha directly.
//
// It starts every server it needs on free ports of 127.0.0.1 in a
// temporary directory, runs each cell against every target in turn, in an
// order that rotates, round after round, and prints the median of each
// cell and the ratios between targets, taken round by round.
//
//	go run ./bench/s3bench -mecha bin/mecha -rounds 3 -suite throughput
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Credentials every server of the benchmark is started with.
const (
	accessKey = "s3bench"
	secretKey = "s3bench-secret-key"
	region    = "us-east-1"
)

// options are the command line's settings.
type options struct {
	rounds      int
	duration    time.Duration
	clients     int
	sizes       []int64
	verbose     bool
	fsync       bool
	mechaExtra  string // top-level YAML added to Mecha's config
	bigSize     int64
	partSize    int64
	partConc    int
	singlePut   bool
	unsignedPut bool
}

func main() {
	mechaBin := flag.String("mecha", "", "mecha binary (default: build ./cmd/mecha into a temporary directory)")
	vgwBin := flag.String("versitygw", "", "versitygw binary (default: built once from the Go module proxy and cached)")
	cacheDir := flag.String("cache", "", "where the versitygw build is cached (default: bench/s3bench/.cache when run from the repository root, else $XDG_CACHE_HOME/mecha-s3bench)")
	suites := flag.String("suite", "throughput,big,s3backend", "suites to run: throughput (Mecha on fs vs versitygw on posix), big (a 2 GiB object through Mecha, with peak RSS), s3backend (Mecha's s3 backend in front of a second Mecha vs that Mecha directly)")
	rounds := flag.Int("rounds", 3, "rounds per cell (medians are reported)")
	duration := flag.Duration("duration", 5*time.Second, "how long each cell runs against each target")
	clients := flag.Int("c", 16, "concurrent clients (one request in flight each)")
	sizes := flag.String("sizes", "4KiB,1MiB", "object sizes of the throughput cells")
	bigSize := flag.String("big-size", "2GiB", "size of the object of the big suite")
	partSize := flag.String("part-size", "16MiB", "multipart part size of the big suite's upload")
	partConc := flag.Int("part-concurrency", 4, "parts in flight at once in the big suite's multipart upload")
	single := flag.Bool("single-put", true, "big suite: also upload the object with one PutObject of known length")
	unsigned := flag.Bool("unsigned-payload", false, "send PUT bodies with UNSIGNED-PAYLOAD instead of their SHA-256 (default: signed, the SDK's default over plain HTTP)")
	fsync := flag.Bool("fsync", false, "run Mecha's fs backend with fsync: true (default false: versitygw never syncs)")
	mechaExtra := flag.String("mecha-config", "", "top-level YAML added to every Mecha config, e.g. \"max_procs: 2\"")
	verbose := flag.Bool("v", false, "print every round's results and the servers' log paths")
	flag.Parse()

	o := options{rounds: *rounds, duration: *duration, clients: *clients, verbose: *verbose,
		fsync: *fsync, mechaExtra: *mechaExtra, partConc: *partConc, singlePut: *single,
		unsignedPut: *unsigned}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := parseSize(s)
		check(err)
		o.sizes = append(o.sizes, n)
	}
	var err error
	o.bigSize, err = parseSize(*bigSize)
	check(err)
	o.partSize, err = parseSize(*partSize)
	check(err)
	if o.rounds < 1 || o.clients < 1 || o.duration <= 0 || o.partConc < 1 {
		check(fmt.Errorf("-rounds, -c, -duration and -part-concurrency must be positive"))
	}

	var suiteList []string
	for _, s := range strings.Split(*suites, ",") {
		s = strings.TrimSpace(s)
		if s != "throughput" && s != "big" && s != "s3backend" {
			check(fmt.Errorf("unknown suite %q (throughput, big, s3backend)", s))
		}
		suiteList = append(suiteList, s)
	}

	dir, err := os.MkdirTemp("", "s3bench")
	check(err)
	tmpDir = dir
	defer cleanup()
	onInterrupt(cleanup)

	bin := *mechaBin
	if bin == "" {
		bin = filepath.Join(dir, "mecha")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mecha")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		check(build.Run())
	}
	bin, err = filepath.Abs(bin)
	check(err)
	env := &bench{dir: dir, mecha: bin, o: o}

	fmt.Printf("s3bench: %d CPUs, Go %s, %d clients, %s per cell, %d rounds; aws-sdk-go-v2 path-style, static credentials, checksums WhenRequired, no retries, %s PUT payloads\n",
		runtime.NumCPU(), runtime.Version(), o.clients, o.duration, o.rounds, map[bool]string{false: "signed (SHA-256)", true: "UNSIGNED-PAYLOAD"}[o.unsignedPut])
	if out, err := exec.Command(bin, "version").Output(); err == nil {
		fmt.Printf("s3bench: %s (%s)\n", strings.TrimSpace(string(out)), bin)
	}
	fmt.Printf("s3bench: load average at start: %s\n", loadavg())
	defer func() { fmt.Printf("\ns3bench: load average at end: %s\n", loadavg()) }()
	for _, s := range suiteList {
		switch s {
		case "throughput":
			vgw := *vgwBin
			if vgw == "" {
				vgw = versitygwBinary(*cacheDir)
			}
			throughputSuite(env, vgw)
		case "big":
			bigSuite(env)
		case "s3backend":
			s3backendSuite(env)
		}
	}
}

// bench is what every suite shares: the temporary directory, the Mecha
// binary and the options.
type bench struct {
	dir   string
	mecha string
	o     options
	seq   int
}

// subdir makes a fresh directory under the temporary one.
func (b *bench) subdir(name string) string {
	b.seq++
	d := filepath.Join(b.dir, fmt.Sprintf("%s-%d", name, b.seq))
	check(os.MkdirAll(d, 0o755))
	return d
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures: how busy the
// machine was besides the benchmark.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// tmpDir is the run's temporary directory, removed on the way out.
var tmpDir string

// cleanup stops every server and removes the temporary directory.
func cleanup() {
	stopAll()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3bench:", err)
		cleanup()
		os.Exit(1)
	}
}
