package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/capture"
	"github.com/sestream/sestream/stages/preprocess"
)

// DefaultResultTopK is the number of classes a result lists when Options.TopK is 0.
const DefaultResultTopK = 5

// Options configure an inference worker.
type Options struct {
	// Model is the loaded model; every worker shares it read-only.
	Model *model.Model
	// Engine configures the worker's own engine session; MaxBatch must be the batcher's max size.
	Engine engine.Options
	// Preprocess turns each frame into the model's input; see preprocess.Options.
	Preprocess preprocess.Options
	// Labels name the model's classes; empty results carry raw outputs instead of labelled classes.
	Labels []string
	// TopK is the number of classes per result (0 means DefaultResultTopK).
	TopK int
	// GateTopK is the number of largest gates listed per SE block (attention.top_k).
	GateTopK int
	// Thumbnails, when not nil, receives each frame before its Mat is closed and makes rate-limited JPEG
	// thumbnails of some of them; nil makes none. One Thumbnailer is shared by all workers.
	Thumbnails *Thumbnailer
	// CPU, when not nil, counts the worker thread's CPU time in preprocessing and in the engine's Run
	// (pipeline.StagePreprocess, StageInference).
	CPU *pipeline.StageCPU
}

// Class is one entry of a frame's top-k.
type Class struct {
	Index int
	Label string
	// Score is the softmax probability of the class (the output itself when it already is a distribution).
	Score float32
}

// FrameResult is what inference made of one frame.
type FrameResult struct {
	// Info is the frame's identity and timings (Preprocess, QueueWait and Inference filled).
	Info pipeline.FrameInfo
	// Err is set when the frame could not be preprocessed or inferred; the other fields are then empty.
	Err error
	// Transform maps tensor coordinates back to the frame.
	Transform preprocess.Transform
	// Top are the best classes, best first (empty when the model has no labels).
	Top []Class
	// Outputs are the raw rows of each model output, in model output order (always set, for consumers of
	// unlabelled models and for tests).
	Outputs [][]float32
	// Gates are the gate vectors of each SE block, in model.Blocks order; Stats their statistics, and
	// StatsErr a non-nil error for a block whose gates were not valid numbers (NaN, Inf).
	Gates    [][]float32
	Stats    []se.Stats
	StatsErr []error
}

// BatchResult is the outcome of one batch, frames in batch order.
type BatchResult struct {
	// ID and Size identify the batch (Size counts every frame, failed ones too).
	ID   uint64
	Size int
	// Engine is the backend that ran the batch.
	Engine string
	// Inference is the engine's wall time for the batch.
	Inference time.Duration
	Frames    []FrameResult
}

// Worker preprocesses a batch of frames straight into its batch tensor, runs its own engine session on
// it, and turns the outputs and gates into per-frame results. It is a pipeline.Worker: one goroutine uses it.
type Worker struct {
	opts    Options
	pre     *preprocess.Preprocessor
	eng     engine.Engine
	input   []float32 // MaxBatch * C*H*W, NCHW
	slot    int       // C*H*W
	release func(*pipeline.Batch[capture.Frame])
	now     func() time.Time
}

// NewWorker opens the worker's engine and preprocessor. release is called with every batch once its
// frames' Mats are closed, so the batcher can reuse it; it may be nil.
func NewWorker(opts Options, release func(*pipeline.Batch[capture.Frame])) (*Worker, error) {
	if opts.Model == nil {
		return nil, errors.New("infer: no model")
	}
	if opts.TopK == 0 {
		opts.TopK = DefaultResultTopK
	}
	pre, err := preprocess.New(opts.Preprocess)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	pp := pre.Options()
	if c := modelDim(opts.Model, 1); c > 0 && c != int64(pp.Channels()) {
		pre.Close()
		return nil, fmt.Errorf("infer: model %s wants %d input channels but preprocess.color %q gives %d", opts.Model.Name, c, pp.Color, pp.Channels())
	}
	if h, w := modelDim(opts.Model, 2), modelDim(opts.Model, 3); (h > 0 && h != int64(pp.Height)) || (w > 0 && w != int64(pp.Width)) {
		pre.Close()
		return nil, fmt.Errorf("infer: model %s wants %dx%d input (HxW) but preprocess gives %dx%d", opts.Model.Name, h, w, pp.Height, pp.Width)
	}
	eng, err := engine.Open(opts.Model, opts.Engine)
	if err != nil {
		pre.Close()
		return nil, err
	}
	maxBatch := eng.Info().MaxBatch
	return &Worker{
		opts:    opts,
		pre:     pre,
		eng:     eng,
		slot:    pre.TensorLen(),
		input:   make([]float32, maxBatch*pre.TensorLen()),
		release: release,
		now:     time.Now,
	}, nil
}

// modelDim returns dimension i of the model input, or -1 when it is symbolic or unknown.
func modelDim(m *model.Model, i int) int64 {
	if len(m.Input.Shape) <= i {
		return -1
	}
	return m.Input.Shape[i]
}

// Engine describes the worker's engine.
func (w *Worker) Engine() engine.Info { return w.eng.Info() }

// Close releases the engine and the preprocessor.
func (w *Worker) Close() error {
	return errors.Join(w.eng.Close(), w.pre.Close())
}

// Process runs one batch. Every frame is released (capture.Frame.Release) before Process returns; frames that fail to preprocess
// are reported with Err and left out of the engine batch.
func (w *Worker) Process(ctx context.Context, b *pipeline.Batch[capture.Frame]) *BatchResult {
	start := w.now()
	res := &BatchResult{ID: b.ID, Size: len(b.Items), Engine: string(w.eng.Info().Backend), Frames: make([]FrameResult, len(b.Items))}
	n := 0
	rows := make([]int, len(b.Items)) // rows[i] is frame i's row in the engine batch, -1 when it failed
	span := w.opts.CPU.Start(pipeline.StagePreprocess)
	for i, f := range b.Items {
		fr := &res.Frames[i]
		fr.Info = f.Info
		// A frame shrunk on its capture thread (Frame.Small) comes with that part of its preprocessing timed.
		fr.Info.Timings.QueueWait = start.Sub(f.Info.Captured) - f.Info.Timings.Preprocess
		t0 := w.now()
		var tr preprocess.Transform
		var err error
		if f.Small.Ptr() != nil { // already scaled on the capture thread
			tr, err = w.pre.Into(w.input[n*w.slot:(n+1)*w.slot], f.Small)
			tr = tr.Rescale(f.Mat.Cols(), f.Mat.Rows())
		} else {
			tr, err = w.pre.Into(w.input[n*w.slot:(n+1)*w.slot], f.Mat)
		}
		fr.Info.Timings.Preprocess += w.now().Sub(t0)
		if w.opts.Thumbnails != nil { // after the timing: a thumbnail is not preprocessing
			w.opts.Thumbnails.Offer(f.Info, f.Mat)
		}
		f.Release()
		if err != nil {
			fr.Err = fmt.Errorf("stream %s frame %d: %w", f.Info.Stream, f.Info.Seq, err)
			rows[i] = -1
			continue
		}
		fr.Transform = tr
		rows[i] = n
		n++
	}
	span.End()
	if w.release != nil {
		w.release(b)
	}
	if n == 0 {
		return res
	}
	t0 := w.now()
	span = w.opts.CPU.Start(pipeline.StageInference)
	out, err := w.eng.Run(ctx, w.input[:n*w.slot], n)
	span.End()
	res.Inference = w.now().Sub(t0)
	for i := range res.Frames {
		fr := &res.Frames[i]
		if rows[i] < 0 {
			continue
		}
		if err != nil {
			fr.Err = fmt.Errorf("stream %s frame %d: inference: %w", fr.Info.Stream, fr.Info.Seq, err)
			continue
		}
		fr.Info.Timings.Inference = res.Inference
		w.fill(fr, out, rows[i])
	}
	return res
}

// fill copies row r of the engine's result into fr and computes its classes and gate statistics.
func (w *Worker) fill(fr *FrameResult, out *engine.Result, r int) {
	fr.Outputs = make([][]float32, len(out.Outputs))
	for j, t := range out.Outputs {
		fr.Outputs[j] = append([]float32(nil), t.Row(r)...)
	}
	if len(w.opts.Labels) > 0 && len(fr.Outputs) > 0 {
		fr.Top = topClasses(fr.Outputs[0], w.opts.Labels, w.opts.TopK)
	}
	fr.Gates = make([][]float32, len(out.Gates))
	fr.Stats = make([]se.Stats, len(out.Gates))
	fr.StatsErr = make([]error, len(out.Gates))
	for j, t := range out.Gates {
		fr.Gates[j] = append([]float32(nil), t.Row(r)...)
		fr.StatsErr[j] = se.ComputeStats(fr.Gates[j], w.opts.GateTopK, &fr.Stats[j])
	}
}

// topClasses returns the k best classes of one output row. Scores are softmax probabilities, unless the row
// already is a probability distribution (every value in [0,1], summing to 1), in which case it is used as is.
func topClasses(row []float32, labels []string, k int) []Class {
	probs := make([]float32, len(row))
	sum, isDist := 0.0, true
	for _, v := range row {
		if v < 0 || v > 1 {
			isDist = false
		}
		sum += float64(v)
	}
	if isDist && math.Abs(sum-1) < 1e-3 {
		copy(probs, row)
	} else {
		maxV := float32(math.Inf(-1))
		for _, v := range row {
			maxV = max(maxV, v)
		}
		total := 0.0
		for i, v := range row {
			e := math.Exp(float64(v - maxV))
			probs[i] = float32(e)
			total += e
		}
		for i := range probs {
			probs[i] = float32(float64(probs[i]) / total)
		}
	}
	if k > len(probs) {
		k = len(probs)
	}
	top := make([]Class, 0, k)
	for i, p := range probs {
		// insertion into the sorted top list; ties keep the lower index first
		pos := len(top)
		for pos > 0 && top[pos-1].Score < p {
			pos--
		}
		if pos >= k {
			continue
		}
		if len(top) < k {
			top = append(top, Class{})
		}
		copy(top[pos+1:], top[pos:len(top)-1])
		label := ""
		if i < len(labels) {
			label = labels[i]
		}
		top[pos] = Class{Index: i, Label: label, Score: p}
	}
	return top
}
