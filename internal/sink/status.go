package sink

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sestream/sestream/internal/ratelog"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
)

// StatusPublisher publishes the heartbeat and tells the publisher's own state for it.
type StatusPublisher interface {
	PublishStatus(ctx context.Context, s *message.Status) error
	NATSStatus() message.NATSStatus
}

// Heartbeat publishes a status message (version, uptime, per-stream rates and states, NATS state) every
// interval. Run and Now may be called from different goroutines.
type Heartbeat struct {
	Publisher StatusPublisher // nil: nothing is published
	Counters  *pipeline.Counters
	States    *States
	Version   string
	BootID    string
	Started   time.Time
	Log       *slog.Logger

	errLog ratelog.Limiter
	mu     sync.Mutex // guards prev, prevAt
	prev   map[string]pipeline.StreamStats
	prevAt time.Time
}

// Run publishes a status message every interval until stop is closed or ctx ends.
func (h *Heartbeat) Run(ctx context.Context, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			h.Now(ctx)
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Now publishes one status message with the rates since the previous one.
func (h *Heartbeat) Now(ctx context.Context) {
	now := time.Now()
	stats := h.Counters.Snapshot()
	h.mu.Lock()
	if h.prev == nil {
		h.prev, h.prevAt = map[string]pipeline.StreamStats{}, h.Started
	}
	elapsed := now.Sub(h.prevAt).Seconds()
	streams := make([]message.StreamStatus, len(stats))
	for i, st := range stats {
		prev := h.prev[st.Stream]
		streams[i] = message.StreamStatus{Name: st.Stream, Captured: st.Captured, Processed: st.Processed, Dropped: st.Dropped,
			Published: st.Published, PublishDropped: st.PublishDropped,
			QueueDepth: st.QueueDepth, State: string(h.States.Get(st.Stream))}
		if elapsed > 0 {
			streams[i].FPSIn = float64(st.Captured-prev.Captured) / elapsed
			streams[i].FPSOut = float64(st.Published-prev.Published) / elapsed
		}
		h.prev[st.Stream] = st
	}
	h.prevAt = now
	h.mu.Unlock()
	if h.Publisher == nil {
		return
	}
	status := &message.Status{Schema: message.SchemaStatus, Version: h.Version, BootID: h.BootID, Time: now,
		UptimeSeconds: now.Sub(h.Started).Seconds(), Streams: streams, NATS: h.Publisher.NATSStatus()}
	if err := h.Publisher.PublishStatus(ctx, status); err != nil {
		h.errLog.Warn(h.Log, "publishing status", "err", err)
	}
}
