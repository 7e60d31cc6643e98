package sestream

import (
	"context"
	"errors"
	"fmt"
	"image"
	"time"

	"gocv.io/x/gocv"
)

// ErrBadFrame: the frame given to Push is nil, empty, or not 8-bit with 1, 3 or 4 channels.
var ErrBadFrame = errors.New("bad frame")

// PushStatus says what happened to a pushed frame.
type PushStatus int

const (
	// Queued: the frame is in the stream's queue and will be processed (under drop_oldest it may still be
	// evicted by a newer frame; that is counted as dropped).
	Queued PushStatus = iota
	// Dropped: the queue was full and its policy (drop_newest) dropped this frame; it was counted.
	Dropped
)

// String returns "queued" or "dropped".
func (s PushStatus) String() string {
	if s == Dropped {
		return "dropped"
	}
	return "queued"
}

// Push gives the pipeline one frame of a push stream (declared in Options.PushStreams). The pipeline copies
// mat's pixels: the caller keeps ownership of mat and may close or reuse it as soon as Push returns. captured is
// the frame's capture time (zero means now).
//
// What happens when the stream's queue is full is its policy's decision: drop_oldest (the default for push
// streams) queues the frame and evicts the oldest, drop_newest returns Dropped, block waits for room until ctx
// ends and then returns ctx's error. Push never blocks past ctx, and never after Close.
// Push is safe for concurrent use; frames of one stream are numbered in the order Push accepts them.
func (p *Pipeline) Push(ctx context.Context, stream string, mat gocv.Mat, captured time.Time) (PushStatus, error) {
	if err := checkMat(mat); err != nil {
		return Dropped, fmt.Errorf("push to stream %s: %w", stream, err)
	}
	return p.push(ctx, stream, captured, func() gocv.Mat { return mat.Clone() })
}

// PushImage is Push for a Go image. Gray images stay one channel; others are converted to 8-bit BGR.
func (p *Pipeline) PushImage(ctx context.Context, stream string, img image.Image, captured time.Time) (PushStatus, error) {
	if img == nil || img.Bounds().Empty() {
		return Dropped, fmt.Errorf("push to stream %s: %w: image is nil or empty", stream, ErrBadFrame)
	}
	var mat gocv.Mat
	var err error
	if g, ok := img.(*image.Gray); ok {
		mat, err = gocv.ImageGrayToMatGray(g)
	} else {
		mat, err = gocv.ImageToMatRGB(img) // despite its name, gocv returns BGR
	}
	if err != nil {
		return Dropped, fmt.Errorf("push to stream %s: %w: %v", stream, ErrBadFrame, err)
	}
	taken := false
	status, perr := p.push(ctx, stream, captured, func() gocv.Mat { taken = true; return mat })
	if !taken {
		mat.Close()
	}
	return status, perr
}

// push queues the frame made by take. take is called only once the frame will be queued; if push fails before
// that, the caller still owns whatever take would have returned.
func (p *Pipeline) push(ctx context.Context, stream string, captured time.Time, take func() gocv.Mat) (PushStatus, error) {
	s := p.started()
	if s == nil {
		return Dropped, fmt.Errorf("push to stream %s: %w", stream, ErrNotStarted)
	}
	queued, err := s.Push(ctx, stream, captured, take)
	if err != nil || !queued {
		return Dropped, err
	}
	return Queued, nil
}

// checkMat accepts a non-empty 8-bit Mat with 1, 3 or 4 channels.
func checkMat(m gocv.Mat) error {
	if m.Ptr() == nil {
		return fmt.Errorf("%w: Mat is nil (zero value or closed)", ErrBadFrame)
	}
	if m.Empty() {
		return fmt.Errorf("%w: Mat is empty", ErrBadFrame)
	}
	switch t := m.Type(); t {
	case gocv.MatTypeCV8UC1, gocv.MatTypeCV8UC3, gocv.MatTypeCV8UC4:
		return nil
	default:
		return fmt.Errorf("%w: Mat type %v, want 8-bit with 1, 3 or 4 channels (CV_8UC1, CV_8UC3, CV_8UC4)", ErrBadFrame, t)
	}
}
