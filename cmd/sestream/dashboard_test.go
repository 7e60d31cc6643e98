package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/model"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testfixtures.FreePort(t)))
}

// syncBuffer is a bytes.Buffer safe for the command's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs `sestream run args...` in the test process with its HTTP endpoint and embedded NATS server
// on free ports, waits until the dashboard answers, and returns the dashboard URL. The command stops at the
// end of the test.
func startRun(t *testing.T, args ...string) (url string, stderr *syncBuffer) {
	t.Helper()
	httpAddr := freeAddr(t)
	args = append([]string{"run", "--http", httpAddr, "--nats-listen", freeAddr(t)}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- execute(ctx, args, &syncBuffer{}, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != exitOK {
				t.Errorf("sestream %v: exit code %d; stderr:\n%s", args, c, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("sestream %v did not stop", args)
		}
	})
	url = "http://" + httpAddr + "/"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url + "healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stderr
			}
		}
		select {
		case c := <-code:
			t.Fatalf("sestream %v exited with %d before serving; stderr:\n%s", args, c, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard %s not up after 60s; stderr:\n%s", url, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chromium returns the Chromium binary, skipping the test when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed (Debian: apt-get install chromium); the browser test needs it")
	return ""
}

// pageState is what the test reads from the dashboard's DOM.
type pageState struct {
	Conn        string `json:"conn"`
	FrameSeq    int    `json:"frameSeq"`
	FrameLoaded bool   `json:"frameLoaded"`
	FrameWidth  int    `json:"frameWidth"`
	Top1        string `json:"top1"`
	Top1Seq     int    `json:"top1Seq"`
	Heatmaps    []struct {
		Block    string `json:"block"`
		Channels int    `json:"channels"`
		Rows     int    `json:"rows"`
		Columns  int    `json:"columns"`
		LastSeq  int    `json:"lastSeq"`
		Painted  bool   `json:"painted"`
	} `json:"heatmaps"`
}

const readPage = `(() => {
  const img = document.querySelector('img.frame[data-stream="demo"]');
  const top1 = document.querySelector('.top1[data-stream="demo"]');
  const heat = [...document.querySelectorAll('canvas.heatmap[data-stream="demo"]')].map((c) => {
    const px = c.getContext('2d').getImageData(c.width - 1, 0, 1, c.height).data;
    let painted = false;
    for (let i = 0; i < px.length; i += 4) if (px[i] !== 28 || px[i+1] !== 31 || px[i+2] !== 36) { painted = true; break; }
    return { block: c.dataset.block, channels: +c.dataset.channels, rows: +c.dataset.rows, columns: +c.dataset.columns,
             lastSeq: +c.dataset.lastSeq, painted };
  });
  return JSON.stringify({ conn: document.getElementById('conn').textContent,
    frameSeq: img ? +img.dataset.seq : 0, frameLoaded: !!img && img.complete && img.naturalWidth > 0,
    frameWidth: img ? img.naturalWidth : 0,
    top1: top1 ? top1.textContent : '', top1Seq: top1 ? +top1.dataset.seq : 0, heatmaps: heat });
})()`

func readState(ctx context.Context, t *testing.T) pageState {
	t.Helper()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPage))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	var s pageState
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatalf("page state %q: %v", raw, err)
	}
	return s
}

// TestDashboardInBrowser opens the dashboard of the demo (the bundled model on the sample video) in headless
// Chromium and checks from the DOM that the frame, the top class and one heatmap per SE block, with one row
// per channel, keep updating; it saves a screenshot (also to $SESTREAM_DASHBOARD_PNG when set).
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo pipeline and a browser")
	}
	bin := chromium(t)
	modelPath, err := sestream.FindBundled(sestream.BundledModel)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	url, stderr := startRun(t)
	if !bytes.Contains([]byte(stderr.String()), []byte("Live attention dashboard:  "+url)) {
		t.Errorf("the demo banner does not print the dashboard URL %s:\n%s", url, stderr.String())
	}

	dir := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", "new"), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")), chromedp.WindowSize(1400, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s in chromium: %v", url, err)
	}

	// Wait for a complete first picture: a loaded frame, a top class, a heatmap per SE block.
	ready := func(s pageState) bool {
		return s.FrameLoaded && s.Top1 != "" && len(s.Heatmaps) == len(m.Blocks)
	}
	var first pageState
	for deadline := time.Now().Add(30 * time.Second); ; {
		first = readState(ctx, t)
		if ready(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s the page is not complete: %+v\nstderr:\n%s", first, stderr.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if first.Conn != "live" {
		t.Errorf("connection badge %q, want live", first.Conn)
	}
	labels := map[string]bool{}
	for _, l := range m.Meta.Labels {
		labels[l] = true
	}
	// Several seconds later, everything has moved on.
	time.Sleep(4 * time.Second)
	last := readState(ctx, t)
	t.Logf("first: frame %d, top %q (frame %d); later: frame %d, top %q (frame %d)", first.FrameSeq, first.Top1,
		first.Top1Seq, last.FrameSeq, last.Top1, last.Top1Seq)
	if !last.FrameLoaded || last.FrameSeq <= first.FrameSeq {
		t.Errorf("the frame did not update: seq %d, then %d (loaded %v)", first.FrameSeq, last.FrameSeq, last.FrameLoaded)
	}
	if last.FrameWidth <= 0 || last.FrameWidth > 320 {
		t.Errorf("thumbnail width %d, want 1-320 px", last.FrameWidth)
	}
	if last.Top1Seq <= first.Top1Seq {
		t.Errorf("the top class did not update: frame %d, then %d", first.Top1Seq, last.Top1Seq)
	}
	if len(labels) > 0 && !labels[last.Top1] {
		t.Errorf("top class %q is not one of the model's labels %v", last.Top1, m.Meta.Labels)
	}
	if len(last.Heatmaps) != len(m.Blocks) {
		t.Fatalf("%d heatmaps, want one per SE block (%d)", len(last.Heatmaps), len(m.Blocks))
	}
	for i, b := range m.Blocks {
		h, h0 := last.Heatmaps[i], first.Heatmaps[i]
		t.Logf("heatmap %s: %d channels, %d rows, %d columns, last frame %d", h.Block, h.Channels, h.Rows, h.Columns, h.LastSeq)
		if h.Block != b.Name || h.Channels != b.Channels || h.Rows != b.Channels {
			t.Errorf("heatmap %d: block %q with %d channels and %d rows, want %q with %d", i, h.Block, h.Channels, h.Rows, b.Name, b.Channels)
		}
		if h.LastSeq <= h0.LastSeq || h.Columns <= h0.Columns && h.Columns < 120 {
			t.Errorf("heatmap %s did not update: last frame %d -> %d, columns %d -> %d", h.Block, h0.LastSeq, h.LastSeq, h0.Columns, h.Columns)
		}
		if !h.Painted {
			t.Errorf("heatmap %s: the newest column is not painted", h.Block)
		}
	}
	// Hovering a cell names its block, channel, frame and value.
	tip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
	  const c = document.querySelector('canvas.heatmap[data-stream="demo"]');
	  const r = c.getBoundingClientRect();
	  c.dispatchEvent(new MouseEvent('mousemove', { clientX: r.right - 2, clientY: r.top + 1, bubbles: true }));
	  return document.getElementById('tip').textContent;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if b := m.Blocks[0].Name; !strings.Contains(tip, b+" · channel 0 · frame ") || !strings.Contains(tip, " · gate 0.") {
		t.Errorf("hover tooltip %q, want the block %s, channel 0, a frame and a gate value", tip, b)
	}
	if os.Getenv("SESTREAM_DASHBOARD_PNG") != "" {
		// A picture for the documentation: wait until the heatmaps are full.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if s := readState(ctx, t); len(s.Heatmaps) > 0 && s.Heatmaps[0].Columns >= 120 {
				break
			}
		}
		// and show a current tooltip on a cell of the last block
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		  const all = document.querySelectorAll('canvas.heatmap[data-stream="demo"]'), c = all[all.length - 1];
		  const r = c.getBoundingClientRect();
		  c.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + r.width * 0.8, clientY: r.top + r.height * 0.3, bubbles: true }));
		  return true;
		})()`)); err != nil {
			t.Fatal(err)
		}
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if out := os.Getenv("SESTREAM_DASHBOARD_PNG"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDashboardRemote: `sestream dashboard --nats URL` follows a running `sestream run` (publishing its
// thumbnails on NATS) and serves the same event stream, with gate vectors and frames.
func TestDashboardRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo pipeline")
	}
	natsAddr := freeAddr(t)
	t.Setenv("SESTREAM_HTTP_DASHBOARD_FRAMES", "nats")
	httpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan int, 1)
	go func() {
		runDone <- execute(ctx, []string{"run", "--http", httpAddr, "--nats-listen", natsAddr}, &syncBuffer{}, &syncBuffer{})
	}()
	defer func() { cancel(); <-runDone }()

	listen := freeAddr(t)
	stderr := &syncBuffer{}
	dashDone := make(chan int, 1)
	go func() {
		dashDone <- execute(ctx, []string{"dashboard", "--nats", "nats://" + natsAddr, "--listen", listen}, &syncBuffer{}, stderr)
	}()
	defer func() {
		cancel()
		if code := <-dashDone; code != exitOK {
			t.Errorf("sestream dashboard: exit code %d; stderr:\n%s", code, stderr.String())
		}
	}()
	base := "http://" + listen + "/"
	var resp *http.Response
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		if resp, err = http.Get(base + "events"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote dashboard not up: %v\n%s", err, stderr.String())
		}
	}
	defer resp.Body.Close()
	if !bytes.Contains([]byte(stderr.String()), []byte("Dashboard of nats://"+natsAddr)) {
		t.Errorf("no banner line:\n%s", stderr.String())
	}
	// Read updates until the demo stream has shown columns with whole gate vectors and a frame.
	r := bufio.NewReader(resp.Body)
	var vectors, frame bool
	for deadline := time.Now().Add(60 * time.Second); !(vectors && frame) && time.Now().Before(deadline); {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var u struct {
			Source  string `json:"source"`
			Streams []struct {
				Name    string `json:"name"`
				Frame   uint64 `json:"frame"`
				Columns []struct {
					Blocks []struct {
						Channels int       `json:"channels"`
						Vector   []float64 `json:"vector"`
					} `json:"blocks"`
				} `json:"columns"`
			} `json:"streams"`
		}
		if err := json.Unmarshal([]byte(data), &u); err != nil {
			t.Fatal(err)
		}
		for _, s := range u.Streams {
			if s.Name != sestream.DemoStream {
				continue
			}
			frame = frame || s.Frame > 0
			for _, c := range s.Columns {
				for _, b := range c.Blocks {
					vectors = vectors || (b.Channels > 0 && len(b.Vector) == b.Channels)
				}
			}
		}
	}
	if !vectors || !frame {
		t.Fatalf("within 60 s: columns with gate vectors %v, a frame %v", vectors, frame)
	}
	fr, err := http.Get(base + "frame/" + sestream.DemoStream)
	if err != nil {
		t.Fatal(err)
	}
	jpeg, _ := io.ReadAll(fr.Body)
	fr.Body.Close()
	if fr.StatusCode != 200 || len(jpeg) < 100 || jpeg[0] != 0xff || jpeg[1] != 0xd8 {
		t.Fatalf("GET /frame/%s: %s, %d bytes", sestream.DemoStream, fr.Status, len(jpeg))
	}
}
