package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/model"
)

func ExampleOpen() {
	m, err := model.Load("testdata/se_tiny_64x64.onnx")
	if err != nil {
		log.Fatal(err)
	}
	e, err := engine.Open(m, engine.Options{Backend: engine.OpenCV, MaxBatch: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	// Two items of 3 x 64 x 64, NCHW.
	x := make([]float32, 2*3*64*64)
	r, err := e.Run(context.Background(), x, 2)
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range r.Outputs {
		fmt.Println("output", o.Name, o.Shape)
	}
	for _, g := range r.Gates {
		fmt.Println("gates", g.Name, g.Shape)
	}
	// Output:
	// output logits [2 10]
	// gates /se1/gate/Sigmoid [2 8]
	// gates /se2/gate/HardSigmoid [2 16]
	// gates /se3/gate/Sigmoid [2 24]
}
