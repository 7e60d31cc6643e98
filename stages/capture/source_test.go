package capture

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/preprocess"
	"github.com/sestream/sestream/stages/source"
)

func TestFFmpegCaptureOptions(t *testing.T) {
	for _, tc := range []struct {
		opts source.Options
		want string
	}{
		{source.Options{}, "rtsp_transport;tcp|timeout;20000000"},
		{source.Options{Transport: "udp", StallTimeout: 3 * time.Second}, "rtsp_transport;udp|timeout;6000000"},
	} {
		if got := ffmpegCaptureOptions(tc.opts); got != tc.want {
			t.Errorf("ffmpegCaptureOptions(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
}

func TestRedactedURLInEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := pipeline.NewQueue[Frame]("cam", 1, pipeline.DropOldest, DiscardFrame)
	ev := &collected{}
	src := &Source{Options: source.Options{Name: "cam", URL: "rtsp://admin:hunter2@127.0.0.1:1/x", ReconnectInitial: time.Hour},
		Open: func(context.Context, source.Spec, source.Options) (FrameReader, error) {
			defer cancel()
			return nil, fmt.Errorf("refused")
		}}
	if err := src.Run(ctx, q, ev.event); err != nil {
		t.Fatal(err)
	}
	for _, e := range ev.events {
		if strings.Contains(e.URL, "hunter2") || !strings.Contains(e.URL, "admin") {
			t.Fatalf("event URL %q", e.URL)
		}
	}
}

// ExampleRunSource reads a folder of images into a queue and preprocesses each frame into
// its slot of a batch tensor.
func ExampleRunSource() {
	dir := filepath.Join("..", "preprocess", "testdata", "preprocess")
	q := pipeline.NewQueue[Frame]("folder", 2, pipeline.Block, DiscardFrame)
	var events []string // appended by RunSource's goroutine; read after q is closed
	go RunSource(context.Background(), source.Options{Name: "folder", URL: filepath.Join(dir, "*.png")}, q, func(e source.Event) {
		events = append(events, fmt.Sprint(e.Kind, " after ", e.Frames, " frames"))
	})
	p, err := preprocess.New(preprocess.Options{Width: 32, Height: 24, Resize: preprocess.ResizeLetterbox})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	batch := make([]float32, 2*p.TensorLen()) // NCHW, N = 2
	for f := range q.C() {
		slot := batch[0:p.TensorLen()]
		tr, err := p.Into(slot, f.Mat)
		DiscardFrame(f)
		if err != nil {
			fmt.Println(err)
			continue
		}
		x, y := tr.ToSource(16, 12)
		fmt.Printf("frame %d %dx%d: tensor centre is source (%.1f, %.1f)\n", f.Info.Seq, f.Info.Width, f.Info.Height, x, y)
	}
	fmt.Println(strings.Join(events, ", "))
	// Output:
	// frame 1 101x67: tensor centre is source (50.5, 35.1)
	// connected after 1 frames, ended after 1 frames
}
