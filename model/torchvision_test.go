package model

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/se"
)

// fixtureDir returns the directory holding the exported torchvision models (see testfixtures.Torchvision).
func fixtureDir(t testing.TB, names ...string) string {
	t.Helper()
	return testfixtures.Torchvision(t, names...)
}

func TestTorchvisionDiscovery(t *testing.T) {
	hardSigmoid := struct {
		gate        se.GateKind
		act         se.Activation
		alpha, beta float32
	}{se.HardSigmoid, se.ReLU, 1.0 / 6, 0.5}
	sigmoidReLU := hardSigmoid
	sigmoidReLU.gate, sigmoidReLU.alpha, sigmoidReLU.beta = se.Sigmoid, 0, 0
	sigmoidSiLU := sigmoidReLU
	sigmoidSiLU.act = se.SiLU
	tests := []struct {
		name         string
		blocks       int
		kind         any
		first, last  [2]int // channels, hidden of the first and last block
		identityInit int    // Identity-on-initializer nodes that ForOpenCV must strip
	}{
		{"mobilenet_v3_small", 9, hardSigmoid, [2]int{16, 8}, [2]int{576, 144}, 37},
		{"mobilenet_v3_large", 8, hardSigmoid, [2]int{72, 24}, [2]int{960, 240}, 45},
		{"efficientnet_b0", 16, sigmoidSiLU, [2]int{32, 8}, [2]int{1152, 48}, 59},
		{"regnet_y_400mf", 16, sigmoidReLU, [2]int{48, 8}, [2]int{440, 110}, 48},
		{"resnet18", 0, nil, [2]int{}, [2]int{}, 16},
	}
	names := make([]string, len(tests))
	for i, tt := range tests {
		names[i] = tt.name
	}
	dir := fixtureDir(t, names...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			m, err := Load(filepath.Join(dir, tt.name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Load %s: %v, %d SE blocks", tt.name, time.Since(start).Round(time.Millisecond), len(m.Blocks))
			if len(m.Blocks) != tt.blocks {
				t.Fatalf("found %d SE blocks, want %d", len(m.Blocks), tt.blocks)
			}
			if want := []int64{-1, 3, 224, 224}; len(m.Input.Shape) != 4 || m.Input.Shape[0] != -1 || m.Input.Shape[1] != 3 || m.Input.Shape[2] != 224 {
				t.Errorf("input shape %v, want %v", m.Input.Shape, want)
			}
			for _, b := range m.Blocks {
				if tt.kind != nil {
					got := hardSigmoid
					got.gate, got.act, got.alpha, got.beta = b.Gate, b.Activation, b.Alpha, b.Beta
					if got != tt.kind {
						t.Errorf("block %s: %+v, want %+v", b.Name, got, tt.kind)
					}
				}
				checkNotActivation(t, m, b)
				w, err := m.BlockWeights(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(w.W1) != b.Channels*b.Hidden || len(w.W2) != b.Channels*b.Hidden || len(w.B1) != b.Hidden || len(w.B2) != b.Channels {
					t.Errorf("block %s: weights of the wrong size", b.Name)
				}
			}
			if tt.blocks > 0 {
				first, last := m.Blocks[0], m.Blocks[len(m.Blocks)-1]
				if got := [2]int{first.Channels, first.Hidden}; got != tt.first {
					t.Errorf("first block %s: C, hidden = %v, want %v", first.Name, got, tt.first)
				}
				if got := [2]int{last.Channels, last.Hidden}; got != tt.last {
					t.Errorf("last block %s: C, hidden = %v, want %v", last.Name, got, tt.last)
				}
			}

			identities := 0
			for _, n := range m.proto.Graph.Node {
				if n.OpType == "Identity" {
					identities++
				}
			}
			if identities != tt.identityInit {
				t.Errorf("export has %d Identity nodes, want %d", identities, tt.identityInit)
			}
			data, err := m.ForOpenCV(8)
			if err != nil {
				t.Fatal(err)
			}
			cv, err := Parse("opencv.onnx", data)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range cv.proto.Graph.Node {
				if n.OpType == "Identity" {
					t.Errorf("ForOpenCV kept Identity %q", n.Name)
				}
			}
			if len(cv.Blocks) != len(m.Blocks) || cv.Input.Shape[0] != 8 || cv.Outputs[0].Shape[0] != 8 {
				t.Errorf("ForOpenCV: %d blocks, input %v, output %v", len(cv.Blocks), cv.Input.Shape, cv.Outputs[0].Shape)
			}
			var gates []string
			for _, b := range m.Blocks {
				gates = append(gates, b.GateTensor)
			}
			data, err = m.ForONNXRuntime(gates...)
			if err != nil {
				t.Fatal(err)
			}
			ort, err := Parse("ort.onnx", data)
			if err != nil {
				t.Fatal(err)
			}
			if len(ort.Outputs) != 1+len(gates) {
				t.Errorf("ForONNXRuntime: %d outputs, want %d", len(ort.Outputs), 1+len(gates))
			}
		})
	}
}

// checkNotActivation fails when block b is an activation such as x*sigmoid(x) rather than an
// SE block: its scaling Mul must multiply the pooled tensor U by the gate, and U must not be the
// gate's own input.
func checkNotActivation(t *testing.T, m *Model, b se.BlockInfo) {
	t.Helper()
	gate := m.node(b.GateNode)
	if gate == nil || len(gate.Input) != 1 || gate.Input[0] == b.Input {
		t.Errorf("block %s: gate's input is U itself (an activation, not an SE block)", b.Name)
		return
	}
	pool := m.node(b.Pool)
	if pool == nil || pool.Input[0] != b.Input {
		t.Errorf("block %s: pool %q does not read U %q", b.Name, b.Pool, b.Input)
	}
	for _, n := range m.proto.Graph.Node {
		for _, o := range n.Output {
			if o == b.Output && (n.OpType != "Mul" || (n.Input[0] != b.Input && n.Input[1] != b.Input)) {
				t.Errorf("block %s: output %q comes from %s %v, want Mul of U", b.Name, o, n.OpType, n.Input)
			}
		}
	}
}

func TestTinyFixtureIsCurrent(t *testing.T) {
	dir := fixtureDir(t, "tiny_se")
	for _, name := range []string{"tiny_se.onnx", "tiny_se_weights.json"} {
		fresh, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("testdata/%s differs from what scripts/export_torchvision.py exports now; regenerate it with %s scripts/export_torchvision.py model/testdata tiny_se",
				name, testfixtures.Python)
		}
	}
}

// BenchmarkLoad measures Load (read, decode, validate, discover) and the two rewrites on the
// torchvision exports.
func BenchmarkLoad(b *testing.B) {
	names := []string{"mobilenet_v3_small", "efficientnet_b0"}
	dir := fixtureDir(b, names...)
	for _, name := range names {
		path := filepath.Join(dir, name+".onnx")
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Load(path); err != nil {
					b.Fatal(err)
				}
			}
		})
		m, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/ForOpenCV", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.ForOpenCV(8); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/BlockWeights", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, blk := range m.Blocks {
					if _, err := m.BlockWeights(blk); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
