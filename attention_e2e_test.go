package sestream

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/message"
)

// tamperWindow is one labelled event window of scripts/tamper_video.sh.
type tamperWindow struct {
	kind        string
	first, last uint64 // frame indices, 0-based, inclusive
}

// makeTamperVideo runs scripts/tamper_video.sh into a temp dir and returns the directory and the windows.
func makeTamperVideo(t *testing.T) (string, []tamperWindow) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (scripts/setup.sh installs it): this test makes its video with scripts/tamper_video.sh", tool)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("bash", filepath.Join("scripts", "tamper_video.sh"), dir).CombinedOutput(); err != nil {
		t.Fatalf("tamper_video.sh: %v\n%s", err, out)
	}
	rows := readCSV(t, filepath.Join(dir, "tamper.labels.csv"))
	var ws []tamperWindow
	for _, r := range rows[1:] { // kind,start_s,end_s,first_frame,last_frame
		first, _ := strconv.ParseUint(r[3], 10, 64)
		last, _ := strconv.ParseUint(r[4], 10, 64)
		ws = append(ws, tamperWindow{kind: r[0], first: first, last: last})
	}
	return dir, ws
}

// runAttention runs the bundled model on one file stream to a real NATS server and returns the stream's
// attention_drift events and how many attention messages arrived. With loop, the stream stops after frames.
func runAttention(t *testing.T, url string, loop bool, frames int) ([]message.Event, int) {
	t.Helper()
	model, err := FindBundled(BundledModel)
	if err != nil {
		t.Fatal(err)
	}
	srv := startNATS(t)
	c, _ := collect(t, srv.ClientURL())
	cfg := config.Default()
	cfg.Model.Path = model
	cfg.NATS.URL = srv.ClientURL()
	cfg.HTTP.Listen = ""
	cfg.AddStream("cam", url)
	cfg.Streams[0].Loop = loop
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if loop {
		waitFor(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.attn["cam"]) >= frames
		})
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	} else if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { // every published message has reached the subscriber
		c.mu.Lock()
		defer c.mu.Unlock()
		return uint64(len(c.attn["cam"])) == p.Stats()[0].Published
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	var drift []message.Event
	for _, e := range c.events {
		if e.Kind == message.EventAttentionDrift {
			drift = append(drift, e)
		}
	}
	return drift, len(c.attn["cam"])
}

// TestAttentionDriftOnTamperVideo runs the tamper video (scripts/tamper_video.sh: 80 s of the sample, then ten
// labelled windows of camera tampering and scene changes, 10 s of the sample after each) through the whole
// pipeline and NATS: the kinds the bundled model's attention detects raise an attention_drift rise within their
// bound of the window's start, and nothing rises outside the windows. Measured per kind, with the pixel
// baseline beside it, in docs/BENCHMARKS.md.
func TestAttentionDriftOnTamperVideo(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a 220 s video with ffmpeg")
	}
	dir, windows := makeTamperVideo(t)
	events, n := runAttention(t, filepath.Join(dir, "tamper.mp4"), false, 0)
	if n != 2640 {
		t.Fatalf("%d attention messages, want one per frame (2640)", n)
	}
	const fps = 12
	// within is how many frames after a window's start its rise must come; 0: not detected on this model
	// (reported, not asserted). The first line is the 1 s requirement, for the six kinds the detector is built
	// for (lens covered, lights dimmed, strong defocus, camera moved, frozen picture, a different scene). The
	// second holds the harder variants to their measured delay rounded up, as a regression guard; why they are
	// slower is measured in docs/attention.md.
	within := map[string]uint64{"black": fps, "dim": fps, "blur_strong": fps, "crop": fps, "freeze": fps, "snow": fps,
		"blur": 30, "noise": 30, "scene": 42, "shift": 0}
	var rises []uint64
	for _, e := range events {
		if e.Details != nil && e.Details.State == "rise" {
			rises = append(rises, e.Details.Frame-1) // seq is 1-based, labels are 0-based
			if len(e.Details.Blocks) == 0 && !e.Details.Still {
				t.Errorf("rise at frame %d names no block and is not a stillness rise: %+v", e.Details.Frame, e.Details)
			}
		}
	}
	for _, w := range windows {
		bound, ok := within[w.kind]
		if !ok {
			t.Fatalf("window kind %q has no expectation", w.kind)
		}
		var delay = -1.0
		for _, f := range rises {
			if f >= w.first && f <= w.last+fps {
				delay = float64(f-w.first) / fps
				break
			}
		}
		switch {
		case delay < 0 && bound > 0:
			t.Errorf("%s: no attention_drift rise in its window (frames %d-%d)", w.kind, w.first, w.last)
		case delay > float64(bound)/fps && bound > 0:
			t.Errorf("%s: attention_drift rose %.2f s after the window started, want within %.2f s", w.kind, delay, float64(bound)/fps)
		case delay < 0:
			t.Logf("%s: not detected (known for the bundled model, see docs/attention.md)", w.kind)
		default:
			t.Logf("%s: attention_drift rise %.2f s after the window started", w.kind, delay)
		}
	}
	for _, f := range rises {
		in := false
		for _, w := range windows {
			in = in || (f >= w.first && f <= w.last+2*fps)
		}
		if !in {
			t.Errorf("attention_drift rise at frame %d (%.2f s), outside every window", f, float64(f)/fps)
		}
	}
}

// TestAttentionDriftQuietOnNormalVideo: five minutes of the looped sample video after warm-up and calibration
// (80 s) raise no attention_drift event.
func TestAttentionDriftQuietOnNormalVideo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 380 s of video")
	}
	sample, err := FindBundled(BundledSample)
	if err != nil {
		t.Fatal(err)
	}
	const frames = (80 + 300) * 12
	events, n := runAttention(t, sample, true, frames)
	if n < frames {
		t.Fatalf("%d attention messages, want at least %d", n, frames)
	}
	for _, e := range events {
		t.Errorf("attention_drift %s at frame %d on normal video: %+v", e.Details.State, e.Details.Frame, e.Details)
	}
	t.Logf("%d frames (%.0f s) of normal video, %d attention_drift events", n, float64(n)/12, len(events))
}
