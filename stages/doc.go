// Package stages holds the concrete pipeline stages, one sub-package per dependency world, in data-flow order:
// source (pure Go: source URLs, kinds, options, events and states), capture (gocv: reading frames),
// preprocess (gocv: frames to tensors), infer (the engines: batches to results) and natspub (nats.go and
// nats-server: publishing messages).
package stages
