// Package pipeline is the generic streaming runtime: bounded queues with drop policies, a batcher, a worker pool, ordered delivery, graceful drain and per-stage counters.
package pipeline
