package pipeline

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Stage names a part of the pipeline whose CPU time StageCPU counts.
type Stage int

const (
	// StageDecode is reading a frame from its source (demuxing, decoding, colour conversion, the copy into
	// the frame's Mat) on the capture thread.
	StageDecode Stage = iota
	// StagePreprocess is resizing and normalizing frames into the batch tensor.
	StagePreprocess
	// StageInference is the engine's Run on a batch.
	StageInference
	// StageSink is turning results into messages: SE statistics, drift, encoding, handing them to the publisher.
	StageSink

	stageCount = iota
)

func (s Stage) String() string {
	switch s {
	case StageDecode:
		return "decode"
	case StagePreprocess:
		return "preprocess"
	case StageInference:
		return "inference"
	case StageSink:
		return "sink"
	}
	return fmt.Sprintf("Stage(%d)", int(s))
}

// Stages lists every Stage in pipeline order.
func Stages() []Stage { return []Stage{StageDecode, StagePreprocess, StageInference, StageSink} }

// StageCPU counts the CPU time (user + system) each stage spends on the thread of the goroutine that runs it.
// Work a stage hands to threads of its own is not counted: FFmpeg's decoder threads, ONNX Runtime's intra-op
// threads beyond the calling one (none with engine.threads 1), the Go runtime and garbage collector. The
// process's CPU time less the sum of the stages is that remainder. A nil *StageCPU counts nothing. It is safe
// for concurrent use.
type StageCPU struct {
	ns [stageCount]atomic.Int64
}

// CPUSpan measures one span of a stage on the calling goroutine's thread: Start locks the goroutine to its
// thread and reads the thread's CPU clock, End reads it again, adds the difference and unlocks.
type CPUSpan struct {
	c     *StageCPU
	stage Stage
	start time.Duration
}

// Start begins a span of stage s. With a nil c it does nothing and costs nothing.
func (c *StageCPU) Start(s Stage) CPUSpan {
	if c == nil {
		return CPUSpan{}
	}
	runtime.LockOSThread()
	return CPUSpan{c: c, stage: s, start: threadCPU()}
}

// End adds the span's CPU time to its stage.
func (sp CPUSpan) End() {
	if sp.c == nil {
		return
	}
	sp.c.ns[sp.stage].Add(int64(threadCPU() - sp.start))
	runtime.UnlockOSThread()
}

// Add adds d to stage s.
func (c *StageCPU) Add(s Stage, d time.Duration) {
	if c != nil {
		c.ns[s].Add(int64(d))
	}
}

// Get returns the CPU time counted for stage s so far.
func (c *StageCPU) Get(s Stage) time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(c.ns[s].Load())
}
