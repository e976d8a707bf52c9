//go:build !linux

package redis

import "errors"

// readiness is Linux-only; elsewhere clients use ordinary reads.
type readiness struct{}

func newReadiness() (*readiness, error) { return nil, errors.New("not supported") }
func (r *readiness) run()               {}
func (r *readiness) add(c *conn) bool   { return false }
func (r *readiness) remove(c *conn)     {}
func (r *readiness) close()             {}

func (c *conn) readRaw(buf []byte) (int, error) { return c.nc.Read(buf) }
