package se

import (
	"errors"
	"fmt"
	"math"
)

// DriftConfig tunes attention drift detection. The zero value is invalid; see DefaultDriftConfig.
type DriftConfig struct {
	// Alpha is the weight of the new frame in the baseline's exponential moving average,
	// in (0, 1]: the baseline remembers roughly the last 1/Alpha frames.
	Alpha float64
	// Threshold: drift strictly above it turns drift on (a rise event). In (0, 1].
	Threshold float64
	// Hysteresis: drift strictly below Threshold - Hysteresis turns drift off again (a fall
	// event). In [0, Threshold).
	Hysteresis float64
	// Warmup is the number of first frames that only build the baseline: no events before
	// frame Warmup+1. At least 1, since the first frame is the baseline's seed.
	Warmup int
	// TopChanges is how many channels an event lists, those whose gate moved furthest from
	// the baseline. At least 0.
	TopChanges int
}

// DefaultDriftConfig returns a configuration for video at some tens of frames per second: a
// baseline over about the last 20 frames, on above drift 0.1, off below 0.07, a 30-frame
// warm-up and 5 channels per event. config's attention.drift defaults are these.
func DefaultDriftConfig() DriftConfig {
	return DriftConfig{Alpha: 0.05, Threshold: 0.1, Hysteresis: 0.03, Warmup: 30, TopChanges: 5}
}

// Validate reports every out-of-range field, each named, joined into one error.
func (c DriftConfig) Validate() error {
	var errs []error
	fields := c.FieldErrors()
	for _, name := range driftFields {
		if err := fields[name]; err != nil {
			errs = append(errs, fmt.Errorf("drift %w", err))
		}
	}
	return errors.Join(errs...)
}

// driftFields are the DriftConfig fields in their documented order, by their configuration names.
var driftFields = [...]string{"alpha", "threshold", "hysteresis", "warmup", "top_changes"}

// FieldErrors returns the out-of-range fields, keyed by their configuration names (alpha, threshold,
// hysteresis, warmup, top_changes). This is the one place the ranges are defined; config reports these under
// its own keys.
func (c DriftConfig) FieldErrors() map[string]error {
	errs := map[string]error{}
	if !(c.Alpha > 0 && c.Alpha <= 1) {
		errs["alpha"] = fmt.Errorf("Alpha is %v, want in (0, 1]", c.Alpha)
	}
	if !(c.Threshold > 0 && c.Threshold <= 1) {
		errs["threshold"] = fmt.Errorf("Threshold is %v, want in (0, 1] (drift is 1 - cosine of two non-negative vectors)", c.Threshold)
	}
	if !(c.Hysteresis >= 0 && c.Hysteresis < c.Threshold) {
		errs["hysteresis"] = fmt.Errorf("Hysteresis is %v, want in [0, Threshold) = [0, %v)", c.Hysteresis, c.Threshold)
	}
	if c.Warmup < 1 {
		errs["warmup"] = fmt.Errorf("Warmup is %d, want >= 1 frame", c.Warmup)
	}
	if c.TopChanges < 0 {
		errs["top_changes"] = fmt.Errorf("TopChanges is %d, want >= 0", c.TopChanges)
	}
	return errs
}

// onSlowdown divides Alpha while drift is on; see Drift.
const onSlowdown = 10

// Drift detects when one stream's gate vectors for one SE block move away from their usual
// pattern. Keep one Drift per stream per block. A Drift is not safe for concurrent use: the
// goroutine that owns the stream's postprocessing calls Update in frame order.
//
// The baseline b is an exponential moving average of the gate vectors, seeded by the first
// frame: b = (1-a)*b + a*s after each frame. Each frame's drift is 1 - cosine(s, b) with b as it
// was before the frame, so for gates (non-negative) it lies in [0, 1]: 0 for the same pattern at
// any scale, 1 for disjoint channels. The first Warmup frames only build the baseline. After
// that, drift > Threshold turns drift on (a rise event) and drift < Threshold - Hysteresis turns
// it off (a fall event); values in between keep the current state, so noise near the threshold
// does not flap.
//
// While drift is on the baseline keeps learning, but onSlowdown (10) times slower: a = Alpha/10.
// A short excursion (a scene cut, an occlusion) is thus measured against the pattern from before
// it and ends with a fall event as soon as the old pattern returns; a lasting change is absorbed
// after roughly ten times the baseline's normal memory and also ends with a fall event, so drift
// never stays on forever. The state decided on a frame picks the weight with which that frame
// enters the baseline (a rise frame already enters slowly).
//
// Events carry the frame number they were raised on; the caller adds the stream and block
// names when it publishes them. Make a Drift with NewDrift; the zero value is not usable.
type Drift struct {
	cfg      DriftConfig
	baseline []float64 // nil until the first frame
	frames   int       // frames accepted since the seed (or Reset), saturating at Warmup+1
	on       bool
}

// NewDrift returns a Drift with cfg, or cfg's validation error.
func NewDrift(cfg DriftConfig) (*Drift, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Drift{cfg: cfg}, nil
}

// DriftSample is the outcome of one frame.
type DriftSample struct {
	// Frame is the frame number given to Update.
	Frame uint64
	// Drift is 1 - cosine(s, baseline) against the baseline before this frame, in [0, 1];
	// 0 on the first frame, which has no baseline yet.
	Drift float64
	// Warming is true during the first Warmup frames, when no event can be raised.
	Warming bool
	// On is the drift state after this frame.
	On bool
	// Event is non-nil when this frame changed the state.
	Event *DriftEvent
}

// DriftEvent is a change of drift state.
type DriftEvent struct {
	// Frame is the frame on which the state changed.
	Frame uint64
	// Drift is that frame's drift.
	Drift float64
	// On is true for a rise (drift went above Threshold) and false for a fall (below
	// Threshold - Hysteresis).
	On bool
	// Threshold is the level that was crossed: Threshold for a rise, Threshold - Hysteresis
	// for a fall.
	Threshold float64
	// Changes lists the TopChanges channels whose gate is furthest from the baseline,
	// furthest first (equal distances by lower channel).
	Changes []ChannelChange
}

// Kind returns the event kind as published on NATS: "drift_on" or "drift_off".
func (e *DriftEvent) Kind() string {
	if e.On {
		return "drift_on"
	}
	return "drift_off"
}

// ChannelChange is one channel's gate in the baseline (Before) and in the frame (After).
type ChannelChange struct {
	Channel       int
	Before, After float32
}

// Config returns the configuration the Drift was made with.
func (d *Drift) Config() DriftConfig { return d.cfg }

// On reports whether drift is currently on.
func (d *Drift) On() bool { return d.on }

// Reset forgets the baseline and the state, as for a new stream: the next frame seeds a new
// baseline and a new warm-up begins. No event is raised.
func (d *Drift) Reset() {
	d.baseline = d.baseline[:0]
	d.frames = 0
	d.on = false
}

// Update feeds the gate vector s of one frame (C values, the same C on every call) and returns
// that frame's drift and any state change. s must be non-empty, finite and non-negative (all
// zeros is allowed: its drift is 0 against an all-zero baseline and 1 against any other);
// otherwise the error wraps ErrInvalidGates, or ErrShape when C changed, and the Drift is left
// as it was. Update allocates only when it raises an event (and on the first frame).
func (d *Drift) Update(frame uint64, s []float32) (DriftSample, error) {
	if len(s) == 0 {
		return DriftSample{}, fmt.Errorf("%w: empty", ErrInvalidGates)
	}
	seeded := len(d.baseline) > 0
	if seeded && len(s) != len(d.baseline) {
		return DriftSample{}, fmt.Errorf("%w: frame %d has %d gates, the drift baseline has %d",
			ErrShape, frame, len(s), len(d.baseline))
	}
	for i, v := range s {
		if !(v >= 0 && v <= math.MaxFloat32) {
			return DriftSample{}, fmt.Errorf("%w: frame %d: gate %d of %d is %v", ErrInvalidGates, frame, i, len(s), v)
		}
	}
	if !seeded {
		if cap(d.baseline) < len(s) {
			d.baseline = make([]float64, len(s))
		}
		d.baseline = d.baseline[:len(s)]
		for i, v := range s {
			d.baseline[i] = float64(v)
		}
		d.frames = 1
		return DriftSample{Frame: frame, Warming: true}, nil
	}

	drift := d.drift(s)
	if d.frames <= d.cfg.Warmup {
		d.frames++
	}
	sample := DriftSample{Frame: frame, Drift: drift, Warming: d.frames <= d.cfg.Warmup}
	if !sample.Warming {
		switch {
		case !d.on && drift > d.cfg.Threshold:
			d.on = true
			sample.Event = d.event(frame, drift, d.cfg.Threshold, s)
		case d.on && drift < d.cfg.Threshold-d.cfg.Hysteresis:
			d.on = false
			sample.Event = d.event(frame, drift, d.cfg.Threshold-d.cfg.Hysteresis, s)
		}
	}
	sample.On = d.on

	a := d.cfg.Alpha
	if d.on {
		a /= onSlowdown
	}
	for i, v := range s {
		d.baseline[i] += a * (float64(v) - d.baseline[i])
	}
	return sample, nil
}

// drift returns 1 - cosine(s, baseline), clamped to [0, 1].
func (d *Drift) drift(s []float32) float64 {
	b := d.baseline[:len(s)]
	var dot, ss, bb float64
	for i, v32 := range s {
		v := float64(v32)
		dot += v * b[i]
		ss += v * v
		bb += b[i] * b[i]
	}
	switch {
	case ss == 0 && bb == 0:
		return 0
	case ss == 0 || bb == 0:
		return 1
	}
	return clamp(1-dot/(math.Sqrt(ss)*math.Sqrt(bb)), 0, 1)
}

// event builds an event listing the channels of s furthest from the baseline.
func (d *Drift) event(frame uint64, drift, threshold float64, s []float32) *DriftEvent {
	k := min(d.cfg.TopChanges, len(s))
	changes := make([]ChannelChange, 0, k)
	dist := func(c ChannelChange) float64 { return math.Abs(float64(c.After) - float64(c.Before)) }
	if k > 0 {
		for i, v := range s {
			c := ChannelChange{Channel: i, Before: float32(d.baseline[i]), After: v}
			di := dist(c)
			if len(changes) == k {
				if di <= dist(changes[k-1]) {
					continue
				}
				changes = changes[:k-1]
			}
			j := len(changes)
			for j > 0 && dist(changes[j-1]) < di {
				j--
			}
			changes = append(changes, ChannelChange{})
			copy(changes[j+1:], changes[j:])
			changes[j] = c
		}
	}
	return &DriftEvent{Frame: frame, Drift: drift, On: d.on, Threshold: threshold, Changes: changes}
}
