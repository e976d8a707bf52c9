package redis

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	kitlogger "github.com/dapr/kit/logger"
)

// kitLog gives contrib components a logger.Logger that writes to Mecha's
// slog logger. Fatal logs at error level and does not exit: a component
// never ends the process.
type kitLog struct{ l *slog.Logger }

var _ kitlogger.Logger = kitLog{}

func (k kitLog) EnableJSONOutput(bool)               {}
func (k kitLog) SetAppID(string)                     {}
func (k kitLog) SetOutputLevel(kitlogger.LogLevel)   {}
func (k kitLog) SetOutput(io.Writer)                 {}
func (k kitLog) WithLogType(string) kitlogger.Logger { return k }
func (k kitLog) Info(args ...any)                    { k.l.Info(fmt.Sprint(args...)) }
func (k kitLog) Infof(format string, args ...any)    { k.l.Info(fmt.Sprintf(format, args...)) }
func (k kitLog) Debug(args ...any)                   { k.l.Debug(fmt.Sprint(args...)) }
func (k kitLog) Debugf(format string, args ...any)   { k.l.Debug(fmt.Sprintf(format, args...)) }
func (k kitLog) Warn(args ...any)                    { k.l.Warn(fmt.Sprint(args...)) }
func (k kitLog) Warnf(format string, args ...any)    { k.l.Warn(fmt.Sprintf(format, args...)) }
func (k kitLog) Error(args ...any)                   { k.l.Error(fmt.Sprint(args...)) }
func (k kitLog) Errorf(format string, args ...any)   { k.l.Error(fmt.Sprintf(format, args...)) }
func (k kitLog) Fatal(args ...any)                   { k.l.Error(fmt.Sprint(args...)) }
func (k kitLog) Fatalf(format string, args ...any)   { k.l.Error(fmt.Sprintf(format, args...)) }
func (k kitLog) IsOutputLevelEnabled(level kitlogger.LogLevel) bool {
	return k.l.Enabled(context.Background(), slogLevel(level))
}

func (k kitLog) WithFields(fields map[string]any) kitlogger.Logger {
	args := make([]any, 0, 2*len(fields))
	for key, v := range fields {
		args = append(args, key, v)
	}
	return kitLog{k.l.With(args...)}
}

func slogLevel(l kitlogger.LogLevel) slog.Level {
	switch l {
	case kitlogger.DebugLevel:
		return slog.LevelDebug
	case kitlogger.InfoLevel:
		return slog.LevelInfo
	case kitlogger.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}
