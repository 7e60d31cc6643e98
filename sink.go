package sestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages"
	"github.com/sestream/sestream/version"
)

// eventEmitter turns source and drift events into event messages on a bounded channel. It never blocks the
// capture goroutines: when the channel is full the event is logged and counted as dropped.
type eventEmitter struct {
	out    chan<- *message.Event
	bootID string
	log    *slog.Logger
	host   func(*message.Event) // Options.OnEvent; may be nil
}

func newEventEmitter(out chan<- *message.Event, bootID string, log *slog.Logger, host func(*message.Event)) *eventEmitter {
	return &eventEmitter{out: out, bootID: bootID, log: log, host: host}
}

func (e *eventEmitter) send(ev *message.Event) {
	if e.host != nil {
		e.host(ev)
	}
	select {
	case e.out <- ev:
	default:
		e.log.Warn("event buffer full, event not published", "stream", ev.Stream, "kind", ev.Kind)
	}
}

// source publishes a capture state change and logs it (one line per state change, never per frame).
func (e *eventEmitter) source(se stages.SourceEvent) {
	kind := message.EventKind(se.Kind)
	attrs := []any{"stream", se.Stream, "event", se.Kind, "frames", se.Frames}
	d := &message.EventDetails{Attempt: se.Attempt, OutageMillis: message.Millis(se.Outage), Error: se.Err}
	if se.Err != "" {
		attrs = append(attrs, "err", se.Err)
	}
	if se.Attempt > 0 {
		attrs = append(attrs, "attempt", se.Attempt)
	}
	switch kind {
	case message.EventLost, message.EventError:
		e.log.Warn("source", attrs...)
	default:
		e.log.Info("source", attrs...)
	}
	if !kind.Valid() {
		return
	}
	e.send(&message.Event{Schema: message.SchemaEvent, Stream: se.Stream, BootID: e.bootID, Kind: kind, Time: se.Time, Details: d})
}

// drift publishes a drift state change of one SE block of one stream.
func (e *eventEmitter) drift(stream, block string, ev *se.DriftEvent, at time.Time) {
	kind := message.EventDriftOff
	if ev.On {
		kind = message.EventDriftOn
	}
	drift, threshold := ev.Drift, ev.Threshold
	changed := make([]int, len(ev.Changes))
	for i, c := range ev.Changes {
		changed[i] = c.Channel
	}
	e.log.Info("attention drift", "stream", stream, "block", block, "on", ev.On, "frame", ev.Frame, "drift", fmt.Sprintf("%.3f", drift))
	e.send(&message.Event{Schema: message.SchemaEvent, Stream: stream, BootID: e.bootID, Kind: kind, Time: at,
		Details: &message.EventDetails{Block: block, Frame: ev.Frame, Drift: &drift, Threshold: &threshold, TopChanged: changed}})
}

// sink is the last stage: it receives batch results in order, tracks drift per stream per block, and
// publishes result and attention messages. Only the Run goroutine calls batch; the heartbeat and summary
// goroutines read the window under mu.
type sink struct {
	p       *Pipeline
	pub     *stages.Publisher // nil with Options.NoNATS
	bootID  string
	emit    *eventEmitter
	engine  string
	batcher *pipeline.Batcher[stages.Frame]
	model   message.Model
	drift   map[string][]*se.Drift // per stream, per block in model order; nil when drift is disabled

	mu     sync.Mutex
	window window // since the last summary line
	prev   map[string]pipeline.StreamStats
	prevAt time.Time
	errLog rateLimited
}

// window accumulates what the per-second summary reports.
type window struct {
	latencies []time.Duration
	frames    int
	batches   int
	batchFill float64
	top       string
	entropy   float64
	entropyN  int
}

func newSink(p *Pipeline, pub *stages.Publisher, bootID string, emit *eventEmitter, engineName string, b *pipeline.Batcher[stages.Frame]) *sink {
	s := &sink{p: p, pub: pub, bootID: bootID, emit: emit, engine: engineName, batcher: b,
		model: message.Model{Name: p.model.Name, Digest: p.model.Digest}, prev: map[string]pipeline.StreamStats{}, prevAt: time.Now()}
	if p.cfg.Attention.Drift.Enabled && len(p.model.Blocks) > 0 {
		s.drift = map[string][]*se.Drift{}
	}
	return s
}

func (s *sink) driftFor(stream string) []*se.Drift {
	ds, ok := s.drift[stream]
	if !ok {
		d := s.p.cfg.Attention.Drift
		cfg := se.DriftConfig{Alpha: d.Alpha, Threshold: d.Threshold, Hysteresis: d.Hysteresis, Warmup: max(d.Warmup, 1), TopChanges: s.p.cfg.Attention.TopK}
		ds = make([]*se.Drift, len(s.p.model.Blocks))
		for i := range ds {
			var err error
			if ds[i], err = se.NewDrift(cfg); err != nil {
				s.p.log.Error("attention drift disabled", "stream", stream, "err", err)
				ds = nil
				break
			}
		}
		s.drift[stream] = ds
	}
	return ds
}

// batch publishes every frame of one batch result.
func (s *sink) batch(ctx context.Context, res *stages.BatchResult) {
	cfg := s.p.cfg
	if m := s.p.opts.Metrics; m != nil {
		m.ObserveBatch(res.Size, cfg.Batch.MaxSize, res.Inference)
	}
	var lastTop string
	entropy, entropyN := 0.0, 0
	var lat []time.Duration
	for i := range res.Frames {
		fr := &res.Frames[i]
		counters := s.p.counters.Stream(fr.Info.Stream)
		if fr.Err != nil {
			counters.Failed()
			s.errLog.log(s.p.log, "frame failed", "stream", fr.Info.Stream, "err", fr.Err)
			continue
		}
		counters.Processed()
		t0 := time.Now()
		blocks := make([]message.Block, len(fr.Gates))
		var drifts []*se.Drift
		if s.drift != nil {
			drifts = s.driftFor(fr.Info.Stream)
		}
		for j, g := range fr.Gates {
			info := s.p.model.Blocks[j]
			b := message.Block{Name: info.Name, Order: info.Order, Channels: len(g)}
			if fr.StatsErr[j] != nil {
				s.errLog.log(s.p.log, "gates are not valid numbers; statistics left out", "stream", fr.Info.Stream, "block", info.Name, "err", fr.StatsErr[j])
				blocks[j] = b
				continue
			}
			b.Stats = fr.Stats[j]
			entropy += fr.Stats[j].Entropy
			entropyN++
			if drifts != nil {
				sample, err := drifts[j].Update(fr.Info.Seq, g)
				if err != nil {
					s.errLog.log(s.p.log, "attention drift not updated", "stream", fr.Info.Stream, "block", info.Name, "err", err)
				} else {
					d := sample.Drift
					b.Drift = &d
					if sample.Event != nil {
						s.emit.drift(fr.Info.Stream, info.Name, sample.Event, fr.Info.Captured)
					}
				}
			}
			if cfg.Attention.IncludeVectors {
				b.Vector = g
			}
			if m := s.p.opts.Metrics; m != nil {
				m.SetAttention(fr.Info.Stream, info.Name, fr.Stats[j].Mean, fr.Stats[j].Entropy, b.Drift)
			}
			blocks[j] = b
		}
		result := &message.Result{Schema: message.SchemaResult, Stream: fr.Info.Stream, Seq: fr.Info.Seq, BootID: s.bootID,
			Captured: fr.Info.Captured, Width: fr.Info.Width, Height: fr.Info.Height,
			Batch: message.Batch{ID: res.ID, Size: res.Size}, Model: s.model, Engine: res.Engine}
		if fr.Info.HasPTS {
			pts := message.Millis(fr.Info.PTS)
			result.PTSMillis = &pts
		}
		if len(fr.Top) > 0 {
			result.Top = make([]message.Class, len(fr.Top))
			for k, c := range fr.Top {
				result.Top[k] = message.Class{Index: c.Index, Label: c.Label, Score: c.Score}
			}
			lastTop = fmt.Sprintf("%s %.2f", fr.Top[0].Label, fr.Top[0].Score)
		} else if len(fr.Outputs) > 0 {
			result.Outputs = fr.Outputs[0]
		}
		now := time.Now()
		fr.Info.Timings.Publish = now.Sub(t0)
		result.Timings = stages.MessageTimings(&fr.Info, now)
		attention := &message.Attention{Schema: message.SchemaAttention, Stream: fr.Info.Stream, Seq: fr.Info.Seq,
			BootID: s.bootID, Captured: fr.Info.Captured, Model: s.model, Blocks: blocks}
		if s.p.opts.OnFrame != nil {
			s.p.opts.OnFrame(FrameOutput{Result: result, Attention: attention})
		}
		if s.pub != nil {
			if err := errors.Join(s.pub.PublishResult(ctx, result), s.pub.PublishAttention(ctx, attention)); err != nil {
				s.errLog.log(s.p.log, "publishing", "stream", fr.Info.Stream, "seq", fr.Info.Seq, "err", err)
				continue
			}
		}
		counters.Published()
		lat = append(lat, now.Sub(fr.Info.Captured))
		if m := s.p.opts.Metrics; m != nil {
			m.ObserveFrame(fr.Info.Stream, now.Sub(fr.Info.Captured))
		}
	}
	s.mu.Lock()
	w := &s.window
	w.latencies = append(w.latencies, lat...)
	w.frames += len(lat)
	w.batches++
	w.batchFill += float64(res.Size) / float64(cfg.Batch.MaxSize)
	if lastTop != "" {
		w.top = lastTop
	}
	w.entropy += entropy
	w.entropyN += entropyN
	s.mu.Unlock()
}

// heartbeat publishes a status message every status.interval until stop is closed.
func (s *sink) heartbeat(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(s.p.cfg.Status.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.statusNow(ctx)
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// statusNow publishes one status message with the rates since the previous one.
func (s *sink) statusNow(ctx context.Context) {
	now := time.Now()
	stats := s.p.counters.Snapshot()
	s.mu.Lock()
	elapsed := now.Sub(s.prevAt).Seconds()
	streams := make([]message.StreamStatus, len(stats))
	for i, st := range stats {
		prev := s.prev[st.Stream]
		streams[i] = message.StreamStatus{Name: st.Stream, Captured: st.Captured, Processed: st.Processed, Dropped: st.Dropped,
			QueueDepth: st.QueueDepth, State: s.p.states.get(st.Stream)}
		if elapsed > 0 {
			streams[i].FPSIn = float64(st.Captured-prev.Captured) / elapsed
			streams[i].FPSOut = float64(st.Published-prev.Published) / elapsed
		}
		s.prev[st.Stream] = st
	}
	s.prevAt = now
	s.mu.Unlock()
	if s.pub == nil {
		return
	}
	status := &message.Status{Schema: message.SchemaStatus, Version: s.p.version(), BootID: s.bootID, Time: now,
		UptimeSeconds: now.Sub(s.p.started).Seconds(), Streams: streams, NATS: s.pub.Stats().NATSStatus()}
	if err := s.pub.PublishStatus(ctx, status); err != nil {
		s.errLog.log(s.p.log, "publishing status", "err", err)
	}
}

func (p *Pipeline) version() string {
	if p.opts.Version != "" {
		return p.opts.Version
	}
	return version.Version()
}

// summaryLoop prints one line per second until stop is closed.
func (s *sink) summaryLoop(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := map[string]pipeline.StreamStats{}
	prevAt := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			stats := s.p.counters.Snapshot()
			s.mu.Lock()
			w := s.window
			s.window = window{top: w.top}
			s.mu.Unlock()
			writeSummary(s.p.opts.Summary, now, now.Sub(prevAt), stats, prev, w, s.batcher.Policy().MaxSize)
			for _, st := range stats {
				prev[st.Stream] = st
			}
			prevAt = now
		}
	}
}

// writeSummary prints: time, fps in/out, drops, batch fill, latency p50/p99, current top class, mean SE entropy.
func writeSummary(out io.Writer, now time.Time, elapsed time.Duration, stats []pipeline.StreamStats,
	prev map[string]pipeline.StreamStats, w window, maxBatch int) {
	var in, outN, dropped uint64
	for _, st := range stats {
		p := prev[st.Stream]
		in += st.Captured - p.Captured
		outN += st.Published - p.Published
		dropped += st.Dropped
	}
	sec := elapsed.Seconds()
	fill := 0.0
	if w.batches > 0 {
		fill = w.batchFill / float64(w.batches)
	}
	p50, p99 := percentile(w.latencies, 0.5), percentile(w.latencies, 0.99)
	ent := math.NaN()
	if w.entropyN > 0 {
		ent = w.entropy / float64(w.entropyN)
	}
	top := w.top
	if top == "" {
		top = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  fps in %5.1f out %5.1f | dropped %d | batch fill %3.0f%% of %d | latency p50 %s p99 %s | top %s | SE entropy %.3f\n",
		now.Format("15:04:05"), float64(in)/sec, float64(outN)/sec, dropped, fill*100, maxBatch,
		fmtMillis(p50), fmtMillis(p99), top, ent)
	io.WriteString(out, b.String())
}

func fmtMillis(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// percentile returns the q-quantile of ds (nearest rank), or -1 when ds is empty. It sorts ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// rateLimited logs a repeated warning at most once per second, with the count of repeats it held back.
type rateLimited struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimited) log(l *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "repeated", n)
	}
	l.Warn(msg, args...)
}
