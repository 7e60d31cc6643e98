package sink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/infer"
)

// heldPublisher keeps each frame's done callback so the test decides its outcome; it refuses frames whose seq
// is in refuse, reporting them dropped at once.
type heldPublisher struct {
	done   map[uint64]func(bool)
	refuse map[uint64]bool
}

func (p *heldPublisher) PublishFrame(_ context.Context, r *message.Result, _ *message.Attention, done func(bool)) error {
	if p.refuse[r.Seq] {
		done(false)
		return errors.New("refused")
	}
	p.done[r.Seq] = done
	return nil
}

// TestSinkCountsPublishOutcomes: a frame counts as published only when the publisher confirms it, as
// publish_dropped when the publisher gives it up or refuses it, and a failed frame as failed only.
func TestSinkCountsPublishOutcomes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name      string
		publisher bool
	}{{"with a publisher", true}, {"without a publisher", false}} {
		t.Run(tc.name, func(t *testing.T) {
			counters := pipeline.NewCounters()
			pub := &heldPublisher{done: map[uint64]func(bool){}, refuse: map[uint64]bool{4: true}}
			deps := Deps{Counters: counters, Events: NewEvents("boot", log, nil), Log: log}
			if tc.publisher {
				deps.Publisher = pub
			}
			s := New(Config{BootID: "boot", MaxBatch: 5}, deps)
			res := &infer.BatchResult{ID: 1, Size: 5}
			for seq := uint64(1); seq <= 5; seq++ {
				fr := infer.FrameResult{Info: pipeline.FrameInfo{Stream: "cam", Seq: seq, Captured: time.Now()}}
				if seq == 5 {
					fr.Err = errors.New("inference failed")
				}
				res.Frames = append(res.Frames, fr)
			}
			s.Handle(context.Background(), res)
			st := counters.Snapshot()[0]
			if !tc.publisher {
				if st.Processed != 4 || st.Failed != 1 || st.Published != 4 || st.PublishDropped != 0 {
					t.Fatalf("counters %+v; want 4 processed and published, 1 failed", st)
				}
				return
			}
			if st.Processed != 4 || st.Failed != 1 || st.Published != 0 || st.PublishDropped != 1 {
				t.Fatalf("before any confirmation: %+v; want 4 processed, 1 failed, none published, 1 publish_dropped", st)
			}
			pub.done[1](true)
			pub.done[2](true)
			pub.done[3](false)
			st = counters.Snapshot()[0]
			if st.Published != 2 || st.PublishDropped != 2 || st.Processed != st.Published+st.PublishDropped {
				t.Fatalf("after the outcomes: %+v; want 2 published and 2 publish_dropped", st)
			}
		})
	}
}
