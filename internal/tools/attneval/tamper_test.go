package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sestream/sestream/internal/pixelbase"
)

// The tamper script writes its video and labels; the pixel baseline, fed the video's thumbnails, raises an
// alarm in the covered-lens and frozen-frame windows (alarms outside the windows are logged).
func TestTamperVideo(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a 220 s video with ffmpeg")
	}
	for _, tool := range []string{"ffmpeg", "ffprobe", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: this test runs scripts/tamper_video.sh", tool)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "..", "scripts", "tamper_video.sh"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tamper_video.sh: %v\n%s", err, out)
	}
	ws, err := readLabels(filepath.Join(dir, "tamper.labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, w := range ws {
		kinds = append(kinds, w.kind)
		if w.last-w.first+1 != 48 || (i > 0 && w.first-ws[i-1].last-1 != 120) {
			t.Errorf("window %s: frames %d-%d, want 48 frames 120 after the previous window", w.kind, w.first, w.last)
		}
	}
	if got := strings.Join(kinds, ","); got != "black,dim,blur,blur_strong,shift,crop,freeze,scene,noise,snow" {
		t.Errorf("windows %s", got)
	}
	if ws[0].first != 960 {
		t.Errorf("first window at frame %d, want 960 (80 s of normal video first)", ws[0].first)
	}
	for name, want := range map[string]int{"tamper.mp4": 2640, "normal.mp4": 4000} {
		out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
			"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", name, err)
		}
		if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n != want {
			t.Errorf("%s has %d frames, want %d", name, n, want)
		}
	}

	const w, h = 64, 36
	gray := filepath.Join(dir, "tamper.gray")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-i", filepath.Join(dir, "tamper.mp4"),
		"-vf", "scale=64:36:flags=area,format=gray", "-f", "rawvideo", gray).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg thumbnails: %v\n%s", err, out)
	}
	frames, err := os.ReadFile(gray)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runPixel(frames, len(frames)/(w*h), w, h, pixelbase.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.rises {
		in := false
		for _, wd := range ws {
			in = in || (f >= wd.first && f <= wd.last)
		}
		if !in {
			// Reported, not failed: the pixel baseline is the comparison, not the product; its false alarms
			// are counted in docs/BENCHMARKS.md (one, 6 s after the sensor-noise window).
			t.Logf("pixel baseline alarm at frame %d (%.2f s), outside every window", f, float64(f)/12)
		}
	}
	for _, kind := range []string{"black", "freeze"} {
		for _, wd := range ws {
			if wd.kind != kind {
				continue
			}
			found := false
			for _, f := range r.rises {
				found = found || (f >= wd.first && f <= wd.first+12)
			}
			if !found {
				t.Errorf("no pixel baseline alarm within 1 s of the %s window", kind)
			}
		}
	}
}
