package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"gocv.io/x/gocv"
	"google.golang.org/protobuf/proto"

	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/npy"
)

const engineTestdata = "../../engine/testdata"

// run executes the sestream command line and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func cliBackends(t *testing.T) []string {
	if _, _, err := engine.FindLibrary(""); err != nil {
		t.Logf("ONNX Runtime library not installed, testing OpenCV only: %v", err)
		return []string{"opencv"}
	}
	return []string{"onnxruntime", "opencv"}
}

func readNpy(t *testing.T, name string) npy.Array {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join(engineTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func closeTo(t *testing.T, what string, got [][]float32, want npy.Array) {
	t.Helper()
	var flat []float32
	for _, r := range got {
		flat = append(flat, r...)
	}
	if len(got) != want.Shape[0] || len(flat) != len(want.Data) {
		t.Fatalf("%s: %d rows, %d values; want %d rows, %d values", what, len(got), len(flat), want.Shape[0], len(want.Data))
	}
	for i := range flat {
		if d := math.Abs(float64(flat[i] - want.Data[i])); d > 1e-4 {
			t.Fatalf("%s: value %d is %v, want %v", what, i, flat[i], want.Data[i])
		}
	}
}

// TestInferJSON runs `sestream infer --tensor --json` on a golden model and compares with PyTorch.
func TestInferJSON(t *testing.T) {
	model := filepath.Join(engineTestdata, "se_res_96x160.onnx")
	// A batch of 3 taken from the golden input.
	in := readNpy(t, "input_96x160.npy")
	item := 3 * 96 * 160
	tensor := filepath.Join(t.TempDir(), "x.npy")
	if err := npy.WriteFile(tensor, npy.Array{Shape: []int{3, 3, 96, 160}, Data: in.Data[:3*item]}); err != nil {
		t.Fatal(err)
	}
	for _, b := range cliBackends(t) {
		t.Run(b, func(t *testing.T) {
			code, stdout, stderr := run(t, "infer", "--model", model, "--tensor", tensor, "--engine", b, "--json")
			if code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
			}
			var out inferJSON
			dec := json.NewDecoder(strings.NewReader(stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&out); err != nil {
				t.Fatalf("stdout is not the infer JSON: %v\n%s", err, stdout)
			}
			closeTo(t, "logits", out.Outputs["logits"], readNpy(t, "se_res_96x160.b3.out0.npy"))
			closeTo(t, "embedding", out.Outputs["embedding"], readNpy(t, "se_res_96x160.b3.out1.npy"))
			closeTo(t, "gates /se1/gate/Sigmoid", out.Gates["/se1/gate/Sigmoid"], readNpy(t, "se_res_96x160.b3.gate0.npy"))
			closeTo(t, "gates /se2/gate/HardSigmoid", out.Gates["/se2/gate/HardSigmoid"], readNpy(t, "se_res_96x160.b3.gate1.npy"))
			if len(out.Outputs) != 2 || len(out.Gates) != 2 {
				t.Errorf("JSON has %d outputs and %d gate blocks, want 2 and 2", len(out.Outputs), len(out.Gates))
			}
		})
	}
}

func TestInferText(t *testing.T) {
	code, stdout, stderr := run(t, "infer", "--model", filepath.Join(engineTestdata, "se_tiny_64x64.onnx"),
		"--tensor", filepath.Join(engineTestdata, "input_64x64.npy"), "--engine", "opencv")
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"batch 4", "item 3", "output logits [10], top: [8 ", "gates /se2/gate/HardSigmoid: 16 channels"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestInferImages preprocesses two image files and checks one row per image with gates in (0, 1).
func TestInferImages(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, size := range [][2]int{{120, 90}, {50, 200}} {
		img := gocv.NewMatWithSize(size[1], size[0], gocv.MatTypeCV8UC3)
		gocv.RandU(&img, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
		p := filepath.Join(dir, fmt.Sprintf("img%d.png", i))
		ok := gocv.IMWrite(p, img)
		img.Close()
		if !ok {
			t.Fatalf("cannot write %s", p)
		}
		paths = append(paths, p)
	}
	code, stdout, stderr := run(t, "infer", "--model", filepath.Join(engineTestdata, "se_tiny_64x64.onnx"),
		"--image", paths[0], "--image", paths[1], "--engine", "opencv", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	var out inferJSON
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if rows := out.Outputs["logits"]; len(rows) != 2 || len(rows[0]) != 10 {
		t.Fatalf("logits = %v, want 2 rows of 10", rows)
	}
	for name, rows := range out.Gates {
		for _, r := range rows {
			for _, v := range r {
				if !(v > 0 && v < 1) {
					t.Fatalf("gate %s value %v is not in (0, 1)", name, v)
				}
			}
		}
	}
}

// badModels writes the broken models every command must refuse with exit code 2.
func badModels(t *testing.T) map[string]string {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(engineTestdata, "se_tiny_64x64.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(good, mp); err != nil {
		t.Fatal(err)
	}
	dims := mp.Graph.Input[0].Type.GetTensorType().Shape
	dims.Dim = dims.Dim[:3]
	rank3, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	files := map[string][]byte{
		"empty.onnx":     nil,
		"random.onnx":    random,
		"truncated.onnx": good[:len(good)/2],
		"rank3.onnx":     rank3,
		"text.onnx":      []byte("this is a text file, not a model\n"),
	}
	paths := map[string]string{"missing.onnx": filepath.Join(dir, "missing.onnx")}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return paths
}

func TestInferBadInput(t *testing.T) {
	tensor := filepath.Join(engineTestdata, "input_64x64.npy")
	model := filepath.Join(engineTestdata, "se_tiny_64x64.onnx")
	var cases [][]string
	for _, p := range badModels(t) {
		cases = append(cases, []string{"infer", "--model", p, "--tensor", tensor})
	}
	notNpy := filepath.Join(t.TempDir(), "x.npy")
	os.WriteFile(notNpy, []byte("not numpy"), 0o644)
	cases = append(cases,
		[]string{"infer", "--tensor", tensor},
		[]string{"infer", "--model", model},
		[]string{"infer", "--model", model, "--tensor", tensor, "--image", "a.png"},
		[]string{"infer", "--model", model, "--tensor", notNpy},
		[]string{"infer", "--model", model, "--tensor", filepath.Join(engineTestdata, "input_96x160.npy")},
		[]string{"infer", "--model", model, "--tensor", tensor, "--engine", "tpu"},
		[]string{"infer", "--model", model, "--image", filepath.Join(t.TempDir(), "missing.png")},
		[]string{"infer", "--model", model, "--image", notNpy},
	)
	for _, args := range cases {
		code, _, stderr := run(t, args...)
		if code != exitUsage || !strings.HasPrefix(stderr, "sestream: ") {
			t.Errorf("%v: exit code %d, stderr %q; want %d and an error", args, code, stderr, exitUsage)
		}
	}
}

func TestInferMissingLibraryIsFailure(t *testing.T) {
	code, _, stderr := run(t, "infer", "--model", filepath.Join(engineTestdata, "se_tiny_64x64.onnx"),
		"--tensor", filepath.Join(engineTestdata, "input_64x64.npy"), "--engine", "onnxruntime", "--library", "/nonexistent/libonnxruntime.so.1")
	if code != exitFailure || !strings.Contains(stderr, "/nonexistent/libonnxruntime.so.1") {
		t.Fatalf("exit code %d, stderr %q; want %d naming the library", code, stderr, exitFailure)
	}
}

func TestBenchJSON(t *testing.T) {
	for _, b := range cliBackends(t) {
		for _, extra := range [][]string{nil, {"--no-gates"}} {
			args := append([]string{"bench", "--model", filepath.Join(engineTestdata, "se_tiny_64x64.onnx"),
				"--batch", "3", "--iterations", "4", "--warmup", "1", "--threads", "1", "--engine", b, "--json"}, extra...)
			code, stdout, stderr := run(t, args...)
			if code != 0 {
				t.Fatalf("%v: exit code %d, stderr:\n%s", args, code, stderr)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			var keys []string
			for k := range raw {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := []string{"batch", "batch_ms_p50", "batch_ms_p99", "engine", "images_per_sec", "iterations", "model", "threads"}
			if !slices.Equal(keys, want) {
				t.Fatalf("JSON keys %v, want exactly %v", keys, want)
			}
			var out benchJSON
			json.Unmarshal([]byte(stdout), &out)
			if out.Engine != b || out.Model != "se_tiny_64x64" || out.Batch != 3 || out.Iterations != 4 || out.Threads != 1 ||
				!(out.ImagesPerSec > 0) || !(out.BatchMsP50 > 0) || out.BatchMsP99 < out.BatchMsP50 {
				t.Errorf("%v: JSON %+v is not consistent", args, out)
			}
		}
	}
}

func TestBenchText(t *testing.T) {
	code, stdout, stderr := run(t, "bench", "--model", filepath.Join(engineTestdata, "se_tiny_64x64.onnx"),
		"--iterations", "2", "--engine", "opencv")
	if code != 0 || !strings.Contains(stdout, "images/s") || !strings.Contains(stdout, "3 SE blocks' gates fetched") {
		t.Fatalf("exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestBenchBadInput(t *testing.T) {
	model := filepath.Join(engineTestdata, "se_tiny_64x64.onnx")
	var cases [][]string
	for _, p := range badModels(t) {
		cases = append(cases, []string{"bench", "--model", p, "--batch", "1", "--iterations", "1"})
	}
	cases = append(cases,
		[]string{"bench", "--batch", "1"},
		[]string{"bench", "--model", model, "--batch", "0"},
		[]string{"bench", "--model", model, "--iterations", "0"},
		[]string{"bench", "--model", model, "--threads", "-1"},
		[]string{"bench", "--model", model, "--engine", "cuda"},
		[]string{"bench", "--model", model, "--batch", "x"},
	)
	for _, args := range cases {
		code, _, stderr := run(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit code %d, stderr %q; want %d", args, code, stderr, exitUsage)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []int
	for i := 1; i <= 100; i++ {
		d = append(d, i)
	}
	cases := []struct {
		n, p, want int
	}{{100, 50, 50}, {100, 99, 99}, {1, 99, 1}, {4, 50, 2}, {4, 99, 4}, {10, 0, 1}}
	for _, c := range cases {
		sorted := make([]time.Duration, c.n)
		for i := range sorted {
			sorted[i] = time.Duration(d[i])
		}
		if got := percentile(sorted, c.p); int(got) != c.want {
			t.Errorf("percentile(1..%d, %d) = %d, want %d", c.n, c.p, got, c.want)
		}
	}
}
