package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/bench/internal/benchutil"
)

// server is a process the benchmark started.
type server struct {
	name    string
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
	stopSig os.Signal
	grace   time.Duration
}

var (
	serversMu sync.Mutex
	servers   []*server
)

// start runs bin with args, its output in dir/name.log, in a process group
// of its own (so that a Ctrl-C at the terminal reaches the benchmark,
// which stops its servers in order, and not the servers directly).
func start(dir, name, bin string, args ...string) *server {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	check(err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	check(cmd.Start())
	s := &server{name: name, cmd: cmd, log: logPath, done: make(chan struct{}), stopSig: syscall.SIGTERM, grace: 10 * time.Second}
	go func() { cmd.Wait(); logf.Close(); close(s.done) }()
	serversMu.Lock()
	servers = append(servers, s)
	serversMu.Unlock()
	return s
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// exited reports whether the process has ended.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop signals the process and kills it if it has not ended within its
// grace period.
func (s *server) stop() {
	if s.exited() {
		return
	}
	s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.done:
	case <-time.After(s.grace):
		fmt.Fprintf(os.Stderr, "mysqlbench: %s did not stop within %s of %v; killing it\n", s.name, s.grace, s.stopSig)
		s.cmd.Process.Kill()
		<-s.done
	}
}

// stopAll stops every server still running, the last started first.
func stopAll() {
	serversMu.Lock()
	list := append([]*server(nil), servers...)
	serversMu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

// onInterrupt runs cleanup and exits on SIGINT or SIGTERM.
func onInterrupt(cleanup func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		interrupted.Store(true)
		fmt.Fprintln(os.Stderr, "mysqlbench: interrupted; stopping the servers")
		cleanup()
		os.Exit(130)
	}()
}

// waitPort waits until addr accepts TCP connections, failing if s ends
// first.
func waitPort(s *server, addr string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if s.exited() {
			check(fmt.Errorf("%s exited during start-up:\n%s", s.name, tail(s.log, 20)))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	check(fmt.Errorf("%s never accepted connections on %s:\n%s", s.name, addr, tail(s.log, 20)))
}

// waitReady polls url until it answers 200, failing if s ends first.
func waitReady(s *server, url string, limit time.Duration) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	last := "no answer"
	for time.Now().Before(deadline) {
		if s.exited() {
			check(fmt.Errorf("%s exited during start-up:\n%s", s.name, tail(s.log, 20)))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = resp.Status
		}
		time.Sleep(10 * time.Millisecond)
	}
	check(fmt.Errorf("%s never became ready (%s: %s):\n%s", s.name, url, last, tail(s.log, 20)))
}

// clockTicks is the unit of /proc/PID/stat's CPU times (getconf CLK_TCK,
// 100 on Linux everywhere in practice).
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}()

// cpuTime returns the user plus system CPU time a process has used (all
// its threads), from /proc/PID/stat; 0 when pid is 0 or gone.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'; the first is the state (field 3), utime is field 14.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(float64(ut+st) / clockTicks * float64(time.Second))
}

// peakRSS samples the resident memory of a process at an interval and
// keeps the peak.
type peakRSS struct {
	pid   int
	mu    sync.Mutex
	peak  int64
	n     int
	stopc chan struct{}
	done  chan struct{}
}

func watchRSS(pid int, every time.Duration) *peakRSS {
	p := &peakRSS{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	p.sample()
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stopc:
				p.sample()
				return
			case <-t.C:
				p.sample()
			}
		}
	}()
	return p
}

func (p *peakRSS) sample() {
	r := rss(p.pid)
	p.mu.Lock()
	p.peak = max(p.peak, r)
	p.n++
	p.mu.Unlock()
}

// stop ends the sampling and returns the peak and the number of samples.
func (p *peakRSS) stop() (int64, int) {
	close(p.stopc)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak, p.n
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// newCmd prepares a client program (sysbench, mariadb-install-db) that
// dies with the benchmark.
func newCmd(bin string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return c
}

// clients are the client programs running now, killed by cleanup.
var clients sync.Map // *exec.Cmd → struct{}

// track registers a started client until its end (call the result).
func track(c *exec.Cmd) func() {
	clients.Store(c, struct{}{})
	return func() { clients.Delete(c) }
}

func killClients() {
	clients.Range(func(k, _ any) bool {
		if c := k.(*exec.Cmd); c.Process != nil {
			c.Process.Kill()
		}
		return true
	})
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

var tail = benchutil.Tail

func hwm(pid int) int64 { return benchutil.ProcStatus(pid, "VmHWM") }
