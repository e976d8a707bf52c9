package netio

import "unsafe"

// ptr is the address of b's first byte (b is never empty here).
func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
