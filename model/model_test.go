package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/sestream/sestream/se"
)

const tinyPath = "testdata/tiny_se.onnx"

// tinyProto returns a fresh decoded copy of the tiny SE fixture for tests to mutate.
func tinyProto(t testing.TB) *onnx.ModelProto {
	t.Helper()
	data, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		t.Fatal(err)
	}
	return mp
}

// writeModel encodes mp into dir/name and returns the path.
func writeModel(t testing.TB, dir, name string, mp *onnx.ModelProto) string {
	t.Helper()
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func setMeta(mp *onnx.ModelProto, key, value string) {
	for _, p := range mp.MetadataProps {
		if p.Key == key {
			p.Value = value
			return
		}
	}
	mp.MetadataProps = append(mp.MetadataProps, &onnx.StringStringEntryProto{Key: key, Value: value})
}

func initializer(mp *onnx.ModelProto, name string) *onnx.TensorProto {
	for _, t := range mp.Graph.Initializer {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func TestLoadTinySE(t *testing.T) {
	m, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); m.Digest != want {
		t.Errorf("Digest = %s, want %s", m.Digest, want)
	}
	if m.Name != "tiny_se" || m.Path != tinyPath {
		t.Errorf("Name, Path = %q, %q", m.Name, m.Path)
	}
	wantIn := TensorInfo{Name: "images", Shape: []int64{-1, 3, 8, 10}, DimNames: []string{"batch", "", "", ""}}
	if !reflect.DeepEqual(m.Input, wantIn) {
		t.Errorf("Input = %+v, want %+v", m.Input, wantIn)
	}
	wantOut := []TensorInfo{{Name: "logits", Shape: []int64{-1, 5}, DimNames: []string{"batch", ""}}}
	if !reflect.DeepEqual(m.Outputs, wantOut) {
		t.Errorf("Outputs = %+v, want %+v", m.Outputs, wantOut)
	}
	wantMeta := Meta{
		Labels: []string{"zero", "one", "two", "three", "four"}, Width: 10, Height: 8, Color: "rgb", Resize: "stretch",
		Scale: 1.0 / 255, Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225},
	}
	gotMeta := m.Meta
	if gotMeta.Raw["training.commit"] != "fixture" || gotMeta.Raw[KeyColor] != "rgb" || len(gotMeta.Raw) != 9 {
		t.Errorf("Meta.Raw = %v", gotMeta.Raw)
	}
	gotMeta.Raw = nil
	if !reflect.DeepEqual(gotMeta, wantMeta) {
		t.Errorf("Meta = %+v, want %+v", gotMeta, wantMeta)
	}
	want := []string{
		"0 /se1/gate/Sigmoid C=8 hidden=2 sigmoid relu U=/stem/Conv_output_0 gate=/se1/gate/Sigmoid_output_0 out=/se1/Mul_output_0 layers=[/se1/fc1/Conv /se1/fc2/Conv]",
		"1 /se2/gate/HardSigmoid C=16 hidden=4 hard_sigmoid silu U=/silu/Mul_output_0 gate=/se2/gate/HardSigmoid_output_0 out=/se2/Mul_output_0 layers=[/se2/fc1/Gemm /se2/fc2/Gemm]",
		"2 /se3/gate/Sigmoid C=16 hidden=8 sigmoid relu U=/hswish/Mul_output_0 gate=/se3/gate/Sigmoid_output_0 out=/se3/Mul_output_0 layers=[/se3/fc1/MatMul /se3/fc2/MatMul]",
	}
	var got []string
	for _, b := range m.Blocks {
		got = append(got, fmt.Sprintf("%d %s C=%d hidden=%d %s %s U=%s gate=%s out=%s layers=[%s %s]", b.Order, b.Name, b.Channels,
			b.Hidden, b.Gate, b.Activation, b.Input, b.GateTensor, b.Output, b.Layers[0], b.Layers[1]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Blocks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if b := m.Blocks[1]; b.Alpha != float32(1.0/6) || b.Beta != 0.5 {
		t.Errorf("HardSigmoid alpha, beta = %v, %v, want 1/6, 0.5", b.Alpha, b.Beta)
	}
}

// badModels are inputs that Load must reject, each with its sentinel and a message fragment.
// The same cases (and badTensors) seed FuzzParse.
func badModels(t testing.TB, dir string) []struct {
	name, path string
	kind       error
	msg        string
} {
	t.Helper()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tiny, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(random)

	rank3 := tinyProto(t)
	dims := rank3.Graph.Input[0].Type.GetTensorType().Shape
	dims.Dim = dims.Dim[1:]
	intInput := tinyProto(t)
	intInput.Graph.Input[0].Type.GetTensorType().ElemType = dtInt64
	twoInputs := tinyProto(t)
	twoInputs.Graph.Input = append(twoInputs.Graph.Input, proto.Clone(twoInputs.Graph.Input[0]).(*onnx.ValueInfoProto))
	twoInputs.Graph.Input[1].Name = "mask"
	noInput := tinyProto(t)
	noInput.Graph.Input = nil
	noShape := tinyProto(t)
	noShape.Graph.Input[0].Type.GetTensorType().Shape = nil
	noOutput := tinyProto(t)
	noOutput.Graph.Output = nil
	cycle := tinyProto(t)
	cycle.Graph.Node[0].Input[0] = "logits"
	external := func(location string) *onnx.ModelProto {
		mp := tinyProto(t)
		w := initializer(mp, "se1.fc1.weight")
		w.RawData = nil
		w.DataLocation = onnx.TensorProto_EXTERNAL
		w.ExternalData = []*onnx.StringStringEntryProto{{Key: "location", Value: location}}
		return mp
	}
	meta := func(key, value string) *onnx.ModelProto {
		mp := tinyProto(t)
		setMeta(mp, key, value)
		return mp
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []struct {
		name, path string
		kind       error
		msg        string
	}{
		{"missing file", filepath.Join(dir, "missing.onnx"), ErrNotFile, "cannot open"},
		{"directory", filepath.Join(dir, "dir.onnx"), ErrNotFile, "is a directory"},
		{"empty file", write("empty.onnx", nil), ErrEmpty, "file is empty"},
		{"random bytes", write("random.onnx", random), ErrNotONNX, "not an ONNX model"},
		{"truncated", write("truncated.onnx", tiny[:len(tiny)/2]), ErrNotONNX, "not an ONNX model"},
		{"text renamed", write("readme.onnx", []byte("# My model\n\nThis is not a model, just notes.\n")), ErrNotONNX, "not an ONNX model"},
		{"json renamed", write("config.onnx", []byte(`{"model": "x", "batch": 8}`)), ErrNotONNX, "not an ONNX model"},
		{"no graph", writeModel(t, dir, "nograph.onnx", &onnx.ModelProto{IrVersion: 8, ProducerName: "x"}), ErrNoGraph, "has no graph"},
		{"rank 3 input", writeModel(t, dir, "rank3.onnx", rank3), ErrInputRank, `input "images" has rank 3, want 4 (N,C,H,W)`},
		{"input without shape", writeModel(t, dir, "noshape.onnx", noShape), ErrInputRank, `input "images" has no shape`},
		{"int64 input", writeModel(t, dir, "int.onnx", intInput), ErrInput, `input "images" has element type INT64, want FLOAT`},
		{"two inputs", writeModel(t, dir, "two.onnx", twoInputs), ErrInput, `2 inputs ("images", "mask")`},
		{"no input", writeModel(t, dir, "noinput.onnx", noInput), ErrInput, "no input"},
		{"no output", writeModel(t, dir, "nooutput.onnx", noOutput), ErrOutput, "no output"},
		{"cycle", writeModel(t, dir, "cycle.onnx", cycle), ErrGraph, "cycle"},
		{"external data missing", writeModel(t, dir, "ext.onnx", external("ext.bin")), ErrExternalData, `tensor "se1.fc1.weight" has external data in "ext.bin", which is missing next to the model`},
		{"external data outside", writeModel(t, dir, "extout.onnx", external("../ext.bin")), ErrExternalData, "outside the model's directory"},
		{"external data absolute", writeModel(t, dir, "extabs.onnx", external("/etc/hostname")), ErrExternalData, "outside the model's directory"},
		{"labels not json", writeModel(t, dir, "labels.onnx", meta(KeyLabels, "cat,dog")), ErrMetadata, `metadata labels = "cat,dog"`},
		{"labels count", writeModel(t, dir, "labels5.onnx", meta(KeyLabels, `["a","b"]`)), ErrMetadata, `labels has 2 labels, but output "logits" has 5 classes`},
		{"width not int", writeModel(t, dir, "width.onnx", meta(KeyWidth, "ten")), ErrMetadata, `metadata preprocess.width = "ten"`},
		{"width disagrees", writeModel(t, dir, "width2.onnx", meta(KeyWidth, "11")), ErrMetadata, `preprocess.width = 11, but input "images" has width 10`},
		{"height zero", writeModel(t, dir, "height.onnx", meta(KeyHeight, "0")), ErrMetadata, `metadata preprocess.height = "0"`},
		{"color", writeModel(t, dir, "color.onnx", meta(KeyColor, "RGBA")), ErrMetadata, `preprocess.color = "RGBA": want one of rgb, bgr, gray`},
		{"gray for 3 channels", writeModel(t, dir, "gray.onnx", meta(KeyColor, "gray")), ErrMetadata, `input "images" has 3 channels`},
		{"resize", writeModel(t, dir, "resize.onnx", meta(KeyResize, "zoom")), ErrMetadata, `preprocess.resize = "zoom"`},
		{"scale negative", writeModel(t, dir, "scale.onnx", meta(KeyScale, "-1")), ErrMetadata, `preprocess.scale = "-1"`},
		{"mean not array", writeModel(t, dir, "mean.onnx", meta(KeyMean, "0.5")), ErrMetadata, `preprocess.mean = "0.5"`},
		{"mean count", writeModel(t, dir, "mean2.onnx", meta(KeyMean, "[0.5, 0.5]")), ErrMetadata, "preprocess.mean has 2 values"},
		{"std zero", writeModel(t, dir, "std.onnx", meta(KeyStd, "[1, 0, 1]")), ErrMetadata, "want numbers > 0"},
	}
}

func TestLoadRejectsBadModels(t *testing.T) {
	for _, tt := range badModels(t, t.TempDir()) {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Load(tt.path)
			if err == nil {
				t.Fatalf("Load(%s) = %v, want an error", tt.path, m)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			var me *Error
			if !errors.As(err, &me) || me.Path != tt.path {
				t.Errorf("error %q is not an *Error for %s", err, tt.path)
			}
			if !strings.HasPrefix(err.Error(), "model "+tt.path+": ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want %q naming the file", err, tt.msg)
			}
		})
	}
}

func TestRank3Message(t *testing.T) {
	mp := tinyProto(t)
	dims := mp.Graph.Input[0].Type.GetTensorType().Shape
	dims.Dim = dims.Dim[1:]
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("models/x.onnx", data)
	if want := `model models/x.onnx: input "images" has rank 3, want 4 (N,C,H,W)`; err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
}

func TestExternalData(t *testing.T) {
	dir := t.TempDir()
	mp := tinyProto(t)
	w := initializer(mp, "se1.fc1.weight")
	prefix := []byte("0123456789abcdef")
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), append(prefix, w.RawData...), 0o644); err != nil {
		t.Fatal(err)
	}
	n := len(w.RawData)
	w.RawData = nil
	w.DataLocation = onnx.TensorProto_EXTERNAL
	w.ExternalData = []*onnx.StringStringEntryProto{
		{Key: "location", Value: "weights.bin"}, {Key: "offset", Value: fmt.Sprint(len(prefix))}, {Key: "length", Value: fmt.Sprint(n)},
	}
	path := writeModel(t, dir, "ext.onnx", mp)
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.BlockWeights(m.Blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.BlockWeights(ref.Blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("weights read from external data differ from the inline ones")
	}
	// The rewritten bytes carry the data: they parse without the external file.
	data, err := m.ForOpenCV(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(filepath.Join(t.TempDir(), "inlined.onnx"), data); err != nil {
		t.Errorf("rewritten model still needs its external data: %v", err)
	}

	w.ExternalData[2].Value = fmt.Sprint(n + 1)
	_, err = Load(writeModel(t, dir, "short.onnx", mp))
	if want := fmt.Sprintf(`wants %d bytes at offset %d of "weights.bin", which has %d`, n+1, len(prefix), len(prefix)+n); !errors.Is(err, ErrExternalData) || !strings.Contains(err.Error(), want) {
		t.Errorf("short external file: error %v", err)
	}
}

// withIdentity returns the tiny fixture with an Identity-on-initializer feeding the first SE
// layer's weight, as PyTorch exports shared constants.
func withIdentity(t testing.TB) *onnx.ModelProto {
	mp := tinyProto(t)
	id := &onnx.NodeProto{Name: "/Identity_w", OpType: "Identity", Input: []string{"se1.fc1.weight"}, Output: []string{"onnx::Conv_99"}}
	mp.Graph.Node = append([]*onnx.NodeProto{id}, mp.Graph.Node...)
	for _, n := range mp.Graph.Node {
		if n.Name == "/se1/fc1/Conv" {
			n.Input[1] = "onnx::Conv_99"
		}
	}
	mp.Graph.ValueInfo = append(mp.Graph.ValueInfo, &onnx.ValueInfoProto{Name: "/se1/Mul_output_0"})
	return mp
}

func TestForOpenCV(t *testing.T) {
	dir := t.TempDir()
	m, err := Load(writeModel(t, dir, "identity.onnx", withIdentity(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blocks) != 3 {
		t.Fatalf("found %d blocks through the Identity, want 3", len(m.Blocks))
	}
	for _, maxBatch := range []int{1, 3, 8} {
		data, err := m.ForOpenCV(maxBatch)
		if err != nil {
			t.Fatal(err)
		}
		cv, err := Parse("opencv.onnx", data)
		if err != nil {
			t.Fatalf("ForOpenCV(%d) output does not parse: %v", maxBatch, err)
		}
		g := cv.proto.Graph
		inits := map[string]bool{}
		for _, i := range g.Initializer {
			inits[i.Name] = true
		}
		for _, n := range g.Node {
			if n.OpType == "Identity" && inits[n.Input[0]] {
				t.Errorf("ForOpenCV(%d) kept Identity-on-initializer %q", maxBatch, n.Name)
			}
		}
		if !inits["onnx::Conv_99"] {
			t.Errorf("ForOpenCV(%d) did not copy the initializer under the Identity's output name", maxBatch)
		}
		if len(g.ValueInfo) != 0 {
			t.Errorf("ForOpenCV(%d) kept %d value_info entries", maxBatch, len(g.ValueInfo))
		}
		if got := cv.Input.Shape; got[0] != int64(maxBatch) || cv.Input.DimNames[0] != "" || got[1] != 3 {
			t.Errorf("ForOpenCV(%d) input shape %v %q", maxBatch, got, cv.Input.DimNames)
		}
		if got := cv.Outputs[0].Shape; got[0] != int64(maxBatch) || got[1] != 5 {
			t.Errorf("ForOpenCV(%d) output shape %v", maxBatch, got)
		}
		if !reflect.DeepEqual(cv.Blocks, m.Blocks) {
			t.Errorf("ForOpenCV(%d) changed the SE blocks", maxBatch)
		}
		for _, b := range cv.Blocks {
			w1, err := cv.BlockWeights(b)
			if err != nil {
				t.Fatal(err)
			}
			w0, _ := m.BlockWeights(b)
			if !reflect.DeepEqual(w0, w1) {
				t.Errorf("ForOpenCV(%d) changed the weights of %s", maxBatch, b.Name)
			}
		}
	}
	if _, err := m.ForOpenCV(0); !errors.Is(err, ErrRewrite) {
		t.Errorf("ForOpenCV(0) error = %v, want ErrRewrite", err)
	}
	// The Model itself is unchanged by rewrites.
	if m.Input.Shape[0] != -1 || len(m.proto.Graph.ValueInfo) != 1 {
		t.Errorf("ForOpenCV modified the Model")
	}
}

func TestForONNXRuntime(t *testing.T) {
	m, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	var gates []string
	for _, b := range m.Blocks {
		gates = append(gates, b.GateTensor)
	}
	extra := append(append([]string{}, gates...), gates[0], "logits", m.Blocks[0].Input)
	data, err := m.ForONNXRuntime(extra...)
	if err != nil {
		t.Fatal(err)
	}
	ort, err := Parse("ort.onnx", data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range ort.Outputs {
		names = append(names, o.Name)
	}
	want := append(append([]string{"logits"}, gates...), m.Blocks[0].Input)
	if !reflect.DeepEqual(names, want) {
		t.Errorf("outputs %q, want %q", names, want)
	}
	for _, o := range ort.proto.Graph.Output[1:] {
		if tt := o.Type.GetTensorType(); tt.ElemType != dtFloat || tt.Shape != nil {
			t.Errorf("extra output %q has type %v", o.Name, o.Type)
		}
	}
	if len(m.Outputs) != 1 {
		t.Errorf("ForONNXRuntime modified the Model: %d outputs", len(m.Outputs))
	}
	for _, bad := range []string{"nope", "images", "se1.fc1.weight", ""} {
		if _, err := m.ForONNXRuntime(bad); !errors.Is(err, ErrTensor) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("ForONNXRuntime(%q) error = %v, want ErrTensor naming it", bad, err)
		}
	}
}

func TestBlockWeightsMatchTorch(t *testing.T) {
	var fixture struct {
		Blocks []struct {
			Channels, Hidden int
			W1, B1, W2, B2   []float64
			Activation, Gate string
		}
	}
	data, err := os.ReadFile("testdata/tiny_se_weights.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fixture); err != nil {
		t.Fatal(err)
	}
	m, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blocks) != len(fixture.Blocks) {
		t.Fatalf("%d blocks, torch has %d", len(m.Blocks), len(fixture.Blocks))
	}
	f32 := func(xs []float64) []float32 {
		out := make([]float32, len(xs))
		for i, x := range xs {
			out[i] = float32(x)
		}
		return out
	}
	for i, want := range fixture.Blocks {
		b := m.Blocks[i]
		got, err := m.BlockWeights(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Channels != want.Channels || got.Hidden != want.Hidden || got.Act.String() != want.Activation || got.Gate.String() != want.Gate {
			t.Errorf("block %s: C=%d hidden=%d %s %s, torch C=%d hidden=%d %s %s", b.Name, got.Channels, got.Hidden,
				got.Act, got.Gate, want.Channels, want.Hidden, want.Activation, want.Gate)
		}
		for _, p := range []struct {
			name      string
			got, want []float32
		}{{"W1", got.W1, f32(want.W1)}, {"B1", got.B1, f32(want.B1)}, {"W2", got.W2, f32(want.W2)}, {"B2", got.B2, f32(want.B2)}} {
			if !reflect.DeepEqual(p.got, p.want) {
				t.Errorf("block %s (%s layers) %s differs from torch:\n got %v\nwant %v", b.Name, m.node(b.Layers[0]).OpType, p.name, p.got, p.want)
			}
		}
	}
}

func TestBlockWeightsGemmLayouts(t *testing.T) {
	// Gemm with transB=0 stores B as in x out; alpha and beta scale weight and bias.
	ref, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.BlockWeights(ref.Blocks[1])
	if err != nil {
		t.Fatal(err)
	}
	mp := tinyProto(t)
	for _, n := range mp.Graph.Node {
		if n.Name != "/se2/fc1/Gemm" {
			continue
		}
		var attrs []*onnx.AttributeProto
		for _, a := range n.Attribute {
			switch a.Name {
			case "transB":
			case "alpha":
				a.F = 2
				attrs = append(attrs, a)
			case "beta":
				a.F = 0.5
				attrs = append(attrs, a)
			default:
				attrs = append(attrs, a)
			}
		}
		n.Attribute = attrs
	}
	w := initializer(mp, "se2.fc1.weight") // [4, 16] -> [16, 4]
	rows, cols := int(w.Dims[0]), int(w.Dims[1])
	tr := make([]byte, len(w.RawData))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			copy(tr[4*(c*rows+r):], w.RawData[4*(r*cols+c):4*(r*cols+c)+4])
		}
	}
	w.RawData, w.Dims = tr, []int64{int64(cols), int64(rows)}
	m, err := Load(writeModel(t, t.TempDir(), "gemm.onnx", mp))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.BlockWeights(m.Blocks[1])
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.W1 {
		if got.W1[i] != 2*want.W1[i] {
			t.Fatalf("W1[%d] = %v, want 2 * %v", i, got.W1[i], want.W1[i])
		}
	}
	for i := range want.B1 {
		if got.B1[i] != 0.5*want.B1[i] {
			t.Fatalf("B1[%d] = %v, want 0.5 * %v", i, got.B1[i], want.B1[i])
		}
	}
	if !reflect.DeepEqual(got.W2, want.W2) {
		t.Error("W2 changed")
	}
}

func TestBlockWeightsRejectsForeignBlock(t *testing.T) {
	m, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		block func(b se.BlockInfo) se.BlockInfo
	}{
		{"unknown layer", func(b se.BlockInfo) se.BlockInfo { b.Layers[0] = "nope"; return b }},
		{"unknown weight", func(b se.BlockInfo) se.BlockInfo { b.Weights[1] = "nope"; return b }},
		{"unknown bias", func(b se.BlockInfo) se.BlockInfo { b.Biases[0] = "nope"; return b }},
		{"wrong channels", func(b se.BlockInfo) se.BlockInfo { b.Channels++; return b }},
		{"zero hidden", func(b se.BlockInfo) se.BlockInfo { b.Hidden = 0; return b }},
		{"layer not linear", func(b se.BlockInfo) se.BlockInfo {
			b.Layers[0] = "/stem/Conv"
			b.Weights[0] = "/se1/pool/GlobalAveragePool_output_0"
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.BlockWeights(tt.block(m.Blocks[0])); !errors.Is(err, ErrTensor) {
				t.Errorf("BlockWeights error = %v, want ErrTensor", err)
			}
		})
	}
}

func TestParseNamesUnnamedNodes(t *testing.T) {
	mp := tinyProto(t)
	for _, n := range mp.Graph.Node {
		n.Name = ""
	}
	mp.Graph.Node[1].Name = "Sigmoid_5" // a name the generator would also pick must not be reused
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("unnamed.onnx", data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range m.Blocks {
		names = append(names, b.Name)
	}
	if want := []string{"Sigmoid_5_1", "HardSigmoid_21", "Sigmoid_41"}; !reflect.DeepEqual(names, want) {
		t.Errorf("block names %q, want %q", names, want)
	}
	out, err := m.ForOpenCV(2)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("again.onnx", out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Blocks, m.Blocks) {
		t.Error("the rewritten model names its nodes differently")
	}
}

func TestParseWithoutName(t *testing.T) {
	data, err := os.ReadFile(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("", data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "torch_jit" {
		t.Errorf("Name = %q, want the graph's name", m.Name)
	}
	if _, err := Parse("", nil); err == nil || err.Error() != "model: file is empty" {
		t.Errorf("Parse of nothing: %v", err)
	}
}

// FuzzParse: any bytes give a model or an *Error, never a panic; a model Parse accepts stores
// every tensor inline with exactly the bytes (or typed values) its data type and dims declare,
// and so does its ForOpenCV rewrite. Seeded from badModels, badTensors and the valid fixtures.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	for _, tt := range badModels(f, dir) {
		if data, err := os.ReadFile(tt.path); err == nil {
			f.Add(data)
		}
	}
	seeds := []*onnx.ModelProto{tinyProto(f), withIdentity(f), tensorEncodings(f)}
	for _, tt := range badTensors(f, dir) {
		seeds = append(seeds, tt.mp)
	}
	for _, mp := range seeds {
		data, err := proto.Marshal(mp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(filepath.Join(dir, "fuzz.onnx"), data)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || me.Kind == nil {
				t.Fatalf("Parse error %v is not an *Error with a Kind", err)
			}
			return
		}
		checkStoredTensors(t, m.proto)
		var gates []string
		for _, b := range m.Blocks {
			gates = append(gates, b.GateTensor)
			_, _ = m.BlockWeights(b)
		}
		if _, err := m.ForONNXRuntime(gates...); err != nil {
			t.Fatalf("ForONNXRuntime on a parsed model: %v", err)
		}
		data, err = m.ForOpenCV(2)
		if err != nil {
			t.Fatalf("ForOpenCV on a parsed model: %v", err)
		}
		cv, err := Parse("rewritten.onnx", data)
		if err != nil {
			t.Fatalf("ForOpenCV output does not parse: %v", err)
		}
		checkStoredTensors(t, cv.proto)
	})
}

func BenchmarkParseTiny(b *testing.B) {
	data, err := os.ReadFile(tinyPath)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(tinyPath, data); err != nil {
			b.Fatal(err)
		}
	}
}
