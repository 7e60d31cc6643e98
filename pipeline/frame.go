package pipeline

import "time"

// FrameInfo is the identity of one video frame as it moves through the pipeline.
// It carries no pixels: stages pair it with their own payload (a gocv Mat, a tensor slot).
type FrameInfo struct {
	// Stream is the configured stream name; it is one NATS subject token.
	Stream string
	// Seq is the frame's sequence number within its stream, starting at 1. It grows by
	// one for every frame the source delivered, so frames dropped later show as gaps.
	Seq uint64
	// Captured is the wall-clock time at which the frame was read from the source.
	Captured time.Time
	// PTS is the frame's position on the source's timeline; valid only when HasPTS.
	PTS    time.Duration
	HasPTS bool
	// Width and Height are the frame's original size in pixels, before preprocessing.
	Width, Height int
	// Timings records how long the frame spent in each stage.
	Timings Timings
}

// Timings are per-stage durations for one frame. Zero means the stage has not run yet.
type Timings struct {
	// Preprocess is the time spent resizing and normalizing the frame into its tensor.
	Preprocess time.Duration
	// QueueWait is the time from the end of preprocessing to the start of inference,
	// spent in queues and in the batcher.
	QueueWait time.Duration
	// Inference is the wall time of the batch the frame was part of.
	Inference time.Duration
	// Publish is the time spent encoding and handing the frame's messages to the publisher.
	Publish time.Duration
}
