package contribpubsub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/dapr/kit/logger"
)

// kitLogger sends a contrib component's logs to Mecha's slog logger.
// Contrib logs at error level for conditions Mecha handles itself (a
// handler error is how Mecha hands a message back to the broker), and some
// components log in a tight loop while the broker is down (the Redis
// streams poller retries XREADGROUP without pausing), so contrib's errors
// become warnings and each distinct format is written at most once per
// second, with a count of what was left out.
type kitLogger struct {
	log *slog.Logger
	lim *limiter
}

type limiter struct {
	mu   sync.Mutex
	last map[string]*limited
}

type limited struct {
	at      time.Time
	dropped int
}

func newKitLogger(l *slog.Logger) *kitLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &kitLogger{log: l, lim: &limiter{last: map[string]*limited{}}}
}

// allow reports whether a line with this format may be written now, and
// how many were left out since the last one.
func (l *limiter) allow(format string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	s := l.last[format]
	if s == nil {
		if len(l.last) > 1000 {
			clear(l.last)
		}
		l.last[format] = &limited{at: now}
		return true, 0
	}
	if now.Sub(s.at) < time.Second {
		s.dropped++
		return false, 0
	}
	n := s.dropped
	s.at, s.dropped = now, 0
	return true, n
}

func (k *kitLogger) emit(level slog.Level, format string, msg string) {
	if !k.log.Enabled(context.Background(), level) {
		return
	}
	ok, dropped := k.lim.allow(format)
	if !ok {
		return
	}
	if dropped > 0 {
		k.log.Log(context.Background(), level, msg, "contrib", true, "similar_lines_dropped", dropped)
		return
	}
	k.log.Log(context.Background(), level, msg, "contrib", true)
}

func (k *kitLogger) emitln(level slog.Level, msg string) { k.emit(level, msg, msg) }

func (k *kitLogger) EnableJSONOutput(bool)          {}
func (k *kitLogger) SetAppID(string)                {}
func (k *kitLogger) SetOutputLevel(logger.LogLevel) {}
func (k *kitLogger) SetOutput(io.Writer)            {}
func (k *kitLogger) IsOutputLevelEnabled(l logger.LogLevel) bool {
	lv := slog.LevelInfo
	switch l {
	case logger.DebugLevel:
		lv = slog.LevelDebug
	case logger.WarnLevel, logger.ErrorLevel, logger.FatalLevel:
		lv = slog.LevelWarn
	}
	return k.log.Enabled(context.Background(), lv)
}
func (k *kitLogger) WithLogType(string) logger.Logger { return k }
func (k *kitLogger) WithFields(fields map[string]any) logger.Logger {
	args := make([]any, 0, 2*len(fields))
	for f, v := range fields {
		args = append(args, f, v)
	}
	return &kitLogger{log: k.log.With(args...), lim: k.lim}
}

func (k *kitLogger) Debug(args ...any) { k.emitln(slog.LevelDebug, fmt.Sprint(args...)) }
func (k *kitLogger) Debugf(f string, args ...any) {
	k.emit(slog.LevelDebug, f, fmt.Sprintf(f, args...))
}
func (k *kitLogger) Info(args ...any) { k.emitln(slog.LevelDebug, fmt.Sprint(args...)) }
func (k *kitLogger) Infof(f string, args ...any) {
	// Contrib's info lines (connected, subscribed, declaring queue) are
	// per-subscription chatter; Mecha logs its own state changes.
	k.emit(slog.LevelDebug, f, fmt.Sprintf(f, args...))
}
func (k *kitLogger) Warn(args ...any) { k.emitln(slog.LevelWarn, fmt.Sprint(args...)) }
func (k *kitLogger) Warnf(f string, args ...any) {
	k.emit(slog.LevelWarn, f, fmt.Sprintf(f, args...))
}
func (k *kitLogger) Error(args ...any) { k.emitln(slog.LevelWarn, fmt.Sprint(args...)) }
func (k *kitLogger) Errorf(f string, args ...any) {
	k.emit(slog.LevelWarn, f, fmt.Sprintf(f, args...))
}

// Fatal logs at error level; unlike Dapr's logger it does not exit the
// process.
func (k *kitLogger) Fatal(args ...any) { k.emitln(slog.LevelError, fmt.Sprint(args...)) }
func (k *kitLogger) Fatalf(f string, args ...any) {
	k.emit(slog.LevelError, f, fmt.Sprintf(f, args...))
}

var _ logger.Logger = (*kitLogger)(nil)
