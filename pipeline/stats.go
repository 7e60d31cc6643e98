package pipeline

import (
	"sort"
	"sync"
	"sync/atomic"
)

// StreamCounters counts one stream's frames as they pass the stages. All methods are safe for concurrent use.
// Every frame a source delivers is counted Captured once (by the stream's queue) and then ends as exactly one
// of Dropped (by the queue's policy), Failed or Processed, or is still in flight; Published counts processed
// frames whose messages were handed to the publisher.
type StreamCounters struct {
	name      string
	failed    atomic.Uint64
	processed atomic.Uint64
	published atomic.Uint64
	queue     QueueGauge // nil until WatchQueue
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

// Published counts a processed frame whose messages were handed to the publisher.
func (c *StreamCounters) Published() { c.published.Add(1) }

// StreamStats is a snapshot of one stream's counters.
type StreamStats struct {
	Stream     string
	Captured   uint64
	Dropped    uint64
	Failed     uint64
	Processed  uint64
	Published  uint64
	QueueDepth int
	QueueCap   int
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

// WatchQueue makes the stream's snapshots count captured and dropped frames, and the depth, from q.
func (c *Counters) WatchQueue(stream string, q QueueGauge) {
	s := c.Stream(stream)
	c.mu.Lock()
	s.queue = q
	c.mu.Unlock()
}

// Snapshot returns every stream's counters, sorted by stream name.
func (c *Counters) Snapshot() []StreamStats {
	c.mu.Lock()
	out := make([]StreamStats, 0, len(c.streams))
	for _, s := range c.streams {
		st := StreamStats{
			Stream:    s.name,
			Failed:    s.failed.Load(),
			Processed: s.processed.Load(),
			Published: s.published.Load(),
		}
		if s.queue != nil {
			st.Captured, st.Dropped = s.queue.Offered(), s.queue.Dropped()
			st.QueueDepth, st.QueueCap = s.queue.Len(), s.queue.Cap()
		}
		out = append(out, st)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}
