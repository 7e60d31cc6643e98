package pipeline

import (
	"sort"
	"sync"
	"sync/atomic"
)

// StreamCounters counts one stream's frames as they pass the stages. All methods are safe for concurrent use.
// Every frame a source delivers is counted Captured once (by the stream's queue) and then ends as exactly one
// of Dropped (by the queue's policy, or cancelled in flight at the drain deadline), Failed or Processed, or is
// still in flight. Every processed frame then ends as exactly one of Published (the server confirmed its
// messages) or PublishDropped (one of its messages was given up), or is still being published. Once a
// pipeline has stopped: Captured = Dropped + Failed + Processed and Processed = Published + PublishDropped.
type StreamCounters struct {
	name           string
	cancelled      atomic.Uint64
	failed         atomic.Uint64
	processed      atomic.Uint64
	published      atomic.Uint64
	publishDropped atomic.Uint64
	queue          QueueGauge // nil until WatchQueue
	// offered and dropped of the queues this stream had before queue (a stream stopped and started again);
	// guarded by Counters.mu like queue.
	pastOffered, pastDropped uint64
}

// QueueGauge is what the counters read from a stream's frame queue. *Queue implements it.
type QueueGauge interface {
	// Offered counts frames given to the queue (captured), Dropped those its policy dropped.
	Offered() uint64
	Dropped() uint64
	Len() int
	Cap() int
}

// Name is the stream's name.
func (c *StreamCounters) Name() string { return c.name }

// Failed counts a frame that could not be processed (preprocess or inference error).
func (c *StreamCounters) Failed() { c.failed.Add(1) }

// Processed counts a frame that came out of inference with a result.
func (c *StreamCounters) Processed() { c.processed.Add(1) }

// Cancelled counts n frames discarded in flight (captured, not dropped by the queue, never processed) because
// the drain deadline passed or the pipeline was aborted. They are counted in StreamStats.Dropped.
func (c *StreamCounters) Cancelled(n uint64) { c.cancelled.Add(n) }

// Published counts a processed frame whose messages were all delivered: handed to the host program when
// nothing is published on NATS, confirmed by the server otherwise.
func (c *StreamCounters) Published() { c.published.Add(1) }

// PublishDropped counts a processed frame one of whose messages the publisher gave up (buffer full while
// disconnected, refused, retries exhausted, unsent at close).
func (c *StreamCounters) PublishDropped() { c.publishDropped.Add(1) }

// PublishDone counts a processed frame as Published when published is true, else as PublishDropped. It is a
// publisher's outcome callback for one frame.
func (c *StreamCounters) PublishDone(published bool) {
	if published {
		c.Published()
	} else {
		c.PublishDropped()
	}
}

// StreamStats is a snapshot of one stream's counters.
type StreamStats struct {
	Stream   string
	Captured uint64
	// Dropped counts frames dropped by the queue's policy and frames cancelled in flight (of which Cancelled).
	Dropped   uint64
	Cancelled uint64
	Failed    uint64
	Processed uint64
	// Published and PublishDropped split the processed frames by what became of their messages.
	Published      uint64
	PublishDropped uint64
	QueueDepth     int
	QueueCap       int
}

// InFlight is the number of captured frames not yet dropped, failed or processed.
func (s StreamStats) InFlight() uint64 {
	done := s.Dropped + s.Failed + s.Processed
	if done > s.Captured {
		return 0
	}
	return s.Captured - done
}

// Stats is a snapshot of the whole pipeline, read by the metrics endpoint, the status heartbeat and the
// console summary.
type Stats struct {
	Streams []StreamStats // sorted by stream name
	Batches BatchStats
	// WorkersBusy is how many workers are processing a batch now, out of Workers.
	WorkersBusy, Workers int
}

// StatsSource is anything that can report the pipeline's counters.
type StatsSource interface {
	Stats() Stats
}

// Counters holds the counters of every stream. Streams are added at start; reading is lock-free per counter.
type Counters struct {
	mu      sync.Mutex
	streams map[string]*StreamCounters
}

// NewCounters returns an empty set of counters.
func NewCounters() *Counters { return &Counters{streams: map[string]*StreamCounters{}} }

// Stream returns the counters of the named stream, creating them on first use.
func (c *Counters) Stream(name string) *StreamCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.streams[name]
	if !ok {
		s = &StreamCounters{name: name}
		c.streams[name] = s
	}
	return s
}

// WatchQueue makes the stream's snapshots count captured and dropped frames, and the depth, from q. A stream
// started again with a new queue keeps counting: what its earlier queues counted is added.
func (c *Counters) WatchQueue(stream string, q QueueGauge) {
	s := c.Stream(stream)
	c.mu.Lock()
	if s.queue != nil {
		s.pastOffered += s.queue.Offered()
		s.pastDropped += s.queue.Dropped()
	}
	s.queue = q
	c.mu.Unlock()
}

// Snapshot returns every stream's counters, sorted by stream name.
func (c *Counters) Snapshot() []StreamStats {
	c.mu.Lock()
	out := make([]StreamStats, 0, len(c.streams))
	for _, s := range c.streams {
		st := StreamStats{
			Stream:         s.name,
			Cancelled:      s.cancelled.Load(),
			Failed:         s.failed.Load(),
			Processed:      s.processed.Load(),
			Published:      s.published.Load(),
			PublishDropped: s.publishDropped.Load(),
		}
		st.Dropped = st.Cancelled
		if s.queue != nil {
			st.Captured, st.Dropped = s.pastOffered+s.queue.Offered(), s.pastDropped+s.queue.Dropped()+st.Cancelled
			st.QueueDepth, st.QueueCap = s.queue.Len(), s.queue.Cap()
		}
		out = append(out, st)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}
