package se

import (
	"fmt"
	"strings"
	"testing"
)

// builder makes small graphs by hand. Every node gets a unique name and one output named after it.
type builder struct {
	g Graph
}

func newBuilder(inputs ...string) *builder {
	return &builder{g: Graph{Initializers: map[string][]int64{}, Constants: map[string][]int64{}, Inputs: inputs}}
}

// op adds a node and returns its output tensor.
func (b *builder) op(name, opType string, inputs ...string) string {
	return b.opAttr(name, opType, nil, nil, inputs...)
}

func (b *builder) opAttr(name, opType string, ints map[string][]int64, floats map[string]float32, inputs ...string) string {
	out := name + "_out"
	b.g.Nodes = append(b.g.Nodes, Node{Name: name, OpType: opType, Inputs: inputs, Outputs: []string{out}, Ints: ints, Floats: floats})
	return out
}

func (b *builder) init(name string, dims ...int64) string {
	b.g.Initializers[name] = dims
	return name
}

func (b *builder) constant(name string, values ...int64) string {
	b.g.Constants[name] = values
	b.g.Initializers[name] = []int64{int64(len(values))}
	return name
}

// conv1x1 adds a biased Conv 1x1 from in to out channels.
func (b *builder) conv1x1(name, x string, in, out int64) string {
	return b.opAttr(name, "Conv", map[string][]int64{"group": {1}, "kernel_shape": {1, 1}, "pads": {0, 0, 0, 0}}, nil,
		x, b.init(name+".w", out, in, 1, 1), b.init(name+".b", out))
}

// silu adds x*sigmoid(x) as PyTorch exports it at opset 13.
func (b *builder) silu(name, x string) string {
	return b.op(name+"/Mul", "Mul", x, b.op(name+"/Sigmoid", "Sigmoid", x))
}

// convSE adds a torchvision-style SE block on u and returns the scaled tensor.
func (b *builder) convSE(prefix, u string, c, hidden int64, act string, gate string) string {
	z := b.op(prefix+"/pool", "GlobalAveragePool", u)
	h := b.conv1x1(prefix+"/fc1", z, c, hidden)
	switch act {
	case "relu":
		h = b.op(prefix+"/act", "Relu", h)
	case "silu":
		h = b.silu(prefix+"/act", h)
	}
	s := b.conv1x1(prefix+"/fc2", h, hidden, c)
	if gate == "hard" {
		s = b.opAttr(prefix+"/gate", "HardSigmoid", nil, map[string]float32{"alpha": 1.0 / 6}, s)
	} else {
		s = b.op(prefix+"/gate", "Sigmoid", s)
	}
	return b.op(prefix+"/scale", "Mul", s, u)
}

func TestDiscoverFindsBlocks(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *builder)
		want  []string // one line per block: name channels hidden gate activation pool layers
	}{
		{
			name: "conv relu sigmoid",
			build: func(b *builder) {
				b.g.Outputs = []string{b.convSE("se", "x", 16, 4, "relu", "sigmoid")}
			},
			want: []string{"se/gate 16 4 sigmoid relu se/pool [se/fc1 se/fc2] U=x"},
		},
		{
			name: "conv silu hardsigmoid as in mobilenet_v3 with silu",
			build: func(b *builder) {
				b.g.Outputs = []string{b.convSE("se", "x", 32, 8, "silu", "hard")}
			},
			want: []string{"se/gate 32 8 hard_sigmoid silu se/pool [se/fc1 se/fc2] U=x"},
		},
		{
			name: "gemm transB on reduce mean without keepdims",
			build: func(b *builder) {
				z := b.opAttr("pool", "ReduceMean", map[string][]int64{"axes": {2, 3}, "keepdims": {0}}, nil, "x")
				h := b.opAttr("fc1", "Gemm", map[string][]int64{"transB": {1}}, nil, z, b.init("w1", 2, 8), b.init("b1", 2))
				h = b.op("relu", "Relu", h)
				s := b.opAttr("fc2", "Gemm", map[string][]int64{"transB": {1}}, nil, h, b.init("w2", 8, 2), b.init("b2", 8))
				s = b.op("gate", "HardSigmoid", s)
				s = b.op("view", "Reshape", s, b.constant("shape", -1, 8, 1, 1))
				b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
			},
			want: []string{"gate 8 2 hard_sigmoid relu pool [fc1 fc2] U=x"},
		},
		{
			name: "gemm without transB after flatten, opset 18 axes input",
			build: func(b *builder) {
				z := b.op("pool", "ReduceMean", "x", b.constant("axes", -2, -1))
				z = b.op("flat", "Flatten", z)
				h := b.op("fc1", "Gemm", z, b.init("w1", 12, 3), b.init("b1", 3))
				h = b.silu("act", h)
				s := b.op("fc2", "Gemm", h, b.init("w2", 3, 12), b.init("b2", 12))
				s = b.op("gate", "Sigmoid", s)
				s = b.op("unsq", "Unsqueeze", s, b.constant("unsq_axes", 2, 3))
				b.g.Outputs = []string{b.op("scale", "Mul", s, "x")}
			},
			want: []string{"gate 12 3 sigmoid silu pool [fc1 fc2] U=x"},
		},
		{
			name: "matmul with bias add on either side",
			build: func(b *builder) {
				z := b.opAttr("pool", "ReduceMean", map[string][]int64{"axes": {3, 2}, "keepdims": {0}}, nil, "x")
				z = b.op("unsq", "Unsqueeze", z, b.constant("one", 1))
				h := b.op("fc1", "MatMul", z, b.init("w1", 20, 5))
				h = b.op("fc1/Add", "Add", b.init("b1", 5), h)
				h = b.op("relu", "Relu", h)
				s := b.op("fc2", "MatMul", h, b.init("w2", 5, 20))
				s = b.op("fc2/Add", "Add", s, b.init("b2", 20))
				s = b.op("gate", "Sigmoid", s)
				s = b.op("view", "Reshape", s, b.constant("shape", -1, 20, 1, 1))
				b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
			},
			want: []string{"gate 20 5 sigmoid relu pool [fc1 fc2] U=x"},
		},
		{
			name: "two blocks listed out of order come back in network order",
			build: func(b *builder) {
				y := b.convSE("first", "x", 8, 2, "relu", "sigmoid")
				y = b.op("body", "Conv", y, b.init("body.w", 16, 8, 3, 3))
				out := b.convSE("second", y, 16, 4, "relu", "hard")
				b.g.Outputs = []string{out}
				// Reverse the node list: Discover must sort topologically.
				for i, j := 0, len(b.g.Nodes)-1; i < j; i, j = i+1, j-1 {
					b.g.Nodes[i], b.g.Nodes[j] = b.g.Nodes[j], b.g.Nodes[i]
				}
			},
			want: []string{
				"first/gate 8 2 sigmoid relu first/pool [first/fc1 first/fc2] U=x",
				"second/gate 16 4 hard_sigmoid relu second/pool [second/fc1 second/fc2] U=body_out",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder("x")
			tt.build(b)
			blocks, err := Discover(&b.g)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, blk := range blocks {
				if blk.Order != i {
					t.Errorf("block %q has Order %d, want %d", blk.Name, blk.Order, i)
				}
				if blk.GateNode != blk.Name || blk.GateTensor != blk.Name+"_out" {
					t.Errorf("block %q: gate node %q tensor %q", blk.Name, blk.GateNode, blk.GateTensor)
				}
				got = append(got, fmt.Sprintf("%s %d %d %s %s %s [%s %s] U=%s", blk.Name, blk.Channels, blk.Hidden,
					blk.Gate, blk.Activation, blk.Pool, blk.Layers[0], blk.Layers[1], blk.Input))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Discover:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDiscoverBlockDetails(t *testing.T) {
	b := newBuilder("x")
	z := b.op("pool", "GlobalAveragePool", "x")
	h := b.op("fc1", "MatMul", b.op("flat", "Flatten", z), b.init("w1", 6, 3))
	h = b.op("fc1/Add", "Add", h, b.init("b1", 1, 3))
	h = b.op("relu", "Relu", h)
	s := b.opAttr("fc2", "Gemm", map[string][]int64{"transB": {1}}, nil, h, b.init("w2", 6, 3))
	s = b.opAttr("gate", "HardSigmoid", nil, map[string]float32{"beta": 0.25}, s)
	b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
	blocks, err := Discover(&b.g)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 1 {
		t.Fatalf("found %d blocks, want 1", len(blocks))
	}
	got := blocks[0]
	want := BlockInfo{
		Name: "gate", Channels: 6, Hidden: 3, Gate: HardSigmoid, Activation: ReLU,
		Input: "x", GateNode: "gate", GateTensor: "gate_out", Output: "scale_out", Pool: "pool",
		Layers: [2]string{"fc1", "fc2"}, Weights: [2]string{"w1", "w2"}, Biases: [2]string{"b1", ""},
		Alpha: 0.2, Beta: 0.25,
	}
	if got != want {
		t.Errorf("Discover:\n got %+v\nwant %+v", got, want)
	}
}

func TestDiscoverRejects(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *builder)
	}{
		{"silu alone", func(b *builder) {
			b.g.Outputs = []string{b.silu("act", "x")}
		}},
		{"efficientnet silu after a pointwise conv", func(b *builder) {
			y := b.conv1x1("expand", "x", 16, 64)
			b.g.Outputs = []string{b.silu("act", y)}
		}},
		{"hard swish after a pointwise conv", func(b *builder) {
			y := b.conv1x1("expand", "x", 16, 64)
			hs := b.opAttr("hswish/HardSigmoid", "HardSigmoid", nil, map[string]float32{"alpha": 1.0 / 6}, y)
			b.g.Outputs = []string{b.op("hswish/Mul", "Mul", y, hs)}
		}},
		{"sigmoid not multiplied back into the pooled tensor", func(b *builder) {
			// The excitation of x is computed but multiplied into y, which was not pooled.
			y := b.conv1x1("other", "x", 8, 8)
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", y, s)}
		}},
		{"sigmoid added, not multiplied", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("shift", "Add", "x", s)}
		}},
		{"mul with an unrelated graph input", func(b *builder) {
			b.g.Inputs = append(b.g.Inputs, "y")
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "y", s)}
		}},
		{"reduce mean over the channel axis", func(b *builder) {
			z := b.opAttr("pool", "ReduceMean", map[string][]int64{"axes": {1}}, nil, "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 1, 1))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 1, 1))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"reduce mean over channel and width", func(b *builder) {
			z := b.op("pool", "ReduceMean", "x", b.constant("axes", 1, 3))
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"reduce mean over all axes", func(b *builder) {
			z := b.op("pool", "ReduceMean", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"spatial conv in the excitation", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.op("fc1", "Conv", z, b.init("w1", 2, 8, 3, 3)))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"grouped conv in the excitation", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.opAttr("fc1", "Conv", map[string][]int64{"group": {2}}, nil, z, b.init("w1", 2, 4, 1, 1)))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"no activation between the layers", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", b.conv1x1("fc1", z, 8, 2), 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"a single layer", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			s := b.op("gate", "Sigmoid", b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 8)))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"channel counts that do not chain", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 3, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"weights computed at run time", func(b *builder) {
			b.g.Inputs = append(b.g.Inputs, "w")
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.op("fc1", "Conv", z, "w"))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"softmax gate", func(b *builder) {
			z := b.op("pool", "GlobalAveragePool", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Softmax", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
		{"max pooling squeeze", func(b *builder) {
			z := b.op("pool", "GlobalMaxPool", "x")
			h := b.op("relu", "Relu", b.conv1x1("fc1", z, 8, 2))
			s := b.op("gate", "Sigmoid", b.conv1x1("fc2", h, 2, 8))
			b.g.Outputs = []string{b.op("scale", "Mul", "x", s)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder("x")
			tt.build(b)
			blocks, err := Discover(&b.g)
			if err != nil {
				t.Fatal(err)
			}
			for _, blk := range blocks {
				t.Errorf("reported block %+v", blk)
			}
		})
	}
}

func TestDiscoverMalformedGraph(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		want  string
	}{
		{"unnamed node", []Node{{OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}}, "has no name"},
		{"duplicate name", []Node{
			{Name: "a", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}},
			{Name: "a", OpType: "Relu", Inputs: []string{"y"}, Outputs: []string{"z"}},
		}, `two nodes named "a"`},
		{"tensor produced twice", []Node{
			{Name: "a", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}},
			{Name: "b", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}},
		}, `tensor "y" is produced by both "a" and "b"`},
		{"cycle", []Node{
			{Name: "a", OpType: "Relu", Inputs: []string{"z"}, Outputs: []string{"y"}},
			{Name: "b", OpType: "Relu", Inputs: []string{"y"}, Outputs: []string{"z"}},
		}, "cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Discover(&Graph{Nodes: tt.nodes, Inputs: []string{"x"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Discover error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Discover(nil); err == nil {
		t.Error("Discover(nil) succeeded")
	}
}

// BenchmarkDiscover measures discovery on a graph of 16 SE blocks with bodies in between,
// about the size of efficientnet_b0.
func BenchmarkDiscover(b *testing.B) {
	g := newBuilder("x")
	y := "x"
	for i := 0; i < 16; i++ {
		y = g.op(fmt.Sprintf("body%d", i), "Conv", y, g.init(fmt.Sprintf("body%d.w", i), 64, 64, 3, 3))
		y = g.silu(fmt.Sprintf("bodyact%d", i), y)
		y = g.convSE(fmt.Sprintf("se%d", i), y, 64, 16, "silu", "sigmoid")
	}
	g.g.Outputs = []string{y}
	b.ReportAllocs()
	for b.Loop() {
		blocks, err := Discover(&g.g)
		if err != nil || len(blocks) != 16 {
			b.Fatalf("Discover: %d blocks, %v", len(blocks), err)
		}
	}
}
