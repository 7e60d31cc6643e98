package se

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenCase is one entry of testdata/golden/manifest.json, written by scripts/gen_se_golden.py.
type goldenCase struct {
	Name       string  `json:"name"`
	File       string  `json:"file"`
	Channels   int     `json:"channels"`
	Hidden     int     `json:"hidden"`
	Batch      int     `json:"batch"`
	Height     int     `json:"height"`
	Width      int     `json:"width"`
	Layout     string  `json:"layout"`
	Activation string  `json:"activation"`
	Gate       string  `json:"gate"`
	Alpha      float64 `json:"alpha"`
	Beta       float64 `json:"beta"`
	Tensors    []struct {
		Name   string `json:"name"`
		Shape  []int  `json:"shape"`
		Offset int    `json:"offset"`
	} `json:"tensors"`
}

type goldenData struct {
	goldenCase
	block  Block
	u      []float32
	gates  []float32
	output []float32
}

func loadGolden(t testing.TB) []goldenData {
	t.Helper()
	dir := filepath.Join("testdata", "golden")
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("golden manifest: %v (regenerate with /usr/bin/python3 scripts/gen_se_golden.py)", err)
	}
	var manifest struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("golden manifest: %v", err)
	}
	if len(manifest.Cases) == 0 {
		t.Fatal("golden manifest has no cases")
	}
	var out []goldenData
	for _, c := range manifest.Cases {
		bin, err := os.ReadFile(filepath.Join(dir, c.File))
		if err != nil {
			t.Fatalf("golden case %s: %v", c.Name, err)
		}
		if len(bin)%4 != 0 {
			t.Fatalf("golden case %s: %d bytes is not a whole number of float32", c.Name, len(bin))
		}
		all := make([]float32, len(bin)/4)
		for i := range all {
			all[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
		}
		tensor := func(name string, wantShape ...int) []float32 {
			for _, tt := range c.Tensors {
				if tt.Name != name {
					continue
				}
				if !equalInts(tt.Shape, wantShape) {
					t.Fatalf("golden case %s: tensor %s has shape %v, want %v", c.Name, name, tt.Shape, wantShape)
				}
				size := 1
				for _, d := range tt.Shape {
					size *= d
				}
				if tt.Offset < 0 || tt.Offset+size > len(all) {
					t.Fatalf("golden case %s: tensor %s [%d, %d) outside the file's %d values",
						c.Name, name, tt.Offset, tt.Offset+size, len(all))
				}
				return all[tt.Offset : tt.Offset+size]
			}
			t.Fatalf("golden case %s: no tensor %s", c.Name, name)
			return nil
		}
		ch, hid, n := c.Channels, c.Hidden, c.Batch
		// The two layouts differ only in their trailing 1 x 1: OIHW conv weights and
		// out x in linear weights are both row-major out x in, which is Block's layout.
		var w1Shape, w2Shape []int
		switch c.Layout {
		case "conv1x1":
			w1Shape, w2Shape = []int{hid, ch, 1, 1}, []int{ch, hid, 1, 1}
		case "linear":
			w1Shape, w2Shape = []int{hid, ch}, []int{ch, hid}
		default:
			t.Fatalf("golden case %s: unknown layout %q", c.Name, c.Layout)
		}
		d := goldenData{goldenCase: c}
		d.block = Block{
			Channels: ch,
			Hidden:   hid,
			W1:       tensor("w1", w1Shape...),
			B1:       tensor("b1", hid),
			W2:       tensor("w2", w2Shape...),
			B2:       tensor("b2", ch),
			Alpha:    float32(c.Alpha),
			Beta:     float32(c.Beta),
		}
		switch c.Activation {
		case "relu":
			d.block.Act = ReLU
		case "silu":
			d.block.Act = SiLU
		default:
			t.Fatalf("golden case %s: unknown activation %q", c.Name, c.Activation)
		}
		switch c.Gate {
		case "sigmoid":
			d.block.Gate = Sigmoid
		case "hard_sigmoid":
			d.block.Gate = HardSigmoid
		default:
			t.Fatalf("golden case %s: unknown gate %q", c.Name, c.Gate)
		}
		if d.block.Act.String() != c.Activation || d.block.Gate.String() != c.Gate {
			t.Fatalf("golden case %s: names %s/%s do not round-trip", c.Name, d.block.Act, d.block.Gate)
		}
		d.u = tensor("u", n, ch, c.Height, c.Width)
		d.gates = tensor("gates", n, ch)
		d.output = tensor("out", n, ch, c.Height, c.Width)
		out = append(out, d)
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = math.Max(m, d)
	}
	return m
}

const goldenTolerance = 1e-5

func TestForwardMatchesPyTorch(t *testing.T) {
	cases := loadGolden(t)
	// The committed data must cover every combination the SE block supports.
	seen := map[string]bool{}
	for _, c := range cases {
		seen["layout="+c.Layout] = true
		seen["act="+c.Activation] = true
		seen["gate="+c.Gate] = true
		seen["r="+itoa(c.Channels/c.Hidden)] = true
		seen["batch="+itoa(c.Batch)] = true
		seen["square="+boolString(c.Height == c.Width)] = true
	}
	for _, want := range []string{"layout=conv1x1", "layout=linear", "act=relu", "act=silu", "gate=sigmoid",
		"gate=hard_sigmoid", "r=4", "r=16", "batch=1", "batch=5", "square=true", "square=false"} {
		if !seen[want] {
			t.Errorf("golden data has no case with %s", want)
		}
	}

	ws := new(Workspace) // shared across cases of different sizes on purpose
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if err := c.block.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			out := make([]float32, len(c.u))
			gates := make([]float32, len(c.gates))
			if err := c.block.Forward(ws, c.u, c.Batch, c.Height, c.Width, out, gates); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			if d := maxAbsDiff(gates, c.gates); d > goldenTolerance {
				t.Errorf("Forward gates differ from PyTorch by %g, want <= %g", d, goldenTolerance)
			}
			if d := maxAbsDiff(out, c.output); d > goldenTolerance {
				t.Errorf("Forward output differs from PyTorch by %g, want <= %g", d, goldenTolerance)
			}

			only := make([]float32, len(c.gates))
			if err := c.block.Gates(ws, c.u, c.Batch, c.Height, c.Width, only); err != nil {
				t.Fatalf("Gates: %v", err)
			}
			if d := maxAbsDiff(only, gates); d != 0 {
				t.Errorf("Gates differs from Forward's gates by %g, want identical", d)
			}

			// In place: out aliases the input.
			inPlace := append([]float32(nil), c.u...)
			if err := c.block.Forward(nil, inPlace, c.Batch, c.Height, c.Width, inPlace, only); err != nil {
				t.Fatalf("Forward in place: %v", err)
			}
			if d := maxAbsDiff(inPlace, out); d != 0 {
				t.Errorf("in-place Forward differs from Forward by %g, want identical", d)
			}
		})
	}
}

// TestSqueezeIsTrueGlobalAverage checks, on a non-square map, that the squeeze averages all
// H x W positions: a channel whose only non-zero rows lie outside a W x W window must still move
// its gate, and a map whose rows are permuted must give the same gates.
func TestSqueezeIsTrueGlobalAverage(t *testing.T) {
	const c, h, w = 2, 6, 3
	b := Block{
		Channels: c, Hidden: 1,
		W1: []float32{1, 0}, B1: []float32{0},
		W2: []float32{1, 1}, B2: []float32{0, 0},
		Act: ReLU, Gate: Sigmoid,
	}
	u := make([]float32, c*h*w)
	for y := 3; y < h; y++ { // rows a 3x3 window at the top would never see
		for x := 0; x < w; x++ {
			u[y*w+x] = 2
		}
	}
	gates := make([]float32, c)
	if err := b.Gates(nil, u, 1, h, w, gates); err != nil {
		t.Fatal(err)
	}
	// mean of channel 0 = 2 * 9 / 18 = 1, hidden = relu(1) = 1, gates = sigmoid(1).
	want := float32(1 / (1 + math.Exp(-1)))
	for i, g := range gates {
		if math.Abs(float64(g-want)) > 1e-7 {
			t.Errorf("gate %d = %v, want sigmoid(1) = %v", i, g, want)
		}
	}
}

func TestHardSigmoidClampsAndUsesAlphaBeta(t *testing.T) {
	tests := []struct {
		name        string
		b2          float32
		alpha, beta float32
		want        float32
	}{
		{"linear part", 1, 0.2, 0.5, 0.7},
		{"clamped high", 10, 0.2, 0.5, 1},
		{"clamped low", -10, 0.2, 0.5, 0},
		{"pytorch alpha", 1.5, 1.0 / 6, 0.5, 0.75},
		{"beta shifts", 0, 0.2, 0.25, 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Block{
				Channels: 1, Hidden: 1,
				W1: []float32{0}, B1: []float32{0}, W2: []float32{0}, B2: []float32{tt.b2},
				Act: ReLU, Gate: HardSigmoid, Alpha: tt.alpha, Beta: tt.beta,
			}
			gates := make([]float32, 1)
			out := make([]float32, 1)
			if err := b.Forward(nil, []float32{4}, 1, 1, 1, out, gates); err != nil {
				t.Fatal(err)
			}
			if math.Abs(float64(gates[0]-tt.want)) > 1e-6 {
				t.Errorf("gate = %v, want %v", gates[0], tt.want)
			}
			if math.Abs(float64(out[0]-4*tt.want)) > 1e-5 {
				t.Errorf("out = %v, want %v", out[0], 4*tt.want)
			}
		})
	}
}

func validBlock() Block {
	return Block{
		Channels: 4, Hidden: 2,
		W1: make([]float32, 8), B1: make([]float32, 2),
		W2: make([]float32, 8), B2: make([]float32, 4),
		Act: ReLU, Gate: Sigmoid,
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name   string
		modify func(b *Block)
		want   string // substring of the error; "" means valid
	}{
		{"valid sigmoid", func(b *Block) {}, ""},
		{"valid hard sigmoid", func(b *Block) { b.Gate, b.Alpha, b.Beta = HardSigmoid, 0.2, 0.5 }, ""},
		{"valid silu", func(b *Block) { b.Act = SiLU }, ""},
		{"zero channels", func(b *Block) { b.Channels = 0 }, "Channels is 0"},
		{"negative hidden", func(b *Block) { b.Hidden = -1 }, "Hidden is -1"},
		{"short W1", func(b *Block) { b.W1 = b.W1[:7] }, "W1 has 7 values, want Hidden x Channels = 2 x 4 = 8"},
		{"long B1", func(b *Block) { b.B1 = make([]float32, 3) }, "B1 has 3 values, want Hidden = 2"},
		{"short W2", func(b *Block) { b.W2 = nil }, "W2 has 0 values"},
		{"short B2", func(b *Block) { b.B2 = b.B2[:3] }, "B2 has 3 values, want Channels = 4"},
		{"NaN weight", func(b *Block) { b.W2[5] = nan }, "W2[5] is NaN"},
		{"Inf bias", func(b *Block) { b.B1[1] = inf }, "B1[1] is +Inf"},
		{"unknown activation", func(b *Block) { b.Act = Activation(7) }, "unknown activation 7"},
		{"unknown gate", func(b *Block) { b.Gate = GateKind(-1) }, "unknown gate -1"},
		{"hard sigmoid without alpha", func(b *Block) { b.Gate = HardSigmoid }, "Alpha is 0"},
		{"hard sigmoid NaN beta", func(b *Block) { b.Gate, b.Alpha, b.Beta = HardSigmoid, 0.2, nan }, "Beta is NaN"},
		{"overflowing size", func(b *Block) { b.Channels, b.Hidden = math.MaxInt/2, 3 }, "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := validBlock()
			tt.modify(&b)
			err := b.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidBlock) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an ErrInvalidBlock containing %q", err, tt.want)
			}
		})
	}
}

func TestForwardRejectsBadShapes(t *testing.T) {
	b := validBlock()
	tests := []struct {
		name           string
		block          Block
		u              int // length of u
		n, h, w        int
		out, gates     int
		wantErr, wants string
	}{
		{"short input", b, 4*2*3 - 1, 1, 2, 3, 4*2*3 - 1, 4, "shape", "input has 23 values, want N x C x H x W = 1 x 4 x 2 x 3 = 24"},
		{"input for a bigger batch", b, 48, 1, 2, 3, 48, 4, "shape", "input has 48 values"},
		{"short out", b, 24, 1, 2, 3, 23, 4, "shape", "out has 23 values, want 24"},
		{"short gates", b, 24, 1, 2, 3, 24, 3, "shape", "gates has 3 values, want N x C = 1 x 4 = 4"},
		{"zero batch", b, 0, 0, 2, 3, 0, 0, "shape", "batch 0"},
		{"negative width", b, 24, 1, 2, -3, 24, 4, "shape", "width -3"},
		{"huge map", b, 24, 1, math.MaxInt / 2, 3, 24, 4, "shape", "overflows int"},
		{"malformed block", Block{Channels: 4, Hidden: 2}, 24, 1, 2, 3, 24, 4, "block", "W1 has 0 values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := make([]float32, tt.u)
			out := make([]float32, tt.out)
			gates := make([]float32, tt.gates)
			for name, err := range map[string]error{
				"Forward": tt.block.Forward(nil, u, tt.n, tt.h, tt.w, out, gates),
				"Gates":   tt.block.Gates(nil, u, tt.n, tt.h, tt.w, gates),
			} {
				if name == "Gates" && strings.HasPrefix(tt.wants, "out ") {
					if err != nil {
						t.Errorf("Gates: %v, want nil (it has no out)", err)
					}
					continue
				}
				sentinel := ErrShape
				if tt.wantErr == "block" {
					sentinel = ErrInvalidBlock
				}
				if err == nil || !errors.Is(err, sentinel) || !strings.Contains(err.Error(), tt.wants) {
					t.Errorf("%s = %v, want %v containing %q", name, err, sentinel, tt.wants)
				}
			}
		})
	}
}

func TestForwardAllocatesNothingAfterWarmUp(t *testing.T) {
	b, u, out, gates := benchBlock(64, 16, 2, 7, 9)
	ws := new(Workspace)
	if err := b.Forward(ws, u, 2, 7, 9, out, gates); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := b.Forward(ws, u, 2, 7, 9, out, gates); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Forward allocates %v times per call after warm-up, want 0", allocs)
	}
}

// benchBlock builds a block and a batch with deterministic pseudo-random values.
func benchBlock(c, r, n, h, w int) (*Block, []float32, []float32, []float32) {
	hid := c / r
	rng := uint32(12345)
	next := func() float32 { // xorshift, values in [-1, 1)
		rng ^= rng << 13
		rng ^= rng >> 17
		rng ^= rng << 5
		return float32(rng)/float32(1<<31) - 1
	}
	fill := func(k int) []float32 {
		s := make([]float32, k)
		for i := range s {
			s[i] = next()
		}
		return s
	}
	b := &Block{
		Channels: c, Hidden: hid,
		W1: fill(hid * c), B1: fill(hid), W2: fill(c * hid), B2: fill(c),
		Act: ReLU, Gate: Sigmoid,
	}
	return b, fill(n * c * h * w), make([]float32, n*c*h*w), make([]float32, n*c)
}

func BenchmarkForward(b *testing.B) {
	const c, r, n, h, w = 256, 16, 8, 56, 56
	blk, u, out, gates := benchBlock(c, r, n, h, w)
	ws := new(Workspace)
	if err := blk.Forward(ws, u, n, h, w, out, gates); err != nil { // warm the workspace
		b.Fatal(err)
	}
	b.SetBytes(int64(len(u) * 4))
	b.ReportAllocs()
	for b.Loop() {
		if err := blk.Forward(ws, u, n, h, w, out, gates); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGates(b *testing.B) {
	const c, r, n, h, w = 256, 16, 8, 56, 56
	blk, u, _, gates := benchBlock(c, r, n, h, w)
	ws := new(Workspace)
	if err := blk.Gates(ws, u, n, h, w, gates); err != nil { // warm the workspace
		b.Fatal(err)
	}
	b.SetBytes(int64(len(u) * 4))
	b.ReportAllocs()
	for b.Loop() {
		if err := blk.Gates(ws, u, n, h, w, gates); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(v int) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func boolString(v bool) string {
	if v {
		return "true"
	}
	return "false"
}
