package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/sestream/sestream/se"
)

// Model is a validated ONNX image model with its metadata and SE blocks.
// A Model is not modified after Parse returns and is safe for concurrent use.
type Model struct {
	// Name is the file's base name without ".onnx", or the graph's name when Parse had no name.
	Name string
	// Path is the file path given to Load (the name given to Parse).
	Path string
	// Digest is "sha256:<hex>" of the file's bytes.
	Digest string
	// Input is the single float image input, rank 4 (N,C,H,W).
	Input TensorInfo
	// Outputs are the graph's outputs in graph order.
	Outputs []TensorInfo
	// Meta is read from the model's metadata_props; zero values for absent keys.
	Meta Meta
	// Blocks are the SE blocks found in the graph, in network order.
	Blocks []se.BlockInfo

	proto *onnx.ModelProto // normalized: every node named, external data inlined
	inits map[string]*onnx.TensorProto
}

// TensorInfo is the name and shape of a graph input or output.
type TensorInfo struct {
	Name string
	// Shape has one entry per dimension: its size, or -1 for a symbolic or unknown size.
	// Nil when the graph gives no shape.
	Shape []int64
	// DimNames has one entry per dimension: the symbolic name (e.g. "batch"), or "" for a fixed size.
	DimNames []string
}

// ONNX TensorProto.DataType values used here.
const (
	dtFloat  = 1
	dtInt32  = 6
	dtInt64  = 7
	dtDouble = 11
)

// Load reads the ONNX model at path and parses it. External data files are resolved next to it.
func Load(path string) (*Model, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, newError(path, ErrNotFile, err, "cannot open")
	}
	if info.IsDir() {
		return nil, newError(path, ErrNotFile, nil, "is a directory, want an .onnx file")
	}
	if !info.Mode().IsRegular() {
		return nil, newError(path, ErrNotFile, nil, "is not a regular file")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, newError(path, ErrNotFile, err, "cannot read")
	}
	return Parse(path, data)
}

// Parse validates the ONNX model in data and discovers its SE blocks. name is the model's file
// path: it names the model in errors and locates external data files (relative to its directory).
//
// Parse checks, before any C or C++ code may see the model: that data is an ONNX model with a
// graph; that every tensor the model stores (initializers and tensor attributes such as Constant
// values, in the graph, its subgraphs, local functions and training_info) has a known fixed-size
// data type, dims from 0 to 2^31-1, and exactly product(dims) elements of data: product(dims) x
// element size bytes of raw_data (little-endian) or product(dims) values of the one typed field
// its type uses (two per element for complex types); that there are no sparse tensors; that the
// graph has exactly one non-initializer input, of element type float and rank 4; that it has
// outputs; that external data files exist inside the model's directory; and that the metadata is
// well formed. External data is read into the model (and then checked like raw_data) so that the
// rewritten bytes are self-contained. A tensor whose data disagrees with its type and dims is an
// *Error of Kind ErrTensorData.
func Parse(name string, data []byte) (*Model, error) {
	if len(data) == 0 {
		return nil, newError(name, ErrEmpty, nil, "file is empty")
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, newError(name, ErrNotONNX, err, "not an ONNX model (truncated or not protobuf)")
	}
	if mp.IrVersion <= 0 {
		return nil, newError(name, ErrNotONNX, nil, "not an ONNX model (no ir_version)")
	}
	g := mp.Graph
	if g == nil {
		return nil, newError(name, ErrNoGraph, nil, "has no graph")
	}
	nameNodes(g)
	if err := readTensors(name, mp); err != nil {
		return nil, err
	}
	m := &Model{
		Path:  name,
		proto: mp,
		inits: make(map[string]*onnx.TensorProto, len(g.Initializer)),
	}
	sum := sha256.Sum256(data)
	m.Digest = "sha256:" + hex.EncodeToString(sum[:])
	m.Name = strings.TrimSuffix(filepath.Base(name), ".onnx")
	if name == "" {
		m.Name = g.Name
	}
	for _, t := range g.Initializer {
		if t != nil {
			m.inits[t.Name] = t
		}
	}
	if err := m.readInput(); err != nil {
		return nil, err
	}
	m.aliasIdentities()
	for _, o := range g.Output {
		if o != nil {
			m.Outputs = append(m.Outputs, tensorInfo(o))
		}
	}
	if len(m.Outputs) == 0 {
		return nil, newError(name, ErrOutput, nil, "graph has no output")
	}
	blocks, err := se.Discover(m.graph())
	if err != nil {
		return nil, newError(name, ErrGraph, err, "cannot search for SE blocks")
	}
	m.Blocks = blocks
	meta, err := parseMeta(mp.MetadataProps)
	if err != nil {
		return nil, &Error{Path: name, Kind: ErrMetadata, Detail: err.Error()}
	}
	m.Meta = meta
	if err := m.checkMeta(); err != nil {
		return nil, &Error{Path: name, Kind: ErrMetadata, Detail: err.Error()}
	}
	return m, nil
}

// aliasIdentities makes the output of each Identity node whose input is an initializer an alias
// of that initializer (PyTorch exports share equal constants that way), so that discovery and
// BlockWeights see through it.
func (m *Model) aliasIdentities() {
	for _, n := range m.proto.Graph.Node {
		if n.OpType != "Identity" || n.Domain != "" || len(n.Input) != 1 || len(n.Output) != 1 {
			continue
		}
		if t, ok := m.inits[n.Input[0]]; ok {
			if _, taken := m.inits[n.Output[0]]; !taken {
				m.inits[n.Output[0]] = t
			}
		}
	}
}

// readInput finds the single image input: float, rank 4.
func (m *Model) readInput() error {
	var inputs []*onnx.ValueInfoProto
	for _, in := range m.proto.Graph.Input {
		if in == nil {
			continue
		}
		if _, isInit := m.inits[in.Name]; !isInit {
			inputs = append(inputs, in)
		}
	}
	switch {
	case len(inputs) == 0:
		return newError(m.Path, ErrInput, nil, "graph has no input")
	case len(inputs) > 1:
		names := make([]string, len(inputs))
		for i, in := range inputs {
			names[i] = fmt.Sprintf("%q", in.Name)
		}
		return newError(m.Path, ErrInput, nil, "graph has %d inputs (%s), want one image input", len(inputs), strings.Join(names, ", "))
	}
	in := inputs[0]
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return newError(m.Path, ErrInput, nil, "input %q is not a tensor", in.Name)
	}
	if tt.ElemType != dtFloat {
		return newError(m.Path, ErrInput, nil, "input %q has element type %s, want FLOAT", in.Name, onnx.TensorProto_DataType(tt.ElemType))
	}
	m.Input = tensorInfo(in)
	if tt.Shape == nil {
		return newError(m.Path, ErrInputRank, nil, "input %q has no shape, want rank 4 (N,C,H,W)", in.Name)
	}
	if r := len(m.Input.Shape); r != 4 {
		return newError(m.Path, ErrInputRank, nil, "input %q has rank %d, want 4 (N,C,H,W)", in.Name, r)
	}
	return nil
}

func tensorInfo(v *onnx.ValueInfoProto) TensorInfo {
	ti := TensorInfo{Name: v.Name}
	shape := v.GetType().GetTensorType().GetShape()
	if shape == nil {
		return ti
	}
	ti.Shape = make([]int64, len(shape.Dim))
	ti.DimNames = make([]string, len(shape.Dim))
	for i, d := range shape.Dim {
		switch v := d.GetValue().(type) {
		case *onnx.TensorShapeProto_Dimension_DimValue:
			ti.Shape[i] = v.DimValue
		case *onnx.TensorShapeProto_Dimension_DimParam:
			ti.Shape[i], ti.DimNames[i] = -1, v.DimParam
		default:
			ti.Shape[i] = -1
		}
	}
	return ti
}

// nameNodes gives every unnamed node a unique name "<OpType>_<index>", so that blocks, OpenCV
// layers ("onnx_node!" + name) and errors can refer to it.
func nameNodes(g *onnx.GraphProto) {
	used := make(map[string]bool, len(g.Node))
	for _, n := range g.Node {
		if n != nil && n.Name != "" {
			used[n.Name] = true
		}
	}
	for i, n := range g.Node {
		if n == nil || n.Name != "" {
			continue
		}
		name := fmt.Sprintf("%s_%d", n.OpType, i)
		for k := 1; used[name]; k++ {
			name = fmt.Sprintf("%s_%d_%d", n.OpType, i, k)
		}
		n.Name = name
		used[name] = true
	}
}

// graph builds the discovery view of the model's graph.
func (m *Model) graph() *se.Graph {
	g := m.proto.Graph
	sg := &se.Graph{
		Initializers: make(map[string][]int64, len(g.Initializer)),
		Constants:    map[string][]int64{},
	}
	for name, t := range m.inits {
		sg.Initializers[name] = t.Dims
		if v, ok := smallInts(t); ok {
			sg.Constants[name] = v
		}
	}
	for _, in := range g.Input {
		if in != nil && m.inits[in.Name] == nil {
			sg.Inputs = append(sg.Inputs, in.Name)
		}
	}
	for _, o := range g.Output {
		if o != nil {
			sg.Outputs = append(sg.Outputs, o.Name)
		}
	}
	sg.Nodes = make([]se.Node, 0, len(g.Node))
	for _, n := range g.Node {
		if n == nil {
			continue
		}
		sn := se.Node{Name: n.Name, OpType: n.OpType, Inputs: n.Input, Outputs: n.Output}
		if n.Domain != "" && n.Domain != "ai.onnx" {
			sn.OpType = n.Domain + "." + n.OpType
		}
		for _, a := range n.Attribute {
			if a == nil {
				continue
			}
			switch a.Type {
			case onnx.AttributeProto_INT:
				setInts(&sn, a.Name, []int64{a.I})
			case onnx.AttributeProto_INTS:
				setInts(&sn, a.Name, a.Ints)
			case onnx.AttributeProto_FLOAT:
				if sn.Floats == nil {
					sn.Floats = map[string]float32{}
				}
				sn.Floats[a.Name] = a.F
			case onnx.AttributeProto_TENSOR:
				if n.OpType == "Constant" && a.Name == "value" && len(n.Output) == 1 {
					if v, ok := smallInts(a.T); ok {
						sg.Constants[n.Output[0]] = v
					}
				}
			}
		}
		if n.OpType == "Constant" && len(n.Output) == 1 {
			if v, ok := sn.Ints["value_ints"]; ok {
				sg.Constants[n.Output[0]] = v
			} else if v, ok := sn.Ints["value_int"]; ok {
				sg.Constants[n.Output[0]] = v
			}
		}
		sg.Nodes = append(sg.Nodes, sn)
	}
	return sg
}

func setInts(n *se.Node, name string, v []int64) {
	if n.Ints == nil {
		n.Ints = map[string][]int64{}
	}
	n.Ints[name] = v
}

// smallInts returns the values of an int32 or int64 tensor of at most 16 elements, such as axes
// or a target shape.
func smallInts(t *onnx.TensorProto) ([]int64, bool) {
	if t == nil || len(t.Dims) > 1 || t.DataLocation == onnx.TensorProto_EXTERNAL {
		return nil, false
	}
	switch t.DataType {
	case dtInt64:
		if len(t.Int64Data) > 0 {
			if len(t.Int64Data) > 16 {
				return nil, false
			}
			return append([]int64(nil), t.Int64Data...), true
		}
		if len(t.RawData)%8 != 0 || len(t.RawData) > 16*8 {
			return nil, false
		}
		v := make([]int64, len(t.RawData)/8)
		for i := range v {
			v[i] = int64(le64(t.RawData[8*i:]))
		}
		return v, true
	case dtInt32:
		if len(t.Int32Data) > 0 {
			if len(t.Int32Data) > 16 {
				return nil, false
			}
			v := make([]int64, len(t.Int32Data))
			for i, x := range t.Int32Data {
				v[i] = int64(x)
			}
			return v, true
		}
		if len(t.RawData)%4 != 0 || len(t.RawData) > 16*4 {
			return nil, false
		}
		v := make([]int64, len(t.RawData)/4)
		for i := range v {
			v[i] = int64(int32(le32(t.RawData[4*i:])))
		}
		return v, true
	}
	return nil, false
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 {
	return uint64(le32(b)) | uint64(le32(b[4:]))<<32
}
