// Command hostdaemon is a minimal camera daemon that owns its capture loop and embeds sestream: it reads
// frames with its own gocv VideoCapture, pushes them into a sestream pipeline, and prints each frame's top
// class and attention drift state as the pipeline returns them. Results are also published on NATS unless -no-nats.
//
//	go run ./examples/hostdaemon -model models/fashion-se.onnx -video samples/fashion.mp4 -no-nats
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"gocv.io/x/gocv"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hostdaemon:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("hostdaemon", flag.ContinueOnError)
	modelPath := fs.String("model", "", "ONNX model with SE blocks (default: the bundled model)")
	video := fs.String("video", "", "video file or device the host captures from")
	noNATS := fs.Bool("no-nats", false, "keep results in-process only")
	natsURL := fs.String("nats", "", "NATS URL (default: an embedded server)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// The same typed configuration the sestream daemon uses; no sources of its own: the host pushes frames.
	cfg := config.Default()
	cfg.Model.Path = *modelPath
	cfg.NATS.URL = *natsURL
	cfg.Queue.Policy = "block" // a file: never drop
	p, err := sestream.New(cfg, sestream.Options{
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		PushStreams: []string{"host"},
		NoNATS:      *noNATS,
		OnFrame: func(f sestream.FrameOutput) {
			top := "-"
			if len(f.Result.Top) > 0 {
				top = fmt.Sprintf("%s %.3f", f.Result.Top[0].Label, f.Result.Top[0].Score)
			}
			drift := "off"
			if d := f.Attention.Drift; d != nil {
				drift = d.Phase
				if d.Phase == "detecting" {
					drift = fmt.Sprintf("%.2f", d.Score)
				}
			}
			fmt.Fprintf(out, "frame %d: %s, attention drift %s\n", f.Result.Seq, top, drift)
		},
	})
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}

	// The host's own capture loop. Push copies the pixels, so one Mat is reused for every frame.
	vc, err := gocv.OpenVideoCapture(*video)
	if err != nil {
		p.Close(context.Background())
		return fmt.Errorf("opening %s: %w", *video, err)
	}
	defer vc.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	for ctx.Err() == nil && vc.Read(&frame) && !frame.Empty() {
		if _, err := p.Push(ctx, "host", frame, time.Now()); err != nil {
			break
		}
	}
	// Close drains: every pushed frame is processed before it returns.
	return p.Close(context.Background())
}
