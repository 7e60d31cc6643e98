package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gocv.io/x/gocv"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/internal/plan"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/preprocess"
)

const pipelineBenchHelp = `With --pipeline, bench runs the whole pipeline (sestream.New, Start, Wait, nothing published on NATS) on
--video read as --streams file streams (realtime off, no loop, block queues: as fast as the pipeline takes
frames, nothing dropped) with --workers workers of --threads threads and batches of up to --batch (default
with --pipeline: batch.max_size's default, 8), the rest of the configuration at its defaults. --workers and
--threads default to 0, auto, as in run: the layout is chosen first by measuring one session per candidate
thread count (engine.ChooseLayout; printed as "layout trial"). Then, in the same process, each for
--phase-time before the pipeline run:
  engine:  the engine alone on the pipeline's layout (--workers sessions of --threads threads, side by side)
           on batches of --batch random inputs at the model's input size: images/s;
  decode:  --streams goroutines, each reading --video with gocv VideoCapture (reopened at its end) and
           preprocessing every frame into the model's tensor with the preprocess package, no inference:
           frames/s.
It prints the pipeline's frames/s (frames delivered between Start returning and Wait returning, over that
time), the per-frame averages of the pipeline's own timings (preprocess, queue wait, inference = batch time /
batch size) from every result message, the batch fill (mean batch size of the frames over --batch), the
process CPU time (getrusage user+sys) per frame and over the run's wall time (the cores it used), and that
CPU per frame split by stage (pipeline.StageCPU: decode, preprocess, inference, sink, each on its own
thread; other = the rest, e.g. FFmpeg's decoder threads). --cpuprofile FILE writes a Go CPU profile of the
pipeline run.

Machine limit. Each phase's CPU time over its wall time is the cores it used; a rate divided by those cores
is its rate per core. With cores = runtime.NumCPU():
  limit = cores / (1/engine_per_core + 1/decode_per_core)   frames/s
that is, the CPU cost of one frame is its decode+preprocess cost plus its inference cost (at batch --batch),
both measured alone, and the pipeline could keep every core busy with only that work. It leaves out what
the pipeline adds (queues, batching, SE statistics, drift, messages), assumes both kinds of work scale to all
cores and full batches, and takes the load of other processes as it was during the phases. fraction =
frames_per_sec / limit. cpu_efficiency = (1000/engine_per_core + 1000/decode_per_core) / cpu_ms_per_frame
is the fraction the pipeline would reach with every core to itself; other processes' load disturbs it far
less than frames/s.

--pipeline --json prints {"engine","model","video","streams","workers","threads","layout","layout_trials",
"batch","cores","frames","seconds","frames_per_sec","engine_images_per_sec","engine_cores",
"decode_frames_per_sec","decode_cores","preprocess_ms","queue_ms","inference_ms_per_frame","batch_fill",
"cpu_ms_per_frame","pipeline_cores","limit_frames_per_sec","fraction_of_limit","parts_cpu_ms_per_frame",
"cpu_efficiency","stage_cpu_ms_per_frame","decode_stage_cpu_ms_per_frame","page_faults_per_frame",
"decode_page_faults_per_frame"}.`

type pipelineBench struct {
	on               bool
	video            string
	streams, workers int
	phase            time.Duration

	// from bench's own flags
	model, backend, library, cpuprofile string
	batch, threads                      int
	asJSON                              bool
}

func (pb *pipelineBench) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&pb.on, "pipeline", false, "run the whole pipeline on --video and compare it with engine-only and decode-only rates")
	f.StringVar(&pb.video, "video", "", "with --pipeline: video file read by every stream")
	f.IntVar(&pb.streams, "streams", 1, "with --pipeline: number of file streams of --video")
	f.IntVar(&pb.workers, "workers", 0, "with --pipeline: inference workers (0 = auto, as in run)")
	f.DurationVar(&pb.phase, "phase-time", 3*time.Second, "with --pipeline: how long the engine-only and decode-only phases each run")
}

// unusedFlags rejects the --pipeline flags when --pipeline is not given.
func (pb *pipelineBench) unusedFlags(cmd *cobra.Command) error {
	for _, name := range []string{"video", "streams", "workers", "phase-time"} {
		if cmd.Flags().Changed(name) {
			return badInput(fmt.Errorf("--%s: only with --pipeline", name))
		}
	}
	return nil
}

// pipelineBenchJSON is the --pipeline --json output of `sestream bench` (a contract: scripts parse it).
type pipelineBenchJSON struct {
	Engine  string `json:"engine"`
	Model   string `json:"model"`
	Video   string `json:"video"`
	Streams int    `json:"streams"`
	Workers int    `json:"workers"`
	Threads int    `json:"threads"`
	// Layout is "auto" when workers and threads were chosen by measuring (engine.ChooseLayout, as `run` does
	// with workers and engine.threads at 0), with the measurements in LayoutTrials; else "fixed".
	Layout       string            `json:"layout"`
	LayoutTrials []layoutTrialJSON `json:"layout_trials,omitempty"`
	Batch        int               `json:"batch"`
	Cores        int               `json:"cores"`
	// Frames and Seconds are the pipeline run: frames delivered between Start and Wait returning, and that time.
	Frames       int     `json:"frames"`
	Seconds      float64 `json:"seconds"`
	FramesPerSec float64 `json:"frames_per_sec"`
	// EngineCores and DecodeCores are each phase's CPU time over its wall time.
	EngineImagesPerSec float64 `json:"engine_images_per_sec"`
	EngineCores        float64 `json:"engine_cores"`
	DecodeFramesPerSec float64 `json:"decode_frames_per_sec"`
	DecodeCores        float64 `json:"decode_cores"`
	// Averages over every result message of the pipeline run, in milliseconds per frame.
	PreprocessMs        float64 `json:"preprocess_ms"`
	QueueMs             float64 `json:"queue_ms"`
	InferenceMsPerFrame float64 `json:"inference_ms_per_frame"`
	// BatchFill is the mean size of the batch each frame was part of, over Batch (frames weighted, so a
	// run of full batches is 1).
	BatchFill float64 `json:"batch_fill"`
	// CPUMsPerFrame is the process's user+sys CPU time during the pipeline run over Frames; PipelineCores is
	// that CPU time over Seconds.
	CPUMsPerFrame     float64 `json:"cpu_ms_per_frame"`
	PipelineCores     float64 `json:"pipeline_cores"`
	LimitFramesPerSec float64 `json:"limit_frames_per_sec"`
	FractionOfLimit   float64 `json:"fraction_of_limit"`
	// PartsCPUMsPerFrame is 1000/engine_per_core + 1000/decode_per_core: what a frame costs in CPU when the
	// parts run alone. CPUEfficiency is that over CPUMsPerFrame: the fraction of the limit the pipeline would
	// reach on every core of the machine, which other processes' load disturbs far less than frames/s.
	PartsCPUMsPerFrame float64 `json:"parts_cpu_ms_per_frame"`
	CPUEfficiency      float64 `json:"cpu_efficiency"`
	// StageCPUMsPerFrame splits CPUMsPerFrame by stage: each stage's CPU time on its own thread
	// (pipeline.StageCPU: decode, preprocess, inference, sink) per frame, and "other", the rest of the
	// process's CPU time (FFmpeg's decoder threads, ONNX Runtime's intra-op threads beyond the calling one,
	// queues and batching, the Go runtime and garbage collector).
	StageCPUMsPerFrame map[string]float64 `json:"stage_cpu_ms_per_frame"`
	// DecodeStageCPUMsPerFrame is the same split of the decode-only phase (decode, preprocess, other), for
	// comparison: what the pipeline adds shows as the difference.
	DecodeStageCPUMsPerFrame map[string]float64 `json:"decode_stage_cpu_ms_per_frame"`
	// PageFaultsPerFrame is the process's minor page faults per frame in the pipeline run and in the
	// decode-only phase: fresh memory touched per frame (a frame's Mat is new memory unless the allocator
	// reuses it).
	PageFaultsPerFrame       float64 `json:"page_faults_per_frame"`
	DecodePageFaultsPerFrame float64 `json:"decode_page_faults_per_frame"`
}

// layoutTrialJSON is one candidate of the auto layout.
type layoutTrialJSON struct {
	Threads         int     `json:"threads"`
	ImagesPerSec    float64 `json:"images_per_sec"`
	ImagesPerCPUSec float64 `json:"images_per_cpu_sec"`
}

func (pb *pipelineBench) validate() error {
	switch {
	case pb.video == "":
		return badInput(errors.New("--video is required with --pipeline"))
	case pb.streams < 1 || pb.streams > config.MaxStreams:
		return badInput(fmt.Errorf("--streams %d: want 1-%d", pb.streams, config.MaxStreams))
	case pb.workers < 0 || pb.workers > config.MaxWorkers:
		return badInput(fmt.Errorf("--workers %d: want 0 (auto) to %d", pb.workers, config.MaxWorkers))
	case pb.phase <= 0 || pb.phase > 10*time.Minute:
		return badInput(fmt.Errorf("--phase-time %v: want more than 0 and at most 10m", pb.phase))
	}
	if st, err := os.Stat(pb.video); err != nil {
		return badInput(fmt.Errorf("--video: %w", err))
	} else if st.IsDir() {
		return badInput(fmt.Errorf("--video %s: is a directory, want a video file", pb.video))
	}
	return nil
}

func runBenchPipeline(cmd *cobra.Command, pb pipelineBench) error {
	if err := pb.validate(); err != nil {
		return err
	}
	m, b, err := loadModel(pb.model, pb.backend)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	eo := engine.Options{Backend: b, Threads: pb.threads, MaxBatch: pb.batch, Library: pb.library, Logger: log}
	layout, trials, err := engine.ChooseLayout(ctx, m, eo, engine.Layout{Workers: pb.workers, Threads: pb.threads},
		runtime.NumCPU(), pb.batch, engine.AutoLayoutBudget)
	if err != nil {
		return err
	}
	layoutName := "fixed"
	if pb.workers == 0 || pb.threads == 0 {
		layoutName = "auto"
	}
	pb.workers, pb.threads, eo.Threads = layout.Workers, layout.Threads, layout.Threads
	cfg := config.Default()
	cfg.Model.Path = pb.model
	cfg.Engine.Backend = string(b)
	cfg.Engine.Threads = pb.threads
	cfg.Engine.Library = pb.library
	cfg.Workers = pb.workers
	cfg.Batch.MaxSize = pb.batch
	for i := range pb.streams {
		cfg.AddStream(fmt.Sprintf("s%d", i+1), pb.video)
		cfg.Streams[i].Realtime, cfg.Streams[i].Loop = false, false
	}
	if err := cfg.Validate(); err != nil {
		return badInput(err)
	}

	out := pipelineBenchJSON{Model: m.Name, Video: pb.video, Streams: pb.streams, Workers: pb.workers,
		Threads: pb.threads, Batch: pb.batch, Cores: runtime.NumCPU(), Layout: layoutName}
	for _, t := range trials {
		out.LayoutTrials = append(out.LayoutTrials, layoutTrialJSON{Threads: t.Threads, ImagesPerSec: t.ImagesPerSec, ImagesPerCPUSec: t.ImagesPerCPUSec})
	}
	var eng rate
	eng, out.Engine, err = benchEngineRate(ctx, m, eo, pb.workers, pb.batch, pb.phase)
	if err != nil {
		return err
	}
	pre := plan.Preprocess(cfg.Preprocess, m).WithDefaults()
	if err := pre.Validate(); err != nil {
		return badInput(fmt.Errorf("model %s: preprocessing: %w", m.Path, err))
	}
	var decCPU pipeline.StageCPU
	dec, err := benchDecodeRate(ctx, pb.video, pb.streams, pre, pb.phase, &decCPU)
	if err != nil {
		return err
	}
	prof, err := startCPUProfile(pb.cpuprofile)
	if err != nil {
		return err
	}
	run, err := benchPipelineRun(ctx, cfg, log)
	if perr := prof.stop(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}

	out.EngineImagesPerSec, out.EngineCores = eng.perSec(), eng.cores()
	out.DecodeFramesPerSec, out.DecodeCores = dec.perSec(), dec.cores()
	if dec.items > 0 {
		n := float64(dec.items)
		out.DecodePageFaultsPerFrame = float64(dec.faults) / n
		d, pp := decCPU.Get(pipeline.StageDecode), decCPU.Get(pipeline.StagePreprocess)
		out.DecodeStageCPUMsPerFrame = map[string]float64{"decode": ms(d) / n, "preprocess": ms(pp) / n, "other": ms(dec.cpu-d-pp) / n}
	}
	out.Frames, out.Seconds, out.FramesPerSec, out.PipelineCores = run.items, run.wall.Seconds(), run.perSec(), run.cores()
	if run.items > 0 {
		out.CPUMsPerFrame = run.cpu.Seconds() * 1000 / float64(run.items)
		out.PageFaultsPerFrame = float64(run.faults) / float64(run.items)
		out.StageCPUMsPerFrame = map[string]float64{}
		rest := out.CPUMsPerFrame
		for _, s := range pipeline.Stages() {
			v := run.stages[s].Seconds() * 1000 / float64(run.items)
			out.StageCPUMsPerFrame[s.String()] = v
			rest -= v
		}
		out.StageCPUMsPerFrame["other"] = rest
	}
	if n := float64(run.results); n > 0 {
		out.PreprocessMs, out.QueueMs, out.InferenceMsPerFrame = run.preprocess/n, run.queue/n, run.inference/n
		out.BatchFill = run.batchSizes / n / float64(pb.batch)
	}
	if e, d := eng.perCore(), dec.perCore(); e > 0 && d > 0 {
		out.LimitFramesPerSec = float64(out.Cores) / (1/e + 1/d)
		out.FractionOfLimit = out.FramesPerSec / out.LimitFramesPerSec
		out.PartsCPUMsPerFrame = 1000/e + 1000/d
		if out.CPUMsPerFrame > 0 {
			out.CPUEfficiency = out.PartsCPUMsPerFrame / out.CPUMsPerFrame
		}
	}
	if pb.asJSON {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s on %s, %d stream(s) of %s, %d worker(s) x %d threads (%s), batch %d, %d cores:\n",
		m.Name, out.Engine, out.Streams, out.Video, out.Workers, out.Threads, out.Layout, out.Batch, out.Cores)
	for _, t := range out.LayoutTrials {
		fmt.Fprintf(w, "  layout trial:       %d thread(s): %.1f images/s, %.1f images per CPU second\n", t.Threads, t.ImagesPerSec, t.ImagesPerCPUSec)
	}
	fmt.Fprintf(w, "  pipeline:           %.1f frames/s (%d frames in %.2f s), CPU %.2f ms/frame on %.2f cores\n",
		out.FramesPerSec, out.Frames, out.Seconds, out.CPUMsPerFrame, out.PipelineCores)
	fmt.Fprintf(w, "  per frame:          preprocess %.2f ms, queue wait %.2f ms, inference %.2f ms (batch time / batch size), batch fill %.0f%%\n",
		out.PreprocessMs, out.QueueMs, out.InferenceMsPerFrame, 100*out.BatchFill)
	if c := out.StageCPUMsPerFrame; c != nil {
		fmt.Fprintf(w, "  CPU ms per frame:   decode %.2f, preprocess %.2f, inference %.2f, sink %.2f (each on its own thread), other threads %.2f\n",
			c["decode"], c["preprocess"], c["inference"], c["sink"], c["other"])
	}
	fmt.Fprintf(w, "  engine only:        %.1f images/s on %.2f cores\n", out.EngineImagesPerSec, out.EngineCores)
	fmt.Fprintf(w, "  decode+preprocess:  %.1f frames/s on %.2f cores\n", out.DecodeFramesPerSec, out.DecodeCores)
	if c := out.DecodeStageCPUMsPerFrame; c != nil {
		fmt.Fprintf(w, "    CPU ms per frame: decode %.2f, preprocess %.2f (each on its own thread), other threads %.2f\n", c["decode"], c["preprocess"], c["other"])
	}
	fmt.Fprintf(w, "  limit:              %.1f frames/s = %d / (1/%.1f + 1/%.1f) (rates per core); pipeline at %.0f%% of it\n",
		out.LimitFramesPerSec, out.Cores, eng.perCore(), dec.perCore(), 100*out.FractionOfLimit)
	fmt.Fprintf(w, "  CPU per frame:      parts alone %.2f ms, pipeline %.2f ms: CPU efficiency %.0f%%\n",
		out.PartsCPUMsPerFrame, out.CPUMsPerFrame, 100*out.CPUEfficiency)
	fmt.Fprintf(w, "  page faults:        %.1f per frame in the pipeline, %.1f decoding alone\n", out.PageFaultsPerFrame, out.DecodePageFaultsPerFrame)
	return nil
}

// rate is what one phase did: items in wall time, using cpu time of the process.
type rate struct {
	items     int
	wall, cpu time.Duration
	faults    int64 // minor page faults of the process (getrusage ru_minflt)
}

func (r rate) perSec() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.items) / r.wall.Seconds()
}

// cores is the phase's CPU time over its wall time.
func (r rate) cores() float64 {
	if r.wall <= 0 {
		return 0
	}
	return r.cpu.Seconds() / r.wall.Seconds()
}

// perCore is items per CPU second: the rate over the cores it used.
func (r rate) perCore() float64 {
	if r.cpu <= 0 {
		return 0
	}
	return float64(r.items) / r.cpu.Seconds()
}

// processCPU returns the process's user+sys CPU time so far.
func processCPU() time.Duration {
	cpu, _ := processUsage()
	return cpu
}

// processUsage returns the process's user+sys CPU time and minor page faults so far.
func processUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

// measure runs f and returns its wall and CPU time.
func measure(f func() (int, error)) (rate, error) {
	c0, f0 := processUsage()
	t0 := time.Now()
	n, err := f()
	wall := time.Since(t0)
	c1, f1 := processUsage()
	return rate{items: n, wall: wall, cpu: c1 - c0, faults: f1 - f0}, err
}

// benchEngineRate opens workers engines (the pipeline's layout) and runs batches of random input on all of
// them side by side for d, after 3 untimed batches each.
func benchEngineRate(ctx context.Context, m *model.Model, opts engine.Options, workers, batch int, d time.Duration) (rate, string, error) {
	engines := make([]engine.Engine, 0, workers)
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	for range workers {
		e, err := openEngine(m, opts)
		if err != nil {
			return rate{}, "", err
		}
		engines = append(engines, e)
	}
	x := benchInput(m, batch)
	for _, e := range engines {
		for range 3 {
			if _, err := e.Run(ctx, x, batch); err != nil {
				return rate{}, "", err
			}
		}
	}
	r, err := measure(func() (int, error) {
		deadline := time.Now().Add(d)
		return runEach(len(engines), func(i int) (int, error) {
			e, in := engines[i], slices.Clone(x) // each engine its own input, as each worker has its own tensor
			n := 0
			var err error
			for time.Now().Before(deadline) && err == nil {
				if _, err = e.Run(ctx, in, batch); err == nil {
					n += batch
				}
			}
			return n, err
		})
	})
	return r, string(engines[0].Info().Backend), err
}

// benchDecodeRate reads the video in streams goroutines for d, each decoding with gocv VideoCapture (reopened
// at the end of the file) and preprocessing every frame into its own tensor.
func benchDecodeRate(ctx context.Context, video string, streams int, pre preprocess.Options, d time.Duration, cpu *pipeline.StageCPU) (rate, error) {
	return measure(func() (int, error) {
		deadline := time.Now().Add(d)
		return runEach(streams, func(int) (int, error) { return decodeUntil(ctx, video, pre, deadline, cpu) })
	})
}

// runEach runs f(0) ... f(n-1) in goroutines of their own and returns the sum of their counts and the
// first error any of them returned.
func runEach(n int, f func(i int) (int, error)) (int, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards total and first
		total int
		first error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := f(i)
			mu.Lock()
			defer mu.Unlock()
			total += c
			if first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	return total, first
}

// decodeUntil is one decode-only stream: it returns the frames it decoded and preprocessed before deadline.
func decodeUntil(ctx context.Context, video string, pre preprocess.Options, deadline time.Time, cpu *pipeline.StageCPU) (int, error) {
	p, err := preprocess.New(pre)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	dst := make([]float32, p.TensorLen())
	frame := gocv.NewMat()
	defer frame.Close()
	n := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		vc, err := gocv.VideoCaptureFile(video)
		if err != nil {
			return n, badInput(fmt.Errorf("--video %s: %w", video, err))
		}
		read := 0
		for time.Now().Before(deadline) && readFrame(vc, &frame, cpu) && !frame.Empty() {
			span := cpu.Start(pipeline.StagePreprocess)
			_, err := p.Into(dst, frame)
			span.End()
			if err != nil {
				vc.Close()
				return n, fmt.Errorf("--video %s: preprocess: %w", video, err)
			}
			read++
		}
		vc.Close()
		n += read
		if read == 0 && time.Now().Before(deadline) {
			return n, badInput(fmt.Errorf("--video %s: no frame OpenCV can decode", video))
		}
	}
	return n, ctx.Err()
}

// readFrame reads the next frame of vc into frame, counting the thread's CPU time as StageDecode.
func readFrame(vc *gocv.VideoCapture, frame *gocv.Mat, cpu *pipeline.StageCPU) bool {
	span := cpu.Start(pipeline.StageDecode)
	defer span.End()
	return vc.Read(frame)
}

// pipelineRun is what the pipeline run measured: the frames delivered after Start returned, and the sums of
// every result's timings in milliseconds.
type pipelineRun struct {
	rate
	results                      int
	preprocess, queue, inference float64
	batchSizes                   float64                          // sum over results of their batch's size
	stages                       map[pipeline.Stage]time.Duration // CPU per stage during the run
}

// benchPipelineRun runs the pipeline of cfg until its file streams end.
func benchPipelineRun(ctx context.Context, cfg *config.Config, log *slog.Logger) (pipelineRun, error) {
	var (
		mu  sync.Mutex // guards run's sums, written by the sink goroutine
		run pipelineRun
	)
	p, err := sestream.New(cfg, sestream.Options{Logger: log, NoNATS: true, OnFrame: func(f sestream.FrameOutput) {
		t := f.Result.Timings
		mu.Lock()
		defer mu.Unlock()
		run.results++
		run.preprocess += t.Preprocess
		run.queue += t.Queue
		if s := f.Result.Batch.Size; s > 0 {
			run.inference += t.Inference / float64(s)
			run.batchSizes += float64(s)
		}
	}})
	if err != nil {
		return run, badInput(err)
	}
	if err := p.Start(ctx); err != nil {
		return run, err
	}
	mu.Lock()
	before := run.results
	mu.Unlock()
	stagesBefore := stageCPU(p.StageCPU())
	stop := make(chan struct{}) // closed when Wait returned
	closed := make(chan struct{})
	go func() { // on interrupt, drain and stop the pipeline as `run` does
		defer close(closed)
		select {
		case <-ctx.Done():
			p.Close(context.Background())
		case <-stop:
		}
	}()
	r, err := measure(func() (int, error) { return 0, p.Wait() })
	close(stop)
	<-closed
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return run, err
	}
	mu.Lock()
	defer mu.Unlock()
	r.items = run.results - before
	run.rate = r
	run.stages = stageCPU(p.StageCPU())
	for s, d := range stagesBefore {
		run.stages[s] -= d
	}
	return run, nil
}

// stageCPU reads every stage's CPU time.
func stageCPU(c *pipeline.StageCPU) map[pipeline.Stage]time.Duration {
	m := map[pipeline.Stage]time.Duration{}
	for _, s := range pipeline.Stages() {
		m[s] = c.Get(s)
	}
	return m
}
