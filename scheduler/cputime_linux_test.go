//go:build linux

package scheduler

import "golang.org/x/sys/unix"

// threadCPU returns the calling thread's CPU time in nanoseconds. The
// benchmarks report it beside wall time because the build machine is shared:
// CPU time leaves out the time other processes held the core.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
