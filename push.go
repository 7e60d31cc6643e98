package sestream

import (
	"context"
	"errors"
	"fmt"
	"image"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages"
)

// Errors of Push, for errors.Is.
var (
	// ErrUnknownStream: the stream was not declared in Options.PushStreams.
	ErrUnknownStream = errors.New("unknown push stream")
	// ErrBadFrame: the frame is nil, empty, or not 8-bit with 1, 3 or 4 channels.
	ErrBadFrame = errors.New("bad frame")
)

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

// pusher is one push stream: frames come from the host program through Push.
type pusher struct {
	name  string
	queue *pipeline.Queue[stages.Frame]
	seq   atomic.Uint64
}

// pushState guards the push queues against Push racing Close: Push holds the read lock while it queues, Close
// cancels the pushes still waiting (pushCtx) and then takes the write lock to close the queues.
type pushState struct {
	mu     sync.RWMutex
	closed bool
}

func (p *Pipeline) newPushers() error {
	seen := map[string]bool{}
	for _, s := range p.streams {
		seen[s.Name] = true
	}
	policy, err := pipeline.ParsePolicy(p.cfg.Queue.Policy)
	if p.cfg.Queue.Policy == "auto" {
		policy, err = pipeline.DropOldest, nil // frames pushed by a host are live
	}
	if err != nil {
		return &InputError{Key: "queue.policy", Err: err}
	}
	p.pushers = map[string]*pusher{}
	for i, name := range p.opts.PushStreams {
		if err := message.ValidateToken(name); err != nil {
			return &InputError{Key: fmt.Sprintf("PushStreams[%d]", i), Err: err}
		}
		if seen[name] {
			return &InputError{Key: fmt.Sprintf("PushStreams[%d]", i), Err: fmt.Errorf("stream %q is declared twice", name)}
		}
		seen[name] = true
		p.pushers[name] = &pusher{name: name, queue: pipeline.NewQueue[stages.Frame](name, p.cfg.Queue.Size, policy, stages.DiscardFrame)}
	}
	return nil
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
	p.mu.Lock()
	r := p.run
	p.mu.Unlock()
	if r == nil {
		return Dropped, fmt.Errorf("push to stream %s: %w", stream, ErrNotStarted)
	}
	ps, ok := p.pushers[stream]
	if !ok {
		return Dropped, fmt.Errorf("push to stream %q: %w (declared: %v)", stream, ErrUnknownStream, p.opts.PushStreams)
	}
	p.pushing.mu.RLock()
	defer p.pushing.mu.RUnlock()
	if p.pushing.closed {
		return Dropped, fmt.Errorf("push to stream %s: %w", stream, ErrClosed)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.pushCtx, cancel)
	defer stop()
	if captured.IsZero() {
		captured = time.Now()
	}
	mat := take()
	f := stages.Frame{Mat: mat, Info: pipeline.FrameInfo{Stream: stream, Seq: ps.seq.Add(1), Captured: captured,
		Width: mat.Cols(), Height: mat.Rows()}}
	queued, err := ps.queue.Push(ctx, f)
	if err != nil {
		mat.Close()
		if r.pushCtx.Err() != nil {
			return Dropped, fmt.Errorf("push to stream %s: %w", stream, ErrClosed)
		}
		return Dropped, fmt.Errorf("push to stream %s: %w", stream, err)
	}
	if !queued {
		return Dropped, nil // the queue's discard function closed the Mat
	}
	return Queued, nil
}

// closePushers refuses further pushes and closes the push queues, so their forwarders drain and end.
func (p *Pipeline) closePushers() {
	p.pushing.mu.Lock()
	defer p.pushing.mu.Unlock()
	if p.pushing.closed {
		return
	}
	p.pushing.closed = true
	for _, ps := range p.pushers {
		ps.queue.Close()
	}
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
