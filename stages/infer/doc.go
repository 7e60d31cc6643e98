// Package infer runs batches of frames through an engine: each worker preprocesses a batch into its tensor, runs
// the model, and returns per-frame classes, outputs and SE gates with their statistics.
package infer
