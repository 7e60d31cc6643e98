package model

import (
	"math"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/sestream/sestream/se"
)

// BlockWeights reads block b's weights from the model's initializers into se.Block layout:
// W1 Hidden x C and W2 C x Hidden, row-major, biases zero where the layer has none.
// It reads Conv 1x1 weights (OIHW with H = W = 1), Gemm weights (honouring transB, alpha and
// beta) and MatMul weights (in x out, transposed here). b must come from m.Blocks.
func (m *Model) BlockWeights(b se.BlockInfo) (*se.Block, error) {
	if b.Channels < 1 || b.Hidden < 1 {
		return nil, newError(m.Path, ErrTensor, nil, "SE block %q has %d channels and hidden width %d", b.Name, b.Channels, b.Hidden)
	}
	w1, b1, err := m.layerWeights(b, 0, b.Channels, b.Hidden)
	if err != nil {
		return nil, err
	}
	w2, b2, err := m.layerWeights(b, 1, b.Hidden, b.Channels)
	if err != nil {
		return nil, err
	}
	return &se.Block{
		Channels: b.Channels, Hidden: b.Hidden,
		W1: w1, B1: b1, W2: w2, B2: b2,
		Act: b.Activation, Gate: b.Gate, Alpha: b.Alpha, Beta: b.Beta,
	}, nil
}

// layerWeights returns layer i's weight as an out x in row-major matrix and its bias (out values).
func (m *Model) layerWeights(b se.BlockInfo, i, in, out int) (w, bias []float32, err error) {
	node := m.node(b.Layers[i])
	if node == nil {
		return nil, nil, newError(m.Path, ErrTensor, nil, "SE block %q: layer node %q is not in the graph", b.Name, b.Layers[i])
	}
	wt, ok := m.inits[b.Weights[i]]
	if !ok {
		return nil, nil, newError(m.Path, ErrTensor, nil, "SE block %q: weight %q of %q is not an initializer", b.Name, b.Weights[i], node.Name)
	}
	raw, err := m.floats(wt)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) != in*out {
		return nil, nil, newError(m.Path, ErrTensor, nil, "SE block %q: weight %q has %d values, want %d x %d", b.Name, wt.Name, len(raw), out, in)
	}
	alpha, beta := float32(1), float32(1)
	transpose := false // true when the stored matrix is in x out
	switch node.OpType {
	case "Conv":
		// OIHW with H = W = 1 is already out x in.
	case "Gemm":
		transpose = true // transB defaults to 0: B is in x out
		for _, a := range node.Attribute {
			switch a.GetName() {
			case "transB":
				transpose = a.I == 0
			case "alpha":
				alpha = a.F
			case "beta":
				beta = a.F
			}
		}
	case "MatMul":
		transpose = true
	default:
		return nil, nil, newError(m.Path, ErrTensor, nil, "SE block %q: layer %q is a %s, want Conv, Gemm or MatMul", b.Name, node.Name, node.OpType)
	}
	w = make([]float32, in*out)
	for o := 0; o < out; o++ {
		for c := 0; c < in; c++ {
			v := raw[o*in+c]
			if transpose {
				v = raw[c*out+o]
			}
			w[o*in+c] = alpha * v
		}
	}
	bias = make([]float32, out)
	if name := b.Biases[i]; name != "" {
		bt, ok := m.inits[name]
		if !ok {
			return nil, nil, newError(m.Path, ErrTensor, nil, "SE block %q: bias %q of %q is not an initializer", b.Name, name, node.Name)
		}
		vals, err := m.floats(bt)
		if err != nil {
			return nil, nil, err
		}
		if len(vals) != out {
			return nil, nil, newError(m.Path, ErrTensor, nil, "SE block %q: bias %q has %d values, want %d", b.Name, name, len(vals), out)
		}
		for j, v := range vals {
			bias[j] = beta * v
		}
	}
	return w, bias, nil
}

func (m *Model) node(name string) *onnx.NodeProto {
	for _, n := range m.proto.Graph.Node {
		if n.GetName() == name {
			return n
		}
	}
	return nil
}

// floats decodes a FLOAT or DOUBLE tensor's values.
func (m *Model) floats(t *onnx.TensorProto) ([]float32, error) {
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, newError(m.Path, ErrTensor, nil, "tensor %q has dimension %d", t.Name, d)
		}
		n *= d
		if n > math.MaxInt32 {
			return nil, newError(m.Path, ErrTensor, nil, "tensor %q is too large", t.Name)
		}
	}
	var out []float32
	switch {
	case t.DataType == dtFloat && len(t.FloatData) > 0:
		out = append([]float32(nil), t.FloatData...)
	case t.DataType == dtFloat && int64(len(t.RawData)) == 4*n:
		out = make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le32(t.RawData[4*i:]))
		}
	case t.DataType == dtDouble && len(t.DoubleData) > 0:
		out = make([]float32, len(t.DoubleData))
		for i, v := range t.DoubleData {
			out[i] = float32(v)
		}
	case t.DataType == dtDouble && int64(len(t.RawData)) == 8*n:
		out = make([]float32, n)
		for i := range out {
			out[i] = float32(math.Float64frombits(le64(t.RawData[8*i:])))
		}
	case t.DataType != dtFloat && t.DataType != dtDouble:
		return nil, newError(m.Path, ErrTensor, nil, "tensor %q has element type %s, want FLOAT or DOUBLE", t.Name, onnx.TensorProto_DataType(t.DataType))
	case n == 0:
		return nil, nil
	default:
		return nil, newError(m.Path, ErrTensor, nil, "tensor %q has %d bytes of data for %d values", t.Name, len(t.RawData), n)
	}
	if int64(len(out)) != n {
		return nil, newError(m.Path, ErrTensor, nil, "tensor %q has %d values for dims %v", t.Name, len(out), t.Dims)
	}
	return out, nil
}
