package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sestream/sestream/model"
)

// Backend names an inference backend, as written in config (engine.backend) and on the command line.
type Backend string

const (
	// ONNXRuntime runs the model with the ONNX Runtime shared library (see FindLibrary).
	ONNXRuntime Backend = "onnxruntime"
	// OpenCV runs the model with OpenCV's DNN module through gocv; it needs nothing beyond libopencv.
	OpenCV Backend = "opencv"
	// Auto picks ONNXRuntime when its library loads, else OpenCV, and logs which.
	Auto Backend = "auto"
)

// ParseBackend returns the Backend named s ("" means Auto).
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case ONNXRuntime, OpenCV, Auto:
		return b, nil
	case "":
		return Auto, nil
	}
	return "", fmt.Errorf("unknown engine backend %q, want onnxruntime, opencv or auto", s)
}

// Options configure an Engine. The zero value is a valid Auto engine for batches of 1.
type Options struct {
	// Backend selects the backend; "" means Auto.
	Backend Backend
	// Threads is the number of intra-op threads; 0 leaves the backend's default (all cores).
	// For OpenCV the setting is process-wide (cv::setNumThreads).
	Threads int
	// MaxBatch is the largest n Run accepts; 0 means 1.
	MaxBatch int
	// Library is the path of the ONNX Runtime shared library; "" searches for it (see FindLibrary).
	Library string
	// OpenCVBackend and OpenCVTarget choose OpenCV DNN's computation backend ("default", "opencv",
	// "openvino", "cuda", "vulkan", "halide", "timvx") and target device ("cpu", "opencl", "opencl_fp16",
	// "vpu", "vulkan", "fpga", "cuda", "cuda_fp16", "npu"); "" means default and cpu. A pair this OpenCV
	// build cannot run is an error at Open (except CUDA, which OpenCV itself falls back from to the CPU).
	OpenCVBackend, OpenCVTarget string
	// ExtraOutputs names intermediate tensors to return beside the outputs, e.g. the inputs U of the
	// SE blocks (se.BlockInfo.Input) for a self-check of the gates.
	ExtraOutputs []string
	// Logger receives the backend choice and warnings; nil discards them.
	Logger *slog.Logger
}

// Engine runs one model on batches. An Engine is not safe for concurrent use: each worker opens its own.
type Engine interface {
	// Run runs the first n items of input: input holds exactly n*C*H*W float32 values in NCHW order,
	// offset ((i*C+c)*H+h)*W+w, with 1 <= n <= MaxBatch. The returned Result and its slices are reused
	// by the next Run: callers copy what they keep. Run reads input only during the call (an engine may keep a
	// reference to it, to reuse its wrapper when the next Run passes the same slice). Canceling ctx stops an
	// ONNX Runtime run in progress; OpenCV cannot be interrupted and finishes the batch first.
	Run(ctx context.Context, input []float32, n int) (*Result, error)
	// Info describes the backend actually in use.
	Info() Info
	// Close releases the engine's sessions, tensors and Mats. Run after Close is an error.
	Close() error
}

// Info describes an open engine.
type Info struct {
	// Backend is the backend in use (never Auto).
	Backend Backend
	// Version is the ONNX Runtime library version, or the OpenCV version.
	Version string
	// Library is the ONNX Runtime library loaded; "" for OpenCV.
	Library string
	// Threads is the intra-op thread count asked for; 0 = the backend's default.
	Threads int
	// MaxBatch is the largest batch Run accepts.
	MaxBatch int
	// Target is OpenCV's "backend/target" pair; "" for ONNX Runtime.
	Target string
}

// Result holds the tensors of one Run. Every Data slice holds N rows, one per batch item, in batch order.
type Result struct {
	// N is the number of batch items.
	N int
	// Outputs are the model's outputs in model.Model.Outputs order; row size is the product of the
	// output's non-batch dimensions.
	Outputs []Tensor
	// Gates are the SE gate vectors in model.Model.Blocks order, each N x Channels, named by the block.
	Gates []Tensor
	// Extra are the tensors named in Options.ExtraOutputs, in that order, with their full shapes.
	Extra []Tensor
}

// Tensor is a named float32 tensor in C order.
type Tensor struct {
	Name string
	// Shape starts with the batch dimension N.
	Shape []int64
	Data  []float32
}

// Row returns the values of batch item i.
func (t Tensor) Row(i int) []float32 {
	n := int(t.Shape[0])
	size := len(t.Data) / n
	return t.Data[i*size : (i+1)*size]
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("engine is closed")

// Open creates an engine for m. With Backend Auto it tries ONNX Runtime first and falls back to OpenCV
// when the ONNX Runtime library cannot be found or loaded; it logs which backend it chose and why.
func Open(m *model.Model, opts Options) (Engine, error) {
	if m == nil {
		return nil, errors.New("engine: nil model")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	backend, err := ParseBackend(string(opts.Backend))
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 1
	}
	sh, err := newShape(m, opts)
	if err != nil {
		return nil, err
	}
	switch backend {
	case ONNXRuntime:
		return openORT(m, sh, opts)
	case OpenCV:
		return openOpenCV(m, sh, opts)
	}
	e, err := openORT(m, sh, opts)
	if err == nil {
		opts.Logger.Info("engine: using ONNX Runtime", "model", m.Name, "library", e.Info().Library,
			"version", e.Info().Version, "threads", opts.Threads, "max_batch", opts.MaxBatch)
		return e, nil
	}
	var le *LibraryError
	if !errors.As(err, &le) {
		return nil, err
	}
	opts.Logger.Warn("engine: ONNX Runtime is not available, falling back to OpenCV DNN", "model", m.Name, "reason", err)
	c, err := openOpenCV(m, sh, opts)
	if err != nil {
		return nil, err
	}
	opts.Logger.Info("engine: using OpenCV DNN", "model", m.Name, "version", c.Info().Version,
		"target", c.Info().Target, "max_batch", opts.MaxBatch)
	return c, nil
}

// shape is what both backends need to know about the model's tensors.
type shape struct {
	model    string
	maxBatch int
	c, h, w  int   // input item dimensions
	item     int   // c*h*w
	blocks   []int // channels per SE block
}

func newShape(m *model.Model, opts Options) (shape, error) {
	sh := shape{model: m.Path, maxBatch: opts.MaxBatch}
	if sh.model == "" {
		sh.model = m.Name
	}
	if opts.MaxBatch < 1 {
		return sh, fmt.Errorf("engine: model %s: max batch %d, want >= 1", sh.model, opts.MaxBatch)
	}
	if opts.Threads < 0 {
		return sh, fmt.Errorf("engine: model %s: threads %d, want >= 0", sh.model, opts.Threads)
	}
	in := m.Input
	if len(in.Shape) != 4 {
		return sh, fmt.Errorf("engine: model %s: input %q has shape %v, want rank 4 (N,C,H,W)", sh.model, in.Name, in.Shape)
	}
	if b := in.Shape[0]; b > 0 && int64(opts.MaxBatch) > b {
		return sh, fmt.Errorf("engine: model %s: input %q has a fixed batch size of %d, max batch %d needs a dynamic batch dimension",
			sh.model, in.Name, b, opts.MaxBatch)
	}
	c := in.Shape[1]
	hi, wi := m.InputSize()
	h, w := int64(hi), int64(wi)
	if c <= 0 || h <= 0 || w <= 0 {
		return sh, fmt.Errorf("engine: model %s: input %q has shape %v: channels, height and width must be fixed (or height and width set in the model's metadata)",
			sh.model, in.Name, in.Shape)
	}
	sh.c, sh.h, sh.w = int(c), int(h), int(w)
	sh.item = sh.c * sh.h * sh.w
	for _, b := range m.Blocks {
		sh.blocks = append(sh.blocks, b.Channels)
	}
	return sh, nil
}

// check validates the arguments of Run.
func (sh *shape) check(ctx context.Context, input []float32, n int) error {
	if n < 1 || n > sh.maxBatch {
		return fmt.Errorf("engine: model %s: batch of %d, want 1 to %d (max batch)", sh.model, n, sh.maxBatch)
	}
	if want := n * sh.item; len(input) != want {
		return fmt.Errorf("engine: model %s: input has %d values, want %d (batch %d x %d x %d x %d)",
			sh.model, len(input), want, n, sh.c, sh.h, sh.w)
	}
	return ctx.Err()
}
