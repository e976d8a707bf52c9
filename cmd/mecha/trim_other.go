//go:build !linux

package main

// releaseStartupPages is a no-op outside Linux.
func releaseStartupPages() {}
