package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"gocv.io/x/gocv"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/internal/plan"
	"github.com/sestream/sestream/internal/sink"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/npy"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/capture"
	"github.com/sestream/sestream/stages/infer"
)

// inferJSON is the --json output of `sestream infer`: one row per batch item for every output and SE block;
// with --image also the result and attention messages the pipeline would publish for each image.
type inferJSON struct {
	Outputs   map[string][][]float32 `json:"outputs"`
	Gates     map[string][][]float32 `json:"gates"`
	Results   []*message.Result      `json:"results,omitempty"`
	Attention []*message.Attention   `json:"attention,omitempty"`
}

func newInferCmd() *cobra.Command {
	var (
		modelPath, tensorPath, backend, library string
		images                                  []string
		threads                                 int
		asJSON                                  bool
	)
	cmd := &cobra.Command{
		Use:   "infer --model MODEL (--tensor X.npy | --image FILE...) [--engine E] [--json]",
		Short: "Run a model once on a tensor or on images and print its outputs and SE gates",
		Long: `infer loads an ONNX model, runs it on one batch and prints the outputs and the SE gate vector of every
SE block, one row per batch item.

--tensor takes a float32 C-order .npy file of shape N x C x H x W (or C x H x W for one item) matching the
model's input. --image takes image files (repeat the flag or separate with commas); each is preprocessed as
the model's metadata says (size, color order, scale, mean, std, resize mode), with sestream's defaults for
what the metadata leaves out.

--json prints {"outputs":{"<name>":[[...]...]},"gates":{"<se block name>":[[...]...]}}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return badInput(errors.New("--model is required"))
			}
			if (tensorPath == "") == (len(images) == 0) {
				return badInput(errors.New("give exactly one of --tensor and --image"))
			}
			m, b, err := loadModel(modelPath, backend)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			eo := engine.Options{Backend: b, Threads: threads, Library: library, Logger: log}
			if len(images) > 0 {
				return inferImages(cmd, m, eo, images, asJSON)
			}
			x, n, err := readTensor(tensorPath, m)
			if err != nil {
				return badInput(err)
			}
			eo.MaxBatch = n
			e, err := openEngine(m, eo)
			if err != nil {
				return err
			}
			defer e.Close()
			r, err := e.Run(cmd.Context(), x, n)
			if err != nil {
				return err
			}
			if asJSON {
				return writeInferJSON(cmd.OutOrStdout(), r)
			}
			writeInferText(cmd.OutOrStdout(), m, e.Info(), r)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "ONNX model file")
	f.StringVar(&tensorPath, "tensor", "", "input tensor: float32 C-order .npy, N x C x H x W")
	f.StringSliceVar(&images, "image", nil, "input image file(s), preprocessed as the model's metadata says")
	f.StringVar(&backend, "engine", "auto", "inference backend: auto, onnxruntime or opencv")
	f.IntVar(&threads, "threads", 0, "intra-op threads (0 = the backend's default)")
	f.StringVar(&library, "library", "", "ONNX Runtime shared library (default: search, see engine.library)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// openEngine opens an engine for the CLI. A model the backend cannot load is bad input (exit code 2); a
// missing ONNX Runtime library is a failure of the installation (exit code 1).
func openEngine(m *model.Model, opts engine.Options) (engine.Engine, error) {
	e, err := engine.Open(m, opts)
	if err == nil {
		return e, nil
	}
	var le *engine.LibraryError
	if errors.As(err, &le) {
		return nil, err
	}
	return nil, badInput(err)
}

// readTensor reads a .npy input of shape N x C x H x W (or C x H x W) that matches the model's input.
func readTensor(path string, m *model.Model) ([]float32, int, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--tensor: %w", err)
	}
	shape := a.Shape
	if len(shape) == 3 {
		shape = append([]int{1}, shape...)
	}
	if len(shape) != 4 || shape[0] < 1 {
		return nil, 0, fmt.Errorf("--tensor %s: shape %v, want N x C x H x W with N >= 1", path, a.Shape)
	}
	in := m.Input.Shape
	for i := 1; i < 4; i++ {
		if in[i] > 0 && int64(shape[i]) != in[i] {
			return nil, 0, fmt.Errorf("--tensor %s: shape %v does not match model input %q %v", path, a.Shape, m.Input.Name, in)
		}
	}
	return a.Data, shape[0], nil
}

// inferImages runs the images through the pipeline's own stages: each is one frame of a batch that the
// pipeline's inference worker preprocesses (the preprocessing `run` resolves for the model) and runs, and whose
// results the pipeline's sink turns into the messages `run` would publish. Text output prints those messages
// as `sestream sub` does; --json prints the outputs and gates (see inferJSON) and the messages.
func inferImages(cmd *cobra.Command, m *model.Model, eo engine.Options, paths []string, asJSON bool) error {
	cfg := config.Default()
	frames := make([]capture.Frame, 0, len(paths))
	processed := false // from then on the worker has closed every frame's Mat
	defer func() {
		if !processed {
			for _, f := range frames {
				f.Mat.Close()
			}
		}
	}()
	for i, path := range paths {
		if st, err := os.Stat(path); err != nil {
			return badInput(fmt.Errorf("--image: %w", err))
		} else if st.IsDir() {
			return badInput(fmt.Errorf("--image %s: is a directory, want an image file", path))
		}
		img := gocv.IMRead(path, gocv.IMReadColor)
		if img.Empty() {
			img.Close()
			return badInput(fmt.Errorf("--image %s: not an image OpenCV can decode", path))
		}
		frames = append(frames, capture.Frame{Mat: img, Info: pipeline.FrameInfo{Stream: "image", Seq: uint64(i + 1),
			Captured: time.Now(), Width: img.Cols(), Height: img.Rows()}})
	}
	pre := plan.Preprocess(cfg.Preprocess, m).WithDefaults()
	if err := pre.Validate(); err != nil {
		return badInput(fmt.Errorf("model %s: preprocessing: %w", m.Path, err))
	}
	eo.MaxBatch = len(frames)
	w, err := infer.NewWorker(infer.Options{Model: m, Engine: eo, Preprocess: pre, Labels: m.Meta.Labels, GateTopK: cfg.Attention.TopK}, nil)
	if err != nil {
		var le *engine.LibraryError
		if errors.As(err, &le) {
			return err
		}
		return badInput(err)
	}
	defer w.Close()
	res := w.Process(cmd.Context(), &pipeline.Batch[capture.Frame]{ID: 1, Items: frames})
	processed = true
	for i, fr := range res.Frames {
		if fr.Err != nil {
			return badInput(fmt.Errorf("--image %s: %w", paths[i], fr.Err))
		}
	}
	var out inferJSON
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := sink.New(sink.Config{BootID: "infer", Model: message.Model{Name: m.Name, Digest: m.Digest}, Blocks: m.Blocks, MaxBatch: len(frames)},
		sink.Deps{Counters: pipeline.NewCounters(), Events: sink.NewEvents("infer", log, nil), Log: log,
			OnFrame: func(r *message.Result, a *message.Attention) {
				out.Results = append(out.Results, r)
				out.Attention = append(out.Attention, a)
			}})
	s.Handle(cmd.Context(), res)
	if !asJSON {
		for i := range out.Results {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", paths[i], message.Line(out.Results[i]))
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", paths[i], message.Line(out.Attention[i]))
		}
		return nil
	}
	out.Outputs, out.Gates = map[string][][]float32{}, map[string][][]float32{}
	for _, fr := range res.Frames {
		for j, o := range m.Outputs {
			out.Outputs[o.Name] = append(out.Outputs[o.Name], fr.Outputs[j])
		}
		for j, b := range m.Blocks {
			out.Gates[b.Name] = append(out.Gates[b.Name], fr.Gates[j])
		}
	}
	return encodeInferJSON(cmd.OutOrStdout(), out)
}

func rows(t engine.Tensor, n int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = t.Row(i)
	}
	return out
}

func writeInferJSON(w io.Writer, r *engine.Result) error {
	out := inferJSON{Outputs: map[string][][]float32{}, Gates: map[string][][]float32{}}
	for _, t := range r.Outputs {
		out.Outputs[t.Name] = rows(t, r.N)
	}
	for _, t := range r.Gates {
		out.Gates[t.Name] = rows(t, r.N)
	}
	return encodeInferJSON(w, out)
}

// encodeInferJSON writes out, refusing values JSON cannot carry.
func encodeInferJSON(w io.Writer, out inferJSON) error {
	for _, group := range []map[string][][]float32{out.Outputs, out.Gates} {
		for name, rs := range group {
			for _, row := range rs {
				for _, v := range row {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return fmt.Errorf("tensor %q holds %v, which JSON cannot carry", name, v)
					}
				}
			}
		}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}

func writeInferText(w io.Writer, m *model.Model, info engine.Info, r *engine.Result) {
	fmt.Fprintf(w, "model %s, engine %s %s, batch %d\n", m.Name, info.Backend, info.Version, r.N)
	for i := range r.N {
		fmt.Fprintf(w, "item %d\n", i)
		for _, t := range r.Outputs {
			row := t.Row(i)
			idx := make([]int, len(row))
			for k := range idx {
				idx[k] = k
			}
			sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
			fmt.Fprintf(w, "  output %s %v, top:", t.Name, t.Shape[1:])
			for _, k := range idx[:min(5, len(idx))] {
				label := ""
				if k < len(m.Meta.Labels) {
					label = " " + m.Meta.Labels[k]
				}
				fmt.Fprintf(w, " [%d%s %.4g]", k, label, row[k])
			}
			fmt.Fprintln(w)
		}
		for _, t := range r.Gates {
			row := t.Row(i)
			lo, hi, sum := float32(math.Inf(1)), float32(math.Inf(-1)), 0.0
			for _, v := range row {
				lo, hi, sum = min(lo, v), max(hi, v), sum+float64(v)
			}
			fmt.Fprintf(w, "  gates %s: %d channels, mean %.4f, min %.4f, max %.4f\n", t.Name, len(row), sum/float64(len(row)), lo, hi)
		}
	}
}

// loadModel reads --model and parses --engine for infer and bench; either being bad is the user's error.
func loadModel(path, backend string) (*model.Model, engine.Backend, error) {
	b, err := engine.ParseBackend(backend)
	if err != nil {
		return nil, "", badInput(fmt.Errorf("--engine: %w", err))
	}
	m, err := model.Load(path)
	if err != nil {
		return nil, "", badInput(err)
	}
	return m, b, nil
}
