package se_test

import (
	"fmt"

	"github.com/sestream/sestream/se"
)

// A torchvision-style SE block on tensor "x": pool, Conv 1x1, ReLU, Conv 1x1, HardSigmoid, scale.
// Beside it, x*sigmoid(x) (a SiLU activation) is correctly not reported.
func ExampleDiscover() {
	conv := func(name, in, w, b string) se.Node {
		return se.Node{Name: name, OpType: "Conv", Inputs: []string{in, w, b}, Outputs: []string{name + ":0"},
			Ints: map[string][]int64{"kernel_shape": {1, 1}}}
	}
	g := &se.Graph{
		Inputs: []string{"x"},
		Nodes: []se.Node{
			{Name: "pool", OpType: "GlobalAveragePool", Inputs: []string{"x"}, Outputs: []string{"pool:0"}},
			conv("fc1", "pool:0", "w1", "b1"),
			{Name: "relu", OpType: "Relu", Inputs: []string{"fc1:0"}, Outputs: []string{"relu:0"}},
			conv("fc2", "relu:0", "w2", "b2"),
			{Name: "gate", OpType: "HardSigmoid", Inputs: []string{"fc2:0"}, Outputs: []string{"gate:0"},
				Floats: map[string]float32{"alpha": 1.0 / 6}},
			{Name: "scale", OpType: "Mul", Inputs: []string{"gate:0", "x"}, Outputs: []string{"y"}},
			{Name: "silu/sigmoid", OpType: "Sigmoid", Inputs: []string{"y"}, Outputs: []string{"s"}},
			{Name: "silu/mul", OpType: "Mul", Inputs: []string{"y", "s"}, Outputs: []string{"out"}},
		},
		Initializers: map[string][]int64{"w1": {4, 16, 1, 1}, "b1": {4}, "w2": {16, 4, 1, 1}, "b2": {16}},
		Outputs:      []string{"out"},
	}
	blocks, err := se.Discover(g)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range blocks {
		fmt.Printf("%s: C=%d hidden=%d %s %s, U=%s, gates in %s\n", b.Name, b.Channels, b.Hidden, b.Gate, b.Activation, b.Input, b.GateTensor)
	}
	// Output:
	// gate: C=16 hidden=4 hard_sigmoid relu, U=x, gates in gate:0
}
