// Package memcachedtest starts real memcached processes for tests: each on
// a free port of 127.0.0.1, stopped when the test ends.
package memcachedtest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends/redis/redistest"
)

// Server is a memcached started for a test.
type Server struct {
	t    testing.TB
	Port int
	args []string
	cmd  *exec.Cmd
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Start starts memcached with extra arguments (e.g. "-I", "2m"). It skips
// the test when memcached is not installed and testing.Short is set;
// otherwise a missing binary fails the test.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("memcached"); err != nil {
		if testing.Short() {
			t.Skip("memcached not installed")
		}
		t.Fatalf("memcached not installed (apt-get install memcached): %v", err)
	}
	s := &Server{t: t, Port: redistest.FreePort(t)}
	s.args = []string{"-l", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		s.args = append(s.args, "-u", "root") // memcached refuses to run as root without it
	}
	s.args = append(s.args, extra...)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command("memcached", s.args...)
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start memcached: %v", err)
	}
	if !redistest.WaitPort(s.Port, 10*time.Second) {
		s.Stop()
		s.t.Fatalf("memcached on port %d did not start", s.Port)
	}
}

// Stop stops the server (idempotent).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart stops the server and starts it again, empty, on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause freezes the server (SIGSTOP): it answers nothing until Resume.
// It returns once the process is stopped (signals are delivered
// asynchronously: a request sent right after the signal could still be
// answered otherwise).
func (s *Server) Pause() {
	s.cmd.Process.Signal(syscall.SIGSTOP)
	stat := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			return // not Linux: best effort
		}
		// pid (comm) state ...: the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return
		}
	}
}

// Resume undoes Pause.
func (s *Server) Resume() { s.cmd.Process.Signal(syscall.SIGCONT) }
