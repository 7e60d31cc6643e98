package engine

import (
	"context"
	"errors"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/sestream/sestream/model"
)

// ortEngine runs a model with ONNX Runtime. The SE gate tensors and extra outputs are added to the graph's
// outputs before the session is created. One buffer per fetched tensor is allocated for MaxBatch items; for
// each batch size n that Run sees, ONNX Runtime output tensors viewing the first n items of those buffers
// are created once and reused. The input tensor wraps the caller's slice without copying it; it is kept for
// the next Run with the same slice (a worker's pooled batch buffer) and replaced when the slice changes, so
// a steady pipeline allocates no tensors after warm-up.
type ortEngine struct {
	sh      shape
	info    Info
	session *ort.DynamicAdvancedSession
	runOpts *ort.RunOptions // carries the terminate flag that cancels a Run in progress
	fetches []fetch
	batches []*ortBatch // index n-1; nil until batch size n is first run
	result  Result
	closed  bool
}

// fetch is one tensor the engine asks its backend for: a session output (ORT) or layer (OpenCV).
type fetch struct {
	name  string
	dims  []int64 // dimensions after the batch dimension; nil until known
	size  int     // values per batch item (product of dims)
	data  []float32
	dests []*Tensor // result tensors this fetch fills
}

// ortBatch holds the tensors for one batch size.
type ortBatch struct {
	inputs  []ort.Value // the input tensor, wrapping the caller's slice; nil until the first Run at this size
	in      *float32    // first value of the slice inputs[0] wraps
	outputs []ort.Value
}

func openORT(m *model.Model, sh shape, opts Options) (_ Engine, err error) {
	path, _, err := FindLibrary(opts.Library)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	version, err := acquireORT(path)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e := &ortEngine{sh: sh, info: Info{Backend: ONNXRuntime, Version: version, Library: path,
		Threads: opts.Threads, MaxBatch: sh.maxBatch}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.fetches, e.result = plan(m, opts.ExtraOutputs, sh.maxBatch)
	var extra []string
	for _, f := range e.fetches {
		extra = append(extra, f.name)
	}
	data, err := m.ForONNXRuntime(extra...)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("engine: model %s: ONNX Runtime session options: %w", sh.model, err)
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, fmt.Errorf("engine: model %s: setting %d threads: %w", sh.model, opts.Threads, err)
		}
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("engine: model %s: setting inter-op threads: %w", sh.model, err)
	}
	// Idle intra-op threads sleep instead of spinning: a pipeline runs several engines (one per worker) and
	// shares the cores with capture and preprocessing, where spinning threads steal the CPU the others need.
	// Measured on the 2-core project machine under load: 2-3x the images/s of spinning (docs/BENCHMARKS.md).
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, fmt.Errorf("engine: model %s: disabling thread spinning: %w", sh.model, err)
	}
	names := make([]string, len(e.fetches))
	for i, f := range e.fetches {
		names[i] = f.name
	}
	e.session, err = ort.NewDynamicAdvancedSessionWithONNXData(data, []string{m.Input.Name}, names, so)
	if err != nil {
		return nil, fmt.Errorf("engine: model %s: ONNX Runtime cannot load it: %w", sh.model, err)
	}
	if e.runOpts, err = ort.NewRunOptions(); err != nil {
		return nil, fmt.Errorf("engine: model %s: ONNX Runtime run options: %w", sh.model, err)
	}
	if err := e.probe(); err != nil {
		return nil, err
	}
	for i := range e.fetches {
		f := &e.fetches[i]
		f.data = make([]float32, sh.maxBatch*f.size)
	}
	e.batches = make([]*ortBatch, sh.maxBatch)
	return e, nil
}

// probe runs one item of zeros with outputs allocated by ONNX Runtime to learn every fetched tensor's
// per-item shape, and checks that each has the batch as its first dimension and that gates have the
// block's channel count.
func (e *ortEngine) probe() error {
	in, err := ort.NewTensor(ort.NewShape(1, int64(e.sh.c), int64(e.sh.h), int64(e.sh.w)), make([]float32, e.sh.item))
	if err != nil {
		return fmt.Errorf("engine: model %s: probe input tensor: %w", e.sh.model, err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(e.fetches))
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	if err := e.session.Run([]ort.Value{in}, outs); err != nil {
		return fmt.Errorf("engine: model %s: ONNX Runtime cannot run one item of %dx%dx%d: %w", e.sh.model, e.sh.c, e.sh.h, e.sh.w, err)
	}
	for i, o := range outs {
		if _, ok := o.(*ort.Tensor[float32]); !ok {
			return fmt.Errorf("engine: model %s: tensor %q is not float32", e.sh.model, e.fetches[i].name)
		}
		if err := e.fetches[i].learn(e.sh.model, o.GetShape(), 1); err != nil {
			return err
		}
	}
	return nil
}

// learn records the per-item shape of f from its shape at batch n, and checks it against what was known.
func (f *fetch) learn(modelName string, s []int64, n int) error {
	if len(s) == 0 || s[0] != int64(n) {
		return fmt.Errorf("engine: model %s: tensor %q has shape %v at batch %d, want the batch as its first dimension",
			modelName, f.name, s, n)
	}
	size := 1
	for _, d := range s[1:] {
		size *= int(d)
	}
	if f.dims != nil {
		if size != f.size {
			return fmt.Errorf("engine: model %s: tensor %q has shape %v at batch %d, but %v per item before",
				modelName, f.name, s, n, f.dims)
		}
		return nil
	}
	f.dims, f.size = append([]int64(nil), s[1:]...), size
	for _, t := range f.dests {
		if t.Shape == nil {
			t.Shape = append([]int64{int64(n)}, f.dims...)
		} else if want := int(t.Shape[1]); want != size {
			return fmt.Errorf("engine: model %s: gate tensor %q has %d values per item (shape %v), want %d channels",
				modelName, f.name, size, s, want)
		}
	}
	return nil
}

// plan lists the tensors to fetch (unique names: outputs, then gates, then extras) and the Result that
// they fill. Gate tensors get shape [N, Channels]; the others get their shape when it is first seen.
func plan(m *model.Model, extras []string, maxBatch int) ([]fetch, Result) {
	var fetches []fetch
	index := map[string]int{}
	add := func(name string) int {
		if i, ok := index[name]; ok {
			return i
		}
		index[name] = len(fetches)
		fetches = append(fetches, fetch{name: name})
		return len(fetches) - 1
	}
	var outs, gates, extra []int
	for _, o := range m.Outputs {
		outs = append(outs, add(o.Name))
	}
	for _, b := range m.Blocks {
		gates = append(gates, add(b.GateTensor))
	}
	for _, x := range extras {
		extra = append(extra, add(x))
	}
	r := Result{
		Outputs: make([]Tensor, len(outs)),
		Gates:   make([]Tensor, len(gates)),
		Extra:   make([]Tensor, len(extra)),
	}
	for i, k := range outs {
		r.Outputs[i].Name = m.Outputs[i].Name
		fetches[k].dests = append(fetches[k].dests, &r.Outputs[i])
	}
	for i, k := range gates {
		r.Gates[i] = Tensor{Name: m.Blocks[i].Name, Shape: []int64{int64(maxBatch), int64(m.Blocks[i].Channels)}}
		fetches[k].dests = append(fetches[k].dests, &r.Gates[i])
	}
	for i, k := range extra {
		r.Extra[i].Name = extras[i]
		fetches[k].dests = append(fetches[k].dests, &r.Extra[i])
	}
	return fetches, r
}

// fill points the result tensors at the first n items of each fetch's buffer.
func fill(r *Result, fetches []fetch, n int) {
	r.N = n
	for i := range fetches {
		f := &fetches[i]
		for _, t := range f.dests {
			t.Shape[0] = int64(n)
			t.Data = f.data[:n*f.size]
		}
	}
}

func (e *ortEngine) batch(n int) (*ortBatch, error) {
	if b := e.batches[n-1]; b != nil {
		return b, nil
	}
	b := &ortBatch{}
	for _, f := range e.fetches {
		t, err := ort.NewTensor(ort.NewShape(append([]int64{int64(n)}, f.dims...)...), f.data[:n*f.size])
		if err != nil {
			b.destroy()
			return nil, fmt.Errorf("engine: model %s: tensor %q for batch %d: %w", e.sh.model, f.name, n, err)
		}
		b.outputs = append(b.outputs, t)
	}
	e.batches[n-1] = b
	return b, nil
}

// wrap points the batch's input tensor at input, creating a new tensor only when input is not the slice the
// current one wraps. The tensor is only read during Run.
func (b *ortBatch) wrap(sh shape, input []float32, n int) error {
	if b.in == &input[0] {
		return nil
	}
	for _, v := range b.inputs {
		v.Destroy()
	}
	b.inputs, b.in = nil, nil
	t, err := ort.NewTensor(ort.NewShape(int64(n), int64(sh.c), int64(sh.h), int64(sh.w)), input)
	if err != nil {
		return fmt.Errorf("engine: model %s: input tensor for batch %d: %w", sh.model, n, err)
	}
	b.inputs, b.in = []ort.Value{t}, &input[0]
	return nil
}

func (b *ortBatch) destroy() {
	for _, v := range b.inputs {
		v.Destroy()
	}
	for _, v := range b.outputs {
		v.Destroy()
	}
	b.inputs, b.in, b.outputs = nil, nil, nil
}

func (e *ortEngine) Run(ctx context.Context, input []float32, n int) (*Result, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if err := e.sh.check(ctx, input, n); err != nil {
		return nil, err
	}
	b, err := e.batch(n)
	if err != nil {
		return nil, err
	}
	if err := b.wrap(e.sh, input, n); err != nil {
		return nil, err
	}
	if err := e.run(ctx, b); err != nil {
		return nil, fmt.Errorf("engine: model %s: ONNX Runtime run at batch %d: %w", e.sh.model, n, err)
	}
	fill(&e.result, e.fetches, n)
	return &e.result, nil
}

// run runs the session; when ctx is canceled during the run, ONNX Runtime is told to stop and run returns
// ctx's error.
func (e *ortEngine) run(ctx context.Context, b *ortBatch) error {
	if ctx.Done() == nil {
		return e.session.RunWithOptions(b.inputs, b.outputs, e.runOpts)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		e.runOpts.Terminate()
	})
	err := e.session.RunWithOptions(b.inputs, b.outputs, e.runOpts)
	if stop() {
		return err
	}
	<-fired // the flag is set; clear it for the next Run
	if uerr := e.runOpts.UnsetTerminate(); uerr != nil {
		return errors.Join(ctx.Err(), uerr)
	}
	return fmt.Errorf("%w (%v)", ctx.Err(), err)
}

func (e *ortEngine) Info() Info { return e.info }

func (e *ortEngine) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	for _, b := range e.batches {
		if b != nil {
			b.destroy()
		}
	}
	e.batches = nil
	var errs []error
	if e.session != nil {
		errs = append(errs, e.session.Destroy())
		e.session = nil
	}
	if e.runOpts != nil {
		errs = append(errs, e.runOpts.Destroy())
		e.runOpts = nil
	}
	errs = append(errs, releaseORT())
	return errors.Join(errs...)
}
