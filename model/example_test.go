package model_test

import (
	"errors"
	"fmt"

	"github.com/sestream/sestream/model"
)

func ExampleLoad() {
	m, err := model.Load("testdata/tiny_se.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Input.Name, m.Input.Shape, m.Meta.Width, m.Meta.Height, m.Meta.Color)
	for _, b := range m.Blocks {
		fmt.Printf("%d %s C=%d hidden=%d %s %s\n", b.Order, b.Name, b.Channels, b.Hidden, b.Gate, b.Activation)
	}
	// Output:
	// images [-1 3 8 10] 10 8 rgb
	// 0 /se1/gate/Sigmoid C=8 hidden=2 sigmoid relu
	// 1 /se2/gate/HardSigmoid C=16 hidden=4 hard_sigmoid silu
	// 2 /se3/gate/Sigmoid C=16 hidden=8 sigmoid relu
}

func ExampleParse_error() {
	_, err := model.Parse("models/x.onnx", []byte("not a model"))
	fmt.Println(errors.Is(err, model.ErrNotONNX))
	// Output:
	// true
}

func ExampleModel_ForONNXRuntime() {
	m, err := model.Load("testdata/tiny_se.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	gates := make([]string, len(m.Blocks))
	for i, b := range m.Blocks {
		gates[i] = b.GateTensor
	}
	data, err := m.ForONNXRuntime(gates...)
	if err != nil {
		fmt.Println(err)
		return
	}
	withGates, err := model.Parse("with-gates.onnx", data)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range withGates.Outputs {
		fmt.Println(o.Name)
	}
	// Output:
	// logits
	// /se1/gate/Sigmoid_output_0
	// /se2/gate/HardSigmoid_output_0
	// /se3/gate/Sigmoid_output_0
}
