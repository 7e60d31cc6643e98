package se

import (
	"errors"
	"sort"
)

// BlockInfo describes one SE block found in a model graph: where it is and which tensors and
// weights belong to it.
type BlockInfo struct {
	// Name is the gate node's name. It is stable across runs and is the key of the block's gates
	// in results.
	Name string
	// Order is the block's 0-based position among the model's SE blocks, in network
	// (topological) order.
	Order int
	// Channels is C, the number of channels of the block's input and of its gate vector.
	Channels int
	// Hidden is the bottleneck width (C/r).
	Hidden int
	// Gate is the gate function; Activation the nonlinearity between the two layers.
	Gate       GateKind
	Activation Activation
	// Input is the tensor U: the input of the pooling and of the scaling Mul (N x C x H x W).
	Input string
	// GateNode is the Sigmoid or HardSigmoid node's name (equal to Name).
	GateNode string
	// GateTensor is the gate node's output tensor: what engines fetch, N x C (or N x C x 1 x 1).
	GateTensor string
	// Output is the output tensor of the scaling Mul.
	Output string
	// Pool is the name of the pooling node (GlobalAveragePool or ReduceMean).
	Pool string
	// Layers are the names of the two excitation nodes (Conv, Gemm or MatMul), in order.
	Layers [2]string
	// Weights are the weight initializers of the two layers, in the layer's own layout:
	// Conv OIHW (H = W = 1), Gemm B (transposed when the node's transB is 1), MatMul in x out.
	Weights [2]string
	// Biases are the bias initializers of the two layers: the Conv or Gemm bias input, or the
	// initializer added to a MatMul's output. "" when the layer has none.
	Biases [2]string
	// Alpha and Beta parameterize a HardSigmoid gate (ONNX defaults 0.2 and 0.5 when the node
	// omits them); zero for Sigmoid.
	Alpha, Beta float32
}

// Discover finds the SE blocks of g and returns them in network order.
//
// A block is a Mul(U, G) where G is a Sigmoid or HardSigmoid whose input, walked backwards, is
// exactly: a Conv 1x1, Gemm or MatMul layer (with optional bias Add), an activation (Relu, or SiLU
// as x*Sigmoid(x)), a second such layer, and a GlobalAveragePool or ReduceMean over the spatial
// axes whose input is U itself. Reshape, Flatten, Squeeze, Unsqueeze and Identity may sit between
// any two of these. The layers' weights must be initializers whose dimensions agree (C -> Hidden
// -> C). Anything looser is rejected on purpose: EfficientNet's x*sigmoid(x) and MobileNetV3's
// x*hardsigmoid(x) are activations, not SE blocks.
//
// Discover fails only when g itself is malformed: unnamed or duplicate nodes, a tensor produced
// twice, or a cycle.
func Discover(g *Graph) ([]BlockInfo, error) {
	if g == nil {
		return nil, errors.New("se: nil graph")
	}
	ix, err := newIndex(g)
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	var blocks []BlockInfo
	var positions []int
	for _, i := range ix.order {
		n := &g.Nodes[i]
		if n.OpType != "Mul" || len(n.Inputs) != 2 || len(n.Outputs) < 1 {
			continue
		}
		for side := 0; side < 2; side++ {
			b, gatePos, ok := ix.matchBlock(n, n.Inputs[1-side], n.Inputs[side])
			if !ok || found[b.Name] {
				continue
			}
			found[b.Name] = true
			blocks = append(blocks, b)
			positions = append(positions, gatePos)
			break
		}
	}
	sort.Sort(byPosition{blocks, positions})
	for i := range blocks {
		blocks[i].Order = i
	}
	return blocks, nil
}

type byPosition struct {
	blocks    []BlockInfo
	positions []int
}

func (s byPosition) Len() int           { return len(s.blocks) }
func (s byPosition) Less(i, j int) bool { return s.positions[i] < s.positions[j] }
func (s byPosition) Swap(i, j int) {
	s.blocks[i], s.blocks[j] = s.blocks[j], s.blocks[i]
	s.positions[i], s.positions[j] = s.positions[j], s.positions[i]
}

// matchBlock checks whether mul = Mul(u, gated) is the scaling step of an SE block and returns
// the block and the gate node's topological position.
func (ix *index) matchBlock(mul *Node, u, gated string) (BlockInfo, int, bool) {
	var b BlockInfo
	if u == "" || gated == "" || u == gated {
		return b, 0, false
	}
	gateIdx, ok := ix.producer[ix.skipShape(gated)]
	if !ok {
		return b, 0, false
	}
	gate := &ix.g.Nodes[gateIdx]
	switch gate.OpType {
	case "Sigmoid":
		b.Gate = Sigmoid
	case "HardSigmoid":
		b.Gate = HardSigmoid
		b.Alpha = gate.Float("alpha", 0.2)
		b.Beta = gate.Float("beta", 0.5)
	default:
		return b, 0, false
	}
	if len(gate.Inputs) != 1 || len(gate.Outputs) != 1 {
		return b, 0, false
	}
	second, ok := ix.matchLayer(gate.Inputs[0])
	if !ok {
		return b, 0, false
	}
	act, afterFirst, ok := ix.matchActivation(second.input)
	if !ok {
		return b, 0, false
	}
	first, ok := ix.matchLayer(afterFirst)
	if !ok {
		return b, 0, false
	}
	pool, ok := ix.matchPool(first.input)
	if !ok || pool.Inputs[0] != u {
		return b, 0, false
	}
	if first.in != second.out || first.out != second.in || first.in < 1 || first.out < 1 {
		return b, 0, false
	}
	b.Name = gate.Name
	b.Channels = int(first.in)
	b.Hidden = int(first.out)
	b.Activation = act
	b.Input = u
	b.GateNode = gate.Name
	b.GateTensor = gate.Outputs[0]
	b.Output = mul.Outputs[0]
	b.Pool = pool.Name
	b.Layers = [2]string{first.node.Name, second.node.Name}
	b.Weights = [2]string{first.weight, second.weight}
	b.Biases = [2]string{first.bias, second.bias}
	return b, ix.position[gateIdx], true
}

// skipShape walks back from tensor t through nodes that only change a tensor's shape and returns
// the first tensor not produced by one.
func (ix *index) skipShape(t string) string {
	for steps := 0; steps <= len(ix.g.Nodes); steps++ {
		p := ix.producerOf(t)
		if p == nil || len(p.Inputs) == 0 {
			return t
		}
		switch p.OpType {
		case "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity":
			t = p.Inputs[0]
		default:
			return t
		}
	}
	return t
}

// layer is one matched excitation layer.
type layer struct {
	node         *Node
	input        string // the layer's data input
	weight, bias string // initializer names; bias may be ""
	in, out      int64  // input and output features
}

// matchLayer matches the Conv 1x1, Gemm or MatMul layer (with an optional bias Add after it) that
// produces tensor t, possibly through shape-only nodes.
func (ix *index) matchLayer(t string) (layer, bool) {
	p := ix.producerOf(ix.skipShape(t))
	if p == nil {
		return layer{}, false
	}
	if p.OpType == "Add" && len(p.Inputs) == 2 {
		for side := 0; side < 2; side++ {
			biasName, other := p.Inputs[side], p.Inputs[1-side]
			if _, ok := ix.g.Initializers[biasName]; !ok {
				continue
			}
			l, ok := ix.matchLinear(ix.producerOf(other))
			if !ok || l.bias != "" || !ix.isBias(biasName, l.out) {
				return layer{}, false
			}
			l.bias = biasName
			return l, true
		}
		return layer{}, false
	}
	return ix.matchLinear(p)
}

// matchLinear matches a bare Conv 1x1, Gemm or MatMul node with initializer weights.
func (ix *index) matchLinear(p *Node) (layer, bool) {
	if p == nil || len(p.Inputs) < 2 || len(p.Outputs) != 1 {
		return layer{}, false
	}
	l := layer{node: p, input: p.Inputs[0], weight: p.Inputs[1], bias: p.input(2)}
	dims, ok := ix.g.Initializers[l.weight]
	if !ok {
		return layer{}, false
	}
	switch p.OpType {
	case "Conv":
		if len(dims) != 4 || dims[2] != 1 || dims[3] != 1 || p.Int("group", 1) != 1 {
			return layer{}, false
		}
		for _, pad := range p.Ints["pads"] {
			if pad != 0 {
				return layer{}, false
			}
		}
		l.out, l.in = dims[0], dims[1]
	case "Gemm":
		if len(dims) != 2 || p.Int("transA", 0) != 0 {
			return layer{}, false
		}
		if p.Int("transB", 0) != 0 {
			l.out, l.in = dims[0], dims[1]
		} else {
			l.in, l.out = dims[0], dims[1]
		}
	case "MatMul":
		if len(dims) != 2 || len(p.Inputs) != 2 {
			return layer{}, false
		}
		l.in, l.out = dims[0], dims[1]
	default:
		return layer{}, false
	}
	if l.bias != "" && !ix.isBias(l.bias, l.out) {
		return layer{}, false
	}
	return l, true
}

// isBias reports whether initializer name holds exactly n values (any shape, e.g. [n] or [1, n]).
func (ix *index) isBias(name string, n int64) bool {
	dims, ok := ix.g.Initializers[name]
	if !ok {
		return false
	}
	total := int64(1)
	for _, d := range dims {
		total *= d
	}
	return total == n
}

// matchActivation matches the activation that produces tensor t and returns it with its input.
func (ix *index) matchActivation(t string) (Activation, string, bool) {
	p := ix.producerOf(ix.skipShape(t))
	if p == nil || len(p.Inputs) == 0 {
		return 0, "", false
	}
	switch p.OpType {
	case "Relu":
		return ReLU, p.Inputs[0], true
	case "Mul":
		if len(p.Inputs) != 2 {
			return 0, "", false
		}
		for side := 0; side < 2; side++ {
			x, s := p.Inputs[side], p.Inputs[1-side]
			if sig := ix.producerOf(s); sig != nil && sig.OpType == "Sigmoid" && len(sig.Inputs) == 1 && sig.Inputs[0] == x {
				return SiLU, x, true
			}
		}
	}
	return 0, "", false
}

// matchPool matches a global average pooling over the spatial axes that produces tensor t.
func (ix *index) matchPool(t string) (*Node, bool) {
	p := ix.producerOf(ix.skipShape(t))
	if p == nil || len(p.Inputs) == 0 || p.Inputs[0] == "" {
		return nil, false
	}
	switch p.OpType {
	case "GlobalAveragePool":
		return p, true
	case "ReduceMean":
		axes, ok := p.Ints["axes"]
		if !ok && len(p.Inputs) > 1 {
			axes, ok = ix.g.Constants[p.Inputs[1]]
		}
		if ok && spatialAxes(axes) {
			return p, true
		}
	}
	return nil, false
}

// spatialAxes reports whether axes name exactly H and W of a rank-4 NCHW tensor.
func spatialAxes(axes []int64) bool {
	if len(axes) != 2 {
		return false
	}
	var h, w bool
	for _, a := range axes {
		switch a {
		case 2, -2:
			h = true
		case 3, -1:
			w = true
		}
	}
	return h && w
}
