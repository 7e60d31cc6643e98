//go:build !linux

package pipeline

import "time"

// threadCPU is 0 where the thread's CPU time is not read: StageCPU then counts nothing.
func threadCPU() time.Duration { return 0 }
