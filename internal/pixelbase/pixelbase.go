package pixelbase

import (
	"errors"
	"fmt"
	"math"

	"github.com/sestream/sestream/se"
)

// Input names the detector's scores, in Sample.Scores order.
const (
	// Difference: mean absolute difference to the running background image, in gray levels.
	Difference = iota
	// Histogram: Hellinger distance between the frame's gray-level histogram and the background's, in [0, 1].
	Histogram
	// Defocus: log(background edge energy / frame edge energy); positive when the frame lost detail.
	Defocus
	// Freeze: -log(0.01 + mean absolute difference to the previous frame); high when nothing changes.
	Freeze
	// Inputs is the number of scores.
	Inputs
)

// InputName returns the name of input i: "difference", "histogram", "defocus" or "freeze".
func InputName(i int) string {
	switch i {
	case Difference:
		return "difference"
	case Histogram:
		return "histogram"
	case Defocus:
		return "defocus"
	case Freeze:
		return "freeze"
	}
	return "unknown"
}

// Config tunes a Monitor. Start from DefaultConfig.
type Config struct {
	// Bins is the number of gray-level histogram bins, 2..256.
	Bins int
	// MemoryFrames: the background forgets with rate 1/MemoryFrames (a running mean before that), >= 1.
	MemoryFrames float64
	// OutlierWeight is the weight with which a frame enters the background when some score is over its
	// threshold or the alarm is on, in [0, 1]; AbsorbFrames (>= 1) after the alarm rose, frames learn
	// fully again (see se.MonitorConfig).
	OutlierWeight float64
	AbsorbFrames  int
	// Detector calibrates thresholds and raises alarms on the four scores, as for attention drift.
	Detector se.DetectorConfig
}

// DefaultConfig returns the settings of the comparison in docs/attention.md: the detector settings of
// se.DefaultMonitorConfig except the per-frame quantile, 0.99, which measured best for these scores (at
// 0.95 they raise about 100 false alarms an hour on the held-out normal video).
func DefaultConfig() Config {
	m := se.DefaultMonitorConfig()
	return Config{Bins: 32, MemoryFrames: m.MemoryFrames, OutlierWeight: m.OutlierWeight, AbsorbFrames: m.AbsorbFrames,
		Detector: se.DetectorConfig{Warmup: m.WarmupFrames, Calibration: m.CalibrationFrames, Quantile: 0.99,
			Window: m.WindowFrames, FalseAlarmFrames: m.FalseAlarmFrames, FallFrames: m.FallFrames}}
}

// Validate reports every out-of-range field.
func (c Config) Validate() error {
	var errs []error
	if c.Bins < 2 || c.Bins > 256 {
		errs = append(errs, fmt.Errorf("pixelbase: bins is %d, want in [2, 256]", c.Bins))
	}
	if !(c.MemoryFrames >= 1) || math.IsInf(c.MemoryFrames, 0) {
		errs = append(errs, fmt.Errorf("pixelbase: memory frames is %v, want a finite value >= 1", c.MemoryFrames))
	}
	if !(c.OutlierWeight >= 0 && c.OutlierWeight <= 1) {
		errs = append(errs, fmt.Errorf("pixelbase: outlier weight is %v, want in [0, 1]", c.OutlierWeight))
	}
	if c.AbsorbFrames < 1 {
		errs = append(errs, fmt.Errorf("pixelbase: absorb frames is %d, want >= 1", c.AbsorbFrames))
	}
	return errors.Join(errs...)
}

// Sample is one frame's outcome; Update overwrites it.
type Sample struct {
	Frame  uint64
	Phase  se.DetectorPhase
	Scores [Inputs]float64
	// Over tells which scores were above their calibrated thresholds on this frame.
	Over [Inputs]bool
	// Hits is the number of hit frames in the detector's window, RiseCount the number that raises an alarm.
	Hits, RiseCount int
	On              bool
}

// Event is a change of the alarm.
type Event struct {
	Frame uint64
	On    bool
	// Inputs names the scores over their thresholds on that frame.
	Inputs []string
}

// Monitor watches one stream's downscaled gray frames. Not safe for concurrent use; Update allocates
// only for events.
type Monitor struct {
	cfg    Config
	w, h   int
	n      int
	bg     []float64 // background image
	prev   []byte
	hist   []float64 // this frame's normalized histogram
	bgHist []float64 // background's
	edge   float64   // background edge energy
	det    *se.Detector
	scores []float64
}

// New returns a Monitor for frames of width x height gray pixels (each at least 2).
func New(cfg Config, width, height int) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if width < 2 || height < 2 {
		return nil, fmt.Errorf("pixelbase: frame %d x %d, want at least 2 x 2", width, height)
	}
	det, err := se.NewDetector(cfg.Detector, Inputs)
	if err != nil {
		return nil, fmt.Errorf("pixelbase: %w", err)
	}
	return &Monitor{cfg: cfg, w: width, h: height, bg: make([]float64, width*height), prev: make([]byte, width*height),
		hist: make([]float64, cfg.Bins), bgHist: make([]float64, cfg.Bins), det: det, scores: make([]float64, Inputs)}, nil
}

// edgeEnergy returns the mean absolute horizontal plus vertical difference of neighbouring pixels.
func (m *Monitor) edgeEnergy(gray []byte) float64 {
	var s int
	for y := 0; y < m.h-1; y++ {
		row, next := gray[y*m.w:(y+1)*m.w], gray[(y+1)*m.w:(y+2)*m.w]
		for x := 0; x < m.w-1; x++ {
			s += abs(int(row[x+1])-int(row[x])) + abs(int(next[x])-int(row[x]))
		}
	}
	return float64(s) / float64((m.w-1)*(m.h-1))
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Update feeds one frame: gray is width*height 8-bit gray levels, row-major. It fills out and returns an
// event when the alarm rose or fell.
func (m *Monitor) Update(frame uint64, gray []byte, out *Sample) (*Event, error) {
	if len(gray) != m.w*m.h {
		return nil, fmt.Errorf("pixelbase: frame %d has %d pixels, want %d x %d = %d", frame, len(gray), m.w, m.h, m.w*m.h)
	}
	clear(m.hist)
	bins := len(m.hist)
	for _, v := range gray {
		m.hist[int(v)*bins/256]++
	}
	inv := 1 / float64(len(gray))
	for i := range m.hist {
		m.hist[i] *= inv
	}
	e := m.edgeEnergy(gray)
	if m.n == 0 {
		for i, v := range gray {
			m.bg[i] = float64(v)
		}
		copy(m.prev, gray)
		copy(m.bgHist, m.hist)
		m.edge = e
		m.n = 1
		*out = Sample{Frame: frame}
		return nil, nil
	}
	var diff, still float64
	for i, v := range gray {
		diff += math.Abs(float64(v) - m.bg[i])
		still += math.Abs(float64(int(v) - int(m.prev[i])))
	}
	diff *= inv
	still *= inv
	var bc float64
	for i, p := range m.hist {
		bc += math.Sqrt(p * m.bgHist[i])
	}
	m.scores[Difference] = diff
	m.scores[Histogram] = math.Sqrt(max(0, 1-bc))
	m.scores[Defocus] = math.Log((m.edge + 0.01) / (e + 0.01))
	m.scores[Freeze] = -math.Log(0.01 + still)
	step, err := m.det.Update(m.scores)
	if err != nil {
		return nil, err
	}
	*out = Sample{Frame: frame, Phase: step.Phase, Hits: step.Count, RiseCount: m.det.RiseCount(), On: step.On}
	copy(out.Scores[:], m.scores)
	for i, s := range m.scores {
		out.Over[i] = m.det.Over(i, s)
	}

	m.n++
	a := max(1/float64(m.n), 1/m.cfg.MemoryFrames)
	hit := step.Hit || step.On || step.Fell
	if step.Phase == se.Detecting && hit && step.OnFor < m.cfg.AbsorbFrames {
		a *= m.cfg.OutlierWeight
	}
	for i, v := range gray {
		m.bg[i] += a * (float64(v) - m.bg[i])
	}
	for i, p := range m.hist {
		m.bgHist[i] += a * (p - m.bgHist[i])
	}
	m.edge += a * (e - m.edge)
	copy(m.prev, gray)

	if !step.Rose && !step.Fell {
		return nil, nil
	}
	ev := &Event{Frame: frame, On: step.Rose}
	for i, o := range out.Over {
		if o {
			ev.Inputs = append(ev.Inputs, InputName(i))
		}
	}
	return ev, nil
}
