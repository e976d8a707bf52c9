// Command redisbench measures Mecha's Redis passthrough against the direct
// backend and a peer proxy (twemproxy), side by side in one run.
//
// It starts its own redis-server on a free port, Mecha in front of it and
// nutcracker (twemproxy) in front of it, then runs redis-benchmark against
// each target in turn, round after round, and prints the median of each
// test and the ratios between targets. It also reports Mecha's resident
// memory while loaded and idle, and its start-up time to ready.
//
//	go run ./bench/redisbench -rounds 5
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type target struct {
	name string
	port int
}

type result struct {
	rps float64
	p50 float64 // ms
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds per configuration (medians are reported)")
	requests := flag.Int("n", 200000, "requests per test (redis-benchmark -n)")
	clients := flag.Int("c", 50, "parallel clients (redis-benchmark -c)")
	tests := flag.String("t", "set,get,incr,lpush,lpop", "tests (redis-benchmark -t)")
	mechaBin := flag.String("mecha", "", "mecha binary (default: build ./cmd/mecha)")
	pipelines := flag.String("P", "1,16", "pipeline depths to run (redis-benchmark -P)")
	verbose := flag.Bool("v", false, "print every round's results")
	backendExtra := flag.String("backend", "", "extra options for Mecha's backend, e.g. \"conns: 1\"")
	flag.Parse()

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
	for _, tool := range []string{"redis-server", "redis-benchmark", "nutcracker"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "redisbench: %s not found (apt-get install redis-server redis-tools nutcracker)\n", tool)
			os.Exit(2)
		}
	}

	redisPort := freePort()
	redis := start(dir, "redis", "redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	defer stop(redis)
	waitPort(redisPort)

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

	mechaPort, adminPort := freePort(), freePort()
	mechaCfg := filepath.Join(dir, "mecha.yaml")
	check(os.WriteFile(mechaCfg, []byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:%d}
log: {level: warn}
frontends:
  - {name: bench, protocol: redis, listen: 127.0.0.1:%d, backend: r}
backends:
  r: {type: redis, addr: 127.0.0.1:%d %s}
`, adminPort, mechaPort, redisPort, optional(*backendExtra))), 0o644))
	began := time.Now()
	mecha := start(dir, "mecha", bin, "run", "-c", mechaCfg)
	defer stop(mecha)
	startup := waitReady(adminPort)
	_ = began
	time.Sleep(200 * time.Millisecond)
	idleBefore := rss(mecha.Process.Pid)

	targets := []target{{"direct", redisPort}, {"mecha", mechaPort}, {"twemproxy", twemPort}}
	testNames := strings.Split(strings.ToUpper(*tests), ",")
	var peak peakRSS
	peak.watch(mecha.Process.Pid)

	for _, pl := range strings.Split(*pipelines, ",") {
		p, err := strconv.Atoi(pl)
		check(err)
		// results[target][test] = per-round results
		results := map[string]map[string][]result{}
		for _, t := range targets {
			results[t.name] = map[string][]result{}
		}
		// Targets run back to back for each test, in an order that rotates,
		// so that each comparison is made within seconds on a noisy
		// machine.
		for r := 0; r < *rounds; r++ {
			for ti, test := range testNames {
				for i := range targets {
					t := targets[(i+r+ti)%len(targets)]
					res := runBenchmark(t.port, strings.ToLower(test), *requests, *clients, p)
					for name, v := range res {
						if name != test {
							continue // LPOP also runs an LPUSH to fill the list
						}
						results[t.name][name] = append(results[t.name][name], v)
						if *verbose {
							fmt.Printf("round %d -P %d %-9s %-6s %9.0f rps  p50 %.3f ms\n", r+1, p, t.name, name, v.rps, v.p50)
						}
					}
				}
			}
		}
		report(p, *rounds, *requests, *clients, testNames, results)
	}
	// Latency without queueing: one client, one request at a time.
	var d1, m1 []float64
	for r := 0; r < *rounds; r++ {
		d1 = append(d1, runBenchmark(redisPort, "get", 50000, 1, 1)["GET"].p50)
		m1 = append(m1, runBenchmark(mechaPort, "get", 50000, 1, 1)["GET"].p50)
	}
	fmt.Printf("\nredis-benchmark -t get -n 50000 -c 1 (no queueing), median of %d rounds: p50 direct %.3f ms, mecha %.3f ms, added %.3f ms\n",
		*rounds, median(d1), median(m1), median(m1)-median(d1))
	peak.stop()
	time.Sleep(time.Second)
	idleAfter := rss(mecha.Process.Pid)
	fmt.Printf("\nMecha memory: RSS idle before %.1f MB, peak under load %.1f MB, idle after %.1f MB\n",
		mb(idleBefore), mb(peak.max()), mb(idleAfter))
	fmt.Printf("Mecha start-up to ready (/readyz 200, upstream checked): %s\n", startup.Round(100*time.Microsecond))
	// Start-up again, a few times, for a median.
	var starts []float64
	for i := 0; i < 5; i++ {
		port, admin := freePort(), freePort()
		cfg := filepath.Join(dir, fmt.Sprintf("start%d.yaml", i))
		check(os.WriteFile(cfg, []byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:%d}
log: {level: warn}
frontends:
  - {name: s, protocol: redis, listen: 127.0.0.1:%d, backend: r}
backends:
  r: {type: redis, addr: 127.0.0.1:%d}
`, admin, port, redisPort)), 0o644))
		m := start(dir, "mecha-start", bin, "run", "-c", cfg)
		d := waitReady(admin)
		starts = append(starts, float64(d)/1e6)
		stop(m)
	}
	fmt.Printf("Mecha start-up to ready, median of 5: %.1f ms\n", median(starts))
}

func optional(extra string) string {
	if extra == "" {
		return ""
	}
	return ", " + extra
}

// runBenchmark runs redis-benchmark once and parses its CSV output.
func runBenchmark(port int, tests string, n, c, p int) map[string]result {
	cmd := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-t", tests, "-n", strconv.Itoa(n), "-c", strconv.Itoa(c), "-P", strconv.Itoa(p), "--csv")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	check(cmd.Run())
	rows, err := csv.NewReader(&out).ReadAll()
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

func report(p, rounds, n, c int, tests []string, results map[string]map[string][]result) {
	fmt.Printf("\nredis-benchmark -n %d -c %d -P %d, median of %d rounds\n", n, c, p, rounds)
	fmt.Printf("%-7s %12s %12s %12s %9s %9s %10s %10s %10s %9s\n", "test", "direct rps", "mecha rps", "twem rps",
		"m/direct", "m/twem", "p50 dir", "p50 mecha", "p50 twem", "+p50 ms")
	var ratios, ratiosTw, added []float64
	for _, t := range tests {
		ds, ms, ws := results["direct"][t], results["mecha"][t], results["twemproxy"][t]
		if len(ds) == 0 || len(ds) != len(ms) || len(ms) != len(ws) {
			continue
		}
		// Ratios are taken round by round (runs seconds apart), then
		// their median.
		var rd, rw, ap []float64
		for i := range ds {
			rd = append(rd, ms[i].rps/ds[i].rps)
			rw = append(rw, ms[i].rps/ws[i].rps)
			ap = append(ap, ms[i].p50-ds[i].p50)
		}
		d, m, w := med(ds), med(ms), med(ws)
		ratios = append(ratios, median(rd))
		ratiosTw = append(ratiosTw, median(rw))
		added = append(added, median(ap))
		fmt.Printf("%-7s %12.0f %12.0f %12.0f %9.2f %9.2f %10.3f %10.3f %10.3f %9.3f\n", t, d.rps, m.rps, w.rps,
			median(rd), median(rw), d.p50, m.p50, w.p50, median(ap))
	}
	fmt.Printf("%-7s %12s %12s %12s %9.2f %9.2f %10s %10s %10s %9.3f   (median over tests)\n", "all", "", "", "",
		median(ratios), median(ratiosTw), "", "", "", median(added))
}

func med(rs []result) result {
	var rps, p50 []float64
	for _, r := range rs {
		rps = append(rps, r.rps)
		p50 = append(p50, r.p50)
	}
	return result{rps: median(rps), p50: median(p50)}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func start(dir, name string, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	check(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	check(cmd.Start())
	return cmd
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(port int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	check(fmt.Errorf("port %d never opened", port))
}

// waitReady polls /readyz until it answers 200 and returns how long that
// took since now.
func waitReady(adminPort int) time.Duration {
	began := time.Now()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort)
	client := &http.Client{Timeout: time.Second}
	for time.Since(began) < 10*time.Second {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(began)
			}
		}
		time.Sleep(time.Millisecond)
	}
	check(errors.New("mecha never became ready"))
	return 0
}

// rss returns a process' resident set size in bytes.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
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

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisbench:", err)
		os.Exit(1)
	}
}
