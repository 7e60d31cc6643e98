package sink

import (
	"fmt"
	"io"
	"time"

	"github.com/sestream/sestream/internal/quantile"
	"github.com/sestream/sestream/pipeline"
)

// Summary prints one line per second: fps in and out, drops, batch fill, latency p50/p99, the current top
// class and the attention drift score (the mean over the second of the streams' scores; over 1 is a hit),
// with ON while a stream's drift alarm is on.
type Summary struct {
	Out      io.Writer
	Sink     *Sink
	Counters *pipeline.Counters
	MaxBatch int
}

// Run prints a line every second until stop is closed.
func (s *Summary) Run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := map[string]pipeline.StreamStats{}
	prevAt := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			stats := s.Counters.Snapshot()
			WriteSummary(s.Out, now, now.Sub(prevAt), stats, prev, s.Sink.TakeWindow(), s.MaxBatch)
			for _, st := range stats {
				prev[st.Stream] = st
			}
			prevAt = now
		}
	}
}

// WriteSummary prints one summary line for the window w that lasted elapsed.
func WriteSummary(out io.Writer, now time.Time, elapsed time.Duration, stats []pipeline.StreamStats,
	prev map[string]pipeline.StreamStats, w Window, maxBatch int) {
	var in, outN, dropped uint64
	for _, st := range stats {
		p := prev[st.Stream]
		in += st.Captured - p.Captured
		outN += st.Published - p.Published
		dropped += st.Dropped
	}
	sec := elapsed.Seconds()
	fill := 0.0
	if w.Batches > 0 {
		fill = w.BatchFill / float64(w.Batches)
	}
	p50, p99 := "-", "-"
	if q, ok := quantile.Sorted(w.Latencies, 0.5, 0.99); ok {
		p50, p99 = fmtMillis(q[0]), fmtMillis(q[1])
	}
	drift := "-"
	switch {
	case w.DriftN > 0 && w.Phase == "detecting":
		drift = fmt.Sprintf("%.2f", w.Drift/float64(w.DriftN))
	case w.Phase != "":
		drift = w.Phase
	}
	if w.DriftOn {
		drift += " ON"
	}
	top := w.Top
	if top == "" {
		top = "-"
	}
	fmt.Fprintf(out, "%s  fps in %5.1f out %5.1f | dropped %d | batch fill %3.0f%% of %d | latency p50 %s p99 %s | top %s | attention drift %s\n",
		now.Format("15:04:05"), float64(in)/sec, float64(outN)/sec, dropped, fill*100, maxBatch, p50, p99, top, drift)
}

func fmtMillis(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}
