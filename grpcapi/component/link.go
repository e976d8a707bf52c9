package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mecha-gateway/mecha/backends"
)

// LinkConfig says how a Link reaches its store and tells its errors apart.
type LinkConfig struct {
	// Store names the kind of store in log lines ("redis" logs "redis
	// component up" and "redis component down").
	Store string
	// Kind is what the component is ("config", "lock", "sequencer"),
	// logged as store=<kind> with every line of Logger.
	Kind string
	// Name is the component's name, logged with the up and down lines.
	Name string
	// Logger receives the up and down lines; nil discards them.
	Logger *slog.Logger

	// Ping checks that the store answers. It is called only after
	// Link.Start, so it may use a client the component creates just
	// before.
	Ping func(ctx context.Context) error
	// Ready, when set, runs after a successful Ping until it succeeds once
	// (creating a table, initialising a library's client); the component
	// is UP only after it has. It never runs twice at a time.
	Ready func(ctx context.Context) error
	// Unavailable tells an operation's error that means the store cannot
	// be reached or cannot serve now (a refused connection, a server
	// shutting down) from one the store answered with (a constraint, a
	// syntax error).
	Unavailable func(err error) bool
	// CallerDeadline makes Fail treat an operation that failed with
	// context.DeadlineExceeded once its caller's context had expired as
	// the caller's doing, as it always treats cancellation: the error is
	// returned as is and health is left alone. Set it when operations run
	// on the caller's context only (a short caller deadline then says
	// nothing about the store); leave it unset when operations bound
	// themselves with the store's own timeout and an expired deadline
	// means the store did not answer in time.
	CallerDeadline bool

	// Interval is the time between probes (default 1s); a failed
	// operation probes at once.
	Interval time.Duration
	// Timeout bounds one probe, Ping and Ready together (default 2s).
	Timeout time.Duration
}

// Link keeps a component's health in step with its store. Start probes
// once (Ping, then Ready until it has succeeded once) and then a
// goroutine probes again every Interval, and at once when an operation
// has failed for want of the store (Fail), so that Health follows the
// server and a component started while its store was down comes up by
// itself when the store does.
//
// The component owns its client: it creates the client before Start and
// closes it after Close has reported true. A Link is used as a pointer
// and is not copied.
type Link struct {
	cfg LinkConfig
	log *slog.Logger

	health backends.HealthCell

	// readyMu serialises Ready; ready says it has succeeded.
	readyMu sync.Mutex
	ready   bool

	// mu guards the lifecycle: stop is nil before Start, closed after
	// Close.
	mu     sync.Mutex
	closed bool
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// NewLink returns a link to a store; nothing runs until Start.
func NewLink(cfg LinkConfig) *Link {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Kind != "" {
		log = log.With("store", cfg.Kind)
	}
	return &Link{cfg: cfg, log: log, kick: make(chan struct{}, 1)}
}

// Name is the component's name.
func (l *Link) Name() string { return l.cfg.Name }

// Logger is the component's logger, tagged with its kind (never nil).
func (l *Link) Logger() *slog.Logger { return l.log }

// Health reports the outcome of the last probe or failed operation:
// INIT before Start, DOWN with the reason when the store does not answer
// (or Ready has not succeeded yet, or after Close), UP otherwise.
func (l *Link) Health() backends.Health { return l.health.Get() }

// Start probes once, within ctx, and starts probing in the background.
// It succeeds whether or not the store answers: health says which.
func (l *Link) Start(ctx context.Context) error {
	l.mu.Lock()
	if l.stop != nil {
		l.mu.Unlock()
		return errors.New("already started")
	}
	l.health.Set(backends.StateInit, "")
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	l.mu.Unlock()
	l.probe(ctx)
	go l.loop()
	return nil
}

// Close stops probing and marks the component DOWN ("closed"). It
// reports whether this call stopped a started link: only then does the
// component close its client. Close is safe before Start and more than
// once.
func (l *Link) Close() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop == nil || l.closed {
		return false
	}
	l.closed = true
	close(l.stop)
	<-l.done
	l.health.Set(backends.StateDown, "closed")
	return true
}

// Fail turns an operation's error into the error to return, prefixed
// with op: nil stays nil; a cancellation by the caller (and, with
// CallerDeadline, the caller's expired deadline) and errors the store
// answered with are returned wrapped; errors that Unavailable reports
// are wrapped with Unavailable (ErrUnavailable), mark the component DOWN
// and wake the prober, which marks it UP again as soon as the store
// answers.
func (l *Link) Fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) ||
		l.cfg.CallerDeadline && errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !l.cfg.Unavailable(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.health.Set(backends.StateDown, err.Error())
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return Unavailable(fmt.Errorf("%s: %w", op, err))
}

// loop probes every Interval and when kicked, until Close; a probe under
// way when Close comes is cancelled.
func (l *Link) loop() {
	defer close(l.done)
	t := time.NewTimer(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-l.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		l.probe(ctx)
		cancel()
		t.Reset(l.cfg.Interval)
	}
}

// probe pings the store (and runs Ready until it has succeeded) and
// records the outcome, logging changes of state.
func (l *Link) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	err := l.cfg.Ping(ctx)
	if err == nil && l.cfg.Ready != nil {
		l.readyMu.Lock()
		if !l.ready {
			if err = l.cfg.Ready(ctx); err == nil {
				l.ready = true
			}
		}
		l.readyMu.Unlock()
	}
	if err != nil {
		if l.health.Set(backends.StateDown, err.Error()) {
			l.log.Warn(l.cfg.Store+" component down", "component", l.cfg.Name, "err", err)
		}
		return
	}
	if l.health.Set(backends.StateUp, "") {
		l.log.Info(l.cfg.Store+" component up", "component", l.cfg.Name)
	}
}
