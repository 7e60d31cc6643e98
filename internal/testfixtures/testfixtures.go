// Package testfixtures makes the ONNX models that tests share: torchvision networks with SE blocks, exported
// with Debian's PyTorch by scripts/export_torchvision.py into a cache directory, once per script version.
package testfixtures

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Python is the interpreter that has Debian's torch, torchvision and onnx.
const Python = "/usr/bin/python3"

// root is the repository root, found from this file's location.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// ExportScript is the path of the export script.
func ExportScript() string { return filepath.Join(root(), "scripts", "export_torchvision.py") }

// Torchvision returns the directory holding <name>.onnx for every name (mobilenet_v3_small, efficientnet_b0,
// regnet_y_400mf, resnet18, ...), exporting the missing ones. The directory is $SESTREAM_FIXTURES when set,
// else one in the user's cache named after the export script's hash, so a changed script exports afresh.
// Test processes running at once take turns through a lock file, and each model appears atomically.
// It skips the test only when /usr/bin/python3 cannot import torch, torchvision and onnx.
func Torchvision(t testing.TB, names ...string) string {
	t.Helper()
	dir := os.Getenv("SESTREAM_FIXTURES")
	if dir == "" {
		script, err := os.ReadFile(ExportScript())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(script)
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "sestream-fixtures", "torchvision-"+hex.EncodeToString(sum[:6]))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if missingModels(dir, names) == nil {
		return dir
	}
	if err := exec.Command(Python, "-c", "import torch, torchvision, onnx").Run(); err != nil {
		t.Skipf("skipping: %s cannot import torch, torchvision and onnx (Debian python3-torch, python3-torchvision, python3-onnx; scripts/setup.sh installs them): %v", Python, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	missing := missingModels(dir, names) // another process may have exported them while we waited
	if missing == nil {
		return dir
	}
	tmp, err := os.MkdirTemp(dir, "export-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	cmd := exec.Command(Python, append([]string{ExportScript(), tmp}, missing...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", Python, ExportScript(), err, stderr.String())
	}
	files, err := os.ReadDir(tmp) // <name>.onnx and any side files (tiny_se_weights.json)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(tmp, f.Name()), filepath.Join(dir, f.Name())); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("exported %v into %s in %v", missing, dir, time.Since(start).Round(time.Millisecond))
	return dir
}

func missingModels(dir string, names []string) []string {
	var missing []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n+".onnx")); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}
