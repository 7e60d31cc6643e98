package sestream

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/stages/source"
)

// testModel is a small SE network from the engine's golden data: 64x64 RGB input, SE blocks with gates.
const testModel = "engine/testdata/se_tiny_64x64.onnx"

func makeVideo(t *testing.T, frames int, size string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (scripts/setup.sh installs it)")
	}
	path := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25",
		"-frames:v", strconv.Itoa(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// startNATS starts an in-process NATS server on a free loopback port, with options changed by each of with.
func startNATS(t *testing.T, with ...func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{}
	for _, f := range with {
		f(o)
	}
	return testfixtures.NATSServer(t, o)
}

// collector subscribes to every sestream subject and keeps the messages by kind and stream.
type collector struct {
	mu      sync.Mutex
	results map[string][]message.Result
	attn    map[string][]message.Attention
	events  []message.Event
	status  int
}

func collect(t *testing.T, url string) (*collector, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := &collector{results: map[string][]message.Result{}, attn: map[string][]message.Attention{}}
	_, err = nc.Subscribe("sestream.>", func(m *nats.Msg) {
		if m.Subject == message.FleetSubject("sestream") {
			return // a fleet's reports, not one of the kinds Decode reads
		}
		kind, v, err := message.Decode(m.Data)
		if err != nil {
			t.Errorf("undecodable message on %s: %v", m.Subject, err)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch kind {
		case message.KindResult:
			r := v.(*message.Result)
			c.results[r.Stream] = append(c.results[r.Stream], *r)
		case message.KindAttention:
			a := v.(*message.Attention)
			c.attn[a.Stream] = append(c.attn[a.Stream], *a)
		case message.KindEvent:
			c.events = append(c.events, *v.(*message.Event))
		case message.KindStatus:
			c.status++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c, nc
}

func testConfig(t *testing.T, natsURL string, streams ...config.Stream) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Model.Path = testModel
	cfg.NATS.URL = natsURL
	cfg.HTTP.Listen = ""
	cfg.Batch.MaxSize = 4
	cfg.Workers = 2
	cfg.Status.Interval = 200 * time.Millisecond
	for _, s := range streams {
		s.Transport = "tcp"
		s.Reconnect = config.Reconnect{Initial: source.DefaultReconnectInitial, Max: source.DefaultReconnectMax}
		s.StallTimeout = source.DefaultStallTimeout
		cfg.Streams = append(cfg.Streams, s)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestFilesEndToEnd runs two file streams through batching (max 4) and two workers to a real NATS server:
// every frame of each file gets exactly one result and one attention message, in frame order per stream.
func TestFilesEndToEnd(t *testing.T) {
	const frames = 40
	a, b := makeVideo(t, frames, "320x240"), makeVideo(t, frames, "160x90")
	srv := startNATS(t)
	c, nc := collect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "a", URL: a}, config.Stream{Name: "b", URL: b})
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.attn["a"]) >= frames && len(c.attn["b"]) >= frames
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, stream := range []string{"a", "b"} {
		rs, as := c.results[stream], c.attn[stream]
		if len(rs) != frames || len(as) != frames {
			t.Fatalf("stream %s: %d results and %d attention messages, want %d each", stream, len(rs), len(as), frames)
		}
		for i := range rs {
			if rs[i].Seq != uint64(i+1) || as[i].Seq != uint64(i+1) {
				t.Fatalf("stream %s message %d has seq %d/%d, want %d (order per stream)", stream, i, rs[i].Seq, as[i].Seq, i+1)
			}
			if rs[i].Batch.Size < 1 || rs[i].Batch.Size > 4 {
				t.Errorf("batch size %d outside 1..4", rs[i].Batch.Size)
			}
			if len(as[i].Blocks) != len(p.Model().Blocks) || len(as[i].Blocks) == 0 {
				t.Fatalf("attention has %d blocks, model has %d", len(as[i].Blocks), len(p.Model().Blocks))
			}
			for _, blk := range as[i].Blocks {
				if blk.Entropy <= 0 || blk.Entropy > 1 || blk.Channels < 1 {
					t.Fatalf("block %s: entropy %v channels %d", blk.Name, blk.Entropy, blk.Channels)
				}
			}
		}
	}
	for _, st := range p.Stats() {
		if st.Captured != frames || st.Processed != frames || st.Published != frames || st.Dropped != 0 {
			t.Errorf("stream %s counters %+v, want %d captured, processed and published", st.Stream, st, frames)
		}
	}
	var ended int
	for _, e := range c.events {
		if e.Kind == message.EventEnded {
			ended++
		}
	}
	if ended != 2 {
		t.Errorf("%d ended events, want 2: %+v", ended, c.events)
	}
}

// TestCancelDrains stops a looping stream and checks every frame captured before the stop was still
// published (block policy: nothing dropped), and that Run returns nil.
func TestCancelDrains(t *testing.T) {
	clip := makeVideo(t, 20, "160x120")
	srv := startNATS(t)
	c, nc := collect(t, srv.ClientURL())
	cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "loop", URL: clip, Loop: true})
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.results["loop"]) >= 30
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	nc.Flush()
	st := p.Stats()[0]
	if st.Dropped != 0 || st.Failed != 0 || st.Processed != st.Captured || st.Published != st.Captured {
		t.Fatalf("after drain: %+v; want every captured frame processed and published", st)
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return uint64(len(c.results["loop"])) == st.Published
	})
}

func TestNewRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	notModel := filepath.Join(dir, "x.onnx")
	os.WriteFile(notModel, []byte("hello"), 0o644)
	cases := map[string]func(*config.Config){
		"model.path":   func(c *config.Config) { c.Model.Path = notModel },
		"model.labels": func(c *config.Config) { c.Model.Labels = filepath.Join(dir, "none.txt") },
	}
	for key, mutate := range cases {
		cfg := testConfig(t, "nats://127.0.0.1:1", config.Stream{Name: "a", URL: "x.mp4"})
		mutate(cfg)
		_, err := New(cfg, Options{})
		ie, ok := err.(*InputError)
		if !ok || ie.Key != key {
			t.Errorf("%s: error %v, want an InputError for %s", key, err, key)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
