package main

import (
	"fmt"
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
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

var (
	serversMu sync.Mutex
	servers   []*server
)

// start runs bin with args, its output in dir/name.log.
func start(dir, name, bin string, args ...string) *server {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	check(err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	check(cmd.Start())
	s := &server{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
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

// tail returns the last lines of the server's log, for error messages.
func (s *server) tail() string { return benchutil.Tail(s.log, 15) }

// stop interrupts the process and kills it if it has not ended within
// five seconds.
func (s *server) stop() {
	if s.exited() {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// stopAll stops every server still running.
func stopAll() {
	serversMu.Lock()
	list := append([]*server(nil), servers...)
	serversMu.Unlock()
	for _, s := range list {
		s.stop()
	}
}

// onInterrupt runs cleanup and exits on SIGINT or SIGTERM.
func onInterrupt(cleanup func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		fmt.Fprintln(os.Stderr, "s3bench: interrupted")
		cleanup()
		os.Exit(130)
	}()
}

// waitReady polls url until it answers 200 (or, with anyStatus, answers
// at all), failing if the server ends first.
func waitReady(s *server, url string, anyStatus bool) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s.exited() {
			check(fmt.Errorf("%s exited during start-up:\n%s", s.name, s.tail()))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 || anyStatus {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	check(fmt.Errorf("%s never became ready (%s):\n%s", s.name, url, s.tail()))
}

// peakRSS samples the resident memory of processes every 50 ms and keeps
// each one's peak.
type peakRSS struct {
	mu    sync.Mutex
	pids  []int
	peaks []int64
	stopc chan struct{}
	done  chan struct{}
}

func watchRSS(pids ...int) *peakRSS {
	p := &peakRSS{pids: pids, peaks: make([]int64, len(pids)), stopc: make(chan struct{}), done: make(chan struct{})}
	p.sample()
	go func() {
		defer close(p.done)
		t := time.NewTicker(50 * time.Millisecond)
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
	for i, pid := range p.pids {
		r := rss(pid)
		p.mu.Lock()
		p.peaks[i] = max(p.peaks[i], r)
		p.mu.Unlock()
	}
}

// stop ends the sampling and returns each process' peak.
func (p *peakRSS) stop() []int64 {
	close(p.stopc)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.peaks...)
}

// parseSize reads sizes such as 4096, 4KiB, 4k, 16MiB, 2GiB (powers of
// two).
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// sizeName writes a size the way the flags take it.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
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
