package benchutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Start runs bin with args, its output going to dir/name.log.
func Start(dir, name, bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// Stop interrupts cmd and waits up to 5 s for it before killing it.
func Stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
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

// WaitPort waits up to 10 s for 127.0.0.1:port to accept connections.
func WaitPort(port int) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on 127.0.0.1:%d after 10s", port)
}

// WaitReady polls Mecha's /readyz on adminPort until it answers 200 and
// returns how long that took.
func WaitReady(adminPort int) (time.Duration, error) {
	began := time.Now()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort)
	client := &http.Client{Timeout: time.Second}
	for time.Since(began) < 20*time.Second {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(began), nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("mecha not ready after 20s (admin port %d)", adminPort)
}
