package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// cpuProfile writes a Go CPU profile (runtime/pprof) to a file from start until stop. It sees the Go code and
// the cgo calls made from goroutines (as time inside the call), not the threads that C libraries start for
// themselves (ONNX Runtime's intra-op pool, FFmpeg's decoder threads); docs/BENCHMARKS.md shows perf for those.
type cpuProfile struct {
	f *os.File
}

// startCPUProfile starts profiling into path; an empty path does nothing.
func startCPUProfile(path string) (*cpuProfile, error) {
	if path == "" {
		return &cpuProfile{}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, badInput(fmt.Errorf("--cpuprofile: %w", err))
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return &cpuProfile{f: f}, nil
}

// stop ends the profile and closes its file; it may be called more than once.
func (p *cpuProfile) stop() error {
	if p == nil || p.f == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := p.f.Close()
	p.f = nil
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	return nil
}
