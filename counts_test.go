package sestream

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/pipeline"
)

// checkCountsAddUp fails unless every captured frame ended in exactly one counter, and every processed frame
// in exactly one of published and publish_dropped.
func checkCountsAddUp(t *testing.T, stats []pipeline.StreamStats) {
	t.Helper()
	if len(stats) == 0 {
		t.Fatal("no stream counters")
	}
	for _, st := range stats {
		t.Logf("stream %s: %+v", st.Stream, st)
		if st.Captured != st.Dropped+st.Failed+st.Processed {
			t.Errorf("stream %s: captured %d != dropped %d + failed %d + processed %d", st.Stream, st.Captured, st.Dropped, st.Failed, st.Processed)
		}
		if st.Processed != st.Published+st.PublishDropped {
			t.Errorf("stream %s: processed %d != published %d + publish_dropped %d", st.Stream, st.Processed, st.Published, st.PublishDropped)
		}
	}
}

// messageSizes runs clip without NATS and returns the encoded size of its first result and attention message.
func messageSizes(t *testing.T, cfg *config.Config) (result, attention int) {
	t.Helper()
	var once sync.Once
	p, err := New(cfg, Options{NoNATS: true, OnFrame: func(f FrameOutput) {
		once.Do(func() {
			r, _ := json.Marshal(f.Result)
			a, _ := json.Marshal(f.Attention)
			result, attention = len(r), len(a)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return result, attention
}

// TestCountsAddUpUnderNATSFaults: with a server that refuses the attention messages, with a NATS outage in the
// middle of a run, and with frames cancelled at the drain deadline, "published" counts only frames whose two
// messages the server confirmed, and every frame ends in exactly one counter.
func TestCountsAddUpUnderNATSFaults(t *testing.T) {
	t.Run("refused by max_payload", func(t *testing.T) {
		const frames = 30
		clip := makeVideo(t, frames, "160x120")
		probe := testConfig(t, "", config.Stream{Name: "cam", URL: clip})
		probe.Attention.IncludeVectors = true
		rs, as := messageSizes(t, probe)
		if rs+512 > as {
			t.Fatalf("result message %d bytes, attention %d: too close to refuse only the attention", rs, as)
		}
		srv := startNATS(t, func(o *server.Options) { o.MaxPayload = int32((rs + as) / 2) })
		cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "cam", URL: clip})
		cfg.Attention.IncludeVectors = true
		p, err := New(cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := p.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
		stats := p.Stats()
		checkCountsAddUp(t, stats)
		if st := stats[0]; st.Captured != frames || st.Processed != frames || st.Published != 0 || st.PublishDropped != frames {
			t.Errorf("counters %+v; want %d frames captured, processed and publish_dropped, none published", st, frames)
		}
	})

	t.Run("outage mid-run", func(t *testing.T) {
		clip := makeVideo(t, 20, "160x120")
		srv := startNATS(t)
		cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "cam", URL: clip, Loop: true})
		cfg.NATS.Buffer = 8
		p, err := New(cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		waitFor(t, func() bool { st := p.Stats(); return len(st) == 1 && st[0].Published >= 10 })
		srv.Shutdown()
		srv.WaitForShutdown()
		outage := p.Stats()[0]
		waitFor(t, func() bool { return p.Stats()[0].Processed >= outage.Processed+40 })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		stats := p.Stats()
		checkCountsAddUp(t, stats)
		st := stats[0]
		if st.Published < outage.Published || st.PublishDropped < 40-uint64(cfg.NATS.Buffer) {
			t.Errorf("counters %+v (at the outage %+v); want the frames after the outage, beyond the buffer, publish_dropped", st, outage)
		}
	})

	t.Run("drain deadline", func(t *testing.T) {
		clip := makeVideo(t, 20, "160x120")
		srv := startNATS(t)
		cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "cam", URL: clip, Loop: true})
		cfg.Shutdown.DrainTimeout = 50 * time.Millisecond
		// A slow host callback holds the sink, so frames wait in the queue, the batcher and the worker pool.
		p, err := New(cfg, Options{OnFrame: func(FrameOutput) { time.Sleep(20 * time.Millisecond) }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		waitFor(t, func() bool { st := p.Stats(); return len(st) == 1 && st[0].Published >= 5 && st[0].InFlight() >= 20 })
		cancel()
		err = <-done
		if !errors.Is(err, ErrDrainDeadline) {
			t.Fatalf("Run: %v, want ErrDrainDeadline", err)
		}
		stats := p.Stats()
		checkCountsAddUp(t, stats)
		if stats[0].Cancelled == 0 {
			t.Errorf("no frame counted cancelled at the deadline: %+v", stats[0])
		}
	})
}
