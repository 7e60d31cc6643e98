package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/model"
)

// benchJSON is the --json output of `sestream bench` (a contract: scripts parse it).
type benchJSON struct {
	Engine       string  `json:"engine"`
	Model        string  `json:"model"`
	Batch        int     `json:"batch"`
	Threads      int     `json:"threads"`
	Iterations   int     `json:"iterations"`
	ImagesPerSec float64 `json:"images_per_sec"`
	BatchMsP50   float64 `json:"batch_ms_p50"`
	BatchMsP99   float64 `json:"batch_ms_p99"`
}

func newBenchCmd() *cobra.Command {
	var (
		modelPath, backend, library        string
		batch, iterations, warmup, threads int
		noGates, asJSON                    bool
		profile                            string
		pb                                 pipelineBench
	)
	cmd := &cobra.Command{
		Use:   "bench --model MODEL --batch N [--iterations K] [--engine E] [--threads T] [--json]\n  sestream bench --pipeline --model MODEL --video FILE [--streams N] [--workers W] [--threads T] [--batch B] [--json]",
		Short: "Measure inference speed of a model on batches of random input, or of the whole pipeline",
		Long: `bench opens the model on the chosen backend, runs --warmup untimed batches, then --iterations timed batches
of --batch items of fixed pseudo-random input, and prints images per second and the median and 99th percentile
batch time. SE gates are fetched as in "sestream run"; --no-gates leaves them out to show what they cost.

--json prints {"engine","model","batch","threads","iterations","images_per_sec","batch_ms_p50","batch_ms_p99"}.

` + pipelineBenchHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case modelPath == "":
				return badInput(errors.New("--model is required"))
			case batch < 1:
				return badInput(fmt.Errorf("--batch %d: want >= 1", batch))
			case threads < 0:
				return badInput(fmt.Errorf("--threads %d: want >= 0", threads))
			}
			if pb.on {
				if noGates {
					return badInput(errors.New("--no-gates: not with --pipeline (the pipeline always fetches the gates)"))
				}
				if !cmd.Flags().Changed("batch") {
					batch = config.Default().Batch.MaxSize // the batch `run` uses
				}
				if !cmd.Flags().Changed("threads") {
					threads = 0 // auto, with --workers, as `run` does
				}
				pb.model, pb.backend, pb.library, pb.batch, pb.threads, pb.asJSON = modelPath, backend, library, batch, threads, asJSON
				pb.cpuprofile = profile
				return runBenchPipeline(cmd, pb)
			}
			if err := pb.unusedFlags(cmd); err != nil {
				return err
			}
			switch {
			case iterations < 1:
				return badInput(fmt.Errorf("--iterations %d: want >= 1", iterations))
			case warmup < 0:
				return badInput(fmt.Errorf("--warmup %d: want >= 0", warmup))
			}
			m, b, err := loadModel(modelPath, backend)
			if err != nil {
				return err
			}
			if noGates {
				bare := *m
				bare.Blocks = nil
				m = &bare
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			e, err := openEngine(m, engine.Options{Backend: b, Threads: threads, MaxBatch: batch, Library: library, Logger: log})
			if err != nil {
				return err
			}
			defer e.Close()
			x := benchInput(m, batch)
			ctx := cmd.Context()
			for range warmup {
				if _, err := e.Run(ctx, x, batch); err != nil {
					return err
				}
			}
			prof, err := startCPUProfile(profile)
			if err != nil {
				return err
			}
			defer prof.stop()
			times := make([]time.Duration, iterations)
			start := time.Now()
			for i := range times {
				t0 := time.Now()
				if _, err := e.Run(ctx, x, batch); err != nil {
					return err
				}
				times[i] = time.Since(t0)
			}
			total := time.Since(start)
			if err := prof.stop(); err != nil {
				return err
			}
			slices.Sort(times)
			out := benchJSON{
				Engine: string(e.Info().Backend), Model: m.Name, Batch: batch, Threads: threads, Iterations: iterations,
				ImagesPerSec: float64(batch*iterations) / total.Seconds(),
				BatchMsP50:   ms(percentile(times, 50)), BatchMsP99: ms(percentile(times, 99)),
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
			}
			gates := fmt.Sprintf("%d SE blocks' gates fetched", len(m.Blocks))
			if noGates {
				gates = "gates not fetched"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s on %s %s, batch %d, %d threads, %d iterations (%s):\n"+
				"  %.1f images/s, batch p50 %.2f ms, p99 %.2f ms\n",
				m.Name, out.Engine, e.Info().Version, batch, threads, iterations, gates, out.ImagesPerSec, out.BatchMsP50, out.BatchMsP99)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "ONNX model file")
	f.IntVar(&batch, "batch", 1, "batch size")
	f.IntVar(&iterations, "iterations", 50, "timed batches")
	f.IntVar(&warmup, "warmup", 5, "untimed batches before timing")
	f.StringVar(&backend, "engine", "auto", "inference backend: auto, onnxruntime or opencv")
	f.IntVar(&threads, "threads", 2, "intra-op threads (0 = the backend's default)")
	f.StringVar(&library, "library", "", "ONNX Runtime shared library (default: search, see engine.library)")
	f.BoolVar(&noGates, "no-gates", false, "do not fetch the SE gates (to measure their cost)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&profile, "cpuprofile", "", "write a Go CPU profile (go tool pprof) of the timed batches, or with --pipeline of the pipeline run, to this file")
	pb.addFlags(f)
	return cmd
}

// benchInput returns batch items of fixed pseudo-random input at the model's input size (NCHW float32).
func benchInput(m *model.Model, batch int) []float32 {
	item := 1
	for _, d := range m.Input.Shape[1:] {
		item *= int(d)
	}
	if item <= 0 {
		item = 3 * m.Meta.Width * m.Meta.Height
	}
	x := make([]float32, batch*item)
	state := uint32(2463534242)
	for i := range x { // xorshift: the same input on every run, roughly N(0, 1)-sized values
		state ^= state << 13
		state ^= state >> 17
		state ^= state << 5
		x[i] = float32(state)/float32(1<<31) - 1
	}
	return x
}

// percentile returns the p-th percentile of sorted durations by the nearest-rank method.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
