package component_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecha-gateway/mecha/backends"
	"github.com/mecha-gateway/mecha/grpcapi/component"
)

// tcpStore is a "store" that is a TCP port on 127.0.0.1: it answers
// while a listener is open on the port.
type tcpStore struct {
	t     *testing.T
	addr  string
	ln    net.Listener
	pings atomic.Int64
}

func newTCPStore(t *testing.T) *tcpStore {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpStore{t: t, addr: ln.Addr().String()}
	ln.Close()
	t.Cleanup(s.down)
	return s
}

func (s *tcpStore) up() {
	s.t.Helper()
	var ln net.Listener
	waitFor(s.t, "the port", func() bool {
		var err error
		ln, err = net.Listen("tcp", s.addr)
		return err == nil
	})
	s.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (s *tcpStore) down() {
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

func (s *tcpStore) ping(ctx context.Context) error {
	s.pings.Add(1)
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// errReply is an error the store answered with.
var errReply = errors.New("reply: bad request")

func notReply(err error) bool { return !errors.Is(err, errReply) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t *testing.T, l *component.Link, want backends.State) {
	t.Helper()
	waitFor(t, "health "+want.String(), func() bool { return l.Health().State == want })
}

// TestLinkFollowsStore starts a link while its store is down and checks
// that health follows the store, that Ready runs until it succeeds once
// and never again, and that Close stops it all.
func TestLinkFollowsStore(t *testing.T) {
	s := newTCPStore(t)
	var readies atomic.Int64
	l := component.NewLink(component.LinkConfig{
		Store: "tcp", Kind: "test", Name: t.Name(),
		Ping: s.ping,
		Ready: func(context.Context) error {
			if readies.Add(1) == 1 {
				return errors.New("table not there yet")
			}
			return nil
		},
		Unavailable: notReply,
		Interval:    10 * time.Millisecond,
	})
	if h := l.Health(); h.State != backends.StateInit {
		t.Fatalf("health before Start: %+v, want INIT", h)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := l.Health(); h.State != backends.StateDown || h.Detail == "" {
		t.Fatalf("health with the store down: %+v, want DOWN with a reason", h)
	}
	if n := readies.Load(); n != 0 {
		t.Fatalf("Ready ran %d times while the store was down", n)
	}

	s.up()
	waitState(t, l, backends.StateUp)
	if n := readies.Load(); n != 2 {
		t.Fatalf("Ready ran %d times before UP, want 2 (failed once, then succeeded)", n)
	}

	s.down()
	waitState(t, l, backends.StateDown)
	s.up()
	waitState(t, l, backends.StateUp)
	// A few more probes: Ready, done once, does not run again.
	from := s.pings.Load()
	waitFor(t, "more probes", func() bool { return s.pings.Load() >= from+3 })
	if n := readies.Load(); n != 2 {
		t.Errorf("Ready ran %d times, want 2", n)
	}

	if !l.Close() {
		t.Fatal("Close of a started link reported false")
	}
	if h := l.Health(); h.State != backends.StateDown || h.Detail != "closed" {
		t.Errorf("health after Close: %+v, want DOWN closed", h)
	}
	if l.Close() {
		t.Error("second Close reported true")
	}
	if err := l.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestLinkFail checks how Fail classifies errors, and that a
// connectivity failure marks the link DOWN and wakes the prober, which
// finds the store answering and marks it UP again.
func TestLinkFail(t *testing.T) {
	s := newTCPStore(t)
	s.up()
	newLink := func(t *testing.T, callerDeadline bool) *component.Link {
		t.Helper()
		l := component.NewLink(component.LinkConfig{
			Store: "tcp", Name: t.Name(), Ping: s.ping, Unavailable: notReply,
			CallerDeadline: callerDeadline,
			// Probes come only when kicked.
			Interval: time.Hour,
		})
		if err := l.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if h := l.Health(); h.State != backends.StateUp {
			t.Fatalf("health with the store up: %+v", h)
		}
		return l
	}
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()

	for _, c := range []struct {
		name           string
		callerDeadline bool
		ctx            context.Context
		err            error
		unavailable    bool
	}{
		{"reply", false, ctx, errReply, false},
		{"canceled by the caller", false, canceled, context.Canceled, false},
		{"caller deadline, CallerDeadline", true, expired, context.DeadlineExceeded, false},
		{"caller deadline", false, expired, context.DeadlineExceeded, true},
		{"deadline of its own", true, ctx, context.DeadlineExceeded, true},
		{"connection refused", false, ctx, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLink(t, c.callerDeadline)
			from := s.pings.Load()
			err := l.Fail(c.ctx, "do thing", c.err)
			if !errors.Is(err, c.err) || err.Error() == c.err.Error() {
				t.Fatalf("Fail = %v, want %v wrapped with the operation", err, c.err)
			}
			if got := errors.Is(err, component.ErrUnavailable); got != c.unavailable {
				t.Fatalf("Fail = %v: unavailable %v, want %v", err, got, c.unavailable)
			}
			if !c.unavailable {
				if h := l.Health(); h.State != backends.StateUp {
					t.Errorf("health after Fail: %+v, want UP", h)
				}
				return
			}
			// DOWN at once, then UP again after the probe Fail woke
			// (the interval is an hour).
			waitFor(t, "the woken probe", func() bool { return s.pings.Load() > from })
			waitState(t, l, backends.StateUp)
		})
	}
	if err := newLink(t, false).Fail(ctx, "op", nil); err != nil {
		t.Errorf("Fail(nil) = %v", err)
	}
}

// TestLinkCloseCancelsProbe checks that Close does not wait for a probe
// whose store does not answer: the probe's context is cancelled.
func TestLinkCloseCancelsProbe(t *testing.T) {
	var probes atomic.Int64
	l := component.NewLink(component.LinkConfig{
		Store: "hung", Name: t.Name(),
		Ping: func(ctx context.Context) error {
			if probes.Add(1) == 1 {
				return errors.New("down")
			}
			<-ctx.Done() // the store never answers
			return ctx.Err()
		},
		Unavailable: notReply,
		Interval:    time.Millisecond,
		Timeout:     time.Hour,
	})
	if l.Close() {
		t.Error("Close before Start reported true")
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a hung probe", func() bool { return probes.Load() >= 2 })
	if !l.Close() {
		t.Error("Close reported false")
	}
	if h := l.Health(); h.State != backends.StateDown {
		t.Errorf("health after Close: %+v", h)
	}
}
