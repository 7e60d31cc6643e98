package sestream

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/sestream/sestream/config"
)

func pushConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := testConfig(t, "")
	cfg.Queue.Policy = "block"
	cfg.Queue.Size = 4
	return cfg
}

// TestPushMatchesFileRun reads a generated video with the host's own gocv loop, pushes every frame, and
// checks the results are those of the same video run as a file stream, frame by frame.
func TestPushMatchesFileRun(t *testing.T) {
	const frames = 24
	clip := makeVideo(t, frames, "320x180")

	// The standalone way: the file as a configured stream.
	var mu sync.Mutex
	fileOut := map[uint64]FrameOutput{}
	fileCfg := pushConfig(t)
	fileCfg.Streams = []config.Stream{{Name: "cam", URL: clip, Transport: "tcp",
		Reconnect:    config.Reconnect{Initial: time.Second, Max: time.Second},
		StallTimeout: time.Second}}
	fp, err := New(fileCfg, Options{NoNATS: true, OnFrame: func(o FrameOutput) {
		mu.Lock()
		fileOut[o.Result.Seq] = o
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fp.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The embedded way: the host captures and pushes.
	pushOut := map[uint64]FrameOutput{}
	pp, err := New(pushConfig(t), Options{NoNATS: true, PushStreams: []string{"cam"}, OnFrame: func(o FrameOutput) {
		mu.Lock()
		pushOut[o.Result.Seq] = o
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := pp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	mat := gocv.NewMat()
	n := 0
	for vc.Read(&mat) && !mat.Empty() {
		if status, err := pp.Push(ctx, "cam", mat, time.Time{}); err != nil || status != Queued {
			t.Fatalf("push %d: %v %v", n, status, err)
		}
		n++
	}
	mat.Close()
	vc.Close()
	if err := pp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n != frames || len(pushOut) != frames || len(fileOut) != frames {
		t.Fatalf("read %d frames; %d pushed results, %d file results; want %d", n, len(pushOut), len(fileOut), frames)
	}
	for seq := uint64(1); seq <= frames; seq++ {
		a, b := fileOut[seq], pushOut[seq]
		if a.Result == nil || b.Result == nil {
			t.Fatalf("frame %d missing", seq)
		}
		ra, rb := a.Result.Outputs, b.Result.Outputs
		if len(a.Result.Top) > 0 {
			if a.Result.Top[0].Index != b.Result.Top[0].Index || math.Abs(float64(a.Result.Top[0].Score-b.Result.Top[0].Score)) > 1e-5 {
				t.Fatalf("frame %d: file top %+v, pushed top %+v", seq, a.Result.Top[0], b.Result.Top[0])
			}
		}
		for i := range ra {
			if math.Abs(float64(ra[i]-rb[i])) > 1e-5 {
				t.Fatalf("frame %d output %d: file %v, pushed %v", seq, i, ra[i], rb[i])
			}
		}
		for j := range a.Attention.Blocks {
			if d := math.Abs(a.Attention.Blocks[j].Entropy - b.Attention.Blocks[j].Entropy); d > 1e-6 {
				t.Fatalf("frame %d block %d entropy differs by %g", seq, j, d)
			}
		}
	}
}

func TestPushMisuse(t *testing.T) {
	ctx := context.Background()
	p, err := New(pushConfig(t), Options{NoNATS: true, PushStreams: []string{"cam"}})
	if err != nil {
		t.Fatal(err)
	}
	good := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3)
	defer good.Close()
	if _, err := p.Push(ctx, "cam", good, time.Time{}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("push before Start: %v, want ErrNotStarted", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	empty := gocv.NewMat()
	defer empty.Close()
	float := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV32FC3)
	defer float.Close()
	twoCh := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC2)
	defer twoCh.Close()
	closed := gocv.NewMatWithSize(4, 4, gocv.MatTypeCV8UC3)
	closed.Close()
	bad := map[string]gocv.Mat{"zero Mat": {}, "empty": empty, "float": float, "two channels": twoCh, "closed": closed}
	for name, m := range bad {
		if _, err := p.Push(ctx, "cam", m, time.Time{}); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		}
	}
	if _, err := p.Push(ctx, "nope", good, time.Time{}); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("unknown stream: %v, want ErrUnknownStream", err)
	}
	if _, err := p.PushImage(ctx, "cam", nil, time.Time{}); !errors.Is(err, ErrBadFrame) {
		t.Errorf("nil image: %v, want ErrBadFrame", err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	img.Set(3, 3, color.RGBA{255, 0, 0, 255})
	if status, err := p.PushImage(ctx, "cam", img, time.Time{}); err != nil || status != Queued {
		t.Errorf("PushImage: %v %v", status, err)
	}
	if status, err := p.Push(ctx, "cam", good, time.Time{}); err != nil || status != Queued {
		t.Errorf("Push: %v %v", status, err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Push(ctx, "cam", good, time.Time{}); !errors.Is(err, ErrClosed) {
		t.Errorf("push after Close: %v, want ErrClosed", err)
	}
	if st := p.Stats(); len(st) != 1 || st[0].Processed != 2 {
		t.Errorf("stats after close: %+v, want 2 processed", st)
	}
}

// TestHostNATSConn publishes on a connection the host owns: results arrive on it, and it is still open and
// usable after the pipeline is closed.
func TestHostNATSConn(t *testing.T) {
	srv := startNATS(t)
	c, _ := collect(t, srv.ClientURL())
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := pushConfig(t)
	cfg.NATS.URL = ""                        // would start an embedded server; the host's connection takes its place
	cfg.NATS.Embedded.Listen = "127.0.0.1:1" // proves no server is started: that port cannot be bound
	p, err := New(cfg, Options{NATSConn: nc, PushStreams: []string{"cam"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	m := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3)
	defer m.Close()
	for i := 0; i < 3; i++ {
		if _, err := p.Push(ctx, "cam", m, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() {
		t.Fatal("the pipeline closed the host's connection")
	}
	if err := nc.Publish("host.still.works", []byte("x")); err != nil || nc.Flush() != nil {
		t.Fatalf("host connection unusable after Close: %v", err)
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.results["cam"]) == 3 && len(c.attn["cam"]) == 3
	})
}
