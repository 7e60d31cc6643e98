package model

import (
	"errors"
	"fmt"
)

// Sentinels for the ways a model can be rejected. Every error from this package is an *Error
// that matches exactly one of them with errors.Is.
var (
	// ErrNotFile: the path does not exist, is a directory, or cannot be read.
	ErrNotFile = errors.New("not a readable file")
	// ErrEmpty: the file has no bytes.
	ErrEmpty = errors.New("empty file")
	// ErrNotONNX: the bytes are not an ONNX model (random bytes, text, a truncated file).
	ErrNotONNX = errors.New("not an ONNX model")
	// ErrNoGraph: the model has no graph.
	ErrNoGraph = errors.New("no graph")
	// ErrInput: the model has no image input, more than one input, or an input that is not float.
	ErrInput = errors.New("unsupported input")
	// ErrInputRank: the image input is not rank 4 (N,C,H,W).
	ErrInputRank = errors.New("input rank is not 4")
	// ErrOutput: the model has no output.
	ErrOutput = errors.New("no output")
	// ErrExternalData: a tensor's external data file is missing, unreadable, outside the model's
	// directory or shorter than its offset and length say, its external_data keys are malformed,
	// or the tensor also has raw_data.
	ErrExternalData = errors.New("external data unavailable")
	// ErrTensorData: a tensor stored in the model (an initializer, a Constant's value or another
	// tensor attribute, at any graph depth) has data that does not match its data type and dims:
	// a raw_data (or external data) byte count other than product(dims) x element size, a typed
	// field (float_data, int32_data, int64_data, double_data, uint64_data) with a value count
	// other than product(dims) (x 2 for complex types), data in a field its type does not use or
	// in two fields, a negative dimension, a dimension above 2^31-1, a size that overflows 63
	// bits, an unknown or unsupported data type (UNDEFINED, STRING, types after BFLOAT16), a
	// segment, an unknown data_location, or a sparse tensor.
	ErrTensorData = errors.New("tensor data does not match its type and shape")
	// ErrMetadata: a metadata_props value is malformed or disagrees with the graph.
	ErrMetadata = errors.New("malformed metadata")
	// ErrGraph: the graph's nodes are malformed (duplicate producers, cycles).
	ErrGraph = errors.New("malformed graph")
	// ErrTensor: a tensor asked for by name is not in the graph, or its data cannot be read.
	ErrTensor = errors.New("bad tensor")
	// ErrRewrite: a rewrite was asked with bad arguments or its result cannot be encoded.
	ErrRewrite = errors.New("cannot rewrite")
)

// Error is a model that could not be loaded, rewritten or read.
// Its message names the file and the problem:
//
//	model models/x.onnx: input "images" has rank 3, want 4 (N,C,H,W)
//	model m.onnx: initializer "conv1.weight": float32 [16 3 3 3] needs 1728 bytes, raw_data has 1000
type Error struct {
	// Path is the model's file path (or the name given to Parse).
	Path string
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// Detail says what is wrong, in words that name the input, tensor or key.
	Detail string
	// Cause is the underlying error, if any (an *fs.PathError, a protobuf error...).
	Cause error
}

func (e *Error) Error() string {
	msg := "model " + e.Path + ": " + e.Detail
	if e.Path == "" {
		msg = "model: " + e.Detail
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

func newError(path string, kind error, cause error, format string, args ...any) *Error {
	return &Error{Path: path, Kind: kind, Detail: fmt.Sprintf(format, args...), Cause: cause}
}
