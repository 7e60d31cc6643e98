package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// nodeNamed returns the node of mp's main graph called name.
func nodeNamed(t testing.TB, mp *onnx.ModelProto, name string) *onnx.NodeProto {
	t.Helper()
	for _, n := range mp.Graph.Node {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %q in the fixture", name)
	return nil
}

// constValue returns the "value" tensor of the Constant node called name.
func constValue(t testing.TB, mp *onnx.ModelProto, name string) *onnx.TensorProto {
	t.Helper()
	for _, a := range nodeNamed(t, mp, name).Attribute {
		if a.Name == "value" && a.T != nil {
			return a.T
		}
	}
	t.Fatalf("node %q has no tensor value", name)
	return nil
}

func floatBytes(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// badTensor is a model whose stored tensor data disagrees with its declared type and dims. Parse
// of the model under dir/x.onnx must fail with kind and exactly "model <path>: " + msg.
type badTensor struct {
	name string
	mp   *onnx.ModelProto
	kind error
	msg  string
}

// badTensors builds the rejected models from the tiny fixture. External data files they name are
// written into dir. The same cases seed FuzzParse.
func badTensors(t testing.TB, dir string) []badTensor {
	t.Helper()
	// stem.weight is float32 [8 3 3 3] (864 bytes), stem.bias float32 [8], se1.fc1.weight float32
	// [2 8 1 1] (64 bytes), /se3/Constant_1 an int64 [4] Constant.
	edit := func(name string, f func(w *onnx.TensorProto)) *onnx.ModelProto {
		mp := tinyProto(t)
		f(initializer(mp, name))
		return mp
	}
	editConst := func(f func(c *onnx.TensorProto)) *onnx.ModelProto {
		mp := tinyProto(t)
		f(constValue(t, mp, "/se3/Constant_1"))
		return mp
	}
	extra := func(ts ...*onnx.TensorProto) *onnx.ModelProto {
		mp := tinyProto(t)
		mp.Graph.Initializer = append(mp.Graph.Initializer, ts...)
		return mp
	}
	withAttr := func(a *onnx.AttributeProto) *onnx.ModelProto {
		mp := tinyProto(t)
		n := nodeNamed(t, mp, "/se1/fc1/Conv")
		n.Attribute = append(n.Attribute, a)
		return mp
	}
	short := &onnx.TensorProto{Name: "w", DataType: dtFloat, Dims: []int64{2}, RawData: floatBytes(1)}
	good := &onnx.TensorProto{Name: "v", DataType: dtFloat, Dims: []int64{2}, RawData: floatBytes(1, 2)}
	subgraph := func() *onnx.GraphProto {
		return &onnx.GraphProto{Name: "body", Initializer: []*onnx.TensorProto{proto.Clone(short).(*onnx.TensorProto)}}
	}

	w := initializer(tinyProto(t), "se1.fc1.weight")
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), append([]byte("0123456789abcdef"), w.RawData...), 0o644); err != nil {
		t.Fatal(err)
	}
	external := func(kv ...string) *onnx.ModelProto {
		return edit("se1.fc1.weight", func(w *onnx.TensorProto) {
			w.RawData = nil
			w.DataLocation = onnx.TensorProto_EXTERNAL
			w.ExternalData = []*onnx.StringStringEntryProto{{Key: "location", Value: "w.bin"}}
			for i := 0; i < len(kv); i += 2 {
				w.ExternalData = append(w.ExternalData, &onnx.StringStringEntryProto{Key: kv[i], Value: kv[i+1]})
			}
		})
	}

	return []badTensor{
		{"raw_data short", edit("stem.weight", func(w *onnx.TensorProto) { w.RawData = w.RawData[:500] }),
			ErrTensorData, `initializer "stem.weight": float32 [8 3 3 3] needs 864 bytes, raw_data has 500`},
		{"raw_data one byte short", edit("stem.weight", func(w *onnx.TensorProto) { w.RawData = w.RawData[:863] }),
			ErrTensorData, `initializer "stem.weight": float32 [8 3 3 3] needs 864 bytes, raw_data has 863`},
		{"raw_data long", edit("stem.weight", func(w *onnx.TensorProto) { w.RawData = append(w.RawData, 0, 0, 0, 0) }),
			ErrTensorData, `initializer "stem.weight": float32 [8 3 3 3] needs 864 bytes, raw_data has 868`},
		{"no data", edit("stem.weight", func(w *onnx.TensorProto) { w.RawData = nil }),
			ErrTensorData, `initializer "stem.weight": float32 [8 3 3 3] needs 864 bytes, raw_data has 0`},
		{"dims larger than data", edit("se1.fc1.weight", func(w *onnx.TensorProto) { w.Dims = []int64{2, 8, 1, 2} }),
			ErrTensorData, `initializer "se1.fc1.weight": float32 [2 8 1 2] needs 128 bytes, raw_data has 64`},
		{"data on an empty tensor", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims = []int64{8, 0} }),
			ErrTensorData, `initializer "stem.bias": float32 [8 0] needs 0 bytes, raw_data has 32`},
		{"float_data short", edit("stem.bias", func(w *onnx.TensorProto) { w.RawData, w.FloatData = nil, make([]float32, 7) }),
			ErrTensorData, `initializer "stem.bias": float32 [8] needs 8 float_data values, has 7`},
		{"float_data long", edit("stem.bias", func(w *onnx.TensorProto) { w.RawData, w.FloatData = nil, make([]float32, 9) }),
			ErrTensorData, `initializer "stem.bias": float32 [8] needs 8 float_data values, has 9`},
		{"double_data short", edit("stem.bias", func(w *onnx.TensorProto) {
			w.DataType, w.RawData, w.DoubleData = dtDouble, nil, make([]float64, 3)
		}), ErrTensorData, `initializer "stem.bias": float64 [8] needs 8 double_data values, has 3`},
		{"int32_data for float16", edit("stem.bias", func(w *onnx.TensorProto) {
			w.DataType, w.RawData, w.Int32Data = int32(onnx.TensorProto_FLOAT16), nil, make([]int32, 4)
		}), ErrTensorData, `initializer "stem.bias": float16 [8] needs 8 int32_data values, has 4`},
		{"uint64_data for uint32", edit("stem.bias", func(w *onnx.TensorProto) {
			w.DataType, w.RawData, w.Uint64Data = int32(onnx.TensorProto_UINT32), nil, make([]uint64, 9)
		}), ErrTensorData, `initializer "stem.bias": uint32 [8] needs 8 uint64_data values, has 9`},
		{"complex64 float_data", edit("stem.bias", func(w *onnx.TensorProto) {
			w.DataType, w.Dims, w.RawData, w.FloatData = int32(onnx.TensorProto_COMPLEX64), []int64{4}, nil, make([]float32, 7)
		}), ErrTensorData, `initializer "stem.bias": complex64 [4] needs 8 float_data values (2 per element), has 7`},
		{"uint8 raw_data", edit("stem.bias", func(w *onnx.TensorProto) { w.DataType = int32(onnx.TensorProto_UINT8) }),
			ErrTensorData, `initializer "stem.bias": uint8 [8] needs 8 bytes, raw_data has 32`},
		{"field of another type", edit("stem.bias", func(w *onnx.TensorProto) { w.RawData, w.Int64Data = nil, make([]int64, 8) }),
			ErrTensorData, `initializer "stem.bias": float32 [8] has int64_data, which float32 does not use (it stores values in raw_data or float_data)`},
		{"string_data on float", edit("stem.bias", func(w *onnx.TensorProto) { w.StringData = [][]byte{[]byte("x")} }),
			ErrTensorData, `initializer "stem.bias": float32 [8] has string_data, which float32 does not use (it stores values in raw_data or float_data)`},
		{"raw_data and float_data", edit("stem.bias", func(w *onnx.TensorProto) { w.FloatData = make([]float32, 8) }),
			ErrTensorData, `initializer "stem.bias": float32 [8] has data in both raw_data (32) and float_data (8), want one`},
		{"negative dim", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims = []int64{-8} }),
			ErrTensorData, `initializer "stem.bias": float32 [-8] has negative dimension -8`},
		{"negative dims cancelling", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims = []int64{-2, -4} }),
			ErrTensorData, `initializer "stem.bias": float32 [-2 -4] has negative dimension -2`},
		{"dim above int32", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims, w.RawData = []int64{1 << 32, 0}, nil }),
			ErrTensorData, `initializer "stem.bias": float32 [4294967296 0] has dimension 4294967296, more than 2147483647`},
		{"element count overflows", edit("stem.bias", func(w *onnx.TensorProto) {
			w.Dims, w.RawData = []int64{math.MaxInt32, math.MaxInt32, math.MaxInt32}, nil
		}), ErrTensorData, `initializer "stem.bias": float32 [2147483647 2147483647 2147483647] has more than 9223372036854775807 elements`},
		{"byte count wraps to zero", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims, w.RawData = []int64{1 << 30, 1 << 30, 4}, nil }),
			ErrTensorData, `initializer "stem.bias": float32 [1073741824 1073741824 4] needs more than 9223372036854775807 bytes`},
		// 8 x (2^59 + 1) float32 elements are 2^64 + 32 bytes: 32 modulo 2^64, the bytes stem.bias has.
		{"byte count wraps to the data", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims = []int64{8, 3, 2833, 37171, 1824726041} }),
			ErrTensorData, `initializer "stem.bias": float32 [8 3 2833 37171 1824726041] needs more than 9223372036854775807 bytes`},
		{"unknown data type", edit("stem.bias", func(w *onnx.TensorProto) { w.DataType = 99 }),
			ErrTensorData, `initializer "stem.bias": data type 99 is unknown or not supported (want FLOAT (1) to BFLOAT16 (16), not STRING (8))`},
		{"float8 data type", edit("stem.bias", func(w *onnx.TensorProto) { w.DataType = 17 }),
			ErrTensorData, `initializer "stem.bias": data type 17 is unknown or not supported (want FLOAT (1) to BFLOAT16 (16), not STRING (8))`},
		{"undefined data type", edit("stem.bias", func(w *onnx.TensorProto) { w.DataType = 0 }),
			ErrTensorData, `initializer "stem.bias": data type UNDEFINED is not supported`},
		{"string data type", edit("stem.bias", func(w *onnx.TensorProto) {
			w.DataType, w.RawData, w.StringData = int32(onnx.TensorProto_STRING), nil, make([][]byte, 8)
		}), ErrTensorData, `initializer "stem.bias": data type STRING is not supported`},
		{"segment", edit("stem.bias", func(w *onnx.TensorProto) { w.Segment = &onnx.TensorProto_Segment{Begin: 0, End: 4} }),
			ErrTensorData, `initializer "stem.bias": float32 [8] is a segment (0..4) of a larger tensor, which is not supported`},
		{"high rank", edit("stem.bias", func(w *onnx.TensorProto) { w.Dims = []int64{1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 2} }),
			ErrTensorData, `initializer "stem.bias": float32 [1 1 1 1 1 1 1 1 ...] (rank 11) needs 64 bytes, raw_data has 32`},
		{"unknown data_location", edit("stem.bias", func(w *onnx.TensorProto) { w.DataLocation = 7 }),
			ErrTensorData, `initializer "stem.bias": float32 [8] has data_location 7, want DEFAULT (0) or EXTERNAL (1)`},
		{"constant raw_data short", editConst(func(c *onnx.TensorProto) { c.RawData = c.RawData[:24] }),
			ErrTensorData, `node "/se3/Constant_1" attribute "value": int64 [4] needs 32 bytes, raw_data has 24`},
		{"constant int64_data short", editConst(func(c *onnx.TensorProto) { c.RawData, c.Int64Data = nil, []int64{1, 16, 1} }),
			ErrTensorData, `node "/se3/Constant_1" attribute "value": int64 [4] needs 4 int64_data values, has 3`},
		{"constant scalar raw_data long", editConst(func(c *onnx.TensorProto) { c.Dims = nil }),
			ErrTensorData, `node "/se3/Constant_1" attribute "value": int64 [] needs 8 bytes, raw_data has 32`},
		{"tensors attribute", withAttr(&onnx.AttributeProto{Name: "values", Type: onnx.AttributeProto_TENSORS, Tensors: []*onnx.TensorProto{good, short}}),
			ErrTensorData, `node "/se1/fc1/Conv" attribute "values"[1]: float32 [2] needs 8 bytes, raw_data has 4`},
		{"subgraph initializer", withAttr(&onnx.AttributeProto{Name: "body", Type: onnx.AttributeProto_GRAPH, G: subgraph()}),
			ErrTensorData, `node "/se1/fc1/Conv" attribute "body": initializer "w": float32 [2] needs 8 bytes, raw_data has 4`},
		{"subgraph constant", withAttr(&onnx.AttributeProto{Name: "branches", Type: onnx.AttributeProto_GRAPHS, Graphs: []*onnx.GraphProto{
			{Name: "ok"},
			{Name: "bad", Node: []*onnx.NodeProto{{OpType: "Constant", Output: []string{"c"}, Attribute: []*onnx.AttributeProto{
				{Name: "value", Type: onnx.AttributeProto_TENSOR, T: short},
			}}}},
		}}), ErrTensorData, `node "/se1/fc1/Conv" attribute "branches"[1]: node 0 (Constant) attribute "value": float32 [2] needs 8 bytes, raw_data has 4`},
		{"function constant", func() *onnx.ModelProto {
			mp := tinyProto(t)
			mp.Functions = []*onnx.FunctionProto{{Name: "f", Domain: "local", Node: []*onnx.NodeProto{{Name: "c", OpType: "Constant", Output: []string{"y"},
				Attribute: []*onnx.AttributeProto{{Name: "value", Type: onnx.AttributeProto_TENSOR, T: short}}}}}}
			return mp
		}(), ErrTensorData, `function "local.f": node "c" attribute "value": float32 [2] needs 8 bytes, raw_data has 4`},
		{"training_info initializer", func() *onnx.ModelProto {
			mp := tinyProto(t)
			mp.TrainingInfo = []*onnx.TrainingInfoProto{{Algorithm: subgraph()}}
			return mp
		}(), ErrTensorData, `training_info[0] algorithm: initializer "w": float32 [2] needs 8 bytes, raw_data has 4`},
		{"sparse initializer", func() *onnx.ModelProto {
			mp := tinyProto(t)
			mp.Graph.SparseInitializer = []*onnx.SparseTensorProto{{
				Values:  &onnx.TensorProto{Name: "sp", DataType: dtFloat, Dims: []int64{1}, FloatData: []float32{1}},
				Indices: &onnx.TensorProto{Name: "sp_i", DataType: dtInt64, Dims: []int64{1}, Int64Data: []int64{1 << 40}},
				Dims:    []int64{4},
			}}
			return mp
		}(), ErrTensorData, `sparse initializer "sp": sparse tensors are not supported`},
		{"sparse attribute", withAttr(&onnx.AttributeProto{Name: "sparse_value", Type: onnx.AttributeProto_SPARSE_TENSOR, SparseTensor: &onnx.SparseTensorProto{Dims: []int64{4}}}),
			ErrTensorData, `node "/se1/fc1/Conv" attribute "sparse_value": sparse tensors are not supported`},
		{"unused initializer", extra(good, short),
			ErrTensorData, `initializer "w": float32 [2] needs 8 bytes, raw_data has 4`},
		{"external data short for the shape", external("offset", "16", "length", "60"),
			ErrTensorData, `initializer "se1.fc1.weight": float32 [2 8 1 1] needs 64 bytes, external data in "w.bin" has 60`},
		{"external data to the end long", external("offset", "12"),
			ErrTensorData, `initializer "se1.fc1.weight": float32 [2 8 1 1] needs 64 bytes, external data in "w.bin" has 68`},
		{"external length past the file", external("offset", "16", "length", "65"),
			ErrExternalData, `tensor "se1.fc1.weight" wants 65 bytes at offset 16 of "w.bin", which has 80`},
		{"external length overflowing", external("offset", "16", "length", "9223372036854775807"),
			ErrExternalData, `tensor "se1.fc1.weight" wants 9223372036854775807 bytes at offset 16 of "w.bin", which has 80`},
		{"external offset past the file", external("offset", "81"),
			ErrExternalData, `tensor "se1.fc1.weight" wants bytes from offset 81 of "w.bin", which has 80`},
		{"external negative length", external("length", "-64"),
			ErrExternalData, `tensor "se1.fc1.weight" has a bad external_data length "-64": want a byte count >= 0`},
		{"external offset not a number", external("offset", "16 bytes"),
			ErrExternalData, `tensor "se1.fc1.weight" has a bad external_data offset "16 bytes": strconv.ParseInt: parsing "16 bytes": invalid syntax`},
		{"external and raw_data", func() *onnx.ModelProto {
			mp := external("offset", "16")
			initializer(mp, "se1.fc1.weight").RawData = make([]byte, 64)
			return mp
		}(), ErrExternalData, `tensor "se1.fc1.weight" is stored externally but also has 64 bytes of raw_data`},
	}
}

func TestParseRejectsBadTensorData(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range badTensors(t, dir) {
		t.Run(tt.name, func(t *testing.T) {
			data, err := proto.Marshal(tt.mp)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "x.onnx")
			m, err := Parse(path, data)
			if err == nil {
				t.Fatalf("Parse = %v, want an error", m)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			var me *Error
			if !errors.As(err, &me) || me.Path != path {
				t.Errorf("error %q is not an *Error for %s", err, path)
			}
			if want := "model " + path + ": " + tt.msg; err.Error() != want {
				t.Errorf("error\n %s\nwant\n %s", err, want)
			}
		})
	}
}

func TestTensorDataMessage(t *testing.T) {
	mp := tinyProto(t)
	w := initializer(mp, "conv.weight") // float32 [16 8 3 3]
	w.RawData = w.RawData[:1000]
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("m.onnx", data)
	if want := `model m.onnx: initializer "conv.weight": float32 [16 8 3 3] needs 4608 bytes, raw_data has 1000`; err == nil || err.Error() != want {
		t.Errorf("Parse error = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrTensorData) {
		t.Errorf("error %v is not ErrTensorData", err)
	}
}

// tensorEncodings returns the tiny fixture with the first SE layer's weight and bias in
// float_data, a Constant in int64_data, and unused initializers of every supported data type and
// field, including empty and scalar tensors.
func tensorEncodings(t testing.TB) *onnx.ModelProto {
	t.Helper()
	mp := tinyProto(t)
	for _, name := range []string{"se1.fc1.weight", "se1.fc1.bias"} {
		w := initializer(mp, name)
		w.FloatData = make([]float32, len(w.RawData)/4)
		for i := range w.FloatData {
			w.FloatData[i] = math.Float32frombits(binary.LittleEndian.Uint32(w.RawData[4*i:]))
		}
		w.RawData = nil
	}
	c := constValue(t, mp, "/se3/Constant_1")
	c.Int64Data = make([]int64, 4)
	for i := range c.Int64Data {
		c.Int64Data[i] = int64(binary.LittleEndian.Uint64(c.RawData[8*i:]))
	}
	c.RawData = nil
	mp.Graph.Initializer = append(mp.Graph.Initializer,
		&onnx.TensorProto{Name: "empty", DataType: dtFloat, Dims: []int64{0, 3}},
		&onnx.TensorProto{Name: "empty_raw", DataType: dtInt64, Dims: []int64{4, 0}, RawData: []byte{}},
		&onnx.TensorProto{Name: "huge_empty", DataType: dtFloat, Dims: []int64{math.MaxInt32, math.MaxInt32, 0}},
		&onnx.TensorProto{Name: "scalar", DataType: dtFloat, RawData: floatBytes(1)},
		&onnx.TensorProto{Name: "double", DataType: dtDouble, Dims: []int64{2}, DoubleData: []float64{1, 2}},
		&onnx.TensorProto{Name: "half", DataType: int32(onnx.TensorProto_FLOAT16), Dims: []int64{3}, Int32Data: []int32{1, 2, 3}},
		&onnx.TensorProto{Name: "bf16_raw", DataType: int32(onnx.TensorProto_BFLOAT16), Dims: []int64{3}, RawData: make([]byte, 6)},
		&onnx.TensorProto{Name: "bool", DataType: int32(onnx.TensorProto_BOOL), Dims: []int64{3}, RawData: []byte{1, 0, 1}},
		&onnx.TensorProto{Name: "c64", DataType: int32(onnx.TensorProto_COMPLEX64), Dims: []int64{2}, FloatData: make([]float32, 4)},
		&onnx.TensorProto{Name: "c128_raw", DataType: int32(onnx.TensorProto_COMPLEX128), Dims: []int64{1}, RawData: make([]byte, 16)},
		&onnx.TensorProto{Name: "u64", DataType: int32(onnx.TensorProto_UINT64), Dims: []int64{1}, Uint64Data: []uint64{1}},
	)
	return mp
}

// TestParseAcceptsTensorEncodings: every valid way of storing a tensor is accepted, and the
// weights read the same whichever field holds them.
func TestParseAcceptsTensorEncodings(t *testing.T) {
	ref, err := Load(tinyPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(tensorEncodings(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("encodings.onnx", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Blocks, ref.Blocks) {
		t.Errorf("blocks differ from the fixture's")
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
		t.Errorf("weights from float_data differ from the raw_data ones")
	}
	checkStoredTensors(t, m.proto)
}

// checkStoredTensors fails unless every tensor mp stores has inline data of exactly the size its
// data type and dims declare: the invariant that OpenCV's importer relies on. It is written apart
// from the package's own checks (big integers, its own table) to test them.
func checkStoredTensors(t *testing.T, mp *onnx.ModelProto) {
	t.Helper()
	type layout struct {
		raw   int64  // bytes per element
		field string // typed field
		per   int64  // typed values per element
	}
	layouts := map[int32]layout{
		1: {4, "float", 1}, 2: {1, "int32", 1}, 3: {1, "int32", 1}, 4: {2, "int32", 1}, 5: {2, "int32", 1},
		6: {4, "int32", 1}, 7: {8, "int64", 1}, 9: {1, "int32", 1}, 10: {2, "int32", 1}, 11: {8, "double", 1},
		12: {4, "uint64", 1}, 13: {8, "uint64", 1}, 14: {8, "float", 2}, 15: {16, "double", 2}, 16: {2, "int32", 1},
	}
	check := func(where string, tp *onnx.TensorProto) {
		l, ok := layouts[tp.DataType]
		if !ok {
			t.Fatalf("%s: accepted with data type %d", where, tp.DataType)
		}
		if tp.DataLocation != onnx.TensorProto_DEFAULT || len(tp.ExternalData) > 0 || tp.Segment != nil {
			t.Fatalf("%s: accepted with data not inline", where)
		}
		n := big.NewInt(1)
		for _, d := range tp.Dims {
			if d < 0 || d > math.MaxInt32 {
				t.Fatalf("%s: accepted with dims %v", where, tp.Dims)
			}
			n.Mul(n, big.NewInt(d))
		}
		counts := map[string]int{
			"float": len(tp.FloatData), "int32": len(tp.Int32Data), "int64": len(tp.Int64Data),
			"double": len(tp.DoubleData), "uint64": len(tp.Uint64Data), "string": len(tp.StringData),
		}
		typed := 0
		for field, c := range counts {
			if c > 0 && field != l.field {
				t.Fatalf("%s: accepted with %s_data on data type %d", where, field, tp.DataType)
			}
			typed += c
		}
		switch {
		case typed > 0 && len(tp.RawData) > 0:
			t.Fatalf("%s: accepted with raw_data and %s_data", where, l.field)
		case typed > 0:
			if want := new(big.Int).Mul(n, big.NewInt(l.per)); want.Cmp(big.NewInt(int64(typed))) != 0 {
				t.Fatalf("%s: accepted %d %s_data values for dims %v (want %v)", where, typed, l.field, tp.Dims, want)
			}
		default:
			if want := new(big.Int).Mul(n, big.NewInt(l.raw)); want.Cmp(big.NewInt(int64(len(tp.RawData)))) != 0 {
				t.Fatalf("%s: accepted %d bytes of raw_data for data type %d dims %v (want %v)", where, len(tp.RawData), tp.DataType, tp.Dims, want)
			}
		}
	}
	var graph func(where string, g *onnx.GraphProto)
	var nodes func(where string, ns []*onnx.NodeProto)
	graph = func(where string, g *onnx.GraphProto) {
		if g == nil {
			return
		}
		for _, tp := range g.Initializer {
			check(where+" initializer "+tp.GetName(), tp)
		}
		if len(g.SparseInitializer) > 0 {
			t.Fatalf("%s: accepted sparse initializers", where)
		}
		nodes(where, g.Node)
	}
	nodes = func(where string, ns []*onnx.NodeProto) {
		for i, n := range ns {
			for _, a := range n.GetAttribute() {
				at := fmt.Sprintf("%s node %d attribute %s", where, i, a.GetName())
				if a.T != nil {
					check(at, a.T)
				}
				for _, tp := range a.Tensors {
					check(at, tp)
				}
				if a.SparseTensor != nil || len(a.SparseTensors) > 0 {
					t.Fatalf("%s: accepted a sparse tensor", at)
				}
				graph(at, a.G)
				for _, g := range a.Graphs {
					graph(at, g)
				}
			}
		}
	}
	graph("graph", mp.Graph)
	for _, f := range mp.Functions {
		nodes("function "+f.GetName(), f.GetNode())
	}
	for _, ti := range mp.TrainingInfo {
		graph("training_info", ti.GetInitialization())
		graph("training_info", ti.GetAlgorithm())
	}
}
