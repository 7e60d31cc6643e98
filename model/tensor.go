package model

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// elemType is how an ONNX tensor data type is stored in a TensorProto.
type elemType struct {
	name  string // numpy-style name used in errors: "float32", "int64"
	size  int64  // bytes per element in raw_data (little-endian)
	field string // the typed field that may hold the values instead of raw_data
	per   int64  // values of that field per element: 2 for complex types, else 1
}

// elemTypeOf returns how data type dt (a TensorProto.DataType value) is stored, and false for
// UNDEFINED, STRING and data types this package does not know (FLOAT8*, INT4, UINT4, ...): the
// engines cannot check what they have no fixed element size for.
func elemTypeOf(dt int32) (elemType, bool) {
	switch onnx.TensorProto_DataType(dt) {
	case onnx.TensorProto_FLOAT:
		return elemType{"float32", 4, "float_data", 1}, true
	case onnx.TensorProto_UINT8:
		return elemType{"uint8", 1, "int32_data", 1}, true
	case onnx.TensorProto_INT8:
		return elemType{"int8", 1, "int32_data", 1}, true
	case onnx.TensorProto_UINT16:
		return elemType{"uint16", 2, "int32_data", 1}, true
	case onnx.TensorProto_INT16:
		return elemType{"int16", 2, "int32_data", 1}, true
	case onnx.TensorProto_INT32:
		return elemType{"int32", 4, "int32_data", 1}, true
	case onnx.TensorProto_INT64:
		return elemType{"int64", 8, "int64_data", 1}, true
	case onnx.TensorProto_BOOL:
		return elemType{"bool", 1, "int32_data", 1}, true
	case onnx.TensorProto_FLOAT16:
		return elemType{"float16", 2, "int32_data", 1}, true
	case onnx.TensorProto_DOUBLE:
		return elemType{"float64", 8, "double_data", 1}, true
	case onnx.TensorProto_UINT32:
		return elemType{"uint32", 4, "uint64_data", 1}, true
	case onnx.TensorProto_UINT64:
		return elemType{"uint64", 8, "uint64_data", 1}, true
	case onnx.TensorProto_COMPLEX64:
		return elemType{"complex64", 8, "float_data", 2}, true
	case onnx.TensorProto_COMPLEX128:
		return elemType{"complex128", 16, "double_data", 2}, true
	case onnx.TensorProto_BFLOAT16:
		return elemType{"bfloat16", 2, "int32_data", 1}, true
	}
	return elemType{}, false
}

// maxDim is the largest dimension accepted: OpenCV stores tensor dimensions as C int.
const maxDim = math.MaxInt32

// tensorDataProblem returns what is wrong with t's stored data, or "" when it matches t's data
// type and dims: exactly product(dims) elements, stored either in raw_data as product(dims) x
// element size bytes or in the one typed field the data type uses, as product(dims) values (two
// per element for complex types). An empty tensor (a zero dimension) may store nothing; a scalar
// (no dims) has one element. source names where raw_data came from in the message ("raw_data",
// or the external data file it was read from). t's data must already be inline.
func tensorDataProblem(t *onnx.TensorProto, source string) string {
	et, ok := elemTypeOf(t.DataType)
	if !ok {
		if name, known := onnx.TensorProto_DataType_name[t.DataType]; known {
			return fmt.Sprintf("data type %s is not supported", name)
		}
		return fmt.Sprintf("data type %d is unknown or not supported (want FLOAT (1) to BFLOAT16 (16), not STRING (8))", t.DataType)
	}
	if t.Segment != nil {
		return fmt.Sprintf("%s %s is a segment (%d..%d) of a larger tensor, which is not supported", et.name, shapeString(t.Dims), t.Segment.Begin, t.Segment.End)
	}
	if t.DataLocation != onnx.TensorProto_DEFAULT {
		return fmt.Sprintf("%s %s has data_location %d, want DEFAULT (0) or EXTERNAL (1)", et.name, shapeString(t.Dims), t.DataLocation)
	}
	n := uint64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return fmt.Sprintf("%s %s has negative dimension %d", et.name, shapeString(t.Dims), d)
		}
		if d > maxDim {
			return fmt.Sprintf("%s %s has dimension %d, more than %d", et.name, shapeString(t.Dims), d, maxDim)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Sprintf("%s %s has more than %d elements", et.name, shapeString(t.Dims), int64(math.MaxInt64))
		}
		n = lo
	}
	hi, size := bits.Mul64(n, uint64(et.size))
	if hi != 0 || size > math.MaxInt64 {
		return fmt.Sprintf("%s %s needs more than %d bytes", et.name, shapeString(t.Dims), int64(math.MaxInt64))
	}
	// Which fields hold data: at most one, and only raw_data or et.field.
	fields := []struct {
		name  string
		count int
	}{
		{"raw_data", len(t.RawData)}, {"float_data", len(t.FloatData)}, {"int32_data", len(t.Int32Data)},
		{"int64_data", len(t.Int64Data)}, {"double_data", len(t.DoubleData)}, {"uint64_data", len(t.Uint64Data)},
		{"string_data", len(t.StringData)},
	}
	used := 0
	for _, f := range fields {
		if f.count == 0 {
			continue
		}
		if f.name != "raw_data" && f.name != et.field {
			return fmt.Sprintf("%s %s has %s, which %s does not use (it stores values in raw_data or %s)", et.name, shapeString(t.Dims), f.name, et.name, et.field)
		}
		used++
	}
	if used > 1 {
		return fmt.Sprintf("%s %s has data in both raw_data (%d) and %s (%d), want one", et.name, shapeString(t.Dims), len(t.RawData), et.field, typedCount(t, et.field))
	}
	if count := typedCount(t, et.field); count > 0 {
		want := n * uint64(et.per) // cannot overflow: n*per <= n*size
		if uint64(count) != want {
			if et.per > 1 {
				return fmt.Sprintf("%s %s needs %d %s values (%d per element), has %d", et.name, shapeString(t.Dims), want, et.field, et.per, count)
			}
			return fmt.Sprintf("%s %s needs %d %s values, has %d", et.name, shapeString(t.Dims), want, et.field, count)
		}
		return ""
	}
	if uint64(len(t.RawData)) != size {
		return fmt.Sprintf("%s %s needs %d bytes, %s has %d", et.name, shapeString(t.Dims), size, source, len(t.RawData))
	}
	return ""
}

// shapeString formats dims as in errors: "[16 3 3 3]", "[]" for a scalar, and at most 8 sizes
// then the rank for a tensor of higher rank: "[1 1 1 1 1 1 1 1 ...] (rank 40)".
func shapeString(dims []int64) string {
	if len(dims) <= 8 {
		return fmt.Sprint(dims)
	}
	s := fmt.Sprint(dims[:8])
	return fmt.Sprintf("%s ...] (rank %d)", s[:len(s)-1], len(dims))
}

// typedCount returns the number of values in t's typed field named field.
func typedCount(t *onnx.TensorProto, field string) int {
	switch field {
	case "float_data":
		return len(t.FloatData)
	case "int32_data":
		return len(t.Int32Data)
	case "int64_data":
		return len(t.Int64Data)
	case "double_data":
		return len(t.DoubleData)
	case "uint64_data":
		return len(t.Uint64Data)
	}
	return 0
}

// scope says where a tensor is in the model, for errors. Scopes chain from the innermost
// (a tensor's own label) to the outermost (the node holding a subgraph).
type scope struct {
	outer *scope
	label string // `initializer "conv1.weight"`, `node "/If_0" attribute "then_branch"`
}

func (s *scope) String() string {
	var parts []string
	for ; s != nil; s = s.outer {
		parts = append(parts, s.label)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ": ")
}

// tensorReader inlines the external data of every tensor of one model and checks every
// tensor's data against its data type and dims.
type tensorReader struct {
	path  string            // the model's path, for errors
	dir   string            // where external data files are
	files map[string][]byte // external data files read so far, by location
}

// readTensors inlines and checks every tensor in mp: the initializers and the tensor attributes
// of every node (Constant values and any other), in the main graph, in subgraphs at any depth, in
// model-local functions and in training_info graphs. A sparse tensor is an error: the engines'
// importers are not given one to check.
func readTensors(path string, mp *onnx.ModelProto) error {
	r := &tensorReader{path: path, dir: filepath.Dir(path)}
	if err := r.graph(mp.Graph, nil); err != nil {
		return err
	}
	for _, f := range mp.Functions {
		if f == nil {
			continue
		}
		s := &scope{label: fmt.Sprintf("function %q", f.Domain+"."+f.Name)}
		if err := r.nodes(f.Node, s); err != nil {
			return err
		}
	}
	for i, ti := range mp.TrainingInfo {
		if ti == nil {
			continue
		}
		if err := r.graph(ti.Initialization, &scope{label: fmt.Sprintf("training_info[%d] initialization", i)}); err != nil {
			return err
		}
		if err := r.graph(ti.Algorithm, &scope{label: fmt.Sprintf("training_info[%d] algorithm", i)}); err != nil {
			return err
		}
	}
	return nil
}

func (r *tensorReader) graph(g *onnx.GraphProto, s *scope) error {
	if g == nil {
		return nil
	}
	for _, t := range g.Initializer {
		if t == nil {
			continue
		}
		if err := r.tensor(t, &scope{s, fmt.Sprintf("initializer %q", t.Name)}); err != nil {
			return err
		}
	}
	for _, st := range g.SparseInitializer {
		if st != nil {
			return r.sparse(st, &scope{s, fmt.Sprintf("sparse initializer %q", st.GetValues().GetName())})
		}
	}
	return r.nodes(g.Node, s)
}

func (r *tensorReader) nodes(nodes []*onnx.NodeProto, s *scope) error {
	for i, n := range nodes {
		if n == nil {
			continue
		}
		node := fmt.Sprintf("node %q", n.Name)
		if n.Name == "" {
			node = fmt.Sprintf("node %d (%s)", i, n.OpType)
		}
		for _, a := range n.Attribute {
			if a == nil {
				continue
			}
			at := func(i int) *scope {
				if i < 0 {
					return &scope{s, fmt.Sprintf("%s attribute %q", node, a.Name)}
				}
				return &scope{s, fmt.Sprintf("%s attribute %q[%d]", node, a.Name, i)}
			}
			if a.T != nil {
				if err := r.tensor(a.T, at(-1)); err != nil {
					return err
				}
			}
			for j, t := range a.Tensors {
				if t == nil {
					continue
				}
				if err := r.tensor(t, at(j)); err != nil {
					return err
				}
			}
			if a.SparseTensor != nil {
				return r.sparse(a.SparseTensor, at(-1))
			}
			for j, st := range a.SparseTensors {
				if st != nil {
					return r.sparse(st, at(j))
				}
			}
			if err := r.graph(a.G, at(-1)); err != nil {
				return err
			}
			for j, g := range a.Graphs {
				if err := r.graph(g, at(j)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *tensorReader) sparse(st *onnx.SparseTensorProto, s *scope) error {
	return newError(r.path, ErrTensorData, nil, "%s: sparse tensors are not supported", s)
}

// tensor inlines t's external data, if any, and checks t's data against its data type and dims.
func (r *tensorReader) tensor(t *onnx.TensorProto, s *scope) error {
	source := "raw_data"
	if t.DataLocation == onnx.TensorProto_EXTERNAL {
		location, err := r.readExternal(t)
		if err != nil {
			return err
		}
		source = fmt.Sprintf("external data in %q", location)
	}
	if problem := tensorDataProblem(t, source); problem != "" {
		return newError(r.path, ErrTensorData, nil, "%s: %s", s, problem)
	}
	return nil
}

// readExternal reads t's external data (external_data keys location, offset and length, in
// bytes; without a length, to the end of the file) into t.RawData and marks t's data inline.
// It returns the location.
func (r *tensorReader) readExternal(t *onnx.TensorProto) (string, error) {
	if len(t.RawData) > 0 {
		return "", newError(r.path, ErrExternalData, nil, "tensor %q is stored externally but also has %d bytes of raw_data", t.Name, len(t.RawData))
	}
	var location string
	var offset, length int64 = 0, -1
	for _, e := range t.ExternalData {
		if e == nil {
			continue
		}
		var err error
		switch e.Key {
		case "location":
			location = e.Value
		case "offset":
			offset, err = strconv.ParseInt(e.Value, 10, 64)
			if err == nil && offset < 0 {
				err = errors.New("want a byte offset >= 0")
			}
		case "length":
			length, err = strconv.ParseInt(e.Value, 10, 64)
			if err == nil && length < 0 {
				err = errors.New("want a byte count >= 0")
			}
		}
		if err != nil {
			return "", newError(r.path, ErrExternalData, err, "tensor %q has a bad external_data %s %q", t.Name, e.Key, e.Value)
		}
	}
	if location == "" {
		return "", newError(r.path, ErrExternalData, nil, "tensor %q is stored externally but names no location", t.Name)
	}
	if filepath.IsAbs(location) || !filepath.IsLocal(location) {
		return "", newError(r.path, ErrExternalData, nil, "tensor %q has external data at %q, outside the model's directory", t.Name, location)
	}
	data, ok := r.files[location]
	if !ok {
		var err error
		data, err = os.ReadFile(filepath.Join(r.dir, location))
		if err != nil {
			detail := "tensor %q has external data in %q, which cannot be read"
			if errors.Is(err, fs.ErrNotExist) {
				detail = "tensor %q has external data in %q, which is missing next to the model"
			}
			return "", newError(r.path, ErrExternalData, err, detail, t.Name, location)
		}
		if r.files == nil {
			r.files = map[string][]byte{}
		}
		r.files[location] = data
	}
	size := int64(len(data))
	if offset > size {
		return "", newError(r.path, ErrExternalData, nil, "tensor %q wants bytes from offset %d of %q, which has %d", t.Name, offset, location, size)
	}
	if length > size-offset {
		return "", newError(r.path, ErrExternalData, nil, "tensor %q wants %d bytes at offset %d of %q, which has %d", t.Name, length, offset, location, size)
	}
	end := size
	if length >= 0 {
		end = offset + length
	}
	t.RawData = data[offset:end:end]
	t.ExternalData = nil
	t.DataLocation = onnx.TensorProto_DEFAULT
	return location, nil
}
