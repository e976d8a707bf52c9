package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// engineProcess is the embedded SQL engine running as mecha-sqlengine, a
// child process serving the MySQL protocol on a Unix socket in a private
// directory (see cmd/mecha-sqlengine for why it is a process of its own).
type engineProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	tmp    string
	socket string
	exited chan struct{}
}

// EnginePathEnv names the mecha-sqlengine program when it is neither next
// to the running executable nor on PATH (tests set it).
const EnginePathEnv = "MECHA_SQLENGINE"

// enginePath finds mecha-sqlengine.
func enginePath() (string, error) {
	if p := os.Getenv(EnginePathEnv); p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "mecha-sqlengine")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("mecha-sqlengine"); err == nil {
		return p, nil
	}
	return "", errors.New("mecha-sqlengine not found next to mecha or on PATH (make build builds it into bin/)")
}

// startEngine starts the engine on dir and waits until it accepts
// connections (it may first load a large snapshot).
func startEngine(ctx context.Context, name, dir string, cfg SQLConfig, log *slog.Logger) (*engineProcess, error) {
	bin, err := enginePath()
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, err
		}
	}
	// A short path: Unix socket names are limited to about 100 bytes.
	tmp, err := os.MkdirTemp("", "mecha-sql-")
	if err != nil {
		return nil, err
	}
	p := &engineProcess{tmp: tmp, socket: filepath.Join(tmp, "s"), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "-name", name, "-dir", dir, "-socket", p.socket,
		"-lock-wait-timeout", cfg.LockWaitTimeout.D().String(), "-snapshot-interval", cfg.SnapshotInterval.D().String())
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	for {
		c, err := net.Dial("unix", p.socket)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.exited:
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("%s exited at start (%v): see its log above", bin, p.cmd.ProcessState)
		case <-ctx.Done():
			_ = p.close()
			return nil, fmt.Errorf("%s did not start in time: %w", bin, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// dial opens a connection to the engine.
func (p *engineProcess) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", p.socket)
}

// shutdownTimeout bounds the engine's last snapshot at close.
const shutdownTimeout = 2 * time.Minute

// close stops the engine, which writes its last snapshot first.
func (p *engineProcess) close() error {
	defer os.RemoveAll(p.tmp)
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(shutdownTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("embedded SQL engine did not stop in time: killed")
	}
	if st := p.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("embedded SQL engine exited with %v", st)
	}
	return nil
}
