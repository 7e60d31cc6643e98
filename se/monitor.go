package se

import (
	"errors"
	"fmt"
	"math"
)

// MonitorConfig tunes an AttentionMonitor. The zero value is invalid; start from DefaultMonitorConfig.
// MonitorRanges gives every field's valid range; Validate checks against it.
type MonitorConfig struct {
	// GroupSize is the number of consecutive channels whose gates share one full covariance in the
	// baseline (1 = per-channel variances only). Larger catches more of how channels move together and
	// costs O(C · GroupSize) per frame.
	GroupSize int
	// Shrinkage pulls each covariance toward its diagonal: A = (1-λ) S + λ diag(S).
	Shrinkage float64
	// MemoryFrames: the baseline forgets with rate 1/MemoryFrames per frame (a running mean before that).
	MemoryFrames float64
	// RefreshFrames bounds how many learned frames old a group's (inverse Cholesky) factor may be.
	RefreshFrames int
	// WarmupFrames only build the baseline; no score is judged.
	WarmupFrames int
	// CalibrationFrames follow the warm-up: their scores set the thresholds (they are taken to be normal).
	CalibrationFrames int
	// FrameQuantile: a block's score above this quantile of its calibration scores is a hit.
	FrameQuantile float64
	// WindowFrames is the sliding window in which hits are counted.
	WindowFrames int
	// FalseAlarmFrames is the target mean number of normal frames between false alarms (43200 = one an
	// hour at 12 fps); it sets how many hits within WindowFrames raise an alarm.
	FalseAlarmFrames float64
	// FallFrames: an alarm falls after the windowed hit count has stayed at the level normal frames give
	// for this many consecutive frames (see Detector).
	FallFrames int
	// OutlierRatio and OutlierWeight: after calibration, a frame with some block's score above
	// OutlierRatio times that block's threshold, and every frame while the alarm is on, enters the baseline
	// with weight OutlierWeight (0 = not at all), so that a tamper is measured against the view from before
	// it and does not linger in the baseline after it ends.
	OutlierRatio  float64
	OutlierWeight float64
	// AbsorbFrames: once the alarm has been on this long, frames learn with full weight again, so that a
	// lasting change (the camera was re-aimed) becomes the new normal and the alarm falls.
	AbsorbFrames int
	// TopChannels is how many channels per block are reported as having moved most (largest |z|).
	TopChannels int
	// Stillness adds a stream-level input to the detector: how little the gates changed since the
	// previous frame, -ln(1e-12 + mean over all channels of ((s_t - s_{t-1}) / σ)²). Gates that stop changing
	// altogether (a frozen picture, a covered lens) are over its threshold on every frame; live video,
	// with sensor noise, never is.
	Stillness bool
}

// DefaultMonitorConfig returns the configuration chosen from measurements on the bundled model and sample
// video at 12 fps (docs/attention.md): covariance groups of 8 channels, 20 s of warm-up, 60 s of
// calibration, hits over the 95 % quantile counted over 1 s, one false alarm an hour as the target, and
// the stillness input on.
func DefaultMonitorConfig() MonitorConfig {
	return MonitorConfig{GroupSize: 8, Shrinkage: 0.01, MemoryFrames: 600, RefreshFrames: 48,
		WarmupFrames: 240, CalibrationFrames: 720, FrameQuantile: 0.95, WindowFrames: 12,
		FalseAlarmFrames: 43200, FallFrames: 12, OutlierRatio: 2, OutlierWeight: 0, AbsorbFrames: 600,
		TopChannels: 5, Stillness: true}
}

// ConfigRange is the valid closed interval of one MonitorConfig field.
type ConfigRange struct {
	// Field is the Go field name, Name the same in snake_case, as a configuration key spells it.
	Field, Name string
	// Min and Max bound the value, both included.
	Min, Max float64
	// Integer: the field is an int.
	Integer bool
}

// MonitorRanges returns the valid range of every numeric MonitorConfig field (all but Stillness), in
// declaration order.
func MonitorRanges() []ConfigRange {
	return []ConfigRange{
		{"GroupSize", "group_size", 1, 256, true},
		{"Shrinkage", "shrinkage", 0, 1, false},
		{"MemoryFrames", "memory_frames", 10, 1e7, false},
		{"RefreshFrames", "refresh_frames", 1, 1e5, true},
		{"WarmupFrames", "warmup_frames", 10, 1e6, true},
		{"CalibrationFrames", "calibration_frames", 20, 1e5, true},
		{"FrameQuantile", "frame_quantile", 0.5, 0.9999, false},
		{"WindowFrames", "window_frames", 1, 1000, true},
		{"FalseAlarmFrames", "false_alarm_frames", 10, 1e12, false},
		{"FallFrames", "fall_frames", 1, 1e5, true},
		{"OutlierRatio", "outlier_ratio", 1, 1e6, false},
		{"OutlierWeight", "outlier_weight", 0, 1, false},
		{"AbsorbFrames", "absorb_frames", 1, 1e7, true},
		{"TopChannels", "top_channels", 0, 64, true},
	}
}

// values returns the fields in MonitorRanges order.
func (c MonitorConfig) values() []float64 {
	return []float64{float64(c.GroupSize), c.Shrinkage, c.MemoryFrames, float64(c.RefreshFrames),
		float64(c.WarmupFrames), float64(c.CalibrationFrames), c.FrameQuantile, float64(c.WindowFrames),
		c.FalseAlarmFrames, float64(c.FallFrames), c.OutlierRatio, c.OutlierWeight, float64(c.AbsorbFrames), float64(c.TopChannels)}
}

// FieldError is one out-of-range MonitorConfig field.
type FieldError struct {
	Range ConfigRange
	Value float64
}

func (e *FieldError) Error() string {
	if e.Range.Integer && math.Abs(e.Value) < 1e15 && e.Value == math.Trunc(e.Value) {
		return fmt.Sprintf("%s is %d, want in [%d, %d]", e.Range.Name, int64(e.Value), int64(e.Range.Min), int64(e.Range.Max))
	}
	return fmt.Sprintf("%s is %v, want in [%v, %v]", e.Range.Name, e.Value, e.Range.Min, e.Range.Max)
}

// Validate reports every field outside its MonitorRanges range, each as a *FieldError, joined in
// MonitorRanges order.
func (c MonitorConfig) Validate() error {
	var errs []error
	v := c.values()
	for i, r := range MonitorRanges() {
		if !(v[i] >= r.Min && v[i] <= r.Max) {
			errs = append(errs, &FieldError{Range: r, Value: v[i]})
		}
	}
	return errors.Join(errs...)
}

// FieldErrors returns the out-of-range fields keyed by their ConfigRange.Name (group_size, shrinkage, ...), as
// DriftConfig.FieldErrors does: MonitorRanges is the one place the ranges are defined, and config reports
// these under its own keys.
func (c MonitorConfig) FieldErrors() map[string]error {
	errs := map[string]error{}
	v := c.values()
	for i, r := range MonitorRanges() {
		if !(v[i] >= r.Min && v[i] <= r.Max) {
			errs[r.Name] = &FieldError{Range: r, Value: v[i]}
		}
	}
	return errs
}

func (c MonitorConfig) detector() DetectorConfig {
	return DetectorConfig{Warmup: c.WarmupFrames, Calibration: c.CalibrationFrames, Quantile: c.FrameQuantile,
		Window: c.WindowFrames, FalseAlarmFrames: c.FalseAlarmFrames, FallFrames: c.FallFrames}
}

// MovedChannel is a channel whose gate moved far from its baseline: Z = (gate - mean) / std.
type MovedChannel struct {
	Channel int
	Z       float64
}

// BlockSample is one SE block's part of a MonitorSample.
type BlockSample struct {
	// Score is the block's drift score D (see GateBaseline): about 1 or below on typical frames; 0 until
	// the baseline has enough frames.
	Score float64
	// Threshold is the block's per-frame threshold (its calibrated quantile); 0 before calibration ends.
	Threshold float64
	// Over: Score > Threshold on this frame.
	Over bool
	// Ready: the block's baseline has enough frames for Score to mean something (see GateBaseline.Ready).
	Ready bool
	// Moved lists up to TopChannels channels with the largest |Z|, largest first.
	Moved []MovedChannel
}

// MonitorSample is one frame's outcome. Make it with AttentionMonitor.NewSample and reuse it: Update
// overwrites it without allocating.
type MonitorSample struct {
	Frame uint64
	// Phase is warming, calibrating or detecting; WarmedUp is Phase == Detecting.
	Phase    DetectorPhase
	WarmedUp bool
	// Score is the stream's score: the largest Score/Threshold over the blocks, so its threshold is 1
	// (a frame is a hit when it is above 1, or when Still); 0 before calibration ends.
	Score float64
	// Hits is the number of hit frames in the last WindowFrames frames; RiseCount the number that raises
	// an alarm. Evidence is the number of inputs (blocks, stillness) over their threshold summed over the
	// same frames; EvidenceRise the evidence that raises an alarm (see Detector).
	Hits, RiseCount        int
	Evidence, EvidenceRise int
	// On is the alarm state after this frame.
	On bool
	// Stillness is the stream's stillness score (see MonitorConfig.Stillness; 0 when it is off),
	// StillnessThreshold its calibrated threshold, Still whether it is over it on this frame.
	Stillness, StillnessThreshold float64
	Still                         bool
	Blocks                        []BlockSample
}

// AttentionEvent is a change of a stream's attention alarm: drift on or drift off.
type AttentionEvent struct {
	Frame uint64
	// On is true when the alarm rose, false when it fell.
	On bool
	// Score is the stream's score on that frame, Hits and Evidence the windowed counts, RiseCount and
	// EvidenceRise the levels that raise an alarm (see MonitorSample).
	Score                  float64
	Hits, RiseCount        int
	Evidence, EvidenceRise int
	// Still: the stillness score was over its threshold on that frame.
	Still bool
	// Blocks lists, for each block over its threshold on that frame (on a fall: every block), its order,
	// score, threshold and most moved channels.
	Blocks []EventBlock
}

// EventBlock is one block in an AttentionEvent.
type EventBlock struct {
	Order     int
	Score     float64
	Threshold float64
	Moved     []MovedChannel
}

// AttentionMonitor watches one stream's SE gates, all blocks, and raises calibrated drift alarms. Make one
// per stream with NewAttentionMonitor and call Update once per frame, in frame order, from the goroutine
// that owns the stream's postprocessing. Not safe for concurrent use.
type AttentionMonitor struct {
	cfg       MonitorConfig
	channels  []int
	base      []*GateBaseline
	det       *Detector
	scores    []float64 // per block, then stillness when enabled
	prevGates []float32 // the previous frame's gates, all blocks in order
	hasPrev   bool
}

// NewAttentionMonitor returns a monitor for a model whose SE blocks, in model block order, have the given
// channel counts.
func NewAttentionMonitor(cfg MonitorConfig, channels []int) (*AttentionMonitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("attention monitor: %w", err)
	}
	if len(channels) == 0 {
		return nil, fmt.Errorf("%w: attention monitor for no SE blocks", ErrShape)
	}
	m := &AttentionMonitor{cfg: cfg, channels: append([]int(nil), channels...), base: make([]*GateBaseline, len(channels)),
		scores: make([]float64, len(channels))}
	if cfg.Stillness {
		m.scores = append(m.scores, 0)
	}
	total := 0
	for _, c := range channels {
		total += c
	}
	m.prevGates = make([]float32, total)
	for i, c := range channels {
		b, err := NewGateBaseline(c, cfg.GroupSize, cfg.Shrinkage, cfg.MemoryFrames, cfg.RefreshFrames)
		if err != nil {
			return nil, fmt.Errorf("attention monitor, block %d: %w", i, err)
		}
		m.base[i] = b
	}
	var err error
	if m.det, err = NewDetector(cfg.detector(), len(m.scores)); err != nil {
		return nil, fmt.Errorf("attention monitor: %w", err)
	}
	return m, nil
}

// Config returns the monitor's configuration.
func (m *AttentionMonitor) Config() MonitorConfig { return m.cfg }

// NewSample returns a MonitorSample sized for this monitor, to pass to every Update.
func (m *AttentionMonitor) NewSample() *MonitorSample {
	s := &MonitorSample{Blocks: make([]BlockSample, len(m.channels))}
	for i, c := range m.channels {
		s.Blocks[i].Moved = make([]MovedChannel, 0, min(m.cfg.TopChannels, c))
	}
	return s
}

// Baseline returns block i's baseline (for inspection; do not feed it).
func (m *AttentionMonitor) Baseline(i int) *GateBaseline { return m.base[i] }

// Reset forgets baselines, calibration and alarm, as for a new stream (after a source reconnects to a
// different view, for example). No event is raised.
func (m *AttentionMonitor) Reset() {
	for _, b := range m.base {
		b.Reset()
	}
	m.det.Reset()
	m.hasPrev = false
}

// Update feeds one frame: gates[i] is block i's gate vector (len(gates) blocks, block i with the channel
// count given to NewAttentionMonitor). It fills out (from NewSample) and returns an event when the alarm
// rose or fell on this frame, nil otherwise. Bad gates (wrong count or length: ErrShape; NaN or Inf:
// ErrInvalidGates) return an error and leave the monitor as it was. Update allocates only for events.
func (m *AttentionMonitor) Update(frame uint64, gates [][]float32, out *MonitorSample) (*AttentionEvent, error) {
	if len(gates) != len(m.base) {
		return nil, fmt.Errorf("%w: frame %d has %d SE blocks, the monitor has %d", ErrShape, frame, len(gates), len(m.base))
	}
	if len(out.Blocks) != len(m.base) {
		return nil, fmt.Errorf("%w: sample has %d blocks, the monitor has %d (use NewSample)", ErrShape, len(out.Blocks), len(m.base))
	}
	for i, b := range m.base {
		sc, err := b.Score(gates[i])
		if err != nil {
			return nil, fmt.Errorf("frame %d, block %d: %w", frame, i, err)
		}
		m.scores[i] = sc
	}
	var still float64
	if m.cfg.Stillness {
		var sum float64
		k := 0
		for i, b := range m.base {
			prev := m.prevGates[k : k+b.Channels()]
			if m.hasPrev {
				sum += b.ChangeSq(prev, gates[i])
			}
			copy(prev, gates[i])
			k += b.Channels()
		}
		if !m.hasPrev {
			sum = float64(k) // no previous frame: an ordinary change
			m.hasPrev = true
		}
		still = -math.Log(1e-12 + sum/float64(k))
		m.scores[len(m.base)] = still
	}
	step, err := m.det.Update(m.scores)
	if err != nil {
		return nil, err
	}
	out.Frame, out.Phase, out.WarmedUp = frame, step.Phase, step.Phase == Detecting
	out.Hits, out.RiseCount, out.On = step.Count, m.det.RiseCount(), step.On
	out.Evidence, out.EvidenceRise = step.Evidence, m.det.EvidenceRise()
	out.Score = 0
	out.Stillness, out.StillnessThreshold, out.Still = 0, 0, false
	if m.cfg.Stillness {
		i := len(m.base)
		out.Stillness, out.StillnessThreshold, out.Still = still, m.det.Threshold(i), m.det.Over(i, still)
	}
	outlier := false
	for i, b := range m.base {
		bs := &out.Blocks[i]
		bs.Score = m.scores[i]
		bs.Threshold = m.det.Threshold(i)
		bs.Over = m.det.Over(i, bs.Score)
		bs.Ready = b.Ready()
		bs.Moved = topMoved(bs.Moved[:0], b, cap(bs.Moved))
		if bs.Threshold > 0 {
			r := bs.Score / bs.Threshold
			out.Score = max(out.Score, r)
			if r > m.cfg.OutlierRatio {
				outlier = true
			}
		}
	}
	w := 1.0
	if step.Phase == Detecting && (outlier || step.On || step.Fell) && step.OnFor < m.cfg.AbsorbFrames {
		w = m.cfg.OutlierWeight
	}
	for i, b := range m.base {
		b.Learn(w, gates[i])
	}
	if !step.Rose && !step.Fell {
		return nil, nil
	}
	ev := &AttentionEvent{Frame: frame, On: step.Rose, Score: out.Score, Hits: step.Count, RiseCount: out.RiseCount,
		Evidence: step.Evidence, EvidenceRise: out.EvidenceRise, Still: out.Still}
	for i := range out.Blocks {
		bs := &out.Blocks[i]
		if bs.Over || step.Fell {
			ev.Blocks = append(ev.Blocks, EventBlock{Order: i, Score: bs.Score, Threshold: bs.Threshold,
				Moved: append([]MovedChannel(nil), bs.Moved...)})
		}
	}
	return ev, nil
}

// topMoved fills dst (cap k) with the k channels of b's last scored frame with the largest |z|, largest
// first, equal |z| by lower channel.
func topMoved(dst []MovedChannel, b *GateBaseline, k int) []MovedChannel {
	if k == 0 {
		return dst
	}
	floor := -1.0 // z² of the smallest kept entry once dst is full
	for c, z := range b.z {
		if z*z <= floor {
			continue
		}
		dst, floor = insertMoved(dst, k, c, z)
	}
	return dst
}

// insertMoved inserts channel c with score z into dst (sorted as topMoved leaves it, at most k entries),
// dropping the smallest entry when dst is full, and returns dst and the new floor: the smallest kept z²
// once dst holds k entries, -1 before. Kept apart from topMoved's scan, which on most channels only
// compares, so that the scan's loop stays small.
func insertMoved(dst []MovedChannel, k, c int, z float64) ([]MovedChannel, float64) {
	az := math.Abs(z)
	if len(dst) < k {
		dst = append(dst, MovedChannel{})
	}
	j := len(dst) - 1
	for j > 0 && math.Abs(dst[j-1].Z) < az {
		dst[j] = dst[j-1]
		j--
	}
	dst[j] = MovedChannel{Channel: c, Z: z}
	if len(dst) < k {
		return dst, -1
	}
	return dst, dst[k-1].Z * dst[k-1].Z
}
