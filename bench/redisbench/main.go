// Command redisbench measures Mecha's Redis frontend side by side with
// what it stands in for, in one run, in three suites:
//
//   - passthrough: Mecha on a redis-server, against the server directly
//     and against twemproxy in front of it; Mecha's added latency,
//     resident memory and start-up time;
//   - embedded: Mecha's embedded store against a redis-server (both with
//     an append-only log synced every second), and the memory each uses
//     for the same million keys;
//   - cluster: Mecha on a 3-master Redis Cluster against redis-benchmark
//     in cluster mode talking to the nodes itself.
//
// It starts every server it needs on free ports, runs redis-benchmark
// against each target in turn, round after round, and prints the median of
// each test and the ratios between targets, taken round by round.
//
//	go run ./bench/redisbench -rounds 5 -suite embedded
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/bench/internal/benchutil"
)

// target is one server redis-benchmark runs against.
type target struct {
	name string
	port int
	args []string // extra redis-benchmark arguments (--cluster)
}

type result struct {
	rps float64
	p50 float64 // ms
}

type options struct {
	rounds, requests, clients int
	tests                     []string
	pipelines                 []int
	verbose                   bool
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds per configuration (medians are reported)")
	requests := flag.Int("n", 200000, "requests per test (redis-benchmark -n)")
	clients := flag.Int("c", 50, "parallel clients (redis-benchmark -c)")
	tests := flag.String("t", "set,get,incr,lpush,lpop", "tests (redis-benchmark -t)")
	mechaBin := flag.String("mecha", "", "mecha binary (default: build ./cmd/mecha)")
	pipelines := flag.String("P", "1,16", "pipeline depths to run (redis-benchmark -P)")
	verbose := flag.Bool("v", false, "print every round's results")
	backendExtra := flag.String("backend", "", "extra options for Mecha's redis backend (passthrough suite), e.g. \"conns: 1\"")
	suites := flag.String("suite", "passthrough,embedded,cluster", "suites to run: passthrough (Mecha on a redis-server vs direct vs twemproxy), embedded (Mecha's embedded store vs redis-server, throughput and memory), cluster (Mecha on a 3-master Redis Cluster vs redis-benchmark --cluster)")
	keys := flag.Int("keys", 1000000, "keys loaded for the memory comparison (embedded suite)")
	flag.Parse()

	o := options{rounds: *rounds, requests: *requests, clients: *clients, verbose: *verbose,
		tests: strings.Split(strings.ToUpper(*tests), ",")}
	for _, pl := range strings.Split(*pipelines, ",") {
		p, err := strconv.Atoi(pl)
		check(err)
		o.pipelines = append(o.pipelines, p)
	}

	dir, err := os.MkdirTemp("", "redisbench")
	check(err)
	defer os.RemoveAll(dir)

	bin := *mechaBin
	if bin == "" {
		bin = filepath.Join(dir, "mecha")
		build := exec.Command("go", "build", "-o", bin, "./cmd/mecha")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		check(build.Run())
	}
	for _, tool := range []string{"redis-server", "redis-benchmark", "redis-cli", "nutcracker"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "redisbench: %s not found (apt-get install redis-server redis-tools nutcracker)\n", tool)
			os.Exit(2)
		}
	}
	for _, s := range strings.Split(*suites, ",") {
		switch s {
		case "passthrough":
			passthroughSuite(dir, bin, o, *backendExtra)
		case "embedded":
			embeddedSuite(dir, bin, o, *keys)
		case "cluster":
			clusterSuite(dir, bin, o)
		default:
			check(fmt.Errorf("unknown suite %q", s))
		}
	}
}

// startRedis starts a redis-server on a free port with extra arguments.
func startRedis(dir, name string, extra ...string) (*exec.Cmd, int) {
	port := freePort()
	rdir := filepath.Join(dir, name)
	check(os.MkdirAll(rdir, 0o755))
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", rdir}, extra...)
	cmd := start(dir, name, "redis-server", args...)
	waitPort(port)
	return cmd, port
}

// startMecha runs Mecha with one Redis frontend on the backend described
// by backendYAML, and waits until it is ready.
func startMecha(dir, bin, name, backendYAML string) (*exec.Cmd, int, int, time.Duration) {
	port, admin := freePort(), freePort()
	cfg := filepath.Join(dir, name+".yaml")
	check(os.WriteFile(cfg, []byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:%d}
log: {level: warn}
data_dir: %s
frontends:
  - {name: bench, protocol: redis, listen: 127.0.0.1:%d, backend: b}
backends:
  b: %s
`, admin, filepath.Join(dir, name+"-data"), port, backendYAML)), 0o644))
	cmd := start(dir, name, bin, "run", "-c", cfg)
	return cmd, port, admin, waitReady(admin)
}

// passthroughSuite: Mecha on a redis-server, against the server itself
// and twemproxy in front of it.
func passthroughSuite(dir, bin string, o options, backendExtra string) {
	fmt.Printf("\n== passthrough: Mecha (type: redis) vs direct redis-server vs twemproxy ==\n")
	redis, redisPort := startRedis(dir, "redis")
	defer stop(redis)

	twemPort := freePort()
	twemCfg := filepath.Join(dir, "nutcracker.yml")
	check(os.WriteFile(twemCfg, []byte(fmt.Sprintf(`bench:
  listen: 127.0.0.1:%d
  hash: fnv1a_64
  distribution: ketama
  redis: true
  server_connections: 1
  servers:
   - 127.0.0.1:%d:1
`, twemPort, redisPort)), 0o644))
	twem := start(dir, "twemproxy", "nutcracker", "-c", twemCfg, "-s", strconv.Itoa(freePort()))
	defer stop(twem)
	waitPort(twemPort)

	mecha, mechaPort, _, startup := startMecha(dir, bin, "mecha", fmt.Sprintf("{type: redis, addr: 127.0.0.1:%d %s}", redisPort, optional(backendExtra)))
	defer stop(mecha)
	time.Sleep(200 * time.Millisecond)
	idleBefore := rss(mecha.Process.Pid)

	var peak peakRSS
	peak.watch(mecha.Process.Pid)
	compare(o, []target{{name: "mecha", port: mechaPort}, {name: "direct", port: redisPort}, {name: "twemproxy", port: twemPort}})

	// Latency without queueing: one client, one request at a time.
	var d1, m1 []float64
	for r := 0; r < o.rounds; r++ {
		d1 = append(d1, runBenchmark(target{port: redisPort}, "get", 50000, 1, 1)["GET"].p50)
		m1 = append(m1, runBenchmark(target{port: mechaPort}, "get", 50000, 1, 1)["GET"].p50)
	}
	fmt.Printf("\nredis-benchmark -t get -n 50000 -c 1 (no queueing), median of %d rounds: p50 direct %.3f ms, mecha %.3f ms, added %.3f ms\n",
		o.rounds, median(d1), median(m1), median(m1)-median(d1))
	peak.stop()
	time.Sleep(time.Second)
	idleAfter := rss(mecha.Process.Pid)
	fmt.Printf("\nMecha memory: RSS idle before %.1f MB, peak under load %.1f MB, idle after %.1f MB\n",
		mb(idleBefore), mb(peak.max()), mb(idleAfter))
	fmt.Printf("Mecha start-up to ready (/readyz 200, upstream checked): %s\n", startup.Round(100*time.Microsecond))
	// Start-up again, a few times, for a median.
	var starts []float64
	for i := 0; i < 5; i++ {
		m, _, _, d := startMecha(dir, bin, fmt.Sprintf("start%d", i), fmt.Sprintf("{type: redis, addr: 127.0.0.1:%d}", redisPort))
		starts = append(starts, float64(d)/1e6)
		stop(m)
	}
	fmt.Printf("Mecha start-up to ready, median of 5: %.1f ms\n", median(starts))
}

// embeddedSuite: Mecha's embedded store against a redis-server, both
// logging writes to an append-only file synced every second; then the
// memory each uses for the same keys.
func embeddedSuite(dir, bin string, o options, keys int) {
	fmt.Printf("\n== embedded: Mecha (type: embedded) vs redis-server, both with an append-only log, fsync every second ==\n")
	redis, redisPort := startRedis(dir, "redis-aof", "--appendonly", "yes", "--appendfsync", "everysec")
	defer stop(redis)
	mecha, mechaPort, _, _ := startMecha(dir, bin, "mecha-embedded", "{type: embedded, fsync: everysec}")
	defer stop(mecha)
	compare(o, []target{{name: "embedded", port: mechaPort}, {name: "redis", port: redisPort}})

	// Memory: the same keys in fresh servers, without persistence (the
	// log's buffers are not data).
	stop(redis)
	stop(mecha)
	redis, redisPort = startRedis(dir, "redis-mem")
	defer stop(redis)
	mecha, mechaPort, _, _ = startMecha(dir, bin, "mecha-mem", "{type: embedded, persistence: false}")
	defer stop(mecha)
	base := rss(mecha.Process.Pid)
	redisBase := rss(redis.Process.Pid)
	load(redisPort, keys, 100)
	load(mechaPort, keys, 100)
	time.Sleep(2 * time.Second) // let the collector return what it can
	used := infoField(redisPort, "memory", "used_memory")
	rr, mr := rss(redis.Process.Pid), rss(mecha.Process.Pid)
	fmt.Printf("\nMemory for %d string keys of 100 bytes (key:%%08d):\n", keys)
	fmt.Printf("  redis-server: used_memory %.1f MB, RSS %.1f MB (empty: %.1f MB)\n", mb(used), mb(rr), mb(redisBase))
	fmt.Printf("  mecha:        RSS %.1f MB (empty: %.1f MB)\n", mb(mr), mb(base))
	fmt.Printf("  ratio mecha RSS / redis RSS: %.2f; mecha RSS / redis used_memory: %.2f\n", float64(mr)/float64(rr), float64(mr)/float64(used))
}

// clusterSuite: Mecha on a 3-master Redis Cluster against redis-benchmark
// in cluster mode, talking to the nodes itself.
func clusterSuite(dir, bin string, o options) {
	fmt.Printf("\n== cluster: Mecha (type: redis-cluster) vs redis-benchmark --cluster on the nodes, 3 masters ==\n")
	var ports []int
	var addrs []string
	for i := range 3 {
		cmd, port := startRedis(dir, fmt.Sprintf("node%d", i), "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(freePort()))
		defer stop(cmd)
		ports = append(ports, port)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	create := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...)
	out, err := create.CombinedOutput()
	if err != nil {
		check(fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out))
	}
	for _, p := range ports {
		for !strings.Contains(redisCLI(p, "CLUSTER", "INFO"), "cluster_state:ok") {
			time.Sleep(50 * time.Millisecond)
		}
	}
	mecha, mechaPort, _, _ := startMecha(dir, bin, "mecha-cluster", fmt.Sprintf("{type: redis-cluster, servers: [%s]}", addrs[0]))
	defer stop(mecha)
	compare(o, []target{{name: "mecha", port: mechaPort}, {name: "cluster", port: ports[0], args: []string{"--cluster"}}})
}

// compare runs every test against every target, round after round, and
// reports medians and the ratios of the first target to the others.
func compare(o options, targets []target) {
	for _, p := range o.pipelines {
		// results[target][test] = per-round results
		results := map[string]map[string][]result{}
		for _, t := range targets {
			results[t.name] = map[string][]result{}
		}
		// Targets run back to back for each test, in an order that rotates,
		// so that each comparison is made within seconds on a noisy
		// machine.
		for r := 0; r < o.rounds; r++ {
			for ti, test := range o.tests {
				for i := range targets {
					t := targets[(i+r+ti)%len(targets)]
					res := runBenchmark(t, strings.ToLower(test), o.requests, o.clients, p)
					for name, v := range res {
						if name != test {
							continue // LPOP also runs an LPUSH to fill the list
						}
						results[t.name][name] = append(results[t.name][name], v)
						if o.verbose {
							fmt.Printf("round %d -P %d %-9s %-6s %9.0f rps  p50 %.3f ms\n", r+1, p, t.name, name, v.rps, v.p50)
						}
					}
				}
			}
		}
		report(p, o, targets, results)
	}
}

func optional(extra string) string {
	if extra == "" {
		return ""
	}
	return ", " + extra
}

// runBenchmark runs redis-benchmark once and parses its CSV output.
func runBenchmark(t target, tests string, n, c, p int) map[string]result {
	args := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(t.port),
		"-t", tests, "-n", strconv.Itoa(n), "-c", strconv.Itoa(c), "-P", strconv.Itoa(p), "--csv"}, t.args...)
	cmd := exec.Command("redis-benchmark", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	check(cmd.Run())
	// In cluster mode the CSV follows a description of the nodes.
	csvText := out.Bytes()
	if i := bytes.Index(csvText, []byte("\"test\"")); i > 0 {
		csvText = csvText[i:]
	}
	rows, err := csv.NewReader(bytes.NewReader(csvText)).ReadAll()
	check(err)
	res := map[string]result{}
	for _, row := range rows {
		if len(row) < 5 || row[0] == "test" {
			continue
		}
		rps, _ := strconv.ParseFloat(row[1], 64)
		p50, _ := strconv.ParseFloat(row[4], 64)
		name := row[0]
		if i := strings.IndexByte(name, ' '); i > 0 {
			name = name[:i] // "LPUSH (needed to benchmark LPOP)"
		}
		if _, seen := res[name]; !seen {
			res[name] = result{rps: rps, p50: p50}
		}
	}
	return res
}

func report(p int, o options, targets []target, results map[string]map[string][]result) {
	fmt.Printf("\nredis-benchmark -n %d -c %d -P %d, median of %d rounds\n", o.requests, o.clients, p, o.rounds)
	subject := targets[0].name
	fmt.Printf("%-7s", "test")
	for _, t := range targets {
		fmt.Printf(" %14s", t.name+" rps")
	}
	for _, t := range targets[1:] {
		fmt.Printf(" %12s", subject[:1]+"/"+t.name)
	}
	for _, t := range targets {
		fmt.Printf(" %11s", "p50 "+t.name)
	}
	fmt.Printf(" %9s\n", "+p50 ms")
	ratios := make([][]float64, len(targets))
	var added []float64
	for _, test := range o.tests {
		ms := results[subject][test]
		ok := len(ms) > 0
		for _, t := range targets {
			ok = ok && len(results[t.name][test]) == len(ms)
		}
		if !ok {
			continue
		}
		fmt.Printf("%-7s", test)
		for _, t := range targets {
			fmt.Printf(" %14.0f", med(results[t.name][test]).rps)
		}
		// Ratios are taken round by round (runs seconds apart), then
		// their median.
		for i, t := range targets[1:] {
			var rs []float64
			for r := range ms {
				rs = append(rs, ms[r].rps/results[t.name][test][r].rps)
			}
			ratios[i+1] = append(ratios[i+1], median(rs))
			fmt.Printf(" %12.2f", median(rs))
		}
		for _, t := range targets {
			fmt.Printf(" %11.3f", med(results[t.name][test]).p50)
		}
		var ap []float64
		for r := range ms {
			ap = append(ap, ms[r].p50-results[targets[1].name][test][r].p50)
		}
		added = append(added, median(ap))
		fmt.Printf(" %9.3f\n", median(ap))
	}
	fmt.Printf("%-7s", "all")
	for range targets {
		fmt.Printf(" %14s", "")
	}
	for i := range targets[1:] {
		fmt.Printf(" %12.2f", median(ratios[i+1]))
	}
	for range targets {
		fmt.Printf(" %11s", "")
	}
	fmt.Printf(" %9.3f   (median over tests)\n", median(added))
}

func med(rs []result) result {
	var rps, p50 []float64
	for _, r := range rs {
		rps = append(rps, r.rps)
		p50 = append(p50, r.p50)
	}
	return result{rps: median(rps), p50: median(p50)}
}

func start(dir, name string, bin string, args ...string) *exec.Cmd {
	cmd, err := benchutil.Start(dir, name, bin, args...)
	check(err)
	return cmd
}

func stop(cmd *exec.Cmd) { benchutil.Stop(cmd) }

func waitPort(port int) { check(benchutil.WaitPort(port)) }

// waitReady polls /readyz until it answers 200 and returns how long that
// took since now.
func waitReady(adminPort int) time.Duration {
	d, err := benchutil.WaitReady(adminPort)
	check(err)
	return d
}

type peakRSS struct {
	mu   sync.Mutex
	peak int64
	done chan struct{}
}

func (p *peakRSS) watch(pid int) {
	p.done = make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				r := rss(pid)
				p.mu.Lock()
				p.peak = max(p.peak, r)
				p.mu.Unlock()
			}
		}
	}()
}

func (p *peakRSS) stop() { close(p.done) }

func (p *peakRSS) max() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisbench:", err)
		os.Exit(1)
	}
}

// load writes n keys "key:%08d" of size bytes through one pipelined
// connection.
func load(port, n, size int) {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	check(err)
	defer c.Close()
	value := strings.Repeat("x", size)
	r := bufio.NewReaderSize(c, 64<<10)
	const batch = 1000
	var buf []byte
	for i := 0; i < n; i += batch {
		buf = buf[:0]
		m := min(batch, n-i)
		for j := 0; j < m; j++ {
			k := fmt.Sprintf("key:%08d", i+j)
			buf = fmt.Appendf(buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(value), value)
		}
		_, err := c.Write(buf)
		check(err)
		for j := 0; j < m; j++ {
			line, err := r.ReadString('\n')
			check(err)
			if line != "+OK\r\n" {
				check(fmt.Errorf("SET: %q", line))
			}
		}
	}
}

// redisCLI runs a command with redis-cli and returns its output.
func redisCLI(port int, args ...string) string {
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port)}, args...)...).Output()
	check(err)
	return string(out)
}

// infoField reads one numeric field of INFO section.
func infoField(port int, section, field string) int64 {
	for _, line := range strings.Split(redisCLI(port, "INFO", section), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// Helpers shared with the other benchmarks.
var (
	median = benchutil.Median
	mb     = benchutil.MB
	rss    = benchutil.RSS
)

func freePort() int {
	p, err := benchutil.FreePort()
	check(err)
	return p
}
