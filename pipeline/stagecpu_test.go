package pipeline

import (
	"runtime"
	"testing"
	"time"
)

// TestStageCPU: a span that burns CPU on its thread is counted for its stage and no other; a nil StageCPU
// counts nothing and does not panic.
func TestStageCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread CPU time is read on Linux only")
	}
	var c StageCPU
	sp := c.Start(StagePreprocess)
	x := 0
	for start := time.Now(); time.Since(start) < 30*time.Millisecond; x++ {
	}
	sp.End()
	if got := c.Get(StagePreprocess); got <= 0 || got > time.Second {
		t.Errorf("preprocess CPU = %v after a 30 ms busy loop (%d turns), want more than 0", got, x)
	}
	for _, s := range []Stage{StageDecode, StageInference, StageSink} {
		if got := c.Get(s); got != 0 {
			t.Errorf("%v CPU = %v, want 0", s, got)
		}
	}
	c.Add(StageSink, time.Millisecond)
	if got := c.Get(StageSink); got != time.Millisecond {
		t.Errorf("sink CPU = %v after Add(1ms), want 1ms", got)
	}

	var none *StageCPU
	none.Start(StageDecode).End()
	none.Add(StageDecode, time.Second)
	if got := none.Get(StageDecode); got != 0 {
		t.Errorf("nil StageCPU Get = %v, want 0", got)
	}
}

func TestStageString(t *testing.T) {
	want := []string{"decode", "preprocess", "inference", "sink"}
	for i, s := range Stages() {
		if s.String() != want[i] {
			t.Errorf("Stages()[%d] = %q, want %q", i, s, want[i])
		}
	}
	if got := Stage(9).String(); got != "Stage(9)" {
		t.Errorf("Stage(9) = %q", got)
	}
}
