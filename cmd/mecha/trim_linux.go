package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// releaseStartupPages drops this process's mappings of its own
// executable's read-only pages (code, rodata, pclntab), keeping the
// pages in the page cache. Package initialisation touches code all over
// a large binary (gRPC, protobuf, components-contrib), and the kernel
// maps 64 KiB around each such fault, so after start-up ~20 MB of the
// binary is resident that serving never runs again; once released, only
// the pages in use fault back in (minor faults, from the page cache).
// Memory is no longer charged to the process for code it does not run;
// the pages stay cached and shared with every other process of the same
// binary.
func releaseStartupPages() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// address perms offset dev inode path; writable mappings hold
		// the program's data and must not be dropped.
		if len(fs) < 6 || fs[5] != exe || len(fs[1]) < 2 || fs[1][1] == 'w' {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(fs[0], "%x-%x", &lo, &hi); err != nil || hi <= lo {
			continue
		}
		syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_DONTNEED)
	}
}
