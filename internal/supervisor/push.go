package supervisor

import (
	"context"
	"fmt"
	"time"

	"gocv.io/x/gocv"

	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/capture"
)

// Push queues the frame made by take on push stream stream. take is called only once the frame will be
// queued; if Push fails before that, the caller still owns whatever take would have returned. queued is false
// when the queue's policy dropped the frame (counted).
func (s *Supervisor) Push(ctx context.Context, stream string, captured time.Time, take func() gocv.Mat) (queued bool, err error) {
	ps, ok := s.pushers[stream]
	if !ok {
		return false, fmt.Errorf("push to stream %q: %w (declared: %v)", stream, ErrUnknownStream, s.plan.Push)
	}
	s.pushMu.RLock()
	defer s.pushMu.RUnlock()
	if s.pushClosed {
		return false, fmt.Errorf("push to stream %s: %w", stream, ErrClosed)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.pushing, cancel)
	defer stop()
	if captured.IsZero() {
		captured = time.Now()
	}
	mat := take()
	f := capture.Frame{Mat: mat, Info: pipeline.FrameInfo{Stream: stream, Seq: ps.seq.Add(1), Captured: captured,
		Width: mat.Cols(), Height: mat.Rows()}}
	queued, err = ps.queue.Push(ctx, f)
	if err != nil {
		mat.Close()
		if s.pushing.Err() != nil {
			return false, fmt.Errorf("push to stream %s: %w", stream, ErrClosed)
		}
		return false, fmt.Errorf("push to stream %s: %w", stream, err)
	}
	return queued, nil // when not queued, the queue's discard function closed the Mat
}

// closePushers refuses further pushes and closes the push queues, so their forwarders drain and end. Pushes
// waiting for room are cancelled first.
func (s *Supervisor) closePushers() {
	s.stopPushing()
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	if s.pushClosed {
		return
	}
	s.pushClosed = true
	for _, ps := range s.pushers {
		ps.queue.Close()
	}
}
