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

// Drift publishes a drift state change of one SE block of one stream.
func (e *Events) Drift(stream, block string, ev *se.DriftEvent, at time.Time) {
	kind := message.EventDriftOff
	if ev.On {
		kind = message.EventDriftOn
	}
	drift, threshold := ev.Drift, ev.Threshold
	changed := make([]int, len(ev.Changes))
	for i, c := range ev.Changes {
		changed[i] = c.Channel
	}
	e.log.Info("attention drift", "stream", stream, "block", block, "on", ev.On, "frame", ev.Frame, "drift", fmt.Sprintf("%.3f", drift))
	e.send(&message.Event{Schema: message.SchemaEvent, Stream: stream, BootID: e.bootID, Kind: kind, Time: at,
		Details: &message.EventDetails{Block: block, Frame: ev.Frame, Drift: &drift, Threshold: &threshold, TopChanged: changed}})
}
