package sestream

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages"
)

// DemoStream is the name of the built-in demo stream, used when the configuration has no streams.
const DemoStream = "demo"

// Options are what the host process gives a Pipeline besides its configuration.
type Options struct {
	// Logger receives state changes (never one line per frame); nil means slog.Default().
	Logger *slog.Logger
	// Summary, when not nil, receives a one-line summary every second.
	Summary io.Writer
	// Version is reported in status messages; empty means this build's version.
	Version string
	// PushStreams declares streams whose frames the host program gives with Push and PushImage, beside (or
	// instead of) the configured sources. Their queues follow queue.size and queue.policy (auto means
	// drop_oldest: pushed frames are live).
	PushStreams []string
	// OnFrame, when not nil, receives every processed frame's result and attention messages, in frame order
	// per stream, from the pipeline's sink goroutine: it must return quickly (the pipeline waits for it). The
	// messages are not reused; OnFrame may keep them.
	OnFrame func(FrameOutput)
	// OnEvent, when not nil, receives every source and drift event. It is called from capture goroutines and
	// the sink, and must not block.
	OnEvent func(*message.Event)
	// NoNATS publishes nothing on NATS: results reach the host only through OnFrame and OnEvent.
	NoNATS bool
	// NATSConn, when not nil, is the host's own NATS connection: messages are published on it, and the
	// pipeline neither changes its handlers nor closes it. The nats.url, credentials and TLS settings are then
	// not used; nats.prefix and nats.jetstream are.
	NATSConn *nats.Conn
	// BootID identifies this run in messages and Nats-Msg-Id headers; empty means a random id.
	BootID string
	// Metrics, when not nil, receives the pipeline's measurements (counters, latencies, attention gauges,
	// source states, NATS state, readiness); serve it with metrics.Serve.
	Metrics *metrics.Metrics
}

// FrameOutput is one processed frame as the host program receives it: the same messages the pipeline
// publishes on <prefix>.<stream>.result and .attention.
type FrameOutput struct {
	Result    *message.Result
	Attention *message.Attention
}

// Pipeline is a configured sestream pipeline: sources, batcher, inference workers, and the publisher.
// Build it with New and run it once with Run.
type Pipeline struct {
	mu      sync.Mutex // guards run
	run     *run       // nil until Start
	engine  string
	pool    *pipeline.Pool[*pipeline.Batch[stages.Frame], *stages.BatchResult] // set by Start
	pushers map[string]*pusher                                                 // read-only after New
	pushing pushState

	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	model    *model.Model
	labels   []string
	streams  []stages.SourceOptions
	pre      stages.PreprocessOptions
	counters *pipeline.Counters
	states   *streamStates
	started  time.Time
}

// New checks the configuration against the model and the sources, and loads the model. Nothing is started:
// errors here are the user's to fix (exit code 2 in the sestream command) and are reported as *InputError.
func New(cfg *config.Config, opts Options) (*Pipeline, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Pipeline{cfg: cfg, opts: opts, log: opts.Logger, counters: pipeline.NewCounters(), states: newStreamStates()}

	path := cfg.Model.Path
	if path == "" {
		var err error
		if path, err = FindBundled(BundledModel); err != nil {
			return nil, &InputError{Key: "model.path", Err: err}
		}
	}
	m, err := model.Load(path)
	if err != nil {
		return nil, &InputError{Key: "model.path", Err: err}
	}
	p.model = m
	p.labels = m.Meta.Labels
	if cfg.Model.Labels != "" {
		if p.labels, err = readLabels(cfg.Model.Labels); err != nil {
			return nil, &InputError{Key: "model.labels", Err: err}
		}
	}
	p.pre = PreprocessOptions(cfg.Preprocess, m)
	if err := p.pre.WithDefaults().Validate(); err != nil {
		return nil, &InputError{Key: "preprocess", Err: err}
	}

	streams := cfg.Streams
	if len(streams) == 0 && len(opts.PushStreams) == 0 {
		sample, err := FindBundled(BundledSample)
		if err != nil {
			return nil, &InputError{Key: "streams", Err: fmt.Errorf("no streams configured and the demo video is missing: %w", err)}
		}
		streams = []config.Stream{{Name: DemoStream, URL: sample, Loop: true, Realtime: true, Transport: config.DefaultTransport,
			Reconnect:    config.Reconnect{Initial: config.DefaultReconnectInitial, Max: config.DefaultReconnectMax},
			StallTimeout: config.DefaultStallTimeout}}
	}
	for i, s := range streams {
		so := stages.SourceOptions{
			Name: s.Name, URL: s.URL, FPS: s.FPS, Loop: s.Loop, Realtime: s.Realtime, Transport: s.Transport,
			ReconnectInitial: s.Reconnect.Initial, ReconnectMax: s.Reconnect.Max, StallTimeout: s.StallTimeout,
		}.WithDefaults()
		if err := so.Validate(); err != nil {
			return nil, &InputError{Key: fmt.Sprintf("streams[%d]", i), Err: err}
		}
		p.streams = append(p.streams, so)
		p.states.set(s.Name, "starting")
		if _, err := p.queuePolicy(i); err != nil {
			return nil, &InputError{Key: fmt.Sprintf("streams[%d].url", i), Err: err}
		}
	}
	if err := p.newPushers(); err != nil {
		return nil, err
	}
	return p, nil
}

// InputError is a problem with what the user configured or supplied: a model, a labels file, a stream.
type InputError struct {
	// Key is the configuration key at fault.
	Key string
	Err error
}

// Error names the configuration key and the problem.
func (e *InputError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the underlying error, so errors.Is sees model and source errors.
func (e *InputError) Unwrap() error { return e.Err }

// Model returns the loaded model.
func (p *Pipeline) Model() *model.Model { return p.model }

// Streams returns the sources the pipeline will run, defaults applied.
func (p *Pipeline) Streams() []stages.SourceOptions { return p.streams }

// Stats returns the pipeline's per-stream counters.
func (p *Pipeline) Stats() []pipeline.StreamStats { return p.counters.Snapshot() }

// PreprocessOptions resolves preprocessing for a model: each value from the config, else the model's metadata,
// else the model's input shape; what is still unset gets stages' documented defaults (applied by
// stages.NewPreprocessor). `sestream run` and `sestream infer --image` both use it.
func PreprocessOptions(c config.Preprocess, m *model.Model) stages.PreprocessOptions {
	o := stages.PreprocessOptions{Width: c.Width, Height: c.Height, Resize: c.Resize, Color: c.Color,
		Scale: c.Scale, Mean: c.Mean, Std: c.Std, Pad: c.Pad}
	meta := m.Meta
	if o.Width == 0 {
		o.Width = meta.Width
	}
	if o.Height == 0 {
		o.Height = meta.Height
	}
	if shape := m.Input.Shape; len(shape) == 4 {
		if o.Width == 0 && shape[3] > 0 {
			o.Width = int(shape[3])
		}
		if o.Height == 0 && shape[2] > 0 {
			o.Height = int(shape[2])
		}
		if o.Color == "" && meta.Color == "" && shape[1] == 1 {
			o.Color = stages.ColorGray
		}
	}
	if o.Resize == "" {
		o.Resize = meta.Resize
	}
	if o.Color == "" {
		o.Color = meta.Color
	}
	if o.Scale == 0 {
		o.Scale = meta.Scale
	}
	if len(o.Mean) == 0 {
		o.Mean = meta.Mean
	}
	if len(o.Std) == 0 {
		o.Std = meta.Std
	}
	return o
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			labels = append(labels, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading labels %s: %w", path, err)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("labels file %s has no labels", path)
	}
	return labels, nil
}

// streamStates holds each stream's source state for status messages: starting, running, reconnecting,
// ended or failed.
type streamStates struct {
	mu     sync.Mutex
	states map[string]string
}

func newStreamStates() *streamStates { return &streamStates{states: map[string]string{}} }

func (s *streamStates) set(stream, state string) {
	s.mu.Lock()
	s.states[stream] = state
	s.mu.Unlock()
}

func (s *streamStates) get(stream string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[stream]
}

// engineOptions maps the engine config onto one worker's engine options.
func (p *Pipeline) engineOptions() engine.Options {
	e := p.cfg.Engine
	return engine.Options{
		Backend: engine.Backend(e.Backend), Threads: e.Threads, MaxBatch: p.cfg.Batch.MaxSize,
		Library: e.Library, OpenCVBackend: e.OpenCVBackend, OpenCVTarget: e.OpenCVTarget, Logger: p.log,
	}
}

// natsOptions maps the nats config onto the publisher's options.
func (p *Pipeline) natsOptions() stages.NATSOptions {
	n := p.cfg.NATS
	return stages.NATSOptions{
		URLs:      n.URLs(),
		Embedded:  stages.EmbeddedOptions{Listen: n.Embedded.Listen, JetStream: n.Embedded.JetStream, StoreDir: n.Embedded.StoreDir},
		Prefix:    n.Prefix,
		User:      n.User,
		Password:  n.Password,
		Token:     n.Token,
		CredsFile: n.Creds, NKeySeedFile: n.NKey,
		TLS: stages.TLSOptions{CAFile: n.TLS.CA, CertFile: n.TLS.Cert, KeyFile: n.TLS.Key},
		JetStream: stages.JetStreamOptions{Enabled: n.JetStream.Enabled, Stream: n.JetStream.Stream, Create: n.JetStream.Create,
			MaxPending: n.JetStream.MaxPending, AckTimeout: n.JetStream.AckTimeout},
		BufferSize:        n.Buffer,
		FailIfUnreachable: n.RequireConnect,
		BootID:            p.opts.BootID,
		Conn:              p.opts.NATSConn,
		Logger:            p.log,
	}
}

// queuePolicy resolves a stream's queue policy: its own, else queue.policy, where auto means drop_oldest for
// live sources and block for files and image folders.
func (p *Pipeline) queuePolicy(i int) (pipeline.Policy, error) {
	name := p.cfg.Queue.Policy
	if i < len(p.cfg.Streams) && p.cfg.Streams[i].Policy != "" {
		name = p.cfg.Streams[i].Policy
	}
	if name == "auto" {
		spec, err := stages.ParseSource(p.streams[i].URL)
		if err != nil {
			return 0, err
		}
		if spec.Kind.Live() {
			return pipeline.DropOldest, nil
		}
		return pipeline.Block, nil
	}
	return pipeline.ParsePolicy(name)
}
