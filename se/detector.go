package se

import (
	"fmt"
	"math"
	"slices"

	"github.com/sestream/sestream/internal/quantile"
)

// DetectorConfig tunes a Detector. The zero value is invalid; MonitorConfig carries one.
type DetectorConfig struct {
	// Warmup is the number of first frames ignored entirely (the scores' own baseline is still learning).
	Warmup int
	// Calibration is the number of frames after Warmup whose scores set the thresholds. They are taken
	// to be normal: start a stream on a normal view.
	Calibration int
	// Quantile: a frame is a hit when any input's score is above that input's Quantile over the
	// calibration frames.
	Quantile float64
	// Window is the sliding window, in frames, in which hits are counted.
	Window int
	// FalseAlarmFrames is the target mean number of frames between false alarms on normal frames; the
	// number of hits within Window that raises an alarm is chosen for it (see Detector).
	FalseAlarmFrames float64
	// FallFrames: an alarm falls after the windowed count has stayed at or below the fall level (what
	// normal frames give: the calibration hit rate times Window, rounded up) for this many consecutive
	// frames.
	FallFrames int
}

// DetectorPhase is where a Detector is in its life.
type DetectorPhase int

const (
	// Warming: scores are ignored.
	Warming DetectorPhase = iota
	// Calibrating: scores are collected to set the thresholds; no alarm.
	Calibrating
	// Detecting: thresholds are set; alarms rise and fall.
	Detecting
)

// String returns "warming", "calibrating" or "detecting".
func (p DetectorPhase) String() string {
	switch p {
	case Warming:
		return "warming"
	case Calibrating:
		return "calibrating"
	case Detecting:
		return "detecting"
	}
	return "unknown"
}

// Detector turns per-frame scores (one or more inputs, for example one per SE block) into alarms that rise
// and fall, calibrated on the stream's own normal frames rather than on a fixed threshold.
//
// After Warmup frames it collects Calibration frames of scores. At the end of calibration, input i's
// threshold q_i is the Quantile of its calibration scores (nearest rank). A frame is a hit when some input has
// score_i > q_i. Two counts are kept over a sliding window of Window frames: the hit frames (Count) and the
// evidence (Evidence): the number of (frame, input) pairs over threshold, so a frame on which three inputs
// are over counts three. An alarm rises when Count reaches RiseCount or Evidence reaches EvidenceRise, and
// falls when both have stayed at or below their fall levels (what normal frames give: the calibration rate
// times Window, rounded up, below the rise level) for FallFrames consecutive frames. So one odd frame never
// raises an alarm (unless a rise level is that low), an alarm lasts at least FallFrames frames, and counts
// between the fall and rise levels keep the current state. The evidence count is what makes a change that
// moves several inputs at once (a covered lens, defocus, a zoom: several SE blocks and stillness) rise
// sooner than an unusual object, which on normal video moves one input at a time.
//
// RiseCount is calibrated to FalseAlarmFrames: it is the smallest m for which the binomial tail
// P(Binomial(Window, p) >= m) <= 1/FalseAlarmFrames, with p the fraction of calibration frames that are
// hits (at least 1 - Quantile) plus two standard errors of that fraction, and it is also more than the
// largest count any window of the
// calibration frames reached: normal video is correlated from frame to frame, so hits cluster more than a
// binomial says, and the calibration frames are the one sample of that clustering the detector has.
// RiseCount is at most Window; when even Window hits are too likely, RiseCount is Window. EvidenceRise is
// one more than the largest evidence any window of the calibration frames reached (at most Window times the
// number of inputs, and at least RiseCount, so that with one input it adds nothing).
//
// Update allocates nothing; a Detector is not safe for concurrent use.
type Detector struct {
	cfg    DetectorConfig
	inputs int
	frames int // frames seen

	calib  []float64 // Calibration x inputs, frame-major
	sorted []float64 // scratch for the quantiles
	thresh []float64 // per input, after calibration
	rise   int
	fall   int
	hitP   float64
	eRise  int // evidence rise and fall levels
	eFall  int

	ring     []int // number of inputs over threshold on each of the last Window frames
	pos      int
	count    int // hit frames in the window
	evidence int // inputs over threshold in the window, summed over its frames
	clean    int // consecutive frames with count <= fall and evidence <= eFall
	on       bool
	onFor    int // frames since the alarm rose, this one included
}

// DetectorStep is the outcome of one frame.
type DetectorStep struct {
	Phase DetectorPhase
	// Hit: some input was over its threshold on this frame.
	Hit bool
	// Count is the number of hits in the last Window frames (this one included); Evidence the number of
	// inputs over their threshold, summed over the same frames.
	Count, Evidence int
	// On is the alarm state after this frame; Rose and Fell tell whether it changed on this frame.
	On, Rose, Fell bool
	// OnFor is the number of frames the alarm has been on, this one included; 0 when it is off.
	OnFor int
}

// NewDetector returns a Detector for the given number of score inputs (>= 1).
func NewDetector(cfg DetectorConfig, inputs int) (*Detector, error) {
	if inputs < 1 {
		return nil, fmt.Errorf("detector: %d inputs, want >= 1", inputs)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg, inputs: inputs,
		calib: make([]float64, cfg.Calibration*inputs), sorted: make([]float64, cfg.Calibration),
		thresh: make([]float64, inputs), ring: make([]int, cfg.Window)}, nil
}

func (c DetectorConfig) validate() error {
	switch {
	case c.Warmup < 0:
		return fmt.Errorf("detector: warmup %d, want >= 0", c.Warmup)
	case c.Calibration < 1:
		return fmt.Errorf("detector: calibration %d, want >= 1", c.Calibration)
	case !(c.Quantile > 0 && c.Quantile < 1):
		return fmt.Errorf("detector: quantile %v, want in (0, 1)", c.Quantile)
	case c.Window < 1:
		return fmt.Errorf("detector: window %d, want >= 1", c.Window)
	case !(c.FalseAlarmFrames >= 1):
		return fmt.Errorf("detector: false alarm frames %v, want >= 1", c.FalseAlarmFrames)
	case c.FallFrames < 1:
		return fmt.Errorf("detector: fall frames %d, want >= 1", c.FallFrames)
	}
	return nil
}

// Phase returns the current phase.
func (d *Detector) Phase() DetectorPhase {
	switch {
	case d.frames < d.cfg.Warmup:
		return Warming
	case d.frames < d.cfg.Warmup+d.cfg.Calibration:
		return Calibrating
	}
	return Detecting
}

// Threshold returns input i's per-frame threshold; 0 before calibration ends.
func (d *Detector) Threshold(i int) float64 { return d.thresh[i] }

// RiseCount returns the calibrated number of hits within Window that raises an alarm; 0 before
// calibration ends.
func (d *Detector) RiseCount() int { return d.rise }

// FallCount returns the calibrated windowed count at or below which an alarm can fall; 0 before
// calibration ends.
func (d *Detector) FallCount() int { return d.fall }

// EvidenceRise returns the calibrated evidence within Window that raises an alarm; 0 before calibration
// ends.
func (d *Detector) EvidenceRise() int { return d.eRise }

// HitRate returns the fraction of calibration frames that were hits; 0 before calibration ends.
func (d *Detector) HitRate() float64 { return d.hitP }

// On reports whether the alarm is on.
func (d *Detector) On() bool { return d.on }

// Over reports whether score is over input i's threshold (false before calibration ends).
func (d *Detector) Over(i int, score float64) bool { return d.rise > 0 && score > d.thresh[i] }

// Reset forgets the calibration and the state, as for a new stream.
func (d *Detector) Reset() {
	d.frames, d.rise, d.fall, d.hitP, d.pos, d.count, d.clean, d.on, d.onFor = 0, 0, 0, 0, 0, 0, 0, false, 0
	d.eRise, d.eFall, d.evidence = 0, 0, 0
	clear(d.thresh)
	clear(d.ring)
}

// Update feeds one frame's scores, one per input (len(scores) must be the number of inputs; NaN counts
// as no hit) and returns the frame's outcome.
func (d *Detector) Update(scores []float64) (DetectorStep, error) {
	if len(scores) != d.inputs {
		return DetectorStep{}, fmt.Errorf("%w: detector got %d scores, has %d inputs", ErrShape, len(scores), d.inputs)
	}
	phase := d.Phase()
	d.frames = min(d.frames+1, math.MaxInt-1)
	switch phase {
	case Warming:
		return DetectorStep{Phase: phase}, nil
	case Calibrating:
		i := d.frames - 1 - d.cfg.Warmup
		copy(d.calib[i*d.inputs:(i+1)*d.inputs], scores)
		if i == d.cfg.Calibration-1 {
			d.calibrate()
		}
		return DetectorStep{Phase: phase}, nil
	}
	over := 0
	for i, s := range scores {
		if s > d.thresh[i] {
			over++
		}
	}
	st := DetectorStep{Phase: Detecting, Hit: over > 0}
	d.push(over)
	st.Count, st.Evidence = d.count, d.evidence
	if d.count > d.fall || d.evidence > d.eFall {
		d.clean = 0
	} else {
		d.clean++
	}
	switch {
	case !d.on && (d.count >= d.rise || d.evidence >= d.eRise):
		d.on, st.Rose = true, true
	case d.on && d.clean >= d.cfg.FallFrames:
		d.on, st.Fell = false, true
	}
	st.On = d.on
	if d.on {
		d.onFor = min(d.onFor+1, math.MaxInt-1)
	} else {
		d.onFor = 0
	}
	st.OnFor = d.onFor
	return st, nil
}

// push adds one frame's number of inputs over threshold to the sliding window.
func (d *Detector) push(over int) {
	if old := d.ring[d.pos]; old > 0 {
		d.count--
		d.evidence -= old
	}
	d.ring[d.pos] = over
	if over > 0 {
		d.count++
		d.evidence += over
	}
	d.pos = (d.pos + 1) % len(d.ring)
}

// clearWindow empties the sliding window.
func (d *Detector) clearWindow() {
	clear(d.ring)
	d.pos, d.count, d.evidence = 0, 0, 0
}

// calibrate sets the thresholds and RiseCount from the calibration scores.
func (d *Detector) calibrate() {
	n := d.cfg.Calibration
	for in := range d.inputs {
		for i := range n {
			d.sorted[i] = d.calib[i*d.inputs+in]
		}
		slices.Sort(d.sorted[:n])
		d.thresh[in] = quantile.NearestRank(d.sorted[:n], d.cfg.Quantile)
	}
	// Hit and evidence rates and the largest windowed counts over the calibration frames, with the
	// thresholds now set.
	hits, overs, maxCount, maxEvidence := 0, 0, 0, 0
	d.clearWindow()
	for i := range n {
		over := 0
		for in := range d.inputs {
			if d.calib[i*d.inputs+in] > d.thresh[in] {
				over++
			}
		}
		if over > 0 {
			hits++
		}
		overs += over
		d.push(over)
		maxCount = max(maxCount, d.count)
		maxEvidence = max(maxEvidence, d.evidence)
	}
	d.clearWindow()
	d.hitP = float64(hits) / float64(n)
	// The hit rate is estimated from n frames; use its upper bound two standard errors up, so that a
	// calibration that happened to see few hits does not set the rise count too low.
	p := max(d.hitP, 1-d.cfg.Quantile)
	p = min(1, p+2*math.Sqrt(p*(1-p)/float64(n)))
	m := BinomialRiseCount(d.cfg.Window, p, 1/d.cfg.FalseAlarmFrames)
	d.rise = min(max(m, maxCount+1), d.cfg.Window)
	d.fall = min(int(math.Ceil(d.hitP*float64(d.cfg.Window))), d.rise-1)
	// The evidence level: the same two rules on Window x inputs (frame, input) pairs.
	slots := d.cfg.Window * d.inputs
	pe := max(float64(overs)/float64(n*d.inputs), 1-d.cfg.Quantile)
	pe = min(1, pe+2*math.Sqrt(pe*(1-pe)/float64(n*d.inputs)))
	me := BinomialRiseCount(slots, pe, 1/d.cfg.FalseAlarmFrames)
	d.eRise = max(min(max(me, maxEvidence+1), slots), d.rise)
	d.eFall = min(int(math.Ceil(float64(overs)/float64(n)*float64(d.cfg.Window))), d.eRise-1)
}

// BinomialRiseCount returns the smallest m in [1, window] with P(Binomial(window, p) >= m) <= alpha, or
// window when none is.
func BinomialRiseCount(window int, p, alpha float64) int {
	if p <= 0 {
		return 1
	}
	if p >= 1 {
		return window
	}
	// Tail sums from the top: P(X >= m) = Σ_{k>=m} C(n,k) p^k (1-p)^(n-k), computed in log space.
	lp, lq := math.Log(p), math.Log1p(-p)
	lgn, _ := math.Lgamma(float64(window) + 1)
	tail := 0.0
	for m := window; m >= 1; m-- {
		lgk, _ := math.Lgamma(float64(m) + 1)
		lgnk, _ := math.Lgamma(float64(window-m) + 1)
		tail += math.Exp(lgn - lgk - lgnk + float64(m)*lp + float64(window-m)*lq)
		if tail > alpha {
			if m == window {
				return window
			}
			return m + 1
		}
	}
	return 1
}
