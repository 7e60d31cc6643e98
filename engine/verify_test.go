package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/model"
)

// TestVerifyGates runs the SE self-check on the engine's golden models with both backends: every block's
// gates recomputed in Go from the block's input agree with the engine.
func TestVerifyGates(t *testing.T) {
	for _, name := range []string{"testdata/se_tiny_64x64.onnx", "testdata/se_res_96x160.onnx"} {
		m, err := model.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		h, w := int(m.Input.Shape[2]), int(m.Input.Shape[3])
		if h <= 0 || w <= 0 {
			t.Fatalf("%s: input shape %v has no fixed size", name, m.Input.Shape)
		}
		for _, backend := range []Backend{ONNXRuntime, OpenCV} {
			checks, info, err := VerifyGates(context.Background(), m, Options{Backend: backend, Threads: 1}, h, w, 3)
			if err != nil {
				t.Fatalf("%s on %s: %v", name, backend, err)
			}
			if len(checks) != len(m.Blocks) || len(checks) == 0 {
				t.Fatalf("%s: %d checks for %d blocks", name, len(checks), len(m.Blocks))
			}
			for _, c := range checks {
				if !c.OK() {
					t.Errorf("%s on %s (%s): block %s max error %g, err %v", name, backend, info.Backend, c.Block, c.MaxError, c.Err)
				}
			}
		}
	}
}

// TestVerifyCatchesWrongDiscovery points a block at the wrong tensor (the scaled output instead of U, same
// shape), as a discovery that picked the wrong Mul operand would: the self-check must fail for that block.
func TestVerifyCatchesWrongDiscovery(t *testing.T) {
	m, err := model.Load("testdata/se_tiny_64x64.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blocks) < 1 {
		t.Fatal("test model has no SE blocks")
	}
	m.Blocks[0].Input = m.Blocks[0].Output
	_, err = CheckGates(context.Background(), m, Options{Backend: ONNXRuntime, Threads: 1}, 64, 64)
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), m.Blocks[0].Name) {
		t.Fatalf("self-check error = %v, want ErrVerify naming block %s", err, m.Blocks[0].Name)
	}
}

// TestVerifyTorchvision runs the self-check on torchvision's SE networks (random weights, exported at test
// time) with both backends: every block's max error must be within VerifyTolerance.
func TestVerifyTorchvision(t *testing.T) {
	names := []string{"mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf"}
	dir := testfixtures.Torchvision(t, names...)
	for _, name := range names {
		m, err := model.Load(filepath.Join(dir, name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for _, backend := range []Backend{ONNXRuntime, OpenCV} {
			checks, _, err := VerifyGates(context.Background(), m, Options{Backend: backend, Threads: 2}, 224, 224, 2)
			if err != nil {
				t.Fatalf("%s on %s: %v", name, backend, err)
			}
			worst := 0.0
			for _, c := range checks {
				if !c.OK() {
					t.Errorf("%s on %s: block %s max error %g, err %v", name, backend, c.Block, c.MaxError, c.Err)
				}
				worst = max(worst, c.MaxError)
			}
			t.Logf("%s on %s: %d blocks, worst max error %.2g", name, backend, len(checks), worst)
		}
	}
}
