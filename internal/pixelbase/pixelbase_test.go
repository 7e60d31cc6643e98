package pixelbase

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sestream/sestream/se"
)

const w, h = 48, 27

// scene draws a textured frame: a checker of 4-pixel squares with a soft gradient, shifted by up to one
// pixel per frame, plus Gaussian noise (sigma 3 levels).
type scene struct {
	rng *rand.Rand
	buf []byte
}

func newScene(seed uint64) *scene {
	return &scene{rng: rand.New(rand.NewPCG(seed, 9)), buf: make([]byte, w*h)}
}

func (s *scene) frame() []byte {
	dx := s.rng.IntN(2)
	for y := range h {
		for x := range w {
			v := 60.0 + 2*float64(x)
			if ((x+dx)/4+y/4)%2 == 0 {
				v += 80
			}
			v += 3 * s.rng.NormFloat64()
			s.buf[y*w+x] = byte(min(255, max(0, v)))
		}
	}
	return s.buf
}

func blur(src []byte) []byte {
	out := make([]byte, len(src))
	for y := range h {
		for x := range w {
			var sum, n int
			for yy := max(0, y-3); yy <= min(h-1, y+3); yy++ {
				for xx := max(0, x-3); xx <= min(w-1, x+3); xx++ {
					sum += int(src[yy*w+xx])
					n++
				}
			}
			out[y*w+x] = byte(sum / n)
		}
	}
	return out
}

func testConfig() Config {
	c := DefaultConfig()
	c.Detector = se.DetectorConfig{Warmup: 50, Calibration: 300, Quantile: 0.99, Window: 12, FalseAlarmFrames: 43200, FallFrames: 12}
	return c
}

func TestMonitorTamper(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(f, first []byte) []byte
		input  int
	}{
		{"black", func(f, _ []byte) []byte { return make([]byte, len(f)) }, Difference},
		{"defocus", func(f, _ []byte) []byte { return blur(f) }, Defocus},
		{"freeze", func(_, first []byte) []byte { return first }, Freeze},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			m, err := New(cfg, w, h)
			if err != nil {
				t.Fatal(err)
			}
			sc := newScene(4)
			var out Sample
			frame := uint64(0)
			for range cfg.Detector.Warmup + cfg.Detector.Calibration + 2000 {
				frame++
				ev, err := m.Update(frame, sc.frame(), &out)
				if err != nil {
					t.Fatal(err)
				}
				if ev != nil {
					t.Fatalf("event on a normal frame %d: %+v", frame, ev)
				}
			}
			start := frame
			first := slices.Clone(sc.frame())
			var rise *Event
			for range 48 {
				frame++
				ev, _ := m.Update(frame, tc.tamper(sc.frame(), first), &out)
				if ev != nil && ev.On && rise == nil {
					rise = ev
				}
			}
			if rise == nil {
				t.Fatalf("no alarm in 48 tampered frames; last sample %+v", out)
			}
			if d := rise.Frame - start; d > uint64(cfg.Detector.Window) {
				t.Errorf("alarm %d frames after the tamper began, want <= %d", d, cfg.Detector.Window)
			}
			if !slices.Contains(rise.Inputs, InputName(tc.input)) {
				t.Errorf("alarm inputs %v, want %s among them", rise.Inputs, InputName(tc.input))
			}
			fell := false
			for range 60 {
				frame++
				if ev, _ := m.Update(frame, sc.frame(), &out); ev != nil && !ev.On {
					fell = true
				}
			}
			if !fell {
				t.Error("alarm did not fall after the tamper ended")
			}
		})
	}
}

func TestMonitorErrors(t *testing.T) {
	if _, err := New(testConfig(), 1, 5); err == nil {
		t.Error("1 x 5 frame accepted")
	}
	c := testConfig()
	c.Bins = 1
	if _, err := New(c, w, h); err == nil {
		t.Error("1 bin accepted")
	}
	m, _ := New(testConfig(), w, h)
	var out Sample
	if _, err := m.Update(1, make([]byte, w*h-1), &out); err == nil {
		t.Error("short frame accepted")
	}
}

func BenchmarkMonitor64x36(b *testing.B) {
	m, _ := New(testConfig(), 64, 36)
	frame := make([]byte, 64*36)
	var out Sample
	b.ReportAllocs()
	for i := range b.N {
		frame[i%len(frame)]++
		m.Update(uint64(i), frame, &out)
	}
}
