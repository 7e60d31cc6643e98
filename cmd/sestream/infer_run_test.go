package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/message"
)

// TestInferImageMatchesRun: `infer --image` and `run` give the same top-5 (labels, order, scores) for the
// same frame, because infer runs the image through the pipeline's own worker and sink.
func TestInferImageMatchesRun(t *testing.T) {
	modelPath, err := sestream.FindBundled(sestream.BundledModel)
	if err != nil {
		t.Fatal(err)
	}
	sample, err := sestream.FindBundled(sestream.BundledSample)
	if err != nil {
		t.Fatal(err)
	}
	// One frame of the sample video, as an image file.
	vc, err := gocv.VideoCaptureFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	frame := gocv.NewMat()
	for range 7 { // a frame a few items into the video
		if !vc.Read(&frame) {
			t.Fatal("cannot read the sample video")
		}
	}
	vc.Close()
	png := filepath.Join(t.TempDir(), "frame.png")
	ok := gocv.IMWrite(png, frame)
	frame.Close()
	if !ok {
		t.Fatalf("cannot write %s", png)
	}

	for _, backend := range cliBackends(t) {
		t.Run(backend, func(t *testing.T) {
			cfg := config.Default()
			cfg.Model.Path = modelPath
			cfg.Engine.Backend = backend
			cfg.AddStream("still", png)
			var got []*message.Result
			p, err := sestream.New(cfg, sestream.Options{NoNATS: true, OnFrame: func(f sestream.FrameOutput) { got = append(got, f.Result) }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || len(got[0].Top) != 5 {
				t.Fatalf("run published %d results (top %v), want 1 with a top-5", len(got), got)
			}

			code, stdout, stderr := run(t, "infer", "--model", modelPath, "--image", png, "--engine", backend, "--json")
			if code != 0 {
				t.Fatalf("infer exit code %d, stderr:\n%s", code, stderr)
			}
			var out inferJSON
			if err := json.Unmarshal([]byte(stdout), &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Results) != 1 {
				t.Fatalf("infer printed %d results, want 1", len(out.Results))
			}
			runTop, inferTop := got[0].Top, out.Results[0].Top
			if len(inferTop) != len(runTop) {
				t.Fatalf("infer top %v, run top %v", inferTop, runTop)
			}
			for i := range runTop {
				if runTop[i].Index != inferTop[i].Index || runTop[i].Label != inferTop[i].Label || runTop[i].Score != inferTop[i].Score {
					t.Errorf("top-%d: run %+v, infer %+v", i+1, runTop[i], inferTop[i])
				}
			}
			if len(out.Attention) != 1 || len(out.Attention[0].Blocks) != len(p.Model().Blocks) {
				t.Errorf("infer attention %+v, want one message with %d blocks", out.Attention, len(p.Model().Blocks))
			}
			t.Logf("top-5 %v", runTop)
		})
	}
}
