package pipeline

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the calling thread's CPU time (0 if it cannot be read). It reads the thread's CPU-time
// clock, which the kernel brings up to date on every read; getrusage(RUSAGE_THREAD) would be up to date only
// at the last scheduler tick or switch, which moves the time of short spans to whichever span a tick falls in.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
