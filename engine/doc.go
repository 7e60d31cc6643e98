// Package engine runs a CNN on batched NCHW tensors and returns its outputs and SE gate values.
package engine
