package capture

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/matcheck"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/preprocess"
	"github.com/sestream/sestream/stages/source"
)

// TestSoakCapturePreprocess decodes and preprocesses 4 looping 640x480 H.264 file streams
// paced at 25 fps each (like 4 cameras) and samples the process RSS. It runs only when
// SESTREAM_SOAK is set to a duration, e.g.
//
//	SESTREAM_SOAK=2m go test -run TestSoakCapturePreprocess -v -timeout 10m ./stages/
//
// SESTREAM_SOAK_FAST=1 reads the files as fast as they decode instead. It fails when RSS
// grows by more than 32 MiB after the first quarter of the run (the warm-up).
func TestSoakCapturePreprocess(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SESTREAM_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("soak test: set SESTREAM_SOAK to a duration (e.g. 2m) to run it")
	}
	realtime := os.Getenv("SESTREAM_SOAK_FAST") == ""
	matcheck.Check(t)
	file := filepath.Join(t.TempDir(), "soak.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=10", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", file)

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var frames atomic.Uint64
	var wg sync.WaitGroup
	var dropped []*pipeline.Queue[Frame]
	for i := 0; i < 4; i++ {
		q := pipeline.NewQueue[Frame](fmt.Sprint("soak", i), 4, pipeline.DropOldest, DiscardFrame)
		dropped = append(dropped, q)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := RunSource(ctx, source.Options{Name: q.Name(), URL: file, Loop: true, Realtime: realtime}, q, nil); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			p, err := preprocess.New(preprocess.Options{Width: 224, Height: 224, Resize: preprocess.ResizeLetterbox})
			if err != nil {
				t.Error(err)
				return
			}
			defer p.Close()
			tensor := make([]float32, p.TensorLen())
			for f := range q.C() {
				if _, err := p.Into(tensor, f.Mat); err != nil {
					t.Error(err)
				}
				DiscardFrame(f)
				frames.Add(1)
			}
		}()
	}
	type sample struct {
		at     time.Duration
		rssKiB int
		frames uint64
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(d / 24)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			samples = append(samples, sample{time.Since(start).Round(time.Second), rssKiB(t), frames.Load()})
		case <-ctx.Done():
		}
	}
	wg.Wait()
	var drops uint64
	for _, q := range dropped {
		drops += q.Dropped()
	}
	runtime.GC()
	warm := samples[len(samples)/4]
	peak := warm.rssKiB
	for _, s := range samples {
		t.Logf("t=%-6v rss=%6.1f MiB frames=%d", s.at, float64(s.rssKiB)/1024, s.frames)
		if s.at >= warm.at {
			peak = max(peak, s.rssKiB)
		}
	}
	last := samples[len(samples)-1]
	t.Logf("%d frames in %v (%.0f/s), %d dropped; RSS after warm-up %.1f MiB, peak %.1f MiB, last %.1f MiB",
		frames.Load(), d, float64(frames.Load())/d.Seconds(), drops,
		float64(warm.rssKiB)/1024, float64(peak)/1024, float64(last.rssKiB)/1024)
	if peak-warm.rssKiB > 32*1024 {
		t.Fatalf("RSS grew by %.1f MiB after warm-up", float64(peak-warm.rssKiB)/1024)
	}
}

// rssKiB reads the process's resident set size from /proc/self/status.
func rssKiB(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
