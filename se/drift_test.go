package se

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestDriftConfigValidate(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		modify func(c *DriftConfig)
		want   []string // substrings, one per expected field error; empty means valid
	}{
		{"default", func(c *DriftConfig) {}, nil},
		{"alpha 1, no hysteresis, warm-up 1, no top", func(c *DriftConfig) {
			c.Alpha, c.Hysteresis, c.Warmup, c.TopChanges = 1, 0, 1, 0
		}, nil},
		{"alpha 0", func(c *DriftConfig) { c.Alpha = 0 }, []string{"Alpha is 0"}},
		{"alpha above 1", func(c *DriftConfig) { c.Alpha = 1.5 }, []string{"Alpha is 1.5"}},
		{"alpha NaN", func(c *DriftConfig) { c.Alpha = nan }, []string{"Alpha is NaN"}},
		{"threshold 0", func(c *DriftConfig) { c.Threshold, c.Hysteresis = 0, 0 }, []string{"Threshold is 0", "Hysteresis is 0"}},
		{"threshold above 1", func(c *DriftConfig) { c.Threshold = 1.1 }, []string{"Threshold is 1.1"}},
		{"hysteresis equal to threshold", func(c *DriftConfig) { c.Hysteresis = c.Threshold }, []string{"Hysteresis is 0.1"}},
		{"negative hysteresis", func(c *DriftConfig) { c.Hysteresis = -0.01 }, []string{"Hysteresis is -0.01"}},
		{"hysteresis NaN", func(c *DriftConfig) { c.Hysteresis = nan }, []string{"Hysteresis is NaN"}},
		{"no warm-up", func(c *DriftConfig) { c.Warmup = 0 }, []string{"Warmup is 0"}},
		{"negative top", func(c *DriftConfig) { c.TopChanges = -1 }, []string{"TopChanges is -1"}},
		{"zero value: every field", func(c *DriftConfig) { *c = DriftConfig{} },
			[]string{"Alpha is 0", "Threshold is 0", "Hysteresis is 0", "Warmup is 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultDriftConfig()
			tt.modify(&cfg)
			err := cfg.Validate()
			_, newErr := NewDrift(cfg)
			if len(tt.want) == 0 {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, NewDrift = %v, want nil", err, newErr)
				}
				return
			}
			if err == nil || newErr == nil {
				t.Fatalf("Validate = %v, NewDrift = %v, want errors", err, newErr)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("got %d errors %q, want %d", len(lines), lines, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// ramp returns C gates rising linearly from lo to hi.
func ramp(c int, lo, hi float32) []float32 {
	s := make([]float32, c)
	for i := range s {
		s[i] = lo + (hi-lo)*float32(i)/float32(c-1)
	}
	return s
}

// runDrift feeds frames 1..len(seq) and returns every sample.
func runDrift(t *testing.T, d *Drift, seq [][]float32) []DriftSample {
	t.Helper()
	samples := make([]DriftSample, 0, len(seq))
	for i, s := range seq {
		smp, err := d.Update(uint64(i+1), s)
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if smp.Frame != uint64(i+1) {
			t.Fatalf("frame %d: sample says frame %d", i+1, smp.Frame)
		}
		if math.IsNaN(smp.Drift) || smp.Drift < 0 || smp.Drift > 1 {
			t.Fatalf("frame %d: drift %v outside [0, 1]", i+1, smp.Drift)
		}
		samples = append(samples, smp)
	}
	return samples
}

func events(samples []DriftSample) []*DriftEvent {
	var ev []*DriftEvent
	for _, s := range samples {
		if s.Event != nil {
			ev = append(ev, s.Event)
		}
	}
	return ev
}

func repeat(s []float32, n int) [][]float32 {
	seq := make([][]float32, n)
	for i := range seq {
		seq[i] = s
	}
	return seq
}

func concat(parts ...[][]float32) [][]float32 {
	var seq [][]float32
	for _, p := range parts {
		seq = append(seq, p...)
	}
	return seq
}

var testDriftConfig = DriftConfig{Alpha: 0.1, Threshold: 0.2, Hysteresis: 0.1, Warmup: 10, TopChanges: 3}

func TestDriftSteadySwitchBack(t *testing.T) {
	const c = 32
	a := ramp(c, 0.1, 0.9) // steady pattern
	b := ramp(c, 0.9, 0.1) // the same gates, reversed: cosine(a, b) is about 0.65
	// Frames 1-50: a. Frames 51-70: b. Frames 71-150: a again.
	seq := concat(repeat(a, 50), repeat(b, 20), repeat(a, 80))
	d, err := NewDrift(testDriftConfig)
	if err != nil {
		t.Fatal(err)
	}
	samples := runDrift(t, d, seq)
	ev := events(samples)
	if len(ev) != 2 {
		for _, e := range ev {
			t.Logf("event %s at frame %d, drift %.4f", e.Kind(), e.Frame, e.Drift)
		}
		t.Fatalf("got %d events, want exactly 2 (one rise, one fall)", len(ev))
	}
	rise, fall := ev[0], ev[1]
	if !rise.On || rise.Kind() != "drift_on" || rise.Frame != 51 {
		t.Errorf("first event: %s at frame %d, want drift_on at frame 51", rise.Kind(), rise.Frame)
	}
	if fall.On || fall.Kind() != "drift_off" || fall.Frame != 71 {
		t.Errorf("second event: %s at frame %d, want drift_off at frame 71", fall.Kind(), fall.Frame)
	}
	if rise.Drift <= testDriftConfig.Threshold || rise.Threshold != testDriftConfig.Threshold {
		t.Errorf("rise drift %v over threshold %v, want over %v", rise.Drift, rise.Threshold, testDriftConfig.Threshold)
	}
	low := testDriftConfig.Threshold - testDriftConfig.Hysteresis
	if fall.Drift >= low || math.Abs(fall.Threshold-low) > 1e-15 {
		t.Errorf("fall drift %v under threshold %v, want under %v", fall.Drift, fall.Threshold, low)
	}
	// The rise's drift is 1 - cosine(b, a), the baseline being exactly a.
	want := 1 - cosine(b, a)
	if math.Abs(rise.Drift-want) > 1e-6 {
		t.Errorf("rise drift = %v, want 1 - cos(b, a) = %v", rise.Drift, want)
	}
	// Channels 0 and 31 moved by 0.8 (31 by a rounding error less), then 1 and 30.
	wantChanges := []ChannelChange{{0, a[0], b[0]}, {31, a[31], b[31]}, {1, a[1], b[1]}}
	if len(rise.Changes) != len(wantChanges) {
		t.Fatalf("rise changes = %v, want %v", rise.Changes, wantChanges)
	}
	for i, w := range wantChanges {
		g := rise.Changes[i]
		if g.Channel != w.Channel || math.Abs(float64(g.Before-w.Before)) > 1e-6 || g.After != w.After {
			t.Errorf("rise change %d = %v, want %v", i, g, w)
		}
	}
	// States per frame: off through 50, on 51-70, off from 71.
	for _, s := range samples {
		wantOn := s.Frame >= 51 && s.Frame <= 70
		if s.On != wantOn {
			t.Errorf("frame %d: on = %v, want %v (drift %.4f)", s.Frame, s.On, wantOn, s.Drift)
		}
		if s.Warming != (s.Frame <= 10) {
			t.Errorf("frame %d: warming = %v", s.Frame, s.Warming)
		}
	}
}

func cosine(a, b []float32) float64 {
	var dot, aa, bb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(aa*bb)
}

// TestDriftHysteresis walks drift around the threshold against a fixed baseline: values between
// Threshold - Hysteresis and Threshold keep whatever state drift is in.
func TestDriftHysteresis(t *testing.T) {
	// Threshold 0.2, off below 0.1. Alpha is tiny, so the baseline stays the seed [1, 0].
	cfg := DriftConfig{Alpha: 1e-9, Threshold: 0.2, Hysteresis: 0.1, Warmup: 1, TopChanges: 1}
	tests := []struct {
		drift  float64
		wantOn bool
		event  string
	}{
		{0.15, false, ""}, // in the band, off stays off
		{0.19, false, ""},
		{0.25, true, "drift_on"},
		{0.15, true, ""}, // in the band, on stays on
		{0.11, true, ""},
		{0.3, true, ""},
		{0.05, false, "drift_off"},
		{0.15, false, ""},
		{0.21, true, "drift_on"},
	}
	d, err := NewDrift(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(1, []float32{1, 0}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		frame := uint64(i + 2)
		c := 1 - tt.drift // s = [cos θ, sin θ] with 1 - cos θ = drift
		smp, err := d.Update(frame, []float32{float32(c), float32(math.Sqrt(1 - c*c))})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(smp.Drift-tt.drift) > 1e-6 {
			t.Fatalf("frame %d: drift %v, want %v", frame, smp.Drift, tt.drift)
		}
		got := ""
		if smp.Event != nil {
			got = smp.Event.Kind()
		}
		if smp.On != tt.wantOn || got != tt.event {
			t.Errorf("frame %d, drift %.2f: on %v event %q, want on %v event %q",
				frame, tt.drift, smp.On, got, tt.wantOn, tt.event)
		}
	}
}

func TestDriftLastingChangeEndsWithFall(t *testing.T) {
	a, b := ramp(32, 0.1, 0.9), ramp(32, 0.9, 0.1)
	seq := concat(repeat(a, 50), repeat(b, 1000))
	d, err := NewDrift(testDriftConfig)
	if err != nil {
		t.Fatal(err)
	}
	ev := events(runDrift(t, d, seq))
	if len(ev) != 2 || !ev[0].On || ev[0].Frame != 51 || ev[1].On {
		t.Fatalf("events %v, want a rise at frame 51 and one fall", ev)
	}
	// The slowed baseline (Alpha/10 = 0.01 per frame) must not absorb the change at once,
	// but must absorb it well within the sequence.
	if ev[1].Frame < 80 || ev[1].Frame > 600 {
		t.Errorf("fall at frame %d, want between 80 and 600", ev[1].Frame)
	}
}

func TestDriftNoisySteadyRaisesNothing(t *testing.T) {
	const c, frames = 96, 3000
	base := ramp(c, 0.05, 0.95)
	rng := xorshift(11)
	noisy := func(shift bool) []float32 {
		s := make([]float32, c)
		for i := range s {
			j := i
			if shift {
				j = (i + c/2) % c
			}
			v := float64(base[j]) + 0.1*(rng.float()-0.5) // noise of ±0.05
			s[i] = float32(clamp(v, 0, 1))
		}
		return s
	}
	cfg := DriftConfig{Alpha: 0.05, Threshold: 0.05, Hysteresis: 0.02, Warmup: 20, TopChanges: 5}
	d, err := NewDrift(cfg)
	if err != nil {
		t.Fatal(err)
	}
	maxDrift := 0.0
	for f := uint64(1); f <= frames; f++ {
		smp, err := d.Update(f, noisy(false))
		if err != nil {
			t.Fatal(err)
		}
		if smp.Event != nil {
			t.Fatalf("frame %d: %s event on steady noisy gates (drift %.4f)", f, smp.Event.Kind(), smp.Drift)
		}
		if !smp.Warming {
			maxDrift = math.Max(maxDrift, smp.Drift)
		}
	}
	t.Logf("max drift on steady noisy gates: %.5f (threshold %v)", maxDrift, cfg.Threshold)
	// The same detector does see a real change in the same noise.
	smp, err := d.Update(frames+1, noisy(true))
	if err != nil {
		t.Fatal(err)
	}
	if smp.Event == nil || !smp.Event.On {
		t.Fatalf("shifted pattern: drift %.4f raised no rise event", smp.Drift)
	}
}

func TestDriftWarmupRaisesNothing(t *testing.T) {
	a, b := ramp(8, 0.1, 0.9), ramp(8, 0.9, 0.1)
	// Alternate wildly during the warm-up: no event may come before frame Warmup+1.
	var seq [][]float32
	for i := range 30 {
		if i%2 == 0 {
			seq = append(seq, a)
		} else {
			seq = append(seq, b)
		}
	}
	d, err := NewDrift(testDriftConfig)
	if err != nil {
		t.Fatal(err)
	}
	samples := runDrift(t, d, seq)
	for _, s := range samples {
		if s.Frame <= uint64(testDriftConfig.Warmup) && (s.Event != nil || s.On) {
			t.Errorf("frame %d: event %v / on %v during warm-up", s.Frame, s.Event, s.On)
		}
	}
	if samples[0].Drift != 0 || !samples[0].Warming {
		t.Errorf("first frame: drift %v warming %v, want 0 and true", samples[0].Drift, samples[0].Warming)
	}
	if samples[1].Drift == 0 {
		t.Error("second frame: drift 0, want the distance to the seed")
	}
	// Reset starts a new warm-up.
	d.Reset()
	if d.On() {
		t.Error("On after Reset")
	}
	after := runDrift(t, d, seq[:12])
	for _, s := range after[:testDriftConfig.Warmup] {
		if !s.Warming || s.Event != nil {
			t.Errorf("after Reset, frame %d: warming %v event %v", s.Frame, s.Warming, s.Event)
		}
	}
}

func TestDriftRejectsBadGates(t *testing.T) {
	tests := []struct {
		name     string
		s        []float32
		sentinel error
		want     string
	}{
		{"empty", nil, ErrInvalidGates, "empty"},
		{"NaN", []float32{0.5, nan32, 0.5, 0.5}, ErrInvalidGates, "frame 9: gate 1 of 4 is NaN"},
		{"Inf", []float32{0.5, 0.5, float32(math.Inf(1)), 0.5}, ErrInvalidGates, "gate 2 of 4 is +Inf"},
		{"negative", []float32{0.5, 0.5, 0.5, -1}, ErrInvalidGates, "gate 3 of 4 is -1"},
		{"channel count changed", []float32{0.5, 0.5}, ErrShape, "frame 9 has 2 gates, the drift baseline has 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDrift(DriftConfig{Alpha: 0.5, Threshold: 0.2, Hysteresis: 0.1, Warmup: 1, TopChanges: 1})
			if err != nil {
				t.Fatal(err)
			}
			steady := []float32{0.2, 0.4, 0.6, 0.8}
			for f := uint64(1); f <= 8; f++ {
				if _, err := d.Update(f, steady); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := d.Update(9, tt.s); !errors.Is(err, tt.sentinel) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Update = %v, want %v containing %q", err, tt.sentinel, tt.want)
			}
			// The bad frame left no trace: the baseline is still exactly steady.
			smp, err := d.Update(10, steady)
			if err != nil {
				t.Fatal(err)
			}
			if smp.Drift > 1e-12 || smp.Event != nil {
				t.Errorf("after a rejected frame: drift %v, event %v, want 0 and none", smp.Drift, smp.Event)
			}
		})
	}
}

func TestDriftZeroVectors(t *testing.T) {
	zero, some := []float32{0, 0, 0}, []float32{0, 1, 0}
	tests := []struct {
		name        string
		first, then []float32
		want        float64
	}{
		{"zero after zero", zero, zero, 0},
		{"zero after gates", some, zero, 1},
		{"gates after zero", zero, some, 1},
		{"same direction, other scale", some, []float32{0, 0.25, 0}, 0},
		{"disjoint channels", some, []float32{1, 0, 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDrift(DriftConfig{Alpha: 1, Threshold: 0.5, Warmup: 1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Update(1, tt.first); err != nil {
				t.Fatal(err)
			}
			smp, err := d.Update(2, tt.then)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(smp.Drift-tt.want) > 1e-12 {
				t.Errorf("drift = %v, want %v", smp.Drift, tt.want)
			}
		})
	}
}

func TestDriftEventChangesOrder(t *testing.T) {
	d, err := NewDrift(DriftConfig{Alpha: 1, Threshold: 0.1, Warmup: 1, TopChanges: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(1, []float32{0.5, 0.5, 0.5, 0.5, 0.5}); err != nil {
		t.Fatal(err)
	}
	// Channels 1, 2 and 4 all move by 0.5: ties go to the lower channel; channel 3 (0.25) is left out.
	smp, err := d.Update(2, []float32{0.5, 0, 1, 0.25, 1})
	if err != nil {
		t.Fatal(err)
	}
	if smp.Event == nil {
		t.Fatalf("no event at drift %v", smp.Drift)
	}
	want := []ChannelChange{{1, 0.5, 0}, {2, 0.5, 1}, {4, 0.5, 1}}
	if len(smp.Event.Changes) != len(want) {
		t.Fatalf("changes = %v, want %v", smp.Event.Changes, want)
	}
	for i := range want {
		if smp.Event.Changes[i] != want[i] {
			t.Errorf("changes = %v, want %v", smp.Event.Changes, want)
			break
		}
	}
	// 1 - cos: dot 1.375, norms sqrt(1.25) and sqrt(2.3125).
	if wantDrift := 1 - 1.375/math.Sqrt(1.25*2.3125); math.Abs(smp.Drift-wantDrift) > 1e-12 {
		t.Errorf("drift = %v, want %v", smp.Drift, wantDrift)
	}
}

func TestDriftUpdateAllocatesNothingWithoutEvents(t *testing.T) {
	s := ramp(576, 0.1, 0.9)
	d, err := NewDrift(DefaultDriftConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(1, s); err != nil {
		t.Fatal(err)
	}
	f := uint64(1)
	allocs := testing.AllocsPerRun(100, func() {
		f++
		if _, err := d.Update(f, s); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Update allocates %v times per frame, want 0", allocs)
	}
}

func BenchmarkDriftUpdate(b *testing.B) {
	for _, c := range []int{576, 1280} {
		b.Run("C="+itoa(c), func(b *testing.B) {
			rng := xorshift(13)
			frames := make([][]float32, 64)
			for i := range frames {
				frames[i] = randomGates(&rng, c)
			}
			d, err := NewDrift(DefaultDriftConfig())
			if err != nil {
				b.Fatal(err)
			}
			f := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				f++
				if _, err := d.Update(f, frames[f%64]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDriftUpdate feeds arbitrary frames of 4 gates: no panic, drift within [0, 1], invalid
// frames reported as ErrInvalidGates and never changing the state.
func FuzzDriftUpdate(f *testing.F) {
	f.Add(float32sToBytes([]float32{0.1, 0.2, 0.3, 0.4, 0.4, 0.3, 0.2, 0.1}))
	f.Add(float32sToBytes([]float32{0, 0, 0, 0, 1, 1, 1, 1, nan32, 0, 0, 0}))
	f.Add(float32sToBytes([]float32{1e-38, 3e38, 0, 1, -1, 0.5, 0.5, 0.5}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := NewDrift(DriftConfig{Alpha: 0.5, Threshold: 0.1, Hysteresis: 0.05, Warmup: 1, TopChanges: 2})
		if err != nil {
			t.Fatal(err)
		}
		const c = 4
		for f := 0; (f+1)*4*c <= len(raw) && f < 64; f++ {
			s := make([]float32, c)
			valid := true
			for i := range s {
				s[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[(f*c+i)*4:]))
				if !(s[i] >= 0) || math.IsInf(float64(s[i]), 0) {
					valid = false
				}
			}
			wasOn := d.On()
			smp, err := d.Update(uint64(f+1), s)
			if !valid {
				if !errors.Is(err, ErrInvalidGates) || d.On() != wasOn {
					t.Fatalf("frame %v: err %v, on %v->%v; want ErrInvalidGates and no change", s, err, wasOn, d.On())
				}
				continue
			}
			if err != nil {
				t.Fatalf("frame %v: %v", s, err)
			}
			if !(smp.Drift >= 0 && smp.Drift <= 1) {
				t.Fatalf("frame %v: drift %v outside [0, 1]", s, smp.Drift)
			}
			if smp.Event != nil {
				if _, err := json.Marshal(smp.Event); err != nil {
					t.Fatalf("event: %v", err)
				}
			}
		}
	})
}

func ExampleDrift() {
	d, err := NewDrift(DriftConfig{Alpha: 0.1, Threshold: 0.2, Hysteresis: 0.1, Warmup: 3, TopChanges: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	usual := []float32{0.9, 0.8, 0.1, 0.1}
	other := []float32{0.1, 0.1, 0.9, 0.8}
	for frame := uint64(1); frame <= 8; frame++ {
		s := usual
		if frame == 5 || frame == 6 {
			s = other // a short change of scene
		}
		smp, err := d.Update(frame, s)
		if err != nil {
			fmt.Println(err)
			return
		}
		if e := smp.Event; e != nil {
			fmt.Printf("frame %d: %s, drift %.3f, changed %v\n", e.Frame, e.Kind(), e.Drift, e.Changes)
		}
	}
	// Output:
	// frame 5: drift_on, drift 0.769, changed [{0 0.9 0.1} {2 0.1 0.9}]
	// frame 7: drift_off, drift 0.000, changed [{2 0.11592 0.1} {0 0.88408 0.9}]
}

// BenchmarkDriftFrame updates the drift of every SE block of one mobilenet_v3_small frame of a
// steady stream (no events).
func BenchmarkDriftFrame(b *testing.B) {
	channels := []int{16, 96, 240, 240, 120, 144, 288, 576, 576}
	rng := xorshift(17)
	const variants = 16
	base := make([][]float32, len(channels))
	for j, c := range channels {
		base[j] = randomGates(&rng, c)
	}
	frames := make([][][]float32, variants) // a steady stream: base gates plus noise of ±0.02
	for f := range frames {
		frames[f] = make([][]float32, len(channels))
		for j := range channels {
			frames[f][j] = make([]float32, len(base[j]))
			for i, v := range base[j] {
				frames[f][j][i] = float32(clamp(float64(v)+0.04*(rng.float()-0.5), 0, 1))
			}
		}
	}
	drifts := make([]*Drift, len(channels))
	for j := range drifts {
		var err error
		if drifts[j], err = NewDrift(DefaultDriftConfig()); err != nil {
			b.Fatal(err)
		}
	}
	f := uint64(0)
	b.ReportAllocs()
	cpu := startCPUTimer()
	for b.Loop() {
		f++
		for j, d := range drifts {
			if _, err := d.Update(f, frames[f%variants][j]); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu.report(b)
}
