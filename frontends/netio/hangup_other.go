//go:build !linux

package netio

import "net"

// HangupWatcher is unavailable here: callers fall back to polling.
type HangupWatcher struct{}

// NewHangupWatcher returns nil: there is no watcher on this system.
func NewHangupWatcher(func(tag uint32)) (*HangupWatcher, error) { return nil, nil }

// Add does nothing.
func (w *HangupWatcher) Add(net.Conn, uint32) func() { return nil }

// Close does nothing.
func (w *HangupWatcher) Close() {}
