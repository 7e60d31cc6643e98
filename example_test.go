package sestream_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"time"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
)

// A host program that owns its frames pushes them into the pipeline and gets each frame's result and SE
// attention back in-process.
func Example_push() {
	cfg := config.Default()
	cfg.Model.Path = "engine/testdata/se_tiny_64x64.onnx"
	cfg.Queue.Policy = "block"
	p, err := sestream.New(cfg, sestream.Options{
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		NoNATS:      true,
		PushStreams: []string{"door"},
		OnFrame: func(f sestream.FrameOutput) {
			fmt.Printf("%s frame %d: %d SE blocks, entropy in (0,1]: %v\n", f.Result.Stream, f.Result.Seq,
				len(f.Attention.Blocks), f.Attention.Blocks[0].Entropy > 0 && f.Attention.Blocks[0].Entropy <= 1)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for i := 0; i < 2; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 160, 90))
		img.Set(10*i, 5, color.RGBA{200, 40, 40, 255})
		if _, err := p.PushImage(ctx, "door", img, time.Now()); err != nil {
			fmt.Println(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// door frame 1: 3 SE blocks, entropy in (0,1]: true
	// door frame 2: 3 SE blocks, entropy in (0,1]: true
}
