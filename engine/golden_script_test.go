package engine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sestream/sestream/npy"
)

// TestGoldenScriptReproduces reruns scripts/gen_engine_golden.py into a temporary directory and checks that
// it writes the committed manifest and the committed numbers, so the golden data is what the script makes.
func TestGoldenScriptReproduces(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the PyTorch golden generator in -short mode")
	}
	if err := exec.Command(python, "-c", "import torch, onnx, numpy").Run(); err != nil {
		t.Skipf("skipping: %s cannot import torch, onnx and numpy: %v", python, err)
	}
	dir := t.TempDir()
	cmd := exec.Command(python, "../scripts/gen_engine_golden.py", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gen_engine_golden.py: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("golden.json differs from the committed one:\n%s", got)
	}
	files, err := filepath.Glob("testdata/*.npy")
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed .npy files: %v", err)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "*.npy"))
	if len(written) != len(files) {
		t.Errorf("the script wrote %d .npy files, %d are committed", len(written), len(files))
	}
	for _, f := range files {
		a := readNpy(t, filepath.Base(f))
		b, err := npy.ReadFile(filepath.Join(dir, filepath.Base(f)))
		if err != nil {
			t.Errorf("the script did not write %s: %v", filepath.Base(f), err)
			continue
		}
		d, err := maxDiff(b.Data, a.Data)
		if err != nil || d > 1e-6 {
			t.Errorf("%s: regenerated values differ from the committed ones (max diff %g, %v)", filepath.Base(f), d, err)
		}
	}
	for _, f := range []string{"se_tiny_64x64.onnx", "se_tiny_96x160.onnx", "se_res_96x160.onnx"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("the script did not write %s", f)
		}
	}
	if strings.Contains(stderr.String(), "Traceback") {
		t.Errorf("generator printed a traceback:\n%s", stderr.String())
	}
}
