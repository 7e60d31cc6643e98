package sink

import (
	"testing"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
)

func TestTimings(t *testing.T) {
	captured := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &pipeline.FrameInfo{Captured: captured, Timings: pipeline.Timings{
		Preprocess: 1500 * time.Microsecond, QueueWait: 2 * time.Millisecond, Inference: 10 * time.Millisecond, Publish: 50 * time.Microsecond}}
	got := Timings(f, captured.Add(20*time.Millisecond))
	want := message.Timings{Preprocess: 1.5, Queue: 2, Inference: 10, Publish: 0.05, Total: 20}
	if got != want {
		t.Fatalf("Timings = %+v, want %+v", got, want)
	}
	if got := Timings(f, captured.Add(-time.Second)); got.Total != 0 {
		t.Fatalf("a clock step back gave total %v", got.Total)
	}
}
