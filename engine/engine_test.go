package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/npy"
)

// golden is engine/testdata/golden.json, written by scripts/gen_engine_golden.py.
type golden struct {
	Models []goldenModel `json:"models"`
}

type goldenModel struct {
	Name         string   `json:"name"`
	File         string   `json:"file"`
	Input        string   `json:"input"`
	Height       int      `json:"height"`
	Width        int      `json:"width"`
	Outputs      []string `json:"outputs"`
	GateNodes    []string `json:"gate_nodes"`
	GateChannels []int    `json:"gate_channels"`
	Batches      []int    `json:"batches"`
	MaxBatch     int      `json:"max_batch"`
	U0Batch      int      `json:"u0_batch"`
}

// tolerance is how far a backend may be from PyTorch, or from the other backend, on any value.
const tolerance = 1e-4

func readGolden(t testing.TB) []goldenModel {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Models) == 0 {
		t.Fatal("testdata/golden.json lists no models")
	}
	return g.Models
}

func readNpy(t testing.TB, name string) npy.Array {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func loadModel(t testing.TB, file string) *model.Model {
	t.Helper()
	m, err := model.Load(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// needORT skips the test when the ONNX Runtime library is not installed (scripts/setup.sh installs it).
func needORT(t testing.TB) {
	t.Helper()
	if _, _, err := FindLibrary(""); err != nil {
		t.Skipf("ONNX Runtime library not installed (run scripts/setup.sh): %v", err)
	}
}

// backends lists the backends under test; ONNX Runtime only when its library is installed.
func backends(t testing.TB) []Backend {
	if _, _, err := FindLibrary(""); err != nil {
		t.Logf("ONNX Runtime library not installed, testing OpenCV only: %v", err)
		return []Backend{OpenCV}
	}
	return []Backend{ONNXRuntime, OpenCV}
}

func open(t testing.TB, m *model.Model, opts Options) Engine {
	t.Helper()
	e, err := Open(m, opts)
	if err != nil {
		t.Fatalf("Open(%s, %s): %v", m.Name, opts.Backend, err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// maxDiff returns the largest absolute difference between got and want, or an error when their lengths differ
// or got holds a NaN.
func maxDiff(got, want []float32) (float64, error) {
	if len(got) != len(want) {
		return 0, fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	var d float64
	for i := range got {
		if math.IsNaN(float64(got[i])) {
			return 0, fmt.Errorf("value %d is NaN", i)
		}
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
	}
	return d, nil
}

func checkClose(t *testing.T, what string, got, want []float32) {
	t.Helper()
	d, err := maxDiff(got, want)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if d > tolerance {
		t.Errorf("%s: max abs difference %.3g, want <= %g", what, d, tolerance)
	}
}

// TestGolden runs every golden model on every backend at batch 1, 3 and max, square and non-square inputs,
// and compares outputs and SE gates with what PyTorch computed.
func TestGolden(t *testing.T) {
	for _, g := range readGolden(t) {
		m := loadModel(t, g.File)
		if len(m.Blocks) != len(g.GateNodes) {
			t.Fatalf("%s: model has %d SE blocks, PyTorch export has %d", g.Name, len(m.Blocks), len(g.GateNodes))
		}
		input := readNpy(t, g.Input)
		item := 3 * g.Height * g.Width
		for _, b := range backends(t) {
			t.Run(g.Name+"/"+string(b), func(t *testing.T) {
				e := open(t, m, Options{Backend: b, MaxBatch: g.MaxBatch, Threads: 1})
				if info := e.Info(); info.Backend != b || info.MaxBatch != g.MaxBatch || info.Version == "" {
					t.Errorf("Info() = %+v, want backend %s, max batch %d and a version", info, b, g.MaxBatch)
				}
				for _, n := range g.Batches {
					r, err := e.Run(context.Background(), input.Data[:n*item], n)
					if err != nil {
						t.Fatalf("Run(batch %d): %v", n, err)
					}
					if r.N != n || len(r.Outputs) != len(g.Outputs) || len(r.Gates) != len(g.GateNodes) || len(r.Extra) != 0 {
						t.Fatalf("Run(batch %d) = N %d, %d outputs, %d gates, %d extra; want %d, %d, %d, 0",
							n, r.N, len(r.Outputs), len(r.Gates), len(r.Extra), n, len(g.Outputs), len(g.GateNodes))
					}
					for i, o := range r.Outputs {
						want := readNpy(t, fmt.Sprintf("%s.b%d.out%d.npy", g.Name, n, i))
						if o.Name != g.Outputs[i] || o.Shape[0] != int64(n) {
							t.Errorf("batch %d output %d is %q %v, want %q with batch %d", n, i, o.Name, o.Shape, g.Outputs[i], n)
						}
						checkClose(t, fmt.Sprintf("batch %d output %s", n, o.Name), o.Data, want.Data)
					}
					for j, gate := range r.Gates {
						want := readNpy(t, fmt.Sprintf("%s.b%d.gate%d.npy", g.Name, n, j))
						wantShape := []int64{int64(n), int64(g.GateChannels[j])}
						if gate.Name != g.GateNodes[j] || fmt.Sprint(gate.Shape) != fmt.Sprint(wantShape) {
							t.Errorf("batch %d gate %d is %q %v, want %q %v", n, j, gate.Name, gate.Shape, g.GateNodes[j], wantShape)
						}
						checkClose(t, fmt.Sprintf("batch %d gate %s", n, gate.Name), gate.Data, want.Data)
					}
				}
			})
		}
	}
}

// TestBackendsAgree runs the same inputs through ONNX Runtime and OpenCV and compares every value.
func TestBackendsAgree(t *testing.T) {
	needORT(t)
	for _, g := range readGolden(t) {
		t.Run(g.Name, func(t *testing.T) {
			m := loadModel(t, g.File)
			input := readNpy(t, g.Input)
			a := open(t, m, Options{Backend: ONNXRuntime, MaxBatch: g.MaxBatch})
			b := open(t, m, Options{Backend: OpenCV, MaxBatch: g.MaxBatch})
			for _, n := range []int{g.MaxBatch, 2, 1} {
				x := input.Data[:n*3*g.Height*g.Width]
				ra, err := a.Run(context.Background(), x, n)
				if err != nil {
					t.Fatal(err)
				}
				rb, err := b.Run(context.Background(), x, n)
				if err != nil {
					t.Fatal(err)
				}
				for i := range ra.Outputs {
					checkClose(t, fmt.Sprintf("batch %d output %s", n, ra.Outputs[i].Name), ra.Outputs[i].Data, rb.Outputs[i].Data)
				}
				for j := range ra.Gates {
					checkClose(t, fmt.Sprintf("batch %d gate %s", n, ra.Gates[j].Name), ra.Gates[j].Data, rb.Gates[j].Data)
				}
			}
		})
	}
}

// TestExtraOutputs asks for the input U of the first SE block and compares it with PyTorch's.
func TestExtraOutputs(t *testing.T) {
	for _, g := range readGolden(t) {
		if g.U0Batch == 0 {
			continue
		}
		m := loadModel(t, g.File)
		input := readNpy(t, g.Input)
		want := readNpy(t, fmt.Sprintf("%s.b%d.u0.npy", g.Name, g.U0Batch))
		u := m.Blocks[0].Input
		for _, b := range backends(t) {
			t.Run(g.Name+"/"+string(b), func(t *testing.T) {
				// The first output's name repeated as an extra must not confuse the engine.
				e := open(t, m, Options{Backend: b, MaxBatch: g.MaxBatch, ExtraOutputs: []string{u, g.Outputs[0]}})
				n := g.U0Batch
				r, err := e.Run(context.Background(), input.Data[:n*3*g.Height*g.Width], n)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Extra) != 2 || r.Extra[0].Name != u || r.Extra[1].Name != g.Outputs[0] {
					t.Fatalf("Extra = %d tensors, want %q and %q", len(r.Extra), u, g.Outputs[0])
				}
				wantShape := make([]int64, len(want.Shape))
				for i, d := range want.Shape {
					wantShape[i] = int64(d)
				}
				if fmt.Sprint(r.Extra[0].Shape) != fmt.Sprint(wantShape) {
					t.Errorf("extra %s has shape %v, want %v", u, r.Extra[0].Shape, wantShape)
				}
				checkClose(t, "extra "+u, r.Extra[0].Data, want.Data)
				checkClose(t, "extra "+g.Outputs[0], r.Extra[1].Data, r.Outputs[0].Data)
			})
		}
	}
}

func TestRunErrors(t *testing.T) {
	m := loadModel(t, "se_tiny_64x64.onnx")
	item := 3 * 64 * 64
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		in   []float32
		n    int
		want string
	}{
		{"batch over max", context.Background(), make([]float32, 3*item), 3, "batch of 3, want 1 to 2"},
		{"batch zero", context.Background(), nil, 0, "batch of 0, want 1 to 2"},
		{"short input", context.Background(), make([]float32, item-1), 1, fmt.Sprintf("input has %d values, want %d", item-1, item)},
		{"long input", context.Background(), make([]float32, 2*item), 1, fmt.Sprintf("input has %d values, want %d", 2*item, item)},
		{"canceled", canceled, make([]float32, item), 1, context.Canceled.Error()},
	}
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			e, err := Open(m, Options{Backend: b, MaxBatch: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				if _, err := e.Run(tc.ctx, tc.in, tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: Run error = %v, want one containing %q", tc.name, err, tc.want)
				}
			}
			// A good run still works after the bad ones.
			if _, err := e.Run(context.Background(), make([]float32, 2*item), 2); err != nil {
				t.Errorf("Run after errors: %v", err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := e.Run(context.Background(), make([]float32, item), 1); !errors.Is(err, ErrClosed) {
				t.Errorf("Run after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	m := loadModel(t, "se_tiny_64x64.onnx")
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"unknown backend", Options{Backend: "tensorflow"}, `unknown engine backend "tensorflow"`},
		{"negative max batch", Options{Backend: OpenCV, MaxBatch: -1}, "max batch -1"},
		{"negative threads", Options{Backend: OpenCV, Threads: -2}, "threads -2"},
		{"unknown opencv backend", Options{Backend: OpenCV, OpenCVBackend: "tpu"}, `unknown OpenCV DNN backend "tpu"`},
		{"unknown opencv target", Options{Backend: OpenCV, OpenCVTarget: "gpu"}, `unknown OpenCV DNN target "gpu"`},
		// Debian's OpenCV has no OpenVINO: the exception OpenCV throws must become an error, not an abort.
		{"opencv backend not built", Options{Backend: OpenCV, OpenCVBackend: "openvino"}, "OpenCV DNN (openvino/cpu) cannot run it"},
		{"unknown extra tensor", Options{Backend: OpenCV, ExtraOutputs: []string{"no_such_tensor"}}, `"no_such_tensor"`},
		{"missing configured library", Options{Backend: ONNXRuntime, Library: "/nonexistent/libonnxruntime.so.1"},
			"engine.library /nonexistent/libonnxruntime.so.1 is not a readable file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Open(m, tc.opts)
			if err == nil {
				e.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestFixedBatchModel checks that a model exported with a fixed batch of 1 is refused for larger batches.
func TestFixedBatchModel(t *testing.T) {
	m := loadModel(t, "se_tiny_64x64.onnx")
	fixed := *m
	fixed.Input.Shape = []int64{1, 3, 64, 64}
	if _, err := Open(&fixed, Options{Backend: OpenCV, MaxBatch: 4}); err == nil || !strings.Contains(err.Error(), "fixed batch size of 1") {
		t.Fatalf("Open(fixed batch 1, max batch 4) error = %v, want a fixed-batch error", err)
	}
}

// TestAutoFallsBackToOpenCV points the library search at a missing file and at a file that is not a shared
// library: Auto must log why and use OpenCV; ONNXRuntime must fail with a *LibraryError.
func TestAutoFallsBackToOpenCV(t *testing.T) {
	m := loadModel(t, "se_tiny_64x64.onnx")
	notLib := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(notLib, []byte("not a shared library\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, lib := range []string{filepath.Join(t.TempDir(), "missing.so"), notLib} {
		t.Run(filepath.Base(lib), func(t *testing.T) {
			var log bytes.Buffer
			e := open(t, m, Options{Backend: Auto, Library: lib, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if got := e.Info().Backend; got != OpenCV {
				t.Fatalf("Auto with library %s chose %s, want opencv", lib, got)
			}
			if !strings.Contains(log.String(), "falling back to OpenCV") || !strings.Contains(log.String(), lib) {
				t.Errorf("log does not say why it fell back:\n%s", log.String())
			}
			if _, err := e.Run(context.Background(), make([]float32, 3*64*64), 1); err != nil {
				t.Errorf("Run on the fallback: %v", err)
			}
			_, err := Open(m, Options{Backend: ONNXRuntime, Library: lib})
			var le *LibraryError
			if !errors.As(err, &le) {
				t.Fatalf("Open(onnxruntime, %s) error = %v, want a *LibraryError", lib, err)
			}
		})
	}
}

func TestAutoPrefersORT(t *testing.T) {
	needORT(t)
	m := loadModel(t, "se_tiny_64x64.onnx")
	var log bytes.Buffer
	e := open(t, m, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if info := e.Info(); info.Backend != ONNXRuntime || !strings.HasPrefix(info.Version, "1.") || info.Library == "" {
		t.Fatalf("Auto Info() = %+v, want ONNX Runtime with a version and library", info)
	}
	if !strings.Contains(log.String(), "using ONNX Runtime") {
		t.Errorf("log does not name the backend:\n%s", log.String())
	}
}

// TestORTSharedEnvironment opens engines side by side and one after another: the environment is shared,
// counted, destroyed by the last Close and loadable again afterwards.
func TestORTSharedEnvironment(t *testing.T) {
	needORT(t)
	m := loadModel(t, "se_tiny_64x64.onnx")
	x := make([]float32, 3*64*64)
	for round := range 2 {
		a, err := Open(m, Options{Backend: ONNXRuntime})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		b, err := Open(m, Options{Backend: ONNXRuntime, MaxBatch: 2})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got := ortRefs(); got != 2 {
			t.Errorf("round %d: %d references with two engines open, want 2", round, got)
		}
		other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
		if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(m, Options{Backend: ONNXRuntime, Library: other}); err == nil || !strings.Contains(err.Error(), "already loaded") {
			t.Errorf("round %d: a second library while one is loaded: error = %v, want 'already loaded'", round, err)
		}
		if _, err := a.Run(context.Background(), x, 1); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Run(context.Background(), x, 1); err != nil {
			t.Fatalf("round %d: Run on the remaining engine: %v", round, err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if got := ortRefs(); got != 0 {
			t.Errorf("round %d: %d references after closing all engines, want 0", round, got)
		}
	}
}

func TestParseBackend(t *testing.T) {
	for in, want := range map[string]Backend{"": Auto, "auto": Auto, "onnxruntime": ONNXRuntime, "opencv": OpenCV} {
		if got, err := ParseBackend(in); err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseBackend("ORT"); err == nil {
		t.Error("ParseBackend(ORT) succeeded, want an error")
	}
}

// TestOpenCVNetPerBatch checks how the OpenCV backend serves smaller batches: a graph of convolutional SE
// blocks runs on the net pinned to the max batch; a graph with Unsqueeze (se_res) needs a net per batch size.
func TestOpenCVNetPerBatch(t *testing.T) {
	cases := []struct {
		file, input string
		own         bool // batch 1 needs its own net
	}{
		{"se_tiny_64x64.onnx", "input_64x64.npy", false},
		{"se_res_96x160.onnx", "input_96x160.npy", true},
	}
	for _, tc := range cases {
		m := loadModel(t, tc.file)
		x := readNpy(t, tc.input)
		e := open(t, m, Options{Backend: OpenCV, MaxBatch: 4})
		if _, err := e.Run(context.Background(), x.Data[:len(x.Data)/4], 1); err != nil {
			t.Fatal(err)
		}
		cv := e.(*cvEngine)
		if own := cv.nets[0] != nil; own != tc.own || cv.viaMax[0] == tc.own {
			t.Errorf("%s: batch 1 has its own net: %v, runs on the max-batch net: %v; want own = %v", tc.file, own, cv.viaMax[0], tc.own)
		}
	}
}
