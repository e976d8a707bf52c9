// Command mecha-sqlengine runs Mecha's embedded SQL engine
// (backends/embedded/sqlengine, on go-mysql-server) in a process of its
// own. The embedded backend starts it when a MySQL frontend is served
// from it, and relays to it over a Unix socket in a private directory.
//
// It is a separate program because linking go-mysql-server into mecha
// would cost every Mecha process, whatever it serves, about 0.6 s of
// start-up and 45 MB of memory: the ICU regular-expression library it
// depends on compiles a WebAssembly module when the program starts.
//
// It exits, writing its last snapshot, on SIGTERM or SIGINT, or when its
// standard input closes (the parent is gone).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mecha-gateway/mecha/backends/embedded/sqlengine"
)

func main() {
	dir := flag.String("dir", "", "data directory (empty: memory only)")
	socket := flag.String("socket", "", "Unix socket to serve on (required)")
	lockWait := flag.Duration("lock-wait-timeout", sqlengine.DefaultLockWaitTimeout, "wait for another transaction before error 1205")
	snapshot := flag.Duration("snapshot-interval", sqlengine.DefaultSnapshotInterval, "longest time from a write to its snapshot")
	name := flag.String("name", "", "the backend's name, for logs")
	debug := flag.Bool("debug", false, "log at debug level")
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("backend", *name, "engine", "sql")
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "mecha-sqlengine: -socket is required")
		os.Exit(2)
	}
	if err := run(log, *dir, *socket, *lockWait, *snapshot); err != nil {
		log.Error("embedded SQL engine failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, dir, socket string, lockWait, snapshot time.Duration) error {
	eng, err := sqlengine.Open(sqlengine.Options{Dir: dir, LockWaitTimeout: lockWait, SnapshotInterval: snapshot, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		eng.Close()
		return err
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		eng.Close()
		return err
	}
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				relay(eng, c)
			}()
		}
	}()
	log.Info("embedded SQL engine serving", "dir", dir)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	parentGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(parentGone)
	}()
	select {
	case <-stop:
	case <-parentGone:
	}
	ln.Close()
	err = eng.Close() // closes the engine's connections: relays end
	conns.Wait()
	return err
}

// relay joins a client of the socket to a connection of the engine.
func relay(eng *sqlengine.Engine, c net.Conn) {
	defer c.Close()
	s, err := eng.Dial(context.Background())
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(s, c)
		s.Close()
		close(done)
	}()
	_, _ = io.Copy(c, s)
	c.Close()
	<-done
}
