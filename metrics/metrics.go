package metrics

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/source"
)

// Namespace is the prefix of every metric name.
const Namespace = "sestream"

// DropReasonQueue is the reason label of frames a stream's queue dropped under its drop policy.
const DropReasonQueue = "queue_full"

// DropReasonDrain is the reason label of frames still in flight when shutdown.drain_timeout passed.
const DropReasonDrain = "drain_deadline"

// DefaultProducingWindow is how recently a stream must have captured a frame to count as producing.
const DefaultProducingWindow = 10 * time.Second

// Options configure a Metrics.
type Options struct {
	// Version is the sestream version, exposed by sestream_build_info.
	Version string
	// MaxBatch is batch.max_size; the batch size histogram gets one bucket per size up to it (up to 64).
	// Zero uses power-of-two buckets up to 128.
	MaxBatch int
	// ProducingWindow: /readyz wants a stream whose captured count moved within this window.
	// Zero means DefaultProducingWindow.
	ProducingWindow time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ModelInfo describes the loaded model and the engine that runs it, exposed as labels of sestream_model_info.
type ModelInfo struct {
	Name   string
	Digest string
	// Engine is the backend that runs the model: "onnxruntime" or "opencv".
	Engine   string
	SEBlocks int
}

// NATSState is a snapshot of the NATS publisher, read at scrape time. It must carry no credentials.
type NATSState struct {
	Connected bool
	// JetStream is true when every message waits for a JetStream acknowledgement.
	JetStream bool
	// Buffered is the number of messages waiting to be sent now.
	Buffered int
	// AcksPending is the number of JetStream publishes sent and not yet acknowledged.
	AcksPending int
	// Published counts messages the server confirmed; Dropped those given up; Reconnects successful
	// reconnections. All three only grow.
	Published, Dropped, Reconnects uint64
}

// Sources are the snapshot functions read at every scrape and readiness check. Nil fields are skipped.
// They are called from HTTP handler goroutines and must be safe for concurrent use.
type Sources struct {
	// Streams returns every stream's counters (pipeline.Counters.Snapshot).
	Streams func() []pipeline.StreamStats
	// NATS returns the publisher's state; nil when the pipeline publishes nothing (then /readyz does not
	// wait for NATS).
	NATS func() NATSState
	// Workers returns how many inference workers are busy and how many there are.
	Workers func() (busy, total int)
	// Fleet returns this instance's fleet state as of its last renewal round, and false when it is not in a
	// fleet or has not finished a round yet (then no fleet metric is exported).
	Fleet func() (FleetState, bool)
}

// FleetState is one fleet member's view, as in its fleet status message (message.FleetStatus).
type FleetState struct {
	// Members is the number of live members seen, this one included; Desired the streams in the fleet's list;
	// Share this instance's fair share of them; Held the streams it holds a lease on.
	Members, Desired, Share, Held int
	// OldestRenewalS is the age in seconds of the least recently confirmed renewal among the leases held.
	OldestRenewalS float64
	// Acquired, Released and Lost count lease changes since joining (message.FleetMoves); they only grow.
	Acquired, Released, Lost uint64
}

// Metrics holds sestream's Prometheus collectors in its own registry (never the global one). The Observe and
// Set methods are safe for concurrent use and do not allocate once a stream (and block) has been seen.
type Metrics struct {
	reg    *prometheus.Registry
	now    func() time.Time
	window time.Duration

	batchSize  prometheus.Histogram
	batchFill  prometheus.Histogram
	inference  prometheus.Histogram
	latency    *prometheus.HistogramVec
	reconnects *prometheus.CounterVec
	state      *prometheus.GaugeVec
	modelInfo  *prometheus.GaugeVec
	meanGate   *prometheus.GaugeVec
	gateStd    *prometheus.GaugeVec
	entropy    *prometheus.GaugeVec
	drift      *prometheus.GaugeVec
	driftOn    *prometheus.GaugeVec
	driftRises *prometheus.CounterVec

	sources atomic.Pointer[Sources]
	loaded  atomic.Bool

	mu         sync.RWMutex
	streams    map[string]*streamHandles
	blocks     map[[2]string]*blockHandles
	progressMu sync.Mutex
	producing  map[string]progress // guarded by progressMu
}

type streamHandles struct {
	latency   prometheus.Observer
	reconnect prometheus.Counter
	state     []prometheus.Gauge // indexed like source.States
	current   atomic.Int32       // index in source.States + 1; 0 when unknown
	driftOn   prometheus.Gauge
	rises     prometheus.Counter
	on        atomic.Bool // the drift alarm's last state, to count rises
}

type blockHandles struct {
	meanGate, gateStd, entropy, drift prometheus.Gauge
}

// progress remembers when a stream's captured count last moved.
type progress struct {
	captured uint64
	at       time.Time
}

// New returns a Metrics with its own registry, holding the Go runtime and process collectors too.
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProducingWindow <= 0 {
		o.ProducingWindow = DefaultProducingWindow
	}
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		now:       o.Now,
		window:    o.ProducingWindow,
		streams:   map[string]*streamHandles{},
		blocks:    map[[2]string]*blockHandles{},
		producing: map[string]progress{},
	}
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "batch_size",
		Help: "Frames per inference batch.", Buckets: batchBuckets(o.MaxBatch)})
	m.batchFill = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "batch_fill_ratio",
		Help: "Batch size divided by batch.max_size, per inference batch.", Buckets: prometheus.LinearBuckets(0.1, 0.1, 10)})
	m.inference = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "inference_seconds",
		Help:    "Time one worker spent running one batch through the engine, in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "frame_latency_seconds",
		Help:    "Time from capture to publish of each published frame, in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"stream"})
	m.reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "source_reconnects_total",
		Help: "Times a live source was reopened after it was lost."}, []string{"stream"})
	m.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "source_state",
		Help: "1 for the source's current state (starting, running, reconnecting, ended, failed), 0 for the others."},
		[]string{"stream", "state"})
	m.modelInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "model_info",
		Help: "Always 1 once the model is loaded; the labels name the model, its digest and the engine backend."},
		[]string{"model", "digest", "engine", "se_blocks"})
	m.meanGate = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "attention_mean_gate",
		Help: "Mean SE gate value of the last processed frame, per stream and SE block (0..1)."}, []string{"stream", "block"})
	m.entropy = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "attention_entropy",
		Help: "Normalized entropy of the SE gates of the last processed frame (1 = spread evenly, 0 = one channel)."},
		[]string{"stream", "block"})
	m.gateStd = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "attention_gate_std",
		Help: "Standard deviation of the SE gate values of the last processed frame, per stream and SE block."}, []string{"stream", "block"})
	m.drift = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "attention_drift_score",
		Help: "Drift score of the last frame's SE gates against the stream's own baseline, per SE block, in units of the stream's variability (about 1 or less on typical frames)."},
		[]string{"stream", "block"})
	m.driftOn = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "attention_drift_active",
		Help: "1 while the stream's calibrated attention drift alarm is on (between an attention_drift rise and fall event), else 0."},
		[]string{"stream"})
	m.driftRises = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "attention_drift_events_total",
		Help: "Attention drift alarms raised (attention_drift rise events), per stream."}, []string{"stream"})

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the labels name the sestream version and the Go version that built it."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(o.Version, runtime.Version()).Set(1)

	m.reg.MustRegister(m.batchSize, m.batchFill, m.inference, m.latency, m.reconnects, m.state, m.modelInfo,
		m.meanGate, m.gateStd, m.entropy, m.drift, m.driftOn, m.driftRises, buildInfo, snapshotCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func batchBuckets(max int) []float64 {
	if max <= 0 || max > 64 {
		return prometheus.ExponentialBuckets(1, 2, 8)
	}
	return prometheus.LinearBuckets(1, 1, max)
}

// Registry returns the registry that holds every sestream collector, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Watch sets the snapshot functions read at scrape time, replacing any set before.
func (m *Metrics) Watch(s Sources) { m.sources.Store(&s) }

// ModelLoaded records that the model is loaded and ready to run: it sets sestream_model_info and satisfies the
// first readiness condition.
func (m *Metrics) ModelLoaded(info ModelInfo) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(info.Name, info.Digest, info.Engine, strconv.Itoa(info.SEBlocks)).Set(1)
	m.loaded.Store(true)
}

// ObserveBatch records one inference batch: its size, the configured maximum and the engine time.
func (m *Metrics) ObserveBatch(size, maxSize int, inference time.Duration) {
	m.batchSize.Observe(float64(size))
	if maxSize > 0 {
		m.batchFill.Observe(float64(size) / float64(maxSize))
	}
	m.inference.Observe(inference.Seconds())
}

// ObserveFrame records one published frame's time from capture to publish.
func (m *Metrics) ObserveFrame(stream string, endToEnd time.Duration) {
	m.stream(stream).latency.Observe(endToEnd.Seconds())
}

// SetAttention sets one SE block's gauges for a stream from its last processed frame. driftScore is nil while
// the stream's baseline is warming up or when drift is disabled; the drift gauge then keeps its last value.
func (m *Metrics) SetAttention(stream, block string, meanGate, gateStd, entropy float64, driftScore *float64) {
	h := m.block(stream, block)
	h.meanGate.Set(meanGate)
	h.gateStd.Set(gateStd)
	h.entropy.Set(entropy)
	if driftScore != nil {
		h.drift.Set(*driftScore)
	}
}

// SetDrift sets a stream's attention drift alarm state after a frame, counting each rise.
func (m *Metrics) SetDrift(stream string, on bool) {
	h := m.stream(stream)
	if was := h.on.Swap(on); on && !was {
		h.rises.Inc()
	}
	if on {
		h.driftOn.Set(1)
	} else {
		h.driftOn.Set(0)
	}
}

// SetSourceState sets a stream's source state, one of source.States (the values of the state label of
// sestream_source_state, one series each per stream); any other value sets none of them to 1.
func (m *Metrics) SetSourceState(stream string, state source.State) {
	h := m.stream(stream)
	current := int32(0)
	for i, s := range source.States {
		if s == state {
			h.state[i].Set(1)
			current = int32(i + 1)
		} else {
			h.state[i].Set(0)
		}
	}
	h.current.Store(current)
}

// SourceReconnect counts one reconnection of a stream's live source.
func (m *Metrics) SourceReconnect(stream string) { m.stream(stream).reconnect.Inc() }

func (m *Metrics) stream(name string) *streamHandles {
	m.mu.RLock()
	h, ok := m.streams[name]
	m.mu.RUnlock()
	if ok {
		return h
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok = m.streams[name]; ok {
		return h
	}
	h = &streamHandles{latency: m.latency.WithLabelValues(name), reconnect: m.reconnects.WithLabelValues(name),
		driftOn: m.driftOn.WithLabelValues(name), rises: m.driftRises.WithLabelValues(name)}
	for _, s := range source.States {
		h.state = append(h.state, m.state.WithLabelValues(name, string(s)))
	}
	m.streams[name] = h
	return h
}

func (m *Metrics) block(stream, block string) *blockHandles {
	key := [2]string{stream, block}
	m.mu.RLock()
	h, ok := m.blocks[key]
	m.mu.RUnlock()
	if ok {
		return h
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok = m.blocks[key]; ok {
		return h
	}
	h = &blockHandles{meanGate: m.meanGate.WithLabelValues(stream, block), gateStd: m.gateStd.WithLabelValues(stream, block),
		entropy: m.entropy.WithLabelValues(stream, block), drift: m.drift.WithLabelValues(stream, block)}
	m.blocks[key] = h
	return h
}
