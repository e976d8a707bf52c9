//go:build !unix

package sqlengine

import "os"

// lockFile does nothing where flock(2) does not exist: two engines must not
// be given the same directory there.
func lockFile(f *os.File) error { return nil }
