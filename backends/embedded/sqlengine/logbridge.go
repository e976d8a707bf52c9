package sqlengine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	vtlog "github.com/dolthub/vitess/go/vt/log"
	"github.com/sirupsen/logrus"
)

// go-mysql-server logs through logrus' standard logger and vitess through
// package variables of its log package; both print to stderr by default
// (a line per connection, a warning per failed statement). The bridge sends
// them to the slog.Logger of the engine opened last instead: client errors
// and connection events at debug level, errors at warn level. Only this
// package uses these libraries in Mecha, so taking over their process-wide
// loggers affects nothing else.
var (
	bridgeOnce   sync.Once
	bridgeLogger atomic.Pointer[slog.Logger]
)

func installLogBridge(l *slog.Logger) {
	bridgeLogger.Store(l)
	bridgeOnce.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.WarnLevel)
		logrus.AddHook(logrusHook{})
		vtlog.Info = vtPrint(slog.LevelDebug)
		vtlog.Infof = vtPrintf(slog.LevelDebug)
		vtlog.Warning = vtPrint(slog.LevelDebug)
		vtlog.Warningf = vtPrintf(slog.LevelDebug)
		vtlog.Error = vtPrint(slog.LevelWarn)
		vtlog.Errorf = vtPrintf(slog.LevelWarn)
	})
}

func bridgeLog(level slog.Level, source, msg string) {
	l := bridgeLogger.Load()
	if l == nil {
		return
	}
	// A connection closed under a running read is the normal end of a
	// client that went away, not a server problem; the memory engine has
	// no savepoints and says so (as an error) every time a trigger fires.
	if level > slog.LevelDebug && (strings.Contains(msg, "closed pipe") || strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "savepoints are not supported")) {
		level = slog.LevelDebug
	}
	l.Log(context.Background(), level, msg, "component", "sqlengine", "source", source)
}

func vtPrint(level slog.Level) func(...any) {
	return func(v ...any) { bridgeLog(level, "vitess", strings.TrimSpace(fmt.Sprint(v...))) }
}

func vtPrintf(level slog.Level) func(string, ...any) {
	return func(format string, v ...any) {
		bridgeLog(level, "vitess", strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

type logrusHook struct{}

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (logrusHook) Fire(en *logrus.Entry) error {
	level := slog.LevelDebug
	if en.Level <= logrus.ErrorLevel {
		level = slog.LevelWarn
	}
	msg := en.Message
	if err, ok := en.Data[logrus.ErrorKey]; ok {
		msg += ": " + fmt.Sprint(err)
	}
	bridgeLog(level, "go-mysql-server", msg)
	return nil
}
