package se

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

type statsCase struct {
	name string
	s    []float32
	k    int
	want Stats  // compared within statsTolerance; Top compared exactly
	err  string // non-empty: ComputeStats must fail with ErrInvalidGates containing this
}

const statsTolerance = 1e-6

var nan32 = float32(math.NaN())

// statsCases are computed by hand; they also seed FuzzComputeStats.
var statsCases = []statsCase{
	{
		name: "uniform gates: entropy 1, effective channels C",
		s:    []float32{0.5, 0.5, 0.5, 0.5}, k: 2,
		want: Stats{Mean: 0.5, Std: 0, Min: 0.5, Max: 0.5, Entropy: 1, EffectiveChannels: 4,
			Top: []TopGate{{0, 0.5}, {1, 0.5}}},
	},
	{
		name: "one-hot: entropy 0, one effective channel",
		s:    []float32{1, 0, 0, 0}, k: 1,
		// std = sqrt((0.75^2 + 3 * 0.25^2) / 4) = sqrt(0.1875)
		want: Stats{Mean: 0.25, Std: 0.4330127018922193, Min: 0, Max: 1, Entropy: 0, EffectiveChannels: 1,
			Top: []TopGate{{0, 1}}, Saturated: 0.25, Suppressed: 0.75},
	},
	{
		name: "two channels 1:3",
		// p = (0.25, 0.75): H = 0.5623351446188083 nats, H/ln 2 = 0.8112781244591328.
		s: []float32{0.25, 0.75}, k: 5,
		want: Stats{Mean: 0.5, Std: 0.25, Min: 0.25, Max: 0.75, Entropy: 0.8112781244591328,
			EffectiveChannels: 1.7547654836677144, Top: []TopGate{{1, 0.75}, {0, 0.25}}},
	},
	{
		name: "zeros among gates count as empty channels",
		// p = (0, 0.5, 0.5): H = ln 2, entropy = ln 2 / ln 3.
		s: []float32{0, 0.5, 0.5}, k: 2,
		want: Stats{Mean: 1.0 / 3, Std: 0.23570226039551584, Min: 0, Max: 0.5, Entropy: 0.6309297535714574,
			EffectiveChannels: 2, Top: []TopGate{{1, 0.5}, {2, 0.5}}, Suppressed: 1.0 / 3},
	},
	{
		name: "ties resolved by lower channel",
		s:    []float32{0.25, 0.75, 0.75, 0.125, 0.75}, k: 4,
		// sum = 2.625, mean = 0.525, std = sqrt(0.0775) (deviations -0.275, 0.225 x3, -0.4);
		// p = (2, 6, 6, 1, 6)/21: H = ln 21 - (18 ln 6 + 2 ln 2)/21 = 1.442713 nats.
		want: Stats{Mean: 0.525, Std: 0.2783882181415011, Min: 0.125, Max: 0.75,
			Entropy: 0.8964089752169341, EffectiveChannels: 4.232168839872674,
			Top: []TopGate{{1, 0.75}, {2, 0.75}, {4, 0.75}, {0, 0.25}}},
	},
	{
		name: "single channel: entropy 1 by definition",
		s:    []float32{0.375}, k: 5,
		want: Stats{Mean: 0.375, Min: 0.375, Max: 0.375, Entropy: 1, EffectiveChannels: 1,
			Top: []TopGate{{0, 0.375}}},
	},
	{
		name: "thresholds are strict and in float64",
		s:    []float32{0.9, 0.9375, 0.1, 0.0625, 0.5}, k: 0,
		// float32(0.9) < 0.9 is not saturated and float32(0.1) > 0.1 is not suppressed.
		want: Stats{Mean: 0.5, Std: 0.3749166519999935, Min: 0.0625, Max: 0.9375, Entropy: 0.794358088966319,
			EffectiveChannels: 3.5911411620655134, Top: []TopGate{}, Saturated: 0.2, Suppressed: 0.2},
	},
	{
		name: "values above 1 are accepted",
		s:    []float32{2, 2}, k: 1,
		want: Stats{Mean: 2, Min: 2, Max: 2, Entropy: 1, EffectiveChannels: 2, Top: []TopGate{{0, 2}}, Saturated: 1},
	},
	{
		name: "negative zero reads as zero",
		s:    []float32{float32(math.Copysign(0, -1)), 1}, k: 2,
		want: Stats{Mean: 0.5, Std: 0.5, Min: 0, Max: 1, Entropy: 0, EffectiveChannels: 1,
			Top: []TopGate{{1, 1}, {0, 0}}, Saturated: 0.5, Suppressed: 0.5},
	},
	{name: "empty", s: []float32{}, k: 1, err: "empty"},
	{name: "NaN", s: []float32{0.5, nan32, 0.5}, k: 1, err: "gate 1 of 3 is NaN"},
	{name: "+Inf", s: []float32{float32(math.Inf(1))}, k: 1, err: "gate 0 of 1 is +Inf"},
	{name: "-Inf", s: []float32{0.1, float32(math.Inf(-1))}, k: 1, err: "gate 1 of 2 is -Inf"},
	{name: "negative", s: []float32{0.1, 0.2, -0.25}, k: 1, err: "gate 2 of 3 is -0.25"},
	{name: "all zero", s: []float32{0, 0, 0}, k: 1, err: "all 3 gates are 0"},
}

func TestComputeStatsHandComputed(t *testing.T) {
	for _, tt := range statsCases {
		t.Run(tt.name, func(t *testing.T) {
			sentinel := []TopGate{{99, 99}}
			dst := Stats{Mean: -1, Top: sentinel}
			err := ComputeStats(tt.s, tt.k, &dst)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalidGates) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ComputeStats = %v, want ErrInvalidGates containing %q", err, tt.err)
				}
				if dst.Mean != -1 || dst.Top[0] != sentinel[0] {
					t.Errorf("ComputeStats changed dst on error: %+v", dst)
				}
				return
			}
			if err != nil {
				t.Fatalf("ComputeStats: %v", err)
			}
			checkStats(t, dst, tt.want, statsTolerance)
		})
	}
}

func checkStats(t *testing.T, got, want Stats, tol float64) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"mean", got.Mean, want.Mean}, {"std", got.Std, want.Std}, {"min", got.Min, want.Min},
		{"max", got.Max, want.Max}, {"entropy", got.Entropy, want.Entropy},
		{"effective_channels", got.EffectiveChannels, want.EffectiveChannels},
		{"saturated", got.Saturated, want.Saturated}, {"suppressed", got.Suppressed, want.Suppressed},
	} {
		if math.Abs(f.got-f.want) > tol*math.Max(1, math.Abs(f.want)) {
			t.Errorf("%s = %.10g, want %.10g", f.name, f.got, f.want)
		}
	}
	if got.Top == nil {
		t.Errorf("top is nil, want an empty or filled slice (JSON [] not null)")
	}
	if fmt.Sprint(got.Top) != fmt.Sprint(want.Top) {
		t.Errorf("top = %v, want %v", got.Top, want.Top)
	}
	if math.Signbit(got.Min) {
		t.Errorf("min is negative zero")
	}
}

func TestComputeStatsRejectsBadArguments(t *testing.T) {
	if err := ComputeStats([]float32{0.5}, -1, new(Stats)); err == nil || !strings.Contains(err.Error(), "top-k -1") {
		t.Errorf("negative k: err = %v, want one naming top-k -1", err)
	}
	if err := ComputeStats([]float32{0.5}, 1, nil); err == nil {
		t.Error("nil dst: err = nil, want an error")
	}
}

// referenceStats is a deliberately naive implementation: entropy from p directly, top-k by a
// full stable sort.
func referenceStats(s []float32, k int) Stats {
	c := float64(len(s))
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	mean := sum / c
	var st Stats
	st.Mean, st.Min, st.Max = mean, math.Inf(1), math.Inf(-1)
	var h, sq float64
	for _, v32 := range s {
		v := float64(v32)
		st.Min, st.Max = math.Min(st.Min, v), math.Max(st.Max, v)
		sq += (v - mean) * (v - mean)
		if p := v / sum; p > 0 {
			h -= p * math.Log(p)
		}
		if v > 0.9 {
			st.Saturated += 1 / c
		}
		if v < 0.1 {
			st.Suppressed += 1 / c
		}
	}
	st.Std = math.Sqrt(sq / c)
	st.Entropy = 1
	if len(s) > 1 {
		st.Entropy = h / math.Log(c)
	}
	st.EffectiveChannels = math.Exp(h)
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return s[idx[a]] > s[idx[b]] })
	st.Top = []TopGate{}
	for _, i := range idx[:min(k, len(s))] {
		st.Top = append(st.Top, TopGate{i, s[i]})
	}
	return st
}

// xorshift is a small deterministic generator for property tests and benchmarks.
type xorshift uint64

func (x *xorshift) float() float64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return float64(*x>>11) / (1 << 53)
}

func TestComputeStatsProperties(t *testing.T) {
	rng := xorshift(42)
	shapes := []struct {
		name string
		gate func() float32
	}{
		{"uniform", func() float32 { return float32(rng.float()) }},
		{"sigmoid-like", func() float32 { return float32(1 / (1 + math.Exp(-6*(rng.float()-0.5)))) }},
		{"sparse", func() float32 {
			if rng.float() < 0.9 {
				return 0
			}
			return float32(rng.float())
		}},
		{"quantized ties", func() float32 { return float32(math.Floor(rng.float()*4)) / 4 }},
		{"tiny", func() float32 { return float32(rng.float() * 1e-30) }},
	}
	var dst Stats
	for _, sh := range shapes {
		for _, c := range []int{1, 2, 3, 16, 97, 576, 1280} {
			for _, k := range []int{0, 1, 5, 2000} {
				s := make([]float32, c)
				for i := range s {
					s[i] = sh.gate()
				}
				s[c/2] += 0.5 // never all zero
				name := fmt.Sprintf("%s/C=%d/k=%d", sh.name, c, k)
				if err := ComputeStats(s, k, &dst); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkInvariants(t, name, s, k, dst)
				checkStats(t, dst, referenceStats(s, k), 1e-9)
			}
		}
	}
}

// checkInvariants holds for every valid vector, whatever its values.
func checkInvariants(t *testing.T, name string, s []float32, k int, st Stats) {
	t.Helper()
	c := float64(len(s))
	for _, f := range []struct {
		field     string
		v, lo, hi float64
	}{
		{"entropy", st.Entropy, 0, 1},
		{"effective_channels", st.EffectiveChannels, 1, c},
		{"saturated", st.Saturated, 0, 1},
		{"suppressed", st.Suppressed, 0, 1},
		{"saturated+suppressed", st.Saturated + st.Suppressed, 0, 1},
		{"min", st.Min, 0, st.Max},
		{"mean", st.Mean, st.Min, st.Max},
		{"std", st.Std, 0, st.Max - st.Min},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < f.lo || f.v > f.hi {
			t.Fatalf("%s: %s = %v, want finite in [%v, %v]", name, f.field, f.v, f.lo, f.hi)
		}
	}
	if want := min(k, len(s)); len(st.Top) != want {
		t.Fatalf("%s: %d top gates, want %d", name, len(st.Top), want)
	}
	for i, g := range st.Top {
		if g.Channel < 0 || g.Channel >= len(s) || s[g.Channel] != g.Value && !(g.Value == 0 && s[g.Channel] == 0) {
			t.Fatalf("%s: top[%d] = %v does not match the vector", name, i, g)
		}
		if i > 0 {
			p := st.Top[i-1]
			if p.Value < g.Value || p.Value == g.Value && p.Channel > g.Channel {
				t.Fatalf("%s: top %v is not ordered by value desc, channel asc", name, st.Top)
			}
		}
	}
	if len(st.Top) > 0 {
		last := st.Top[len(st.Top)-1]
		for i, v := range s {
			outranks := v > last.Value || v == last.Value && i < last.Channel
			if outranks && !containsChannel(st.Top, i) {
				t.Fatalf("%s: channel %d (%v) should be in top %v", name, i, v, st.Top)
			}
		}
	}
}

func containsChannel(top []TopGate, ch int) bool {
	for _, g := range top {
		if g.Channel == ch {
			return true
		}
	}
	return false
}

func TestComputeStatsReusesTop(t *testing.T) {
	s := make([]float32, 1280)
	for i := range s {
		s[i] = float32(i%97) / 97
	}
	var dst Stats
	if err := ComputeStats(s, 5, &dst); err != nil {
		t.Fatal(err)
	}
	first := &dst.Top[0]
	allocs := testing.AllocsPerRun(20, func() {
		if err := ComputeStats(s, 5, &dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ComputeStats allocates %v times per call after warm-up, want 0", allocs)
	}
	if &dst.Top[0] != first {
		t.Error("ComputeStats replaced dst.Top's backing array, want it reused")
	}
	// k larger than C must not allocate on every call either.
	small := s[:3]
	if err := ComputeStats(small, 5, &dst); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(20, func() { _ = ComputeStats(small, 5, &dst) }); allocs != 0 {
		t.Errorf("ComputeStats with k > C allocates %v times per call, want 0", allocs)
	}
}

// FuzzComputeStats feeds arbitrary float32 vectors: no panic, invalid vectors are reported as
// ErrInvalidGates, valid ones give finite statistics within their ranges.
func FuzzComputeStats(f *testing.F) {
	for _, tt := range statsCases {
		f.Add(byte(tt.k), float32sToBytes(tt.s))
	}
	f.Fuzz(func(t *testing.T, kb byte, raw []byte) {
		s := make([]float32, len(raw)/4)
		for i := range s {
			s[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		k := int(kb % 16)
		var st Stats
		err := ComputeStats(s, k, &st)
		valid := len(s) > 0
		var sum float64
		for _, v := range s {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				valid = false
			}
			sum += float64(v)
		}
		if valid && sum == 0 {
			valid = false
		}
		if !valid {
			if !errors.Is(err, ErrInvalidGates) {
				t.Fatalf("ComputeStats(%v) = %v, want ErrInvalidGates", s, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ComputeStats(%v): %v", s, err)
		}
		checkInvariants(t, "fuzz", s, k, st)
	})
}

func float32sToBytes(s []float32) []byte {
	b := make([]byte, 4*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func ExampleComputeStats() {
	gates := []float32{0.95, 0.5, 0.5, 0.05}
	var st Stats
	if err := ComputeStats(gates, 2, &st); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("mean %.3f std %.3f entropy %.3f effective %.2f of %d\n",
		st.Mean, st.Std, st.Entropy, st.EffectiveChannels, len(gates))
	fmt.Printf("saturated %.2f suppressed %.2f\n", st.Saturated, st.Suppressed)
	fmt.Println("top", st.Top)

	err := ComputeStats([]float32{0.5, float32(math.NaN())}, 2, &st)
	fmt.Println(errors.Is(err, ErrInvalidGates), err)
	// Output:
	// mean 0.500 std 0.318 entropy 0.822 effective 3.12 of 4
	// saturated 0.25 suppressed 0.25
	// top [{0 0.95} {1 0.5}]
	// true invalid gate vector: gate 1 of 2 is NaN
}

// randomGates returns c sigmoid-like gates.
func randomGates(rng *xorshift, c int) []float32 {
	s := make([]float32, c)
	for i := range s {
		s[i] = float32(1 / (1 + math.Exp(-6*(rng.float()-0.5))))
	}
	return s
}

func benchmarkStatsFrame(b *testing.B, channels []int) {
	rng := xorshift(7)
	blocks := make([][]float32, len(channels))
	total := 0
	for i, c := range channels {
		blocks[i] = randomGates(&rng, c)
		total += c
	}
	dst := make([]Stats, len(channels))
	for i := range blocks { // warm up: Top arrays
		if err := ComputeStats(blocks[i], 5, &dst[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu := startCPUTimer()
	for b.Loop() {
		for i := range blocks {
			if err := ComputeStats(blocks[i], 5, &dst[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(total), "ns/gate")
}

// cpuTimer measures the process's CPU time (user + system) across a benchmark loop. On a
// shared machine wall-clock ns/op includes the time other processes held the CPU; cpu-ns/op
// does not, so it is the steadier figure to compare with other measurements.
type cpuTimer struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPUTimer() cpuTimer { return cpuTimer{start: processCPU()} }

func (c cpuTimer) report(b *testing.B) {
	if d := processCPU() - c.start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkStatsFrame16Blocks is the worst case of the issue: 16 blocks of 1280 gates per frame.
func BenchmarkStatsFrame16Blocks(b *testing.B) {
	channels := make([]int, 16)
	for i := range channels {
		channels[i] = 1280
	}
	benchmarkStatsFrame(b, channels)
}

// BenchmarkStatsFrame measures one frame of real networks' SE blocks (channel counts of
// torchvision's models).
func BenchmarkStatsFrame(b *testing.B) {
	for _, m := range []struct {
		name     string
		channels []int
	}{
		{"mobilenet_v3_small", []int{16, 96, 240, 240, 120, 144, 288, 576, 576}},
		{"efficientnet_b0", []int{32, 96, 144, 144, 240, 240, 480, 480, 480, 672, 672, 672, 1152, 1152, 1152, 1152}},
	} {
		b.Run(m.name, func(b *testing.B) { benchmarkStatsFrame(b, m.channels) })
	}
}

func BenchmarkComputeStats1280(b *testing.B) {
	rng := xorshift(9)
	s := randomGates(&rng, 1280)
	var dst Stats
	_ = ComputeStats(s, 5, &dst)
	b.ReportAllocs()
	cpu := startCPUTimer()
	for b.Loop() {
		if err := ComputeStats(s, 5, &dst); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func TestSumXLogXAccuracy(t *testing.T) {
	values := []float32{0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, 1e-40,
		math.Float32frombits(0x00800000), 1e-30, 1e-7, 0.01, 0.1, 0.5, 0.70710677, 0.70710683, 0.9,
		0.999999, 1, 1.0000001, 1.4142135, 1.4142137, 2, 1e10, math.MaxFloat32}
	rng := xorshift(3)
	for range 100000 {
		values = append(values, math.Float32frombits(uint32(rng.float()*float64(0x7f7fffff))+1))
	}
	for _, v := range values {
		got := sumXLogX([]float32{v})
		want := 0.0
		if v != 0 {
			want = float64(v) * math.Log(float64(v))
		}
		if d := math.Abs(got - want); d > 1e-11*math.Max(1, math.Abs(want)) {
			t.Fatalf("sumXLogX(%v) = %.17g, want %.17g, error %g", v, got, want, d)
		}
	}
	// A sum, against math.Log.
	s := randomGates(&rng, 1280)
	want := 0.0
	for _, v := range s {
		want += float64(v) * math.Log(float64(v))
	}
	if got := sumXLogX(s); math.Abs(got-want) > 1e-9 {
		t.Errorf("sumXLogX of 1280 gates = %.15g, want %.15g", got, want)
	}
}

func BenchmarkSumXLogX(b *testing.B) {
	rng := xorshift(5)
	s := randomGates(&rng, 1280)
	var sink float64
	b.Run("sumXLogX", func(b *testing.B) {
		for b.Loop() {
			sink += sumXLogX(s)
		}
	})
	b.Run("math.Log", func(b *testing.B) {
		for b.Loop() {
			for _, v := range s {
				sink += float64(v) * math.Log(float64(v))
			}
		}
	})
	_ = sink
}

// BenchmarkSumBaseline1280 is a plain float64 sum of the 1280 gates of BenchmarkComputeStats1280:
// the least any statistic must cost. On a busy machine, the ratio of the two is steadier than
// either figure.
func BenchmarkSumBaseline1280(b *testing.B) {
	rng := xorshift(9)
	s := randomGates(&rng, 1280)
	var sink float64
	cpu := startCPUTimer()
	for b.Loop() {
		var acc float64
		for _, v := range s {
			acc += float64(v)
		}
		sink += acc
	}
	cpu.report(b)
	if sink == 0 {
		b.Fatal("no sum")
	}
}
