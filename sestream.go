package sestream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/plan"
	"github.com/sestream/sestream/internal/supervisor"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/infer"
	"github.com/sestream/sestream/stages/source"
	"github.com/sestream/sestream/version"
)

// DemoStream is the name of the built-in demo stream, used when the configuration has no streams.
const DemoStream = plan.DemoStream

// Errors of the Pipeline's lifecycle and of Push, for errors.Is.
var (
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("pipeline already started")
	// ErrNotStarted: Push, Wait or Close before Start.
	ErrNotStarted = errors.New("pipeline not started")
	// ErrClosed: Push after Close, or after every source ended.
	ErrClosed = supervisor.ErrClosed
	// ErrDrainDeadline: frames were still in flight when shutdown.drain_timeout passed.
	ErrDrainDeadline = supervisor.ErrDrainDeadline
	// ErrUnknownStream: the stream was not declared in Options.PushStreams.
	ErrUnknownStream = supervisor.ErrUnknownStream
	// ErrAllStreamsFailed: every configured stream stopped for good (a file that cannot be opened or read)
	// without delivering a frame, and there are no push streams. The error names each stream and its error.
	ErrAllStreamsFailed = supervisor.ErrAllStreamsFailed
)

// InputError is a problem with what the user configured or supplied: a model, a labels file, a stream. Its
// Key names the configuration key at fault.
type InputError = plan.InputError

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
	// Thumbnails, when its Sink is set, receives small JPEG copies of frames, rate-limited per stream, taken
	// by the inference workers before the frame's pixels are released (the live view of the dashboard).
	Thumbnails ThumbnailOptions
	// OnConnect, when not nil, is called once by Start with the connection the pipeline publishes on (not
	// with NoNATS), once frames flow. It may subscribe on it; it must not close it or change its handlers,
	// nor call the Pipeline's methods (Start has not returned yet).
	OnConnect func(*nats.Conn)
}

// ThumbnailOptions configure frame thumbnails: sink, rate, size, quality.
type ThumbnailOptions = infer.ThumbnailOptions

// Thumbnail is one frame thumbnail: stream, frame, size and JPEG bytes.
type Thumbnail = infer.Thumbnail

// FrameOutput is one processed frame as the host program receives it: the same messages the pipeline
// publishes on <prefix>.<stream>.result and .attention.
type FrameOutput struct {
	Result    *message.Result
	Attention *message.Attention
}

// Pipeline is a configured sestream pipeline: sources, batcher, inference workers, and the publisher.
// Build it with New and run it once with Run (or Start, then Wait or Close).
type Pipeline struct {
	plan *plan.Plan
	opts Options

	mu  sync.Mutex             // guards sup
	sup *supervisor.Supervisor // nil until Start
}

// New checks the configuration against the model and the sources, loads the model, and resolves everything
// the pipeline will need; nothing reads cfg afterwards. Nothing is started: errors here are the user's to fix
// (exit code 2 in the sestream command) and are reported as *InputError.
func New(cfg *config.Config, opts Options) (*Pipeline, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Version == "" {
		opts.Version = version.Version()
	}
	p, err := plan.New(cfg, opts.PushStreams, bundled{})
	if err != nil {
		return nil, err
	}
	return &Pipeline{plan: p, opts: opts}, nil
}

// bundled finds the demo's model and video for the plan.
type bundled struct{}

func (bundled) Model() (string, error)  { return FindBundled(BundledModel) }
func (bundled) Sample() (string, error) { return FindBundled(BundledSample) }

// Model returns the loaded model.
func (p *Pipeline) Model() *model.Model { return p.plan.Model }

// Streams returns the sources the pipeline will run, defaults applied; none with fleet.enabled (the fleet
// starts and stops streams at run time).
func (p *Pipeline) Streams() []source.Options {
	out := make([]source.Options, len(p.plan.Streams))
	for i, s := range p.plan.Streams {
		out[i] = s.Source
	}
	return out
}

// Stats returns the pipeline's per-stream counters (empty before Start).
func (p *Pipeline) Stats() []pipeline.StreamStats {
	if s := p.started(); s != nil {
		return s.Counters().Snapshot()
	}
	return nil
}

// StageCPU returns the CPU time each stage has spent on its own threads so far (nil before Start); see
// pipeline.StageCPU for what it leaves out.
func (p *Pipeline) StageCPU() *pipeline.StageCPU {
	if s := p.started(); s != nil {
		return s.StageCPU()
	}
	return nil
}

// Start connects to NATS (or starts the embedded server), opens one engine per worker, and starts every
// source; it returns once frames are flowing. ctx bounds only the start itself. Start may be called once.
// The goroutines it starts, and the order in which they stop, are documented in docs/architecture.md.
func (p *Pipeline) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sup != nil {
		return ErrStarted
	}
	o := supervisor.Options{Log: p.opts.Logger, Summary: p.opts.Summary, Version: p.opts.Version, OnEvent: p.opts.OnEvent,
		NoNATS: p.opts.NoNATS, NATSConn: p.opts.NATSConn, BootID: p.opts.BootID, Metrics: p.opts.Metrics,
		Thumbnails: infer.NewThumbnailer(p.opts.Thumbnails)}
	if on := p.opts.OnFrame; on != nil {
		o.OnFrame = func(r *message.Result, a *message.Attention) { on(FrameOutput{Result: r, Attention: a}) }
	}
	s, err := supervisor.Start(ctx, p.plan, o)
	if err != nil {
		return err
	}
	p.sup = s
	if p.opts.OnConnect != nil && s.Conn() != nil {
		p.opts.OnConnect(s.Conn())
	}
	return nil
}

func (p *Pipeline) started() *supervisor.Supervisor {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sup
}

// Run starts the pipeline and waits until every source has ended (files without loop) or ctx is cancelled;
// on cancel it closes the pipeline, draining frames in flight for up to shutdown.drain_timeout. It returns nil
// after a complete drain, and otherwise what Wait returns. At the end it logs one "stopped" line per stream
// with its counters (captured = dropped + failed + processed, processed = published + publish_dropped).
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	s := p.started()
	select {
	case <-s.Done():
	case <-ctx.Done():
		s.BeginClose()
	}
	err := p.Wait()
	for _, st := range s.Counters().Snapshot() {
		p.opts.Logger.Info("stopped", "stream", st.Stream, "captured", st.Captured, "dropped", st.Dropped,
			"failed", st.Failed, "processed", st.Processed, "published", st.Published, "publish_dropped", st.PublishDropped)
	}
	return err
}

// Wait blocks until the pipeline has drained: after Close, or once every source has ended. It returns nil
// after a complete drain, an error wrapping ErrDrainDeadline when frames were still in flight at the deadline,
// an error wrapping ErrAllStreamsFailed when every stream failed without delivering a frame, or the first
// stage error.
func (p *Pipeline) Wait() error {
	s := p.started()
	if s == nil {
		return ErrNotStarted
	}
	<-s.Done()
	return s.Err()
}

// Close stops the sources and refuses further pushes, lets the frames in flight be processed and published,
// and returns when that is done. The drain is bounded by shutdown.drain_timeout and by ctx: when either ends
// first, what is still in flight is dropped (and counted). Close after Close returns the same result.
func (p *Pipeline) Close(ctx context.Context) error {
	s := p.started()
	if s == nil {
		return ErrNotStarted
	}
	s.BeginClose()
	select {
	case <-s.Done():
	case <-ctx.Done():
		s.Abort()
		<-s.Done()
	}
	return s.Err()
}
