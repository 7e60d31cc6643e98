package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/model"
)

const (
	python       = "/usr/bin/python3"
	exportScript = "../scripts/export_torchvision.py"
)

// torchvisionModel returns the path of a torchvision export made by scripts/export_torchvision.py, exporting
// it into the same cache directory the model tests use ($SESTREAM_FIXTURES, else the user cache directory
// under a name derived from the script's hash). It skips when /usr/bin/python3 cannot import torch.
func torchvisionModel(b testing.TB, name string) string {
	b.Helper()
	if err := exec.Command(python, "-c", "import torch, torchvision, onnx").Run(); err != nil {
		b.Skipf("skipping: %s cannot import torch, torchvision and onnx: %v", python, err)
	}
	dir := os.Getenv("SESTREAM_FIXTURES")
	if dir == "" {
		script, err := os.ReadFile(exportScript)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(script)
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "sestream-fixtures", "torchvision-"+hex.EncodeToString(sum[:6]))
	}
	path := filepath.Join(dir, name+".onnx")
	if _, err := os.Stat(path); err != nil {
		cmd := exec.Command(python, exportScript, dir, name)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s %s %s %s: %v\n%s", python, exportScript, dir, name, err, stderr.String())
		}
	}
	return path
}

// rssMB returns the process's resident set size in MiB, from /proc/self/statm.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}

func heapMB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// BenchmarkRun runs mobilenet_v3_small (224x224, random weights) at batch 1 and 8 with 2 threads on each
// backend, with and without fetching the SE gates. Besides ns/op it reports images/s and the resident and
// Go heap memory after the timed loop; run with -benchtime=1000x to see that memory stays flat over 1,000
// batches:
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 1000x ./engine
func BenchmarkRun(b *testing.B) {
	path := torchvisionModel(b, "mobilenet_v3_small")
	m := loadModelPath(b, path)
	noGates := *m
	noGates.Blocks = nil
	for _, backend := range backends(b) {
		for _, n := range []int{1, 8} {
			for _, gates := range []bool{true, false} {
				name := fmt.Sprintf("%s/batch%d", backend, n)
				mm := m
				if !gates {
					name += "/nogates"
					mm = &noGates
				}
				b.Run(name, func(b *testing.B) {
					e, err := Open(mm, Options{Backend: backend, MaxBatch: n, Threads: 2})
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					x := make([]float32, n*3*224*224)
					for i := range x {
						x[i] = float32(i%251)/125 - 1
					}
					ctx := context.Background()
					for range 3 { // warm-up
						if _, err := e.Run(ctx, x, n); err != nil {
							b.Fatal(err)
						}
					}
					rss0, heap0 := rssMB(), heapMB()
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						if _, err := e.Run(ctx, x, n); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
					b.ReportMetric(rssMB()-rss0, "rss-growth-MB")
					b.ReportMetric(heapMB()-heap0, "heap-growth-MB")
					b.ReportMetric(rssMB(), "rss-MB")
				})
			}
		}
	}
}

func loadModelPath(b testing.TB, path string) *model.Model {
	b.Helper()
	m, err := model.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// TestFlatMemory runs 1,000 batches of the largest golden model on each backend and checks that neither the
// process's resident memory nor the Go heap grows with the number of batches (a leaked tensor or Mat per
// batch of 4 x 16 x 48 x 80 floats would add hundreds of MiB).
func TestFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping 1,000-batch memory test in -short mode")
	}
	m := loadModel(t, "se_res_96x160.onnx")
	input := readNpy(t, "input_96x160.npy")
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			e := open(t, m, Options{Backend: b, MaxBatch: 4, Threads: 1, ExtraOutputs: []string{m.Blocks[0].Input}})
			ctx := context.Background()
			run := func(batches int) {
				for i := range batches {
					n := 1 + i%4
					if _, err := e.Run(ctx, input.Data[:n*3*96*160], n); err != nil {
						t.Fatal(err)
					}
				}
			}
			run(100) // warm-up: every batch size seen, allocator pools filled
			runtime.GC()
			rss0, heap0 := rssMB(), heapMB()
			run(1000)
			runtime.GC()
			rss1, heap1 := rssMB(), heapMB()
			t.Logf("%s: RSS %.1f -> %.1f MiB, Go heap %.2f -> %.2f MiB over 1,000 batches", b, rss0, rss1, heap0, heap1)
			if rss1-rss0 > 32 {
				t.Errorf("RSS grew by %.1f MiB over 1,000 batches", rss1-rss0)
			}
			if heap1-heap0 > 4 {
				t.Errorf("Go heap grew by %.2f MiB over 1,000 batches", heap1-heap0)
			}
			allocs := testing.AllocsPerRun(50, func() { run(1) })
			t.Logf("%s: %.0f allocations per Run", b, allocs)
			if allocs > 16 {
				t.Errorf("%.0f allocations per Run, want a handful at most", allocs)
			}
		})
	}
}

// TestTorchvisionBackendsAgree runs torchvision's mobilenet_v3_small (9 hard-sigmoid SE blocks) on both
// backends and compares outputs and gates.
func TestTorchvisionBackendsAgree(t *testing.T) {
	needORT(t)
	m := loadModelPath(t, torchvisionModel(t, "mobilenet_v3_small"))
	if len(m.Blocks) != 9 {
		t.Fatalf("mobilenet_v3_small has %d SE blocks, want 9", len(m.Blocks))
	}
	a := open(t, m, Options{Backend: ONNXRuntime, MaxBatch: 3, Threads: 2})
	b := open(t, m, Options{Backend: OpenCV, MaxBatch: 3})
	x := make([]float32, 3*3*224*224)
	for i := range x {
		x[i] = float32((i*7919)%1000)/500 - 1
	}
	for _, n := range []int{3, 1} {
		ra, err := a.Run(context.Background(), x[:n*3*224*224], n)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.Run(context.Background(), x[:n*3*224*224], n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ra.Outputs {
			checkClose(t, fmt.Sprintf("batch %d output %s", n, ra.Outputs[i].Name), ra.Outputs[i].Data, rb.Outputs[i].Data)
		}
		for j := range ra.Gates {
			checkClose(t, fmt.Sprintf("batch %d gate %s", n, ra.Gates[j].Name), ra.Gates[j].Data, rb.Gates[j].Data)
		}
	}
}

// BenchmarkGateCost measures what fetching the SE gates costs on mobilenet_v3_small at batch 8, 2 threads: it
// opens the model twice, with and without the gate outputs, and alternates batches between them so both see
// the same machine load. It reports the median over iterations of (time with gates / time without - 1) in %.
//
//	go test -run '^$' -bench BenchmarkGateCost -benchtime 100x ./engine
func BenchmarkGateCost(b *testing.B) {
	path := torchvisionModel(b, "mobilenet_v3_small")
	m := loadModelPath(b, path)
	noGates := *m
	noGates.Blocks = nil
	const n = 8
	for _, backend := range backends(b) {
		b.Run(fmt.Sprintf("%s/batch%d", backend, n), func(b *testing.B) {
			with, err := Open(m, Options{Backend: backend, MaxBatch: n, Threads: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer with.Close()
			without, err := Open(&noGates, Options{Backend: backend, MaxBatch: n, Threads: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer without.Close()
			x := make([]float32, n*3*224*224)
			for i := range x {
				x[i] = float32(i%251)/125 - 1
			}
			ctx := context.Background()
			timed := func(e Engine) time.Duration {
				t0 := time.Now()
				if _, err := e.Run(ctx, x, n); err != nil {
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			timed(with)
			timed(without)
			var ratios []float64
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				var tw, to time.Duration
				if i%2 == 0 {
					tw, to = timed(with), timed(without)
				} else {
					to, tw = timed(without), timed(with)
				}
				ratios = append(ratios, float64(tw)/float64(to))
			}
			slices.Sort(ratios)
			b.ReportMetric((ratios[len(ratios)/2]-1)*100, "gate-overhead-%")
		})
	}
}

// TestORTCancel cancels the context while ONNX Runtime runs a batch of mobilenet_v3_small (tens of ms on one
// thread): Run must return the context's error, and the next Run must work.
func TestORTCancel(t *testing.T) {
	needORT(t)
	m := loadModelPath(t, torchvisionModel(t, "mobilenet_v3_small"))
	e := open(t, m, Options{Backend: ONNXRuntime, MaxBatch: 8, Threads: 1})
	x := make([]float32, 8*3*224*224)
	canceled := false
	for attempt := 0; attempt < 10 && !canceled; attempt++ {
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(2*time.Millisecond, cancel)
		_, err := e.Run(ctx, x, 8)
		timer.Stop()
		cancel()
		switch {
		case errors.Is(err, context.Canceled):
			canceled = true
		case err != nil:
			t.Fatalf("Run: %v, want nil or context.Canceled", err)
		}
	}
	if !canceled {
		t.Fatal("no Run of a batch of 8 was canceled after 2 ms in 10 attempts")
	}
	if _, err := e.Run(context.Background(), x, 8); err != nil {
		t.Fatalf("Run after a canceled Run: %v", err)
	}
}
