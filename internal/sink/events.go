package sink

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/source"
)

// EventBuffer bounds the source and drift events waiting to be published.
const EventBuffer = 256

// EventPublisher publishes one event message.
type EventPublisher interface {
	PublishEvent(ctx context.Context, e *message.Event) error
}

// Events turns source and drift events into event messages, gives them to the host program, and queues them
// for publishing on a bounded channel. It never blocks the capture goroutines or the sink: when the channel
// is full the event is logged and not published. Source and Drift may be called from any goroutine until
// Close; Run publishes.
type Events struct {
	ch     chan *message.Event // closed by Close
	bootID string
	log    *slog.Logger
	host   func(*message.Event) // may be nil
}

// NewEvents makes an event queue. host, when not nil, receives every event first.
func NewEvents(bootID string, log *slog.Logger, host func(*message.Event)) *Events {
	return &Events{ch: make(chan *message.Event, EventBuffer), bootID: bootID, log: log, host: host}
}

// Run publishes events until Close has been called and the queue is empty. pub may be nil (events then only
// reach the host program). ctx bounds each publish.
func (e *Events) Run(ctx context.Context, pub EventPublisher) {
	for ev := range e.ch {
		if pub == nil {
			continue
		}
		if err := pub.PublishEvent(ctx, ev); err != nil {
			e.log.Warn("publishing event", "stream", ev.Stream, "kind", ev.Kind, "err", err)
		}
	}
}

// Close ends the queue: call it once every producer (capture, the sink) has returned.
func (e *Events) Close() { close(e.ch) }

func (e *Events) send(ev *message.Event) {
	if e.host != nil {
		e.host(ev)
	}
	select {
	case e.ch <- ev:
	default:
		e.log.Warn("event buffer full, event not published", "stream", ev.Stream, "kind", ev.Kind)
	}
}

// Source publishes a capture state change and logs it (one line per state change, never per frame).
func (e *Events) Source(se source.Event) {
	attrs := []any{"stream", se.Stream, "event", se.Kind, "frames", se.Frames}
	if se.Err != "" {
		attrs = append(attrs, "err", se.Err)
	}
	if se.Attempt > 0 {
		attrs = append(attrs, "attempt", se.Attempt)
	}
	switch se.Kind {
	case message.EventLost, message.EventError:
		e.log.Warn("source", attrs...)
	default:
		e.log.Info("source", attrs...)
	}
	d := &message.EventDetails{Attempt: se.Attempt, OutageMillis: message.Millis(se.Outage), Error: se.Err,
		URL: se.URL, Frames: se.Frames, RetryInMillis: message.Millis(se.RetryIn), Skipped: se.Skipped}
	e.send(&message.Event{Schema: message.SchemaEvent, Stream: se.Stream, BootID: e.bootID, Kind: se.Kind, Time: se.Time, Details: d})
}

// AttentionDrift publishes a rise or fall of a stream's attention drift alarm; blocks are the model's SE
// blocks, to name the event's blocks by their order.
func (e *Events) AttentionDrift(stream string, ev *se.AttentionEvent, blocks []se.BlockInfo, at time.Time) {
	state := "fall"
	if ev.On {
		state = "rise"
	}
	score := ev.Score
	d := &message.EventDetails{State: state, Frame: ev.Frame, Score: &score, Hits: ev.Hits, RiseCount: ev.RiseCount,
		Evidence: ev.Evidence, EvidenceRise: ev.EvidenceRise, Still: ev.Still}
	names := make([]string, 0, len(ev.Blocks))
	for _, b := range ev.Blocks {
		name := ""
		if b.Order >= 0 && b.Order < len(blocks) {
			name = blocks[b.Order].Name
		}
		d.Blocks = append(d.Blocks, message.DriftBlock{Name: name, Order: b.Order, Score: b.Score, Threshold: b.Threshold,
			Moved: message.MovedOf(b.Moved)})
		names = append(names, name)
	}
	e.log.Info("attention drift", "stream", stream, "state", state, "frame", ev.Frame, "score", fmt.Sprintf("%.2f", score),
		"hits", fmt.Sprintf("%d/%d", ev.Hits, ev.RiseCount), "evidence", fmt.Sprintf("%d/%d", ev.Evidence, ev.EvidenceRise), "still", ev.Still, "blocks", names)
	e.send(&message.Event{Schema: message.SchemaEvent, Stream: stream, BootID: e.bootID, Kind: message.EventAttentionDrift, Time: at, Details: d})
}
