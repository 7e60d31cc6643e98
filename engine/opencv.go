package engine

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "cvprobe.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"unsafe"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"gocv.io/x/gocv"
	"google.golang.org/protobuf/proto"

	"github.com/sestream/sestream/model"
)

// OpenCV DNN backend and target names accepted in Options, mapped to OpenCV's enum values
// (cv::dnn::Backend, cv::dnn::Target in OpenCV 4.6).
var (
	cvBackends = map[string]int{"": 0, "default": 0, "halide": 1, "openvino": 2, "inference_engine": 2,
		"opencv": 3, "vulkan": 4, "vkcom": 4, "cuda": 5, "webnn": 6, "timvx": 7}
	cvTargets = map[string]int{"": 0, "default": 0, "cpu": 0, "opencl": 1, "opencl_fp16": 2, "vpu": 3, "myriad": 3,
		"vulkan": 4, "fpga": 5, "cuda": 6, "cuda_fp16": 7, "hddl": 8, "npu": 9}
)

// cvEngine runs a model with OpenCV DNN through gocv. The graph is normalized by model.ForOpenCV with its
// batch dimension pinned to MaxBatch. Most SE graphs then run at every batch size up to the pinned one on
// that one net; but OpenCV 4.6 sizes Reshape, Unsqueeze and ReduceMean layers for the pinned batch only, so
// a graph with those gets, for each other batch size, its own net pinned to that size. Which case holds is
// found out per batch size on first use: every configuration is first imported and run on zeros by
// cvprobe.cpp inside try/catch, because an OpenCV exception raised through gocv aborts the process. SE
// gates are fetched with ForwardLayers("onnx_node!" + gate node).
type cvEngine struct {
	sh      shape
	info    Info
	m       *model.Model
	backend int
	target  int
	maxData []byte // the graph pinned to MaxBatch
	viaMax  []bool // index n-1: batch size n runs on nets[maxBatch-1] (checked by a probe)
	log     *slog.Logger
	nets    []*gocv.Net // index n-1
	inputs  []*gocv.Mat // index n-1: n x C x H x W float32 input blobs
	layers  []string    // OpenCV layer per fetch
	fetches []fetch
	result  Result
	closed  bool
}

func openOpenCV(m *model.Model, sh shape, opts Options) (_ Engine, err error) {
	b, ok := cvBackends[strings.ToLower(opts.OpenCVBackend)]
	if !ok {
		return nil, fmt.Errorf("engine: unknown OpenCV DNN backend %q, want one of %s", opts.OpenCVBackend, names(cvBackends))
	}
	t, ok := cvTargets[strings.ToLower(opts.OpenCVTarget)]
	if !ok {
		return nil, fmt.Errorf("engine: unknown OpenCV DNN target %q, want one of %s", opts.OpenCVTarget, names(cvTargets))
	}
	e := &cvEngine{sh: sh, m: m, backend: b, target: t, log: opts.Logger,
		nets: make([]*gocv.Net, sh.maxBatch), inputs: make([]*gocv.Mat, sh.maxBatch), viaMax: make([]bool, sh.maxBatch)}
	e.info = Info{Backend: OpenCV, Version: gocv.OpenCVVersion(), Threads: opts.Threads, MaxBatch: sh.maxBatch,
		Target: orDefault(opts.OpenCVBackend, "default") + "/" + orDefault(opts.OpenCVTarget, "cpu")}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	e.fetches, e.result = plan(m, opts.ExtraOutputs, sh.maxBatch)
	if e.maxData, err = m.ForOpenCV(sh.maxBatch); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if e.layers, err = layerNames(sh.model, e.maxData, m, e.fetches); err != nil {
		return nil, err
	}
	if opts.Threads > 0 {
		C.sestream_cv_set_threads(C.int(opts.Threads))
	}
	if err := e.probe(e.maxData, sh.maxBatch, true, false); err != nil {
		return nil, err
	}
	if err := e.load(e.maxData, sh.maxBatch); err != nil {
		return nil, err
	}
	e.viaMax[sh.maxBatch-1] = true
	return e, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func names(m map[string]int) string {
	var s []string
	for k := range m {
		if k != "" {
			s = append(s, k)
		}
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// layerNames maps each fetched tensor to the OpenCV layer that produces it: "onnx_node!" + the name of the
// ONNX node whose first output it is.
func layerNames(modelName string, data []byte, m *model.Model, fetches []fetch) ([]string, error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, fmt.Errorf("engine: model %s: reading the normalized graph: %w", modelName, err)
	}
	producer := map[string]string{}
	for _, n := range mp.GetGraph().GetNode() {
		if len(n.Output) > 0 && n.Name != "" {
			producer[n.Output[0]] = n.Name
		}
	}
	layers := make([]string, len(fetches))
	for i, f := range fetches {
		node, ok := producer[f.name]
		if !ok {
			return nil, fmt.Errorf("engine: model %s: tensor %q is not the first output of a named node; OpenCV cannot return it",
				modelName, f.name)
		}
		layers[i] = "onnx_node!" + node
	}
	return layers, nil
}

// probe imports data and runs it at batch n in cvprobe.cpp, where OpenCV exceptions are caught. With learn
// it records each fetched tensor's per-item shape; otherwise it checks the shapes against those recorded.
// quiet silences OpenCV's log for a probe whose failure is expected and handled.
func (e *cvEngine) probe(data []byte, n int, learn, quiet bool) error {
	cData := C.CBytes(data)
	defer C.free(cData)
	cNames := make([]*C.char, len(e.layers))
	for i, l := range e.layers {
		cNames[i] = C.CString(l)
	}
	defer func() {
		for _, p := range cNames {
			C.free(unsafe.Pointer(p))
		}
	}()
	pNames := (**C.char)(C.malloc(C.size_t(len(cNames)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(pNames))
	copy(unsafe.Slice(pNames, len(cNames)), cNames)
	ndims := make([]C.int, len(e.layers))
	dims := make([]C.int64_t, len(e.layers)*C.SESTREAM_CV_MAX_DIMS)
	msg := C.sestream_cv_probe(cData, C.size_t(len(data)), C.int(e.backend), C.int(e.target),
		C.int(n), C.int(e.sh.c), C.int(e.sh.h), C.int(e.sh.w), pNames, C.int(len(cNames)), &ndims[0], &dims[0], cBool(quiet))
	if msg != nil {
		defer C.free(unsafe.Pointer(msg))
		return fmt.Errorf("engine: model %s: OpenCV DNN (%s) cannot run it at batch %d: %s",
			e.sh.model, e.info.Target, n, strings.TrimSpace(C.GoString(msg)))
	}
	for i := range e.fetches {
		s := make([]int64, ndims[i])
		for d := range s {
			s[d] = int64(dims[i*C.SESTREAM_CV_MAX_DIMS+d])
		}
		f := &e.fetches[i]
		if !learn {
			if len(s) == 0 || s[0] != int64(n) {
				return fmt.Errorf("engine: model %s: layer %s has shape %v at batch %d", e.sh.model, e.layers[i], s, n)
			}
			continue
		}
		if err := f.learn(e.sh.model, s, n); err != nil {
			return err
		}
		if f.data == nil {
			f.data = make([]float32, e.sh.maxBatch*f.size)
		}
	}
	return nil
}

// load creates the gocv net for batch size n from data (already probed).
func (e *cvEngine) load(data []byte, n int) error {
	net, err := gocv.ReadNetFromONNXBytes(data)
	if err != nil {
		return fmt.Errorf("engine: model %s: OpenCV DNN cannot import it: %w", e.sh.model, err)
	}
	if err := net.SetPreferableBackend(gocv.NetBackendType(e.backend)); err != nil {
		net.Close()
		return err
	}
	if err := net.SetPreferableTarget(gocv.NetTargetType(e.target)); err != nil {
		net.Close()
		return err
	}
	e.nets[n-1] = &net
	return nil
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// net returns the net that runs batch size n. On the first Run at n it probes the MaxBatch net at n; when
// OpenCV cannot run that graph at n, it creates a net pinned to n.
func (e *cvEngine) net(n int) (*gocv.Net, error) {
	if e.viaMax[n-1] {
		return e.nets[e.sh.maxBatch-1], nil
	}
	if net := e.nets[n-1]; net != nil {
		return net, nil
	}
	if err := e.probe(e.maxData, n, false, true); err == nil {
		e.viaMax[n-1] = true
		return e.nets[e.sh.maxBatch-1], nil
	}
	e.log.Info("engine: OpenCV cannot run the graph pinned to the max batch at this batch size; loading a net for it",
		"model", e.m.Name, "batch", n, "max_batch", e.sh.maxBatch)
	data, err := e.m.ForOpenCV(n)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if err := e.probe(data, n, false, false); err != nil {
		return nil, err
	}
	if err := e.load(data, n); err != nil {
		return nil, err
	}
	return e.nets[n-1], nil
}

func (e *cvEngine) input(n int) (*gocv.Mat, error) {
	if m := e.inputs[n-1]; m != nil {
		return m, nil
	}
	m := gocv.NewMatWithSizes([]int{n, e.sh.c, e.sh.h, e.sh.w}, gocv.MatTypeCV32F)
	if m.Empty() {
		m.Close()
		return nil, fmt.Errorf("engine: model %s: cannot allocate the input blob for batch %d", e.sh.model, n)
	}
	e.inputs[n-1] = &m
	return &m, nil
}

func (e *cvEngine) Run(ctx context.Context, input []float32, n int) (*Result, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if err := e.sh.check(ctx, input, n); err != nil {
		return nil, err
	}
	net, err := e.net(n)
	if err != nil {
		return nil, err
	}
	blob, err := e.input(n)
	if err != nil {
		return nil, err
	}
	dst, err := blob.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("engine: model %s: input blob: %w", e.sh.model, err)
	}
	copy(dst, input)
	net.SetInput(*blob, "")
	outs := net.ForwardLayers(e.layers)
	defer func() {
		for i := range outs {
			outs[i].Close()
		}
	}()
	if len(outs) != len(e.fetches) {
		return nil, fmt.Errorf("engine: model %s: OpenCV returned %d blobs for %d layers", e.sh.model, len(outs), len(e.fetches))
	}
	for i := range e.fetches {
		f := &e.fetches[i]
		if got := outs[i].Total(); got != n*f.size {
			return nil, fmt.Errorf("engine: model %s: layer %s gave %d values at batch %d, want %d",
				e.sh.model, e.layers[i], got, n, n*f.size)
		}
		src, err := outs[i].DataPtrFloat32()
		if err != nil {
			return nil, fmt.Errorf("engine: model %s: layer %s: %w", e.sh.model, e.layers[i], err)
		}
		copy(f.data[:n*f.size], src)
	}
	fill(&e.result, e.fetches, n)
	return &e.result, nil
}

func (e *cvEngine) Info() Info { return e.info }

func (e *cvEngine) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	for i, m := range e.inputs {
		if m != nil {
			errs = append(errs, m.Close())
			e.inputs[i] = nil
		}
	}
	for i, n := range e.nets {
		if n != nil {
			errs = append(errs, n.Close())
			e.nets[i] = nil
		}
	}
	return errors.Join(errs...)
}
