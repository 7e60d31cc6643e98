// Command gatedump runs the pipeline on one video file (no NATS, every frame, as fast as it goes) and writes
// every frame's full SE gate vectors to a file, for internal/tools/attneval and offline analysis.
//
//	gatedump -in VIDEO -out FILE [-model MODEL.onnx]
//
// FILE is little-endian: int32 number of blocks B, B x int32 channels (model block order), then per frame
// uint64 frame sequence number followed by every block's gates as float32, blocks in order.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
)

func main() {
	in := flag.String("in", "", "video file")
	out := flag.String("out", "", "output file")
	modelPath := flag.String("model", "", "ONNX model (default: the bundled model)")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: gatedump -in VIDEO -out FILE [-model MODEL.onnx]")
		os.Exit(2)
	}
	cfg := config.Default()
	cfg.Model.Path = *modelPath
	cfg.Streams = []config.Stream{{Name: "gatedump", URL: *in}}
	cfg.Attention.IncludeVectors = true
	cfg.Queue.Policy = "block"
	cfg.HTTP.Listen = ""
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatedump:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	n := 0
	header := false
	p, err := sestream.New(cfg, sestream.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoNATS: true,
		OnFrame: func(fo sestream.FrameOutput) {
			if !header {
				binary.Write(w, binary.LittleEndian, int32(len(fo.Attention.Blocks)))
				for _, b := range fo.Attention.Blocks {
					binary.Write(w, binary.LittleEndian, int32(len(b.Vector)))
				}
				header = true
			}
			binary.Write(w, binary.LittleEndian, fo.Attention.Seq)
			var buf [4]byte
			for _, b := range fo.Attention.Blocks {
				for _, v := range b.Vector {
					binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
					w.Write(buf[:])
				}
			}
			n++
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatedump:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	t0 := time.Now()
	runErr := p.Run(ctx)
	if err := errors.Join(runErr, w.Flush(), f.Close()); err != nil {
		fmt.Fprintln(os.Stderr, "gatedump:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gatedump: %d frames in %v\n", n, time.Since(t0).Round(time.Millisecond))
}
