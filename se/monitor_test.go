package se

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sestream/sestream/internal/quantile"
)

// chi2Quantile is the Wilson-Hilferty approximation of the chi-square quantile with k degrees of freedom
// at the normal quantile zq.
func chi2Quantile(k, zq float64) float64 {
	a := 2 / (9 * k)
	v := 1 - a + zq*math.Sqrt(a)
	return k * v * v * v
}

// correlatedGates draws gates around 0.5 whose channels share a strong common factor, as real SE gates
// do: g = 0.5 + f*load + noise, per-channel loads and noise levels fixed by seed. With factorGroup > 0
// each run of factorGroup channels has its own independent factor.
type correlatedGates struct {
	rng         *rand.Rand
	load, noise []float64
	factorGroup int
}

func newCorrelatedGates(seed uint64, c int) *correlatedGates {
	g := &correlatedGates{rng: rand.New(rand.NewPCG(seed, 1)), load: make([]float64, c), noise: make([]float64, c), factorGroup: c}
	for i := range c {
		g.load[i] = 0.02 + 0.03*g.rng.Float64()
		g.noise[i] = 0.002 + 0.004*g.rng.Float64()
	}
	return g
}

func (g *correlatedGates) draw(dst []float32) {
	var f float64
	for i := range dst {
		if i%g.factorGroup == 0 {
			f = g.rng.NormFloat64()
		}
		dst[i] = float32(0.5 + f*g.load[i] + g.noise[i]*g.rng.NormFloat64())
	}
}

// For Gaussian gates that match the baseline, C·D is chi-square with C degrees of freedom: mean of D 1,
// 99 % quantile chi2(C, 0.99)/C. Checked for one full-covariance group and for several groups (each
// with its own common factor, so that the block-diagonal covariance is the true one).
func TestGateBaselineGaussianScore(t *testing.T) {
	for _, tc := range []struct{ c, group int }{{16, 16}, {64, 16}, {40, 8}} {
		src := newCorrelatedGates(7, tc.c)
		src.factorGroup = tc.group
		b, err := NewGateBaseline(tc.c, tc.group, 0, 1e6, 1)
		if err != nil {
			t.Fatal(err)
		}
		s := make([]float32, tc.c)
		for range 20000 {
			src.draw(s)
			if _, err := b.Score(s); err != nil {
				t.Fatal(err)
			}
			b.Learn(1, s)
		}
		const n = 20000
		d := make([]float64, n)
		var sum float64
		for i := range d {
			src.draw(s)
			d[i], _ = b.Score(s)
			sum += d[i]
		}
		mean := sum / n
		slices.Sort(d)
		q99 := quantile.NearestRank(d, 0.99)
		want99 := chi2Quantile(float64(tc.c), 2.3263) / float64(tc.c)
		// The mean of n draws of D has standard error sqrt(2/C/n) < 0.003; estimation error of the
		// covariance from 20000 frames adds about C/20000.
		if math.Abs(mean-1) > 0.02 {
			t.Errorf("C=%d group %d: mean score %.4f, want 1 ± 0.02", tc.c, tc.group, mean)
		}
		if math.Abs(q99/want99-1) > 0.04 {
			t.Errorf("C=%d group %d: 99%% quantile %.4f, want chi-square's %.4f ± 4%%", tc.c, tc.group, q99, want99)
		}
	}
}

// Without the covariance (group size 1) the common factor dominates: a shift against the factor that
// the full model sees as extreme looks ordinary per channel. This is why the baseline keeps covariances.
func TestGateBaselineCovarianceSeesAgainstTheGrain(t *testing.T) {
	const c = 16
	full, _ := NewGateBaseline(c, 16, 0.01, 1e6, 1)
	diag, _ := NewGateBaseline(c, 1, 0, 1e6, 1)
	src := newCorrelatedGates(3, c)
	s := make([]float32, c)
	for range 5000 {
		src.draw(s)
		full.Score(s)
		full.Learn(1, s)
		diag.Score(s)
		diag.Learn(1, s)
	}
	// Half the channels up, half down by 1.5 of their own standard deviations.
	for i := range s {
		sd := math.Hypot(src.load[i], src.noise[i])
		sign := 1.0
		if i%2 == 1 {
			sign = -1
		}
		s[i] = float32(full.Mean(i) + sign*1.5*sd)
	}
	df, _ := full.Score(s)
	dd, _ := diag.Score(s)
	if dd > 3 || df < 20 {
		t.Errorf("against-the-grain frame: diagonal score %.2f (want <= 3), full %.2f (want >= 20)", dd, df)
	}
	if z := full.Z(0); math.Abs(z-1.5) > 0.1 {
		t.Errorf("channel 0 z = %.3f, want 1.5", z)
	}
}

func TestGateBaselineErrors(t *testing.T) {
	b, _ := NewGateBaseline(4, 2, 0, 10, 1)
	if _, err := b.Score([]float32{1, 2, 3}); !errors.Is(err, ErrShape) {
		t.Errorf("3 gates for 4 channels: err %v, want ErrShape", err)
	}
	if _, err := b.Score([]float32{1, float32(math.NaN()), 3, 4}); !errors.Is(err, ErrInvalidGates) {
		t.Errorf("NaN gate: err %v, want ErrInvalidGates", err)
	}
	for _, bad := range []struct {
		c, g    int
		sh, mem float64
		refresh int
	}{{0, 1, 0, 10, 1}, {4, 0, 0, 10, 1}, {4, 1, 1.5, 10, 1}, {4, 1, 0, 0.5, 1}, {4, 1, 0, 10, 0}} {
		if _, err := NewGateBaseline(bad.c, bad.g, bad.sh, bad.mem, bad.refresh); err == nil {
			t.Errorf("NewGateBaseline%v: no error", bad)
		}
	}
}

func detectorConfig() DetectorConfig {
	return DetectorConfig{Warmup: 10, Calibration: 2000, Quantile: 0.95, Window: 10, FalseAlarmFrames: 5000, FallFrames: 5}
}

// The calibrated per-frame threshold gives hits at 1 - Quantile on fresh frames of the same
// distribution, and the calibrated rise count keeps alarms at or below the target rate.
func TestDetectorFalseAlarmRate(t *testing.T) {
	t.Run("2 inputs", func(t *testing.T) { testDetectorFalseAlarmRate(t, 2) })
	// With 4 inputs the evidence count (inputs over threshold in a window) can raise alarms too.
	t.Run("4 inputs", func(t *testing.T) { testDetectorFalseAlarmRate(t, 4) })
}

func testDetectorFalseAlarmRate(t *testing.T, inputs int) {
	rng := rand.New(rand.NewPCG(11, uint64(inputs)))
	cfg := detectorConfig()
	d, err := NewDetector(cfg, inputs)
	if err != nil {
		t.Fatal(err)
	}
	score := make([]float64, inputs)
	draw := func() {
		for i := range score {
			if i%2 == 0 {
				score[i] = rng.ExpFloat64()
			} else {
				score[i] = 3 + rng.NormFloat64()
			}
		}
	}
	for range cfg.Warmup + cfg.Calibration {
		draw()
		if st, _ := d.Update(score); st.Rose || st.On {
			t.Fatal("alarm during warm-up or calibration")
		}
	}
	// Expected per-frame hit rate with independent inputs at the 95 % quantile: 1 - 0.95^inputs.
	wantHit := 1 - math.Pow(cfg.Quantile, float64(inputs))
	if math.Abs(d.HitRate()-wantHit) > 0.015 {
		t.Errorf("calibration hit rate %.4f, want %.4f ± 0.015", d.HitRate(), wantHit)
	}
	if want := BinomialRiseCount(cfg.Window, d.HitRate(), 1/cfg.FalseAlarmFrames); d.RiseCount() < want {
		t.Errorf("rise count %d, want >= the binomial bound %d", d.RiseCount(), want)
	}
	const n = 200000
	hits, rises := 0, 0
	for range n {
		draw()
		st, _ := d.Update(score)
		if st.Hit {
			hits++
		}
		if st.Rose {
			rises++
		}
	}
	// Each threshold is a quantile of 2000 frames (standard error 0.005); the union of the inputs adds
	// their errors up.
	if got, tol := float64(hits)/n, 0.006*float64(inputs); math.Abs(got-wantHit) > tol {
		t.Errorf("hit rate on fresh frames %.4f, want %.4f ± %.3f", got, wantHit, tol)
	}
	// Target: one alarm per FalseAlarmFrames frames, that is 40 in 200000; the rise count is an integer
	// at or above the bound, so fewer is expected, more than 1.5x the target is a failure.
	if limit := int(1.5 * n / cfg.FalseAlarmFrames); rises > limit {
		t.Errorf("%d false alarms in %d frames, want <= %d", rises, n, limit)
	}
}

func TestBinomialRiseCount(t *testing.T) {
	for _, tc := range []struct {
		n    int
		p, a float64
		want int
	}{
		{10, 0.05, 1e-3, 4}, // P(X>=4) = 1.0e-3 > 1e-3? computed below
		{1, 0.5, 0.6, 1},
		{12, 0.01, 1.0 / 43200, 4},
		{12, 0.9, 1e-6, 12},
	} {
		got := BinomialRiseCount(tc.n, tc.p, tc.a)
		// Check against a direct sum.
		tail := func(m int) float64 {
			var s float64
			for k := m; k <= tc.n; k++ {
				lg1, _ := math.Lgamma(float64(tc.n + 1))
				lg2, _ := math.Lgamma(float64(k + 1))
				lg3, _ := math.Lgamma(float64(tc.n - k + 1))
				s += math.Exp(lg1 - lg2 - lg3 + float64(k)*math.Log(tc.p) + float64(tc.n-k)*math.Log(1-tc.p))
			}
			return s
		}
		ok := got == tc.n || tail(got) <= tc.a
		if got > 1 && tail(got-1) <= tc.a {
			ok = false
		}
		if !ok {
			t.Errorf("BinomialRiseCount(%d, %v, %v) = %d: tail there %.3g, below %.3g", tc.n, tc.p, tc.a, got, tail(got), tail(max(got-1, 1)))
		}
	}
}

// One odd frame does not raise an alarm; a sustained shift raises one after exactly RiseCount frames, and
// it falls once the window is back at the fall level for FallFrames frames.
func TestDetectorHysteresisAndMinimumDuration(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	cfg := detectorConfig()
	cfg.Quantile = 0.999
	d, _ := NewDetector(cfg, 1)
	s := []float64{0}
	step := func(v float64) DetectorStep {
		s[0] = v
		st, err := d.Update(s)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for range cfg.Warmup + cfg.Calibration {
		step(rng.Float64())
	}
	rise := d.RiseCount()
	if rise < 2 {
		t.Fatalf("rise count %d, want >= 2 for this test", rise)
	}
	// Quiet frames: below every calibration score's quantile.
	for range 50 {
		step(0.5)
	}
	if st := step(100); st.Rose || st.On || !st.Hit {
		t.Errorf("single odd frame: %+v, want a hit and no alarm", st)
	}
	for range 50 {
		if st := step(0.5); st.On {
			t.Fatal("alarm after a single odd frame")
		}
	}
	for i := 1; i <= 100; i++ {
		st := step(100)
		if i < rise && st.On {
			t.Fatalf("alarm after %d shifted frames, want it after %d", i, rise)
		}
		if i == rise && !st.Rose {
			t.Fatalf("no rise after %d shifted frames (count %d)", i, st.Count)
		}
		if i > rise && (st.Rose || !st.On) {
			t.Fatalf("frame %d of the shift: %+v, want on without a new rise", i, st)
		}
	}
	// After i quiet frames the window holds Window-i hits; the count is at the fall level from
	// i = Window-FallCount on, and the alarm falls FallFrames frames later.
	fallAt := cfg.Window - d.FallCount() + cfg.FallFrames - 1
	for i := 1; i <= 40; i++ {
		st := step(0.5)
		if i < fallAt && (!st.On || st.Fell) {
			t.Fatalf("alarm fell %d frames after the shift, want after %d", i, fallAt)
		}
		if i == fallAt && !st.Fell {
			t.Fatalf("alarm did not fall %d frames after the shift (count %d, fall count %d)", i, st.Count, d.FallCount())
		}
	}
}

// The evidence count: a change that puts every input over its threshold rises after fewer frames than a
// change of one input, a single frame with every input over does not rise, and on independent inputs the
// evidence level is no lower than the count of inputs a window of single-input hits reaches.
func TestDetectorEvidence(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 3))
	cfg := detectorConfig()
	const inputs = 4
	d, err := NewDetector(cfg, inputs)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]float64, inputs)
	step := func(over int) DetectorStep {
		for i := range s {
			s[i] = rng.NormFloat64()
			if i < over {
				s[i] = 100
			}
		}
		st, err := d.Update(s)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for range cfg.Warmup + cfg.Calibration {
		step(0)
	}
	rise, eRise := d.RiseCount(), d.EvidenceRise()
	if eRise < rise || eRise > cfg.Window*inputs {
		t.Fatalf("evidence rise %d, want in [rise count %d, %d]", eRise, rise, cfg.Window*inputs)
	}
	if eRise <= inputs {
		t.Fatalf("evidence rise %d, want > %d inputs for this test", eRise, inputs)
	}
	// framesToRise feeds frames with the first over inputs far over threshold until the alarm rises, then
	// quiet frames until it has fallen; it returns how many changed frames the rise took.
	framesToRise := func(over int) int {
		n := 0
		for ; n < 100; n++ {
			if st := step(over); st.Rose {
				n++
				break
			}
		}
		for range 200 {
			if st := step(0); !st.On {
				break
			}
		}
		if d.On() {
			t.Fatal("alarm did not fall on quiet frames")
		}
		for range cfg.Window {
			step(0)
		}
		return n
	}
	one, all := framesToRise(1), framesToRise(inputs)
	// Evidence from the chance hits of the quiet frames before the change can make it sooner, never later.
	wantAll := min(rise, (eRise+inputs-1)/inputs)
	if all > wantAll || all < 2 {
		t.Errorf("every input over: rose after %d frames, want 2-%d (evidence rise %d, rise count %d)", all, wantAll, eRise, rise)
	}
	if one < rise-cfg.Window/2 || all >= one {
		t.Errorf("one input over: rose after %d frames, every input: %d; want the latter sooner", one, all)
	}
	for range cfg.Window {
		step(0)
	}
	if st := step(inputs); st.Rose {
		t.Errorf("a single frame with every input over raised an alarm: %+v", st)
	}
}

// Neither warm-up nor calibration raises anything, however extreme the scores.
func TestDetectorWarmupEmitsNothing(t *testing.T) {
	cfg := detectorConfig()
	d, _ := NewDetector(cfg, 1)
	for i := range cfg.Warmup + cfg.Calibration {
		st, _ := d.Update([]float64{float64(i * i)})
		if st.Rose || st.On || st.Hit {
			t.Fatalf("frame %d (phase %v): %+v", i, st.Phase, st)
		}
	}
	if d.Phase() != Detecting {
		t.Errorf("phase %v after warm-up and calibration, want detecting", d.Phase())
	}
}

func TestMonitorConfigValidate(t *testing.T) {
	if err := DefaultMonitorConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	c := DefaultMonitorConfig()
	c.GroupSize, c.FrameQuantile, c.OutlierWeight = 0, 1, -0.5
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"group_size is 0, want in [1, 256]", "frame_quantile is 1, want in [0.5, 0.9999]", "outlier_weight is -0.5, want in [0, 1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Range.Field != "GroupSize" {
		t.Errorf("first field error %v, want GroupSize", fe)
	}
	if n := len(MonitorRanges()); n != len(c.values()) {
		t.Errorf("%d ranges for %d fields", n, len(c.values()))
	}
	for _, r := range MonitorRanges() {
		if r.Min > r.Max {
			t.Errorf("%s: empty range", r.Name)
		}
	}
}

// mobilenetChannels are torchvision mobilenet_v3_small's SE blocks, 2296 gates per frame.
var mobilenetChannels = []int{16, 96, 240, 240, 120, 144, 288, 576, 576}

type gateSource struct {
	src   []*correlatedGates
	gates [][]float32
}

func newGateSource(seed uint64, channels []int) *gateSource {
	g := &gateSource{}
	for i, c := range channels {
		g.src = append(g.src, newCorrelatedGates(seed+uint64(i), c))
		g.gates = append(g.gates, make([]float32, c))
	}
	return g
}

func (g *gateSource) next() [][]float32 {
	for i, s := range g.src {
		s.draw(g.gates[i])
	}
	return g.gates
}

func testMonitorConfig() MonitorConfig {
	c := DefaultMonitorConfig()
	c.WarmupFrames, c.CalibrationFrames, c.MemoryFrames = 300, 300, 1000
	return c
}

// End to end: a normal stream raises nothing; shifting a few channels of one block against the common
// factor raises one rise naming that block and those channels, and a fall after it ends.
func TestAttentionMonitorShift(t *testing.T) {
	channels := []int{16, 32, 64}
	cfg := testMonitorConfig()
	m, err := NewAttentionMonitor(cfg, channels)
	if err != nil {
		t.Fatal(err)
	}
	src := newGateSource(21, channels)
	out := m.NewSample()
	frame := uint64(0)
	feed := func(n int, shift bool) []*AttentionEvent {
		var evs []*AttentionEvent
		for range n {
			frame++
			g := src.next()
			if shift {
				for _, c := range []int{3, 7} {
					g[1][c] += 0.05
				}
			}
			ev, err := m.Update(frame, g, out)
			if err != nil {
				t.Fatal(err)
			}
			if ev != nil {
				evs = append(evs, ev)
			}
		}
		return evs
	}
	if evs := feed(cfg.WarmupFrames+cfg.CalibrationFrames, false); len(evs) > 0 {
		t.Fatalf("events during warm-up and calibration: %v", evs)
	}
	if evs := feed(3000, false); len(evs) > 0 || out.Phase != Detecting {
		t.Fatalf("%d events on 3000 normal frames, first at frame %d", len(evs), evs[0].Frame)
	}
	start := frame
	evs := feed(48, true)
	if len(evs) != 1 || !evs[0].On {
		t.Fatalf("shift: events %+v, want one rise", evs)
	}
	ev := evs[0]
	if delay := ev.Frame - start; delay > uint64(cfg.WindowFrames) {
		t.Errorf("rise %d frames after the shift began, want <= %d", delay, cfg.WindowFrames)
	}
	if len(ev.Blocks) == 0 || ev.Blocks[0].Order != 1 {
		t.Fatalf("rise blocks %+v, want block 1 first", ev.Blocks)
	}
	moved := []int{ev.Blocks[0].Moved[0].Channel, ev.Blocks[0].Moved[1].Channel}
	slices.Sort(moved)
	if !slices.Equal(moved, []int{3, 7}) || ev.Blocks[0].Moved[1].Z < 1 {
		t.Errorf("most moved channels %+v, want 3 and 7 with z > 1", ev.Blocks[0].Moved)
	}
	if !ev.On {
		t.Errorf("event %+v is a fall, want a rise", ev)
	}
	evs = feed(200, false)
	if len(evs) != 1 || evs[0].On {
		t.Fatalf("after the shift: %d events, want one fall", len(evs))
	}
	// The window still holds shifted frames for WindowFrames frames; then the count must stay at the
	// normal level for FallFrames frames.
	if d := evs[0].Frame - start - 48; d < uint64(cfg.FallFrames) || d > uint64(cfg.WindowFrames+cfg.FallFrames+24) {
		t.Errorf("fall %d frames after the shift ended, want in [%d, %d]", d, cfg.FallFrames, cfg.WindowFrames+cfg.FallFrames+24)
	}
}

func TestAttentionMonitorBadInput(t *testing.T) {
	m, _ := NewAttentionMonitor(testMonitorConfig(), []int{4, 8})
	out := m.NewSample()
	if _, err := m.Update(1, [][]float32{make([]float32, 4)}, out); !errors.Is(err, ErrShape) {
		t.Errorf("one block for two: %v", err)
	}
	if _, err := m.Update(1, [][]float32{make([]float32, 4), make([]float32, 7)}, out); !errors.Is(err, ErrShape) {
		t.Errorf("7 gates for 8: %v", err)
	}
	if _, err := NewAttentionMonitor(MonitorConfig{}, []int{4}); err == nil {
		t.Error("zero config accepted")
	}
}

func TestAttentionMonitorAllocs(t *testing.T) {
	m, _ := NewAttentionMonitor(testMonitorConfig(), mobilenetChannels)
	src := newGateSource(1, mobilenetChannels)
	out := m.NewSample()
	frame := uint64(0)
	for range 700 {
		frame++
		m.Update(frame, src.next(), out)
	}
	allocs := testing.AllocsPerRun(200, func() {
		frame++
		if ev, _ := m.Update(frame, src.next(), out); ev != nil {
			t.Log("event during allocation count")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

// One frame of mobilenet_v3_small's nine SE blocks (2296 gates) after warm-up and calibration.
func BenchmarkAttentionMonitorMobileNetV3Small(b *testing.B) {
	benchmarkMonitor(b, mobilenetChannels, testMonitorConfig())
}

// The same with covariance groups of 4 channels instead of the default 8.
func BenchmarkAttentionMonitorMobileNetV3SmallGroup4(b *testing.B) {
	cfg := testMonitorConfig()
	cfg.GroupSize = 4
	benchmarkMonitor(b, mobilenetChannels, cfg)
}

// One frame of the bundled model's three SE blocks (112 gates).
func BenchmarkAttentionMonitorBundled(b *testing.B) {
	benchmarkMonitor(b, []int{16, 32, 64}, testMonitorConfig())
}

func benchmarkMonitor(b *testing.B, channels []int, cfg MonitorConfig) {
	m, err := NewAttentionMonitor(cfg, channels)
	if err != nil {
		b.Fatal(err)
	}
	src := newGateSource(1, channels)
	out := m.NewSample()
	frame := uint64(0)
	for range 700 {
		frame++
		m.Update(frame, src.next(), out)
	}
	frames := make([][][]float32, 64)
	for i := range frames {
		for _, g := range src.next() {
			frames[i] = append(frames[i], slices.Clone(g))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		frame++
		m.Update(frame, frames[i%len(frames)], out)
	}
}

// A short memory forgets fast; the covariance's running scale underflows and is renormalized (after
// about 3300 frames at memory 10) without changing what the baseline says.
func TestGateBaselineShortMemory(t *testing.T) {
	const c = 8
	src := newCorrelatedGates(9, c)
	b, _ := NewGateBaseline(c, 8, 0, 10, 1)
	s := make([]float32, c)
	var sum float64
	const n = 20000
	for i := range n {
		src.draw(s)
		d, err := b.Score(s)
		if err != nil || math.IsNaN(d) || math.IsInf(d, 0) {
			t.Fatalf("frame %d: score %v, %v", i, d, err)
		}
		if i >= 100 {
			sum += d
		}
		b.Learn(1, s)
	}
	// With 10 frames of memory the baseline is a noisy estimate; the mean score is above 1 but bounded.
	if mean := sum / (n - 100); mean < 0.9 || mean > 3 {
		t.Errorf("mean score %.3f with memory 10, want in [0.9, 3]", mean)
	}
	want := math.Hypot(src.load[0], src.noise[0])
	if got := b.Std(0); got < 0.5*want || got > 1.5*want {
		t.Errorf("std of channel 0 = %.4f, want about %.4f", got, want)
	}
}
