package pipeline

import (
	"sort"
	"sync"
	"sync/atomic"
)

// StreamCounters counts one stream's frames as they pass the stages. All methods are safe for concurrent use.
// Every frame a source delivers is counted Captured once and then ends as exactly one of Dropped, Failed or
// Processed, or is still in flight; Published counts processed frames whose messages were handed to the bus.
type StreamCounters struct {
	name      string
	captured  atomic.Uint64
	dropped   atomic.Uint64
	failed    atomic.Uint64
	processed atomic.Uint64
	published atomic.Uint64
	depth     func() int // current queue depth; nil when the stream has no queue yet
	capacity  int
}

// Name is the stream's name.
func (c *StreamCounters) Name() string { return c.name }

// Captured counts a frame read from the source.
func (c *StreamCounters) Captured() { c.captured.Add(1) }

// Dropped counts n frames dropped by a queue policy.
func (c *StreamCounters) Dropped(n uint64) { c.dropped.Add(n) }

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

// WatchQueue makes the stream's snapshots report the queue's depth and capacity.
func (c *Counters) WatchQueue(stream string, depth func() int, capacity int) {
	s := c.Stream(stream)
	c.mu.Lock()
	s.depth, s.capacity = depth, capacity
	c.mu.Unlock()
}

// Snapshot returns every stream's counters, sorted by stream name.
func (c *Counters) Snapshot() []StreamStats {
	c.mu.Lock()
	out := make([]StreamStats, 0, len(c.streams))
	for _, s := range c.streams {
		st := StreamStats{
			Stream:    s.name,
			Captured:  s.captured.Load(),
			Dropped:   s.dropped.Load(),
			Failed:    s.failed.Load(),
			Processed: s.processed.Load(),
			Published: s.published.Load(),
			QueueCap:  s.capacity,
		}
		if s.depth != nil {
			st.QueueDepth = s.depth()
		}
		out = append(out, st)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}
