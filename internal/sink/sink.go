package sink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sestream/sestream/internal/ratelog"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/infer"
)

// FramePublisher publishes one frame's messages. Implementations must not retain the messages after they
// return (they encode them). They must call done exactly once per call, also when they return an error, maybe
// later and from another goroutine: with true once both messages are confirmed, with false once either is
// given up. *natspub.Publisher implements it.
type FramePublisher interface {
	PublishFrame(ctx context.Context, r *message.Result, a *message.Attention, done func(published bool)) error
}

// Config is what the sink needs to know besides its collaborators.
type Config struct {
	BootID string
	Model  message.Model
	// Blocks are the model's SE blocks, in the order of the gate vectors of a frame.
	Blocks []se.BlockInfo
	// MaxBatch is the batcher's largest batch, for batch fill.
	MaxBatch int
	// Drift configures attention drift (one se.AttentionMonitor per stream); nil tracks none.
	Drift *se.MonitorConfig
	// IncludeVectors adds each block's whole gate vector to attention messages.
	IncludeVectors bool
}

// Deps are the sink's collaborators. Publisher, Metrics and OnFrame may be nil.
type Deps struct {
	Publisher FramePublisher
	Counters  *pipeline.Counters
	Events    *Events
	Metrics   *metrics.Metrics
	// OnFrame receives every processed frame's messages, in frame order per stream, as they are handed to
	// the publisher; it must return quickly.
	OnFrame func(*message.Result, *message.Attention)
	Log     *slog.Logger
	// CPU, when not nil, counts Handle's CPU time on its thread as pipeline.StageSink.
	CPU *pipeline.StageCPU
}

// Sink handles batch results in order. Only one goroutine calls Handle; Window may be called from others.
type Sink struct {
	cfg   Config
	deps  Deps
	drift map[string]*monitor // per stream; made at the stream's first frame

	errLog ratelog.Limiter

	mu     sync.Mutex // guards window
	window Window
}

// New makes a sink.
func New(cfg Config, deps Deps) *Sink {
	return &Sink{cfg: cfg, deps: deps, drift: map[string]*monitor{}}
}

// monitor is one stream's attention drift monitor and the sample it reuses every frame.
type monitor struct {
	m      *se.AttentionMonitor
	sample *se.MonitorSample
}

// Window accumulates what the per-second summary reports; see Sink.TakeWindow.
type Window struct {
	Latencies []time.Duration // capture to publish, one per frame handed to the publisher
	Frames    int
	Batches   int
	BatchFill float64 // sum over batches of size / max size
	Top       string  // the last frame's best class and score
	Drift     float64 // sum of the streams' drift scores (message.Drift.Score)
	DriftN    int
	DriftOn   bool   // some stream's drift alarm was on
	Phase     string // the last frame's drift phase (warming, calibrating, detecting)
}

// TakeWindow returns what was accumulated since the last call and starts a new window (keeping Top).
func (s *Sink) TakeWindow() Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window
	s.window = Window{Top: w.Top, Phase: w.Phase}
	return w
}

// Handle publishes every frame of one batch result.
func (s *Sink) Handle(ctx context.Context, res *infer.BatchResult) {
	span := s.deps.CPU.Start(pipeline.StageSink)
	defer span.End()
	if m := s.deps.Metrics; m != nil {
		m.ObserveBatch(res.Size, s.cfg.MaxBatch, res.Inference)
	}
	var acc Window
	for i := range res.Frames {
		fr := &res.Frames[i]
		counters := s.deps.Counters.Stream(fr.Info.Stream)
		if fr.Err != nil {
			counters.Failed()
			s.errLog.Warn(s.deps.Log, "frame failed", "stream", fr.Info.Stream, "err", fr.Err)
			continue
		}
		counters.Processed()
		t0 := time.Now()
		blocks, drift := s.attention(fr, &acc)
		result := s.result(res, fr)
		if len(fr.Top) > 0 {
			acc.Top = fmt.Sprintf("%s %.2f", fr.Top[0].Label, fr.Top[0].Score)
		}
		now := time.Now()
		fr.Info.Timings.Publish = now.Sub(t0)
		result.Timings = Timings(&fr.Info, now)
		attention := &message.Attention{Schema: message.SchemaAttention, Stream: fr.Info.Stream, Seq: fr.Info.Seq,
			BootID: s.cfg.BootID, Captured: fr.Info.Captured, Model: s.cfg.Model, Blocks: blocks, Drift: drift}
		if err := s.publish(ctx, result, attention, counters); err != nil {
			s.errLog.Warn(s.deps.Log, "publishing", "stream", fr.Info.Stream, "seq", fr.Info.Seq, "err", err)
			continue
		}
		latency := now.Sub(fr.Info.Captured)
		acc.Latencies = append(acc.Latencies, latency)
		if m := s.deps.Metrics; m != nil {
			m.ObserveFrame(fr.Info.Stream, latency)
		}
	}
	s.mu.Lock()
	w := &s.window
	w.Latencies = append(w.Latencies, acc.Latencies...)
	w.Frames += len(acc.Latencies)
	w.Batches++
	w.BatchFill += float64(res.Size) / float64(s.cfg.MaxBatch)
	if acc.Top != "" {
		w.Top = acc.Top
	}
	w.Drift += acc.Drift
	w.DriftN += acc.DriftN
	w.DriftOn = w.DriftOn || acc.DriftOn
	if acc.Phase != "" {
		w.Phase = acc.Phase
	}
	s.mu.Unlock()
}

// attention computes one frame's per-block attention: statistics, vectors, and drift against the stream's
// baseline (raising attention_drift events). The second result is the stream's drift state, nil when drift is
// off.
func (s *Sink) attention(fr *infer.FrameResult, acc *Window) ([]message.Block, *message.Drift) {
	blocks := make([]message.Block, len(fr.Gates))
	valid := true
	for j, g := range fr.Gates {
		info := s.cfg.Blocks[j]
		b := message.Block{Name: info.Name, Order: info.Order, Channels: len(g)}
		if fr.StatsErr[j] != nil {
			s.errLog.Warn(s.deps.Log, "gates are not valid numbers; statistics left out", "stream", fr.Info.Stream, "block", info.Name, "err", fr.StatsErr[j])
			blocks[j] = b
			valid = false
			continue
		}
		b.Stats = message.StatsOf(&fr.Stats[j])
		if s.cfg.IncludeVectors {
			b.Vector = g
		}
		blocks[j] = b
	}
	var drift *message.Drift
	if mon := s.monitorFor(fr.Info.Stream); mon != nil && valid {
		ev, err := mon.m.Update(fr.Info.Seq, fr.Gates, mon.sample)
		if err != nil {
			s.errLog.Warn(s.deps.Log, "attention drift not updated", "stream", fr.Info.Stream, "err", err)
		} else {
			drift = s.driftOf(mon.sample, blocks)
			acc.Drift, acc.DriftN = acc.Drift+mon.sample.Score, acc.DriftN+1
			if mon.sample.On {
				acc.DriftOn = true
			}
			acc.Phase = drift.Phase
			if ev != nil {
				s.deps.Events.AttentionDrift(fr.Info.Stream, ev, s.cfg.Blocks, fr.Info.Captured)
			}
		}
	}
	if m := s.deps.Metrics; m != nil {
		for j := range blocks {
			if fr.StatsErr[j] == nil {
				m.SetAttention(fr.Info.Stream, blocks[j].Name, blocks[j].Mean, blocks[j].Std, blocks[j].Entropy, blocks[j].DriftScore)
			}
		}
		if drift != nil {
			m.SetDrift(fr.Info.Stream, drift.On)
		}
	}
	return blocks, drift
}

// driftOf copies the monitor's sample into the message: per-block scores, thresholds and moved channels,
// and the stream's state.
func (s *Sink) driftOf(smp *se.MonitorSample, blocks []message.Block) *message.Drift {
	for j := range blocks {
		bs := &smp.Blocks[j]
		if bs.Ready {
			score := bs.Score
			blocks[j].DriftScore = &score
			blocks[j].Moved = message.MovedOf(bs.Moved)
		}
		if bs.Threshold > 0 {
			th := bs.Threshold
			blocks[j].DriftThreshold = &th
		}
	}
	return &message.Drift{Phase: smp.Phase.String(), Score: smp.Score, Hits: smp.Hits, RiseCount: smp.RiseCount,
		Evidence: smp.Evidence, EvidenceRise: smp.EvidenceRise, On: smp.On, Still: smp.Still}
}

// monitorFor returns a stream's drift monitor, made at its first frame; nil when drift is off.
func (s *Sink) monitorFor(stream string) *monitor {
	if s.cfg.Drift == nil || len(s.cfg.Blocks) == 0 {
		return nil
	}
	mon, ok := s.drift[stream]
	if !ok {
		channels := make([]int, len(s.cfg.Blocks))
		for i, b := range s.cfg.Blocks {
			channels[i] = b.Channels
		}
		m, err := se.NewAttentionMonitor(*s.cfg.Drift, channels)
		if err != nil { // the plan validated the config and the model has blocks
			panic("sink: attention monitor: " + err.Error())
		}
		mon = &monitor{m: m, sample: m.NewSample()}
		s.drift[stream] = mon
	}
	return mon
}

// result builds one frame's result message (timings are added by Handle).
func (s *Sink) result(res *infer.BatchResult, fr *infer.FrameResult) *message.Result {
	result := &message.Result{Schema: message.SchemaResult, Stream: fr.Info.Stream, Seq: fr.Info.Seq, BootID: s.cfg.BootID,
		Captured: fr.Info.Captured, Width: fr.Info.Width, Height: fr.Info.Height,
		Batch: message.Batch{ID: res.ID, Size: res.Size}, Model: s.cfg.Model, Engine: res.Engine}
	if fr.Info.HasPTS {
		pts := message.Millis(fr.Info.PTS)
		result.PTSMillis = &pts
	}
	if len(fr.Top) > 0 {
		result.Top = make([]message.Class, len(fr.Top))
		for k, c := range fr.Top {
			result.Top[k] = message.Class{Index: c.Index, Label: c.Label, Score: c.Score}
		}
	} else if len(fr.Outputs) > 0 {
		result.Outputs = fr.Outputs[0]
	}
	return result
}

// publish hands one frame's messages to the host program and to NATS, and has the frame counted Published or
// PublishDropped: at once without a publisher, once the publisher knows what became of them otherwise.
func (s *Sink) publish(ctx context.Context, r *message.Result, a *message.Attention, counters *pipeline.StreamCounters) error {
	if s.deps.OnFrame != nil {
		s.deps.OnFrame(r, a)
	}
	if s.deps.Publisher == nil {
		counters.Published()
		return nil
	}
	return s.deps.Publisher.PublishFrame(ctx, r, a, counters.PublishDone)
}

// Timings converts a frame's stage timings to a result's timings_ms. Publish is the frame's Timings.Publish;
// Total is the time from capture to now (never negative, even when the clock stepped back).
func Timings(f *pipeline.FrameInfo, now time.Time) message.Timings {
	return message.Timings{
		Preprocess: message.Millis(f.Timings.Preprocess),
		Queue:      message.Millis(f.Timings.QueueWait),
		Inference:  message.Millis(f.Timings.Inference),
		Publish:    message.Millis(f.Timings.Publish),
		Total:      message.Millis(max(now.Sub(f.Captured), 0)),
	}
}
