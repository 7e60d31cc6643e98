package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/backoff"
	"github.com/sestream/sestream/internal/matcheck"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/source"
	"go.uber.org/goleak"
	"gocv.io/x/gocv"
)

// Test media: frames whose gray level encodes their index (16 + 3*index), so a test can
// tell which frame of the file it got after decoding.

const (
	clipW, clipH = 160, 96
	clipFrames   = 25 // at 25 fps: one second
)

func needFFmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed: the capture tests make their media with it")
	}
}

// ffmpeg runs ffmpeg with args and fails the test on error.
func ffmpeg(t testing.TB, args ...string) {
	t.Helper()
	needFFmpeg(t)
	cmd := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// numberedSource is the lavfi input of frames numbered by their gray level.
func numberedSource(frames int, rate int) string {
	return fmt.Sprintf("color=c=black:s=%dx%d:r=%d,format=gray,geq=lum='16+3*N',trim=end_frame=%d",
		clipW, clipH, rate, frames)
}

// makeClip writes a numbered clip of n frames at 25 fps; codec is "h264" (MP4, or MKV by
// name) or "mjpeg" (AVI).
func makeClip(t testing.TB, path, codec string, n int, extra ...string) string {
	t.Helper()
	args := []string{"-f", "lavfi", "-i", numberedSource(n, 25)}
	switch codec {
	case "h264":
		args = append(args, "-pix_fmt", "yuv420p", "-c:v", "libx264", "-crf", "10", "-g", "25")
	case "mjpeg":
		args = append(args, "-pix_fmt", "yuvj420p", "-c:v", "mjpeg", "-q:v", "2")
	default:
		t.Fatalf("codec %s", codec)
	}
	args = append(args, extra...)
	ffmpeg(t, append(args, path)...)
	return path
}

// frameIndex decodes the index of a numbered frame from its gray level.
func frameIndex(m gocv.Mat) int {
	return int(math.Round((m.Mean().Val1 - 16) / 3))
}

// collected is what a consumer received from a capture run.
type collected struct {
	mu     sync.Mutex
	events []source.Event
}

func (c *collected) event(e source.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

func (c *collected) kinds() []message.EventKind {
	c.mu.Lock()
	defer c.mu.Unlock()
	var k []message.EventKind
	for _, e := range c.events {
		k = append(k, e.Kind)
	}
	return k
}

func (c *collected) find(kind message.EventKind) (source.Event, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.Kind == kind {
			return e, true
		}
	}
	return source.Event{}, false
}

// waitEvent polls until an event of kind has arrived or the timeout passes.
func (c *collected) waitEvent(t *testing.T, kind message.EventKind, timeout time.Duration) source.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if e, ok := c.find(kind); ok {
			return e
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q event within %v; events: %v", kind, timeout, c.kinds())
	return source.Event{}
}

// gotFrame is a received frame without its Mat.
type gotFrame struct {
	info  pipeline.FrameInfo
	index int
}

// runToEnd runs a source to its end with a blocking queue and returns its frames.
func runToEnd(t *testing.T, opts source.Options, timeout time.Duration) ([]gotFrame, *collected, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	q := pipeline.NewQueue[Frame](opts.Name, 4, pipeline.Block, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() { errc <- RunSource(ctx, opts, q, ev.event) }()
	var frames []gotFrame
	for f := range q.C() {
		frames = append(frames, gotFrame{info: f.Info, index: frameIndex(f.Mat)})
		DiscardFrame(f)
	}
	err := <-errc
	if ctx.Err() != nil {
		t.Fatalf("source %s did not end within %v (%d frames, events %v)", opts.URL, timeout, len(frames), ev.kinds())
	}
	return frames, ev, err
}

func indices(frames []gotFrame) []int {
	var ix []int
	for _, f := range frames {
		ix = append(ix, f.index)
	}
	return ix
}

func seqIndices(n int) []int {
	ix := make([]int, n)
	for i := range ix {
		ix[i] = i
	}
	return ix
}

func TestCaptureFileExactFrames(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file, codec string
	}{
		{"h264 mp4", "clip.mp4", "h264"},
		{"h264 mkv", "clip.mkv", "h264"},
		{"mjpeg avi", "clip.avi", "mjpeg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeClip(t, filepath.Join(dir, tc.file), tc.codec, clipFrames)
			frames, ev, err := runToEnd(t, source.Options{Name: "cam", URL: path}, 30*time.Second)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := indices(frames); !slices.Equal(got, seqIndices(clipFrames)) {
				t.Fatalf("frame indices %v, want 0..%d", got, clipFrames-1)
			}
			for i, f := range frames {
				want := pipeline.FrameInfo{Stream: "cam", Seq: uint64(i + 1), PTS: time.Duration(i) * 40 * time.Millisecond,
					HasPTS: true, Width: clipW, Height: clipH}
				f.info.Captured = time.Time{}
				if f.info != want {
					t.Fatalf("frame %d: %+v, want %+v", i, f.info, want)
				}
			}
			if k := ev.kinds(); !slices.Equal(k, []message.EventKind{message.EventConnected, message.EventEnded}) {
				t.Fatalf("events %v, want connected, ended", k)
			}
			if e, _ := ev.find(message.EventEnded); e.Frames != clipFrames || e.Stream != "cam" || e.URL != path {
				t.Fatalf("ended event %+v", e)
			}
		})
	}
}

func TestCaptureFPSDecimation(t *testing.T) {
	matcheck.Check(t)
	path := makeClip(t, filepath.Join(t.TempDir(), "clip.mp4"), "h264", clipFrames)
	for _, tc := range []struct {
		fps  float64
		want []int
	}{
		{0, seqIndices(25)},
		{1, []int{0}},
		{5, []int{0, 5, 10, 15, 20}},
		{10, []int{0, 3, 5, 8, 10, 13, 15, 18, 20, 23}},
		{12.5, []int{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24}},
		{25, seqIndices(25)},
		{60, seqIndices(25)},
	} {
		t.Run(fmt.Sprint(tc.fps), func(t *testing.T) {
			frames, _, err := runToEnd(t, source.Options{Name: "cam", URL: path, FPS: tc.fps}, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := indices(frames); !slices.Equal(got, tc.want) {
				t.Fatalf("fps %v picked frames %v, want %v", tc.fps, got, tc.want)
			}
			for i, f := range frames {
				if f.info.Seq != uint64(i+1) {
					t.Fatalf("frame %d has seq %d: decimated frames must not leave gaps", i, f.info.Seq)
				}
				if f.info.PTS != time.Duration(f.index)*40*time.Millisecond {
					t.Fatalf("frame %d: PTS %v", f.index, f.info.PTS)
				}
			}
		})
	}
}

func TestCaptureLoopAndRealtime(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	path := makeClip(t, filepath.Join(t.TempDir(), "clip.mp4"), "h264", 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := pipeline.NewQueue[Frame]("cam", 2, pipeline.Block, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() {
		errc <- RunSource(ctx, source.Options{Name: "cam", URL: path, Loop: true, Realtime: true}, q, ev.event)
	}()
	var got []int
	var first, last time.Time
	for f := range q.C() {
		got = append(got, frameIndex(f.Mat))
		if f.Info.Seq != uint64(len(got)) {
			t.Errorf("frame %d has seq %d", len(got), f.Info.Seq)
		}
		if len(got) == 1 {
			first = f.Info.Captured
		}
		last = f.Info.Captured
		DiscardFrame(f)
		if len(got) == 25 {
			cancel()
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := append(append(seqIndices(10), seqIndices(10)...), seqIndices(5)...)
	if !slices.Equal(got[:25], want) {
		t.Fatalf("looped frames %v, want %v", got, want)
	}
	// Realtime: each loop takes 9 frame periods of 40ms (the first frame of a loop leaves at once).
	if d := last.Sub(first); d < 2*9*40*time.Millisecond {
		t.Fatalf("25 realtime frames took %v, want at least %v", d, 2*9*40*time.Millisecond)
	}
	if k := ev.kinds(); !slices.Equal(k, []message.EventKind{message.EventConnected}) {
		t.Fatalf("events %v, want only connected", k)
	}
}

// writeNumberedImage writes an image of gray level 16+3*index.
func writeNumberedImage(t *testing.T, path string, index int) {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(16+3*index), float64(16+3*index), float64(16+3*index), 0), 30, 40, gocv.MatTypeCV8UC3)
	defer m.Close()
	if !gocv.IMWrite(path, m) {
		t.Fatalf("cannot write %s", path)
	}
}

func TestCaptureImageFolder(t *testing.T) {
	matcheck.Check(t)
	dir := t.TempDir()
	for name, index := range map[string]int{"b_010.png": 3, "b_002.jpg": 2, "a_001.png": 1, "c.bmp": 4} {
		writeNumberedImage(t, filepath.Join(dir, name), index)
	}
	for name, body := range map[string]string{"notes.txt": "hello", "data.bin": "\x00\x01", "b_005.png": "not a png"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		url      string
		want     []int
		skipped  int
		errCount int
	}{
		{"directory", dir, []int{1, 2, 3, 4}, 3, 2},
		{"glob", filepath.Join(dir, "b_*"), []int{2, 3}, 1, 1},
		{"single image", filepath.Join(dir, "c.bmp"), []int{4}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, ev, err := runToEnd(t, source.Options{Name: "imgs", URL: tc.url}, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := indices(frames); !slices.Equal(got, tc.want) {
				t.Fatalf("images in order %v, want %v", got, tc.want)
			}
			for i, f := range frames {
				if f.info.Seq != uint64(i+1) || f.info.Width != 40 || f.info.Height != 30 || f.info.HasPTS {
					t.Fatalf("frame %d: %+v", i, f.info)
				}
			}
			ended, ok := ev.find(message.EventEnded)
			if !ok || ended.Skipped != tc.skipped || ended.Frames != uint64(len(tc.want)) {
				t.Fatalf("ended event %+v, want skipped %d; events %v", ended, tc.skipped, ev.kinds())
			}
			n := 0
			for _, k := range ev.kinds() {
				if k == message.EventError {
					n++
				}
			}
			if n != tc.errCount {
				t.Fatalf("%d error events, want %d: %+v", n, tc.errCount, ev.events)
			}
		})
	}
	t.Run("paced by fps", func(t *testing.T) {
		start := time.Now()
		frames, _, err := runToEnd(t, source.Options{Name: "imgs", URL: dir, FPS: 20}, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 4 || frames[3].info.PTS != 150*time.Millisecond || !frames[3].info.HasPTS {
			t.Fatalf("paced frames %+v", frames)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("4 images at 20 fps took %v", d)
		}
	})
}

func TestCaptureBadInputs(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	dir := t.TempDir()
	good := makeClip(t, filepath.Join(dir, "good.mp4"), "h264", clipFrames)
	notVideo := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(notVideo, []byte(strings.Repeat("this is not a video\n", 200)), 0o644); err != nil {
		t.Fatal(err)
	}
	// An MP4 whose index (moov) is at the end, cut in half: nothing can be decoded.
	long := makeClip(t, filepath.Join(dir, "long.mp4"), "h264", 50)
	truncated := truncateFile(t, long, filepath.Join(dir, "truncated.mp4"), 0.5)
	// An MP4 with its index first, cut at 80%: the first frames decode, then it ends early.
	fast := makeClip(t, filepath.Join(dir, "fast.mp4"), "h264", 50, "-movflags", "+faststart")
	truncatedFast := truncateFile(t, fast, filepath.Join(dir, "truncated_fast.mp4"), 0.8)
	noImages := filepath.Join(dir, "noimages")
	if err := os.MkdirAll(noImages, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(noImages, "readme.txt"), []byte("x"), 0o644)

	cases := []struct {
		name string
		url  string
		live bool
		// wantErr is in the first error event (and in Run's error for files).
		wantErr string
		// frames: -1 means some but fewer than the file has.
		frames int
	}{
		{"unresolvable url", "rtsp://nonexistent-host.invalid:8554/cam", true, "does not resolve", 0},
		{"unresolvable http url", "http://nonexistent-host.invalid/stream.mjpg", true, "does not resolve", 0},
		{"refused rtsp", "rtsp://127.0.0.1:1/cam", true, "OpenCV cannot open it", 0},
		{"missing device", "/dev/video99", true, "/dev/video99: source not found", 0},
		{"missing file", filepath.Join(dir, "nope.mp4"), false, "nope.mp4: source not found", 0},
		{"not a video", notVideo, false, "cannot open it as video", 0},
		{"truncated mp4", truncated, false, "cannot open it as video", 0},
		{"truncated faststart mp4", truncatedFast, false, "ended after", -1},
		{"directory without images", noImages, false, "no image files (1 other files)", 0},
		{"good file next to bad ones", good, false, "", clipFrames},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		frames int
		err    error
		ev     *collected
	}
	results := make([]result, len(cases))
	evs := make([]*collected, len(cases))
	var wg sync.WaitGroup
	// All streams run at once: the bad ones must not disturb the good one.
	for i, tc := range cases {
		evs[i] = &collected{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := pipeline.NewQueue[Frame](tc.name, 2, pipeline.Block, DiscardFrame)
			errc := make(chan error, 1)
			go func() {
				errc <- RunSource(ctx, source.Options{Name: fmt.Sprint("s", i), URL: tc.url,
					ReconnectInitial: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, StallTimeout: 5 * time.Second}, q, evs[i].event)
			}()
			n := 0
			for f := range q.C() {
				n++
				DiscardFrame(f)
			}
			results[i] = result{frames: n, err: <-errc, ev: evs[i]}
		}()
	}
	// Live sources retry until stopped: wait for their second attempt, then stop them.
	deadline := time.Now().Add(30 * time.Second)
	for i, tc := range cases {
		for tc.live && len(evs[i].kinds()) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := results[i]
			switch {
			case tc.frames == -1:
				if r.frames == 0 || r.frames >= 50 {
					t.Fatalf("%d frames, want some and fewer than 50", r.frames)
				}
			case r.frames != tc.frames:
				t.Fatalf("%d frames, want %d; events %+v", r.frames, tc.frames, r.ev.events)
			}
			if tc.wantErr == "" {
				if r.err != nil || !slices.Equal(r.ev.kinds(), []message.EventKind{message.EventConnected, message.EventEnded}) {
					t.Fatalf("err %v, events %v", r.err, r.ev.kinds())
				}
				return
			}
			e, ok := r.ev.find(message.EventError)
			if !ok || !strings.Contains(e.Err, tc.wantErr) {
				t.Fatalf("error event %+v, want one containing %q; events %+v", e, tc.wantErr, r.ev.events)
			}
			if tc.live {
				if r.err != nil {
					t.Fatalf("a live source returned %v; it must retry until stopped", r.err)
				}
				if e.Attempt != 1 || e.RetryIn <= 0 {
					t.Fatalf("first error event %+v: want attempt 1 and a retry delay", e)
				}
				if n := len(r.ev.kinds()); n < 2 {
					t.Fatalf("live source made %d attempts in 30s with a 50ms backoff", n)
				}
				return
			}
			if tc.frames == -1 {
				if r.err != nil || !slices.Equal(r.ev.kinds(), []message.EventKind{message.EventConnected, message.EventError, message.EventEnded}) {
					t.Fatalf("err %v events %v, want connected, error, ended", r.err, r.ev.kinds())
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Fatalf("Run returned %v, want an error containing %q", r.err, tc.wantErr)
			}
		})
	}
}

func truncateFile(t *testing.T, src, dst string, frac float64) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b[:int(float64(len(b))*frac)], 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCaptureHTTPReconnects(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	path := makeClip(t, filepath.Join(t.TempDir(), "clip.mp4"), "h264", 10)
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		http.ServeContent(w, r, "clip.mp4", time.Time{}, strings.NewReader(string(body)))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := pipeline.NewQueue[Frame]("web", 4, pipeline.Block, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() {
		errc <- RunSource(ctx, source.Options{Name: "web", URL: srv.URL + "/clip.mp4",
			ReconnectInitial: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}, q, ev.event)
	}()
	var got []int
	for f := range q.C() {
		got = append(got, frameIndex(f.Mat))
		if f.Info.Seq != uint64(len(got)) {
			t.Errorf("frame %d has seq %d", len(got), f.Info.Seq)
		}
		DiscardFrame(f)
		if len(got) == 15 {
			cancel()
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := append(seqIndices(10), seqIndices(5)...)
	if !slices.Equal(got[:15], want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
	k := ev.kinds()
	if len(k) < 3 || !slices.Equal(k[:3], []message.EventKind{message.EventConnected, message.EventLost, message.EventReconnected}) {
		t.Fatalf("events %v, want connected, lost, reconnected", k)
	}
	lost, _ := ev.find(message.EventLost)
	re, _ := ev.find(message.EventReconnected)
	if lost.Frames != 10 || re.Frames != 11 || re.Outage <= 0 || re.Attempt != 1 || !strings.Contains(lost.Err, "read failed after 10 frames") {
		t.Fatalf("lost %+v, reconnected %+v", lost, re)
	}
}

// fakeReader delivers numbered synthetic frames; it can block in Read like a stalled camera.
type fakeReader struct {
	frames  int           // frames before the end (io.EOF), or before blocking when block != nil
	block   chan struct{} // when not nil, Read blocks after frames until it is closed, then fails
	read    int
	closed  chan struct{}
	started chan struct{}
}

func (r *fakeReader) Read(m *gocv.Mat) (time.Duration, bool, error) {
	if r.read == r.frames {
		if r.block != nil {
			close(r.started)
			<-r.block
			return 0, false, errors.New("connection reset")
		}
		return 0, false, io.EOF
	}
	r.read++
	v := float64(16 + 3*(r.read%70))
	m.Close()
	*m = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(v, v, v, 0), 4, 6, gocv.MatTypeCV8UC3)
	return 0, false, nil
}

func (r *fakeReader) Close() error { close(r.closed); return nil }

// TestCaptureDropOldestExact fills a drop_oldest queue while nobody reads it: every frame
// beyond its capacity is dropped and counted, and the frames left are the newest.
func TestCaptureDropOldestExact(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	for _, tc := range []struct {
		frames, capacity int
	}{{100, 4}, {10, 1}, {3, 8}} {
		t.Run(fmt.Sprint(tc.frames, "/", tc.capacity), func(t *testing.T) {
			rd := &fakeReader{frames: tc.frames, closed: make(chan struct{})}
			src := &Source{Options: source.Options{Name: "cam", URL: "clip.mp4"},
				Open: func(context.Context, source.Spec, source.Options) (FrameReader, error) { return rd, nil }}
			q := pipeline.NewQueue[Frame]("cam", tc.capacity, pipeline.DropOldest, DiscardFrame)
			if err := src.Run(context.Background(), q, nil); err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for f := range q.C() {
				seqs = append(seqs, f.Info.Seq)
				DiscardFrame(f)
			}
			kept := min(tc.frames, tc.capacity)
			if want := uint64(tc.frames - kept); q.Dropped() != want {
				t.Fatalf("dropped %d, want %d", q.Dropped(), want)
			}
			var want []uint64
			for s := tc.frames - kept + 1; s <= tc.frames; s++ {
				want = append(want, uint64(s))
			}
			if !slices.Equal(seqs, want) {
				t.Fatalf("kept %v, want %v", seqs, want)
			}
		})
	}
}

// TestCaptureStalledConsumer paces a real file like a camera into a drop_oldest queue,
// stalls the consumer, and checks that memory stays bounded, drops are counted exactly
// (every sequence gap is a counted drop), and the first frame after the stall is fresh.
func TestCaptureStalledConsumer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	path := makeClip(t, filepath.Join(t.TempDir(), "clip.mp4"), "h264", clipFrames)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const capacity = 3
	q := pipeline.NewQueue[Frame]("cam", capacity, pipeline.DropOldest, DiscardFrame)
	// Counted before the source starts: afterwards the count depends on where the reader happens to be.
	startMats, counting := matcheck.Count()
	// Live at most: the queue's frames, the reader's decode target, the frame handed from the reader to
	// the queue, and the oldest frame between its eviction and its release.
	maxMats := startMats + capacity + 3
	errc := make(chan error, 1)
	go func() {
		errc <- RunSource(ctx, source.Options{Name: "cam", URL: path, Loop: true, Realtime: true}, q, nil)
	}()
	first := <-q.C()
	DiscardFrame(first)
	// Stall for 1.5s (37 frames at 25 fps) while watching that nothing piles up.
	for i := 0; i < 15; i++ {
		time.Sleep(100 * time.Millisecond)
		if q.Len() > capacity {
			t.Fatalf("queue holds %d frames, capacity %d", q.Len(), capacity)
		}
		if n, _ := matcheck.Count(); counting && n > maxMats {
			t.Fatalf("%d Mats live during the stall, at most %d expected", n, maxMats)
		}
	}
	resumed := <-q.C()
	age := time.Since(resumed.Info.Captured)
	lastSeq, received, gaps := resumed.Info.Seq, uint64(2), resumed.Info.Seq-first.Info.Seq-1
	DiscardFrame(resumed)
	for received < 40 {
		f := <-q.C()
		gaps += f.Info.Seq - lastSeq - 1
		lastSeq = f.Info.Seq
		received++
		DiscardFrame(f)
	}
	cancel()
	for f := range q.C() {
		gaps += f.Info.Seq - lastSeq - 1
		lastSeq = f.Info.Seq
		received++
		DiscardFrame(f)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Kept stale frames would be the ones queued as the stall began, seq first+1 ... first+capacity; at 25 fps
	// the reader delivers about 37 frames during the stall (fewer on a loaded machine, so no exact figure).
	if resumed.Info.Seq <= first.Info.Seq+capacity {
		t.Fatalf("first frame after a 1.5s stall is seq %d (first %d, capacity %d): stale frames were kept", resumed.Info.Seq, first.Info.Seq, capacity)
	}
	// The oldest of `capacity` queued frames is about capacity frame periods old; a kept
	// stale frame would be 1.5s old. The margin is for a loaded machine.
	if age > 800*time.Millisecond {
		t.Fatalf("first frame after the stall is %v old", age)
	}
	if q.Dropped() == 0 || q.Dropped() != gaps || lastSeq != received+q.Dropped() {
		t.Fatalf("dropped %d, sequence gaps %d, last seq %d, received %d", q.Dropped(), gaps, lastSeq, received)
	}
}

// TestCaptureStallWatchdog gives a live source a reader that blocks forever after three
// frames: the watchdog must abandon it, report the loss, reopen, and the abandoned read
// must release its reader once it returns.
func TestCaptureStallWatchdog(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	stuck := &fakeReader{frames: 3, block: make(chan struct{}), closed: make(chan struct{}), started: make(chan struct{})}
	var mu sync.Mutex
	opens := 0
	src := &Source{
		Options: source.Options{Name: "cam", URL: "rtsp://127.0.0.1:8554/cam", StallTimeout: 200 * time.Millisecond,
			ReconnectInitial: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, AbandonWait: 5 * time.Second},
		Open: func(context.Context, source.Spec, source.Options) (FrameReader, error) {
			mu.Lock()
			defer mu.Unlock()
			opens++
			if opens == 1 {
				return stuck, nil
			}
			return &fakeReader{frames: 1000000, closed: make(chan struct{})}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := pipeline.NewQueue[Frame]("cam", 2, pipeline.DropOldest, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, q, ev.event) }()
	n := 0
	for f := range q.C() {
		n++
		DiscardFrame(f)
		if _, ok := ev.find(message.EventReconnected); ok && n > 10 {
			cancel()
		}
	}
	select {
	case <-stuck.closed:
		t.Fatal("the stuck reader was closed while its Read was still blocked")
	default:
	}
	// The blocked read returns; Run (still waiting up to AbandonWait) lets it clean up.
	close(stuck.block)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the abandoned reader was never closed")
	}
	k := ev.kinds()
	if !slices.Equal(k[:3], []message.EventKind{message.EventConnected, message.EventLost, message.EventReconnected}) {
		t.Fatalf("events %v", k)
	}
	lost, _ := ev.find(message.EventLost)
	if lost.Frames != 3 || !strings.Contains(lost.Err, "no frame for 200ms") {
		t.Fatalf("lost event %+v", lost)
	}
}

func TestBackoffDelay(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0, 50 * ms}, {1, 0.999999999, 100 * ms}, {2, 0, 100 * ms}, {3, 0.5, 300 * ms},
		{4, 1, 800 * ms}, {5, 1, 1000 * ms}, {50, 0, 500 * ms}, {1000, 1, 1000 * ms}, {1, -3, 50 * ms},
	} {
		if got := backoff.Delay(tc.attempt, 100*ms, 1000*ms, tc.r); got.Round(ms) != tc.want {
			t.Errorf("backoff.Delay(%d, r=%v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestDecimator(t *testing.T) {
	// A 30 fps timeline with jittered timestamps, taken at 7.5 fps: every 4th frame.
	d := decimator{fps: 7.5}
	var kept []int
	for i := 0; i < 40; i++ {
		jitter := time.Duration((i%3)-1) * time.Millisecond
		if d.keep(time.Duration(i)*time.Second/30 + jitter) {
			kept = append(kept, i)
		}
	}
	if want := []int{0, 4, 8, 12, 16, 20, 24, 28, 32, 36}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
	// The timeline going back (a loop, a reconnect) starts over.
	if !d.keep(0) || d.keep(time.Millisecond) {
		t.Fatal("decimator did not restart when the timeline went back")
	}
}

// BenchmarkCaptureFile decodes a looping 640x480 H.264 file through RunSource into a
// queue; one op is one frame delivered and closed by the consumer.
func BenchmarkCaptureFile(b *testing.B) {
	file := filepath.Join(b.TempDir(), "bench.mp4")
	ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=4", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", file)
	for _, fps := range []float64{0, 5} {
		b.Run(fmt.Sprint("fps=", fps), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q := pipeline.NewQueue[Frame]("bench", 4, pipeline.Block, DiscardFrame)
			errc := make(chan error, 1)
			go func() { errc <- RunSource(ctx, source.Options{Name: "bench", URL: file, Loop: true, FPS: fps}, q, nil) }()
			DiscardFrame(<-q.C()) // the decoder is open and warm
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				DiscardFrame(<-q.C())
			}
			b.StopTimer()
			cancel()
			for f := range q.C() {
				DiscardFrame(f)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestCaptureShrink: with Source.Shrink set, every frame arrives with its scaled copy in Small, equal byte
// for byte to scaling Mat afterwards, and both Mats go back to the source when the frame is released (the Mat
// count checks that nothing leaks).
func TestCaptureShrink(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	path := makeClip(t, filepath.Join(t.TempDir(), "clip.mp4"), "h264", clipFrames)
	const w, h = 40, 24
	shrink := func(dst *gocv.Mat, src gocv.Mat) bool {
		gocv.Resize(src, dst, image.Point{X: w, Y: h}, 0, 0, gocv.InterpolationLinear)
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := pipeline.NewQueue[Frame]("cam", 4, pipeline.Block, DiscardFrame)
	errc := make(chan error, 1)
	go func() {
		errc <- (&Source{Options: source.Options{Name: "cam", URL: path}, Shrink: shrink}).Run(ctx, q, nil)
	}()
	want := gocv.NewMat()
	defer want.Close()
	n := 0
	for f := range q.C() {
		if f.Small.Ptr() == nil || f.Small.Cols() != w || f.Small.Rows() != h {
			t.Fatalf("frame %d: no %dx%d Small", f.Info.Seq, w, h)
		}
		if f.Info.Width != clipW || f.Info.Height != clipH || f.Mat.Cols() != clipW {
			t.Fatalf("frame %d: %dx%d, Mat %dx%d: the frame itself must stay whole", f.Info.Seq, f.Info.Width, f.Info.Height, f.Mat.Cols(), f.Mat.Rows())
		}
		gocv.Resize(f.Mat, &want, image.Point{X: w, Y: h}, 0, 0, gocv.InterpolationLinear)
		if !bytes.Equal(f.Small.ToBytes(), want.ToBytes()) {
			t.Fatalf("frame %d: Small differs from Mat scaled afterwards", f.Info.Seq)
		}
		n++
		f.Release()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n != clipFrames {
		t.Fatalf("%d frames, want %d", n, clipFrames)
	}
}
