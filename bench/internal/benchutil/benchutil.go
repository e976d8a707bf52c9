// Package benchutil holds what the benchmark programs under bench/ share:
// free ports, /proc readings, medians and log tails.
package benchutil

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ProcStatus returns a size field of /proc/PID/status ("VmRSS",
// "VmHWM") in bytes, or 0 if the process or field is gone.
func ProcStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			fs := strings.Fields(v)
			if len(fs) == 0 {
				return 0
			}
			kb, _ := strconv.ParseInt(fs[0], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// RSS is a process' resident set size in bytes.
func RSS(pid int) int64 { return ProcStatus(pid, "VmRSS") }

// MB converts bytes to MiB.
func MB(b int64) float64 { return float64(b) / (1 << 20) }

// Median of xs (0 for none); xs is left as it is.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
