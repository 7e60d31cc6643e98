package model

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// ForONNXRuntime returns the model's bytes with extraOutputs appended to the graph outputs, so
// that ONNX Runtime returns those intermediate tensors (e.g. the SE gate tensors) beside the
// model's own outputs. Extra outputs are declared float with no shape; tensors that already are
// outputs are not repeated. Each name must be the output of a node.
func (m *Model) ForONNXRuntime(extraOutputs ...string) ([]byte, error) {
	mp := proto.Clone(m.proto).(*onnx.ModelProto)
	g := mp.Graph
	produced := map[string]bool{}
	for _, n := range g.Node {
		for _, o := range n.GetOutput() {
			produced[o] = true
		}
	}
	isOutput := map[string]bool{}
	for _, o := range g.Output {
		isOutput[o.GetName()] = true
	}
	for _, name := range extraOutputs {
		if !produced[name] {
			return nil, newError(m.Path, ErrTensor, nil, "cannot add output %q: no node produces it", name)
		}
		if isOutput[name] {
			continue
		}
		isOutput[name] = true
		g.Output = append(g.Output, &onnx.ValueInfoProto{
			Name: name,
			Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{ElemType: dtFloat}}},
		})
	}
	return m.marshal(mp)
}

// ForOpenCV returns the model's bytes normalized for OpenCV 4.6's ONNX importer:
//   - each Identity node whose input is an initializer is replaced by a copy of the initializer
//     under the node's output name (OpenCV 4.6 rejects such nodes);
//   - the batch (first) dimension of the image input and of every output is pinned to maxBatch
//     (SE graphs then run at every batch from 1 to maxBatch; a larger batch fails);
//   - value_info is cleared (stale intermediate shapes would contradict the pinned batch).
func (m *Model) ForOpenCV(maxBatch int) ([]byte, error) {
	if maxBatch < 1 {
		return nil, newError(m.Path, ErrRewrite, nil, "max batch %d for OpenCV, want >= 1", maxBatch)
	}
	mp := proto.Clone(m.proto).(*onnx.ModelProto)
	g := mp.Graph
	inits := make(map[string]*onnx.TensorProto, len(g.Initializer))
	for _, t := range g.Initializer {
		inits[t.GetName()] = t
	}
	boundary := map[string]bool{} // graph inputs and outputs: never turned into initializers
	for _, v := range append(append([]*onnx.ValueInfoProto{}, g.Input...), g.Output...) {
		boundary[v.GetName()] = true
	}
	nodes := g.Node[:0]
	for _, n := range g.Node {
		if n.GetOpType() == "Identity" && n.GetDomain() == "" && len(n.Input) == 1 && len(n.Output) == 1 && !boundary[n.Output[0]] {
			if src, ok := inits[n.Input[0]]; ok {
				if _, taken := inits[n.Output[0]]; !taken {
					cp := proto.Clone(src).(*onnx.TensorProto)
					cp.Name = n.Output[0]
					g.Initializer = append(g.Initializer, cp)
					inits[cp.Name] = cp
					continue
				}
			}
		}
		nodes = append(nodes, n)
	}
	g.Node = nodes
	for _, v := range g.Input {
		if _, isInit := inits[v.GetName()]; !isInit {
			pinBatch(v, maxBatch)
		}
	}
	for _, v := range g.Output {
		pinBatch(v, maxBatch)
	}
	g.ValueInfo = nil
	return m.marshal(mp)
}

// pinBatch sets the first dimension of v's tensor shape to n.
func pinBatch(v *onnx.ValueInfoProto, n int) {
	shape := v.GetType().GetTensorType().GetShape()
	if shape == nil || len(shape.Dim) == 0 || shape.Dim[0] == nil {
		return
	}
	shape.Dim[0].Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(n)}
}

func (m *Model) marshal(mp *onnx.ModelProto) ([]byte, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(mp)
	if err != nil {
		return nil, newError(m.Path, ErrRewrite, err, "cannot encode the rewritten model")
	}
	return data, nil
}

// Bytes returns the normalized model (every node named, external data inlined) without other
// changes.
func (m *Model) Bytes() ([]byte, error) {
	return m.marshal(m.proto)
}

// String returns a one-line summary: name, input shape, number of SE blocks.
func (m *Model) String() string {
	return fmt.Sprintf("%s (input %q %v, %d SE blocks)", m.Name, m.Input.Name, m.Input.Shape, len(m.Blocks))
}
