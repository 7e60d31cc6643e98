// Package supervisor runs a planned pipeline: it starts every goroutine of it in one place, tracks them with
// one WaitGroup, keeps the first error, and shuts them down in one documented order.
//
// Goroutines, who starts them and what ends them (all started by Start, all tracked by Supervisor.wg):
//
//	goroutine                 one per      ends when
//	capture                   stream       its source ends (files), StopStream, or the sources context is cancelled;
//	                                       closes its queue
//	forward                   queue        its queue is closed and drained, or the hard context ends
//	batcher                   pipeline     the frame channel is closed (by the last forwarder); closes batches
//	pool (dispatcher,         pipeline     batches is closed and every batch is delivered; closes results
//	  workers, deliverer)
//	sink                      pipeline     results is closed; then closes sideStop
//	events                    pipeline     the event queue is closed (by the last of capture goroutines and the sink)
//	heartbeat, summary        pipeline     sideStop is closed
//	fleet                     pipeline     (fleet mode) the sources context is cancelled and its streams are released
//	drain timer               Close        the pipeline has drained, or shutdown.drain_timeout passes (cancels hard)
//	finish                    pipeline     every goroutine above has returned: sends the last status, closes the
//	                                       publisher, sets the error and closes done
//
// Shutdown order: BeginClose closes the push queues and cancels the sources context; each capture goroutine
// closes its queue, the forwarders drain them into the batcher, and every later stage ends when its input is
// closed, so frames in flight are processed and published. If the drain deadline passes first, the hard
// context is cancelled and whatever is still in flight is discarded (and counted as dropped). BeginClose logs
// the streams still opening their source, which capture may wait for up to their abandon_wait.
//
// In fleet mode the fleet goroutine starts and stops streams at run time (StartStream, StopStream): each
// has its own capture and forward goroutines, tracked like the others, and the frame channel stays open
// until BeginClose even while no stream runs.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/internal/fleet"
	"github.com/sestream/sestream/internal/plan"
	"github.com/sestream/sestream/internal/sink"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/capture"
	"github.com/sestream/sestream/stages/infer"
	"github.com/sestream/sestream/stages/natspub"
	"github.com/sestream/sestream/stages/source"
)

// Errors of a running pipeline, for errors.Is.
var (
	// ErrClosed: Push after Close, or after every source ended.
	ErrClosed = errors.New("pipeline closed")
	// ErrDrainDeadline: frames were still in flight when shutdown.drain_timeout passed.
	ErrDrainDeadline = errors.New("drain deadline passed")
	// ErrUnknownStream: the stream was not declared as a push stream.
	ErrUnknownStream = errors.New("unknown push stream")
	// ErrAllStreamsFailed: every stream stopped for good without delivering a frame (and there are no push
	// streams); the error names each stream and its own error.
	ErrAllStreamsFailed = errors.New("every stream failed")
)

// Options are what the host process gives a pipeline besides its plan; see sestream.Options.
type Options struct {
	Log      *slog.Logger
	Summary  io.Writer
	Version  string
	OnFrame  func(*message.Result, *message.Attention)
	OnEvent  func(*message.Event)
	NoNATS   bool
	NATSConn *nats.Conn
	BootID   string
	Metrics  *metrics.Metrics
	// Thumbnails, when not nil, makes JPEG thumbnails of frames in the workers (see infer.Options).
	Thumbnails *infer.Thumbnailer
}

// Supervisor is a started pipeline.
type Supervisor struct {
	plan     *plan.Plan
	opts     Options
	log      *slog.Logger
	counters *pipeline.Counters
	cpu      *pipeline.StageCPU
	shrink   func(dst *gocv.Mat, src gocv.Mat) bool // scales frames on their capture thread (preprocess.Options.Shrink)
	fleet    atomic.Pointer[fleet.Controller]       // set when the fleet starts; read by the metrics endpoint
	states   *sink.States
	started  time.Time
	engine   string

	pub     *natspub.Publisher // nil with NoNATS
	bootID  string
	batcher *pipeline.Batcher[capture.Frame]
	pool    *pipeline.Pool[*pipeline.Batch[capture.Frame], *infer.BatchResult]
	events  *sink.Events
	sink    *sink.Sink
	pushers map[string]*pusher

	hard        context.Context    // ends every stage; cancelled after the drain deadline
	hardCancel  context.CancelFunc //
	sources     context.Context    // ends capture; the rest drains
	stopSources context.CancelFunc //
	pushing     context.Context    // ends pushes waiting for room in a full queue
	stopPushing context.CancelFunc //

	wg        sync.WaitGroup
	firstErr  error
	errOnce   sync.Once
	done      chan struct{} // closed when everything has drained and err is set
	err       error
	closeOnce sync.Once
	deadline  atomic.Bool

	pushMu     sync.RWMutex // Push holds it for reading while it queues; closePushers for writing
	pushClosed bool

	// streamErrs[i] is why plan stream i stopped for good; written by its capture goroutine, read by finish
	// after the WaitGroup.
	streamErrs []error

	frames         chan capture.Frame // batcher input; closed by the last forwarder (or by BeginClose)
	forwarders     *producers         // of frames; in fleet mode BeginClose holds one more
	eventProducers *producers         // of the event queue: capture goroutines and the sink
	streamsMu      sync.Mutex         // guards running
	running        map[string]*runningStream
}

// runningStream is a captured stream as far as stopping it goes.
type runningStream struct {
	stop      context.CancelFunc // ends its capture goroutine
	forwarded chan struct{}      // closed when its forwarder has handed the last frame to the batcher
}

// pusher is one push stream: frames come from the host program through Push.
type pusher struct {
	name  string
	queue *pipeline.Queue[capture.Frame]
	seq   atomic.Uint64
}

// Start connects to NATS (or starts the embedded server), opens one engine per worker, and starts every
// goroutine; it returns once frames are flowing. ctx bounds only the start itself.
func Start(ctx context.Context, p *plan.Plan, opts Options) (_ *Supervisor, err error) {
	s := &Supervisor{plan: p, opts: opts, log: opts.Log, counters: pipeline.NewCounters(), cpu: &pipeline.StageCPU{}, shrink: p.Preprocess.Shrink, states: sink.NewStates(opts.Metrics),
		started: time.Now(), done: make(chan struct{}), pushers: map[string]*pusher{}}
	s.hard, s.hardCancel = context.WithCancel(context.Background())
	s.sources, s.stopSources = context.WithCancel(s.hard)
	s.pushing, s.stopPushing = context.WithCancel(s.hard)
	defer func() {
		if err != nil {
			if s.pool != nil {
				// Never run: close the workers' engines through an empty run.
				closed := make(chan *pipeline.Batch[capture.Frame])
				close(closed)
				_ = s.pool.Run(context.Background(), closed, make(chan *infer.BatchResult, 1))
			}
			if s.pub != nil {
				s.closePublisher()
			}
			s.hardCancel()
		}
	}()
	for _, st := range p.Streams {
		s.states.Set(st.Source.Name, source.StateStarting)
	}
	if p.Fleet != nil && opts.NoNATS {
		return nil, fmt.Errorf("fleet %s: a fleet shares its streams over NATS; it cannot run without NATS", p.Fleet.Name)
	}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	if m := opts.Metrics; m != nil {
		m.Watch(metrics.Sources{Streams: s.counters.Snapshot, NATS: s.natsState(), Workers: s.Workers, Fleet: s.fleetState})
	}
	if err := s.openEngines(ctx); err != nil {
		return nil, err
	}
	s.run()
	return s, nil
}

// connect starts the publisher (or not) and fixes the boot id.
func (s *Supervisor) connect(ctx context.Context) error {
	s.bootID = s.opts.BootID
	if !s.opts.NoNATS {
		o := s.plan.NATS
		o.BootID, o.Conn, o.Logger = s.opts.BootID, s.opts.NATSConn, s.log
		pub, err := natspub.New(ctx, o)
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		s.pub = pub
		s.bootID = pub.BootID()
		s.log.Info("publishing", "nats", pub.ClientURL(), "prefix", pub.Prefix(), "boot_id", pub.BootID())
		return nil
	}
	if s.bootID == "" {
		var err error
		if s.bootID, err = message.NewBootID(); err != nil {
			return err
		}
	}
	return nil
}

// openEngines runs the SE self-check when asked, and opens the batcher and one engine per worker.
func (s *Supervisor) openEngines(ctx context.Context) error {
	p := s.plan
	eo := p.Engine
	eo.Logger = s.log
	if p.Verify {
		checks, err := engine.CheckGates(ctx, p.Model, eo, p.Preprocess.Height, p.Preprocess.Width)
		if err != nil {
			return err
		}
		for _, c := range checks {
			s.log.Info("SE self-check", "block", c.Block, "channels", c.Channels, "max_error", c.MaxError)
		}
	}
	if err := s.chooseLayout(ctx, &eo); err != nil {
		return err
	}
	var err error
	if s.batcher, err = pipeline.NewBatcher[capture.Frame](p.Batch, p.Workers*2+2, nil); err != nil {
		return err
	}
	io := infer.Options{Model: p.Model, Engine: eo, Preprocess: p.Preprocess, Labels: p.Labels, GateTopK: p.TopK, Thumbnails: s.opts.Thumbnails, CPU: s.cpu}
	s.pool, err = pipeline.NewPool[*pipeline.Batch[capture.Frame], *infer.BatchResult](p.Workers, p.Workers*2,
		func(int) (pipeline.Worker[*pipeline.Batch[capture.Frame], *infer.BatchResult], error) {
			w, err := infer.NewWorker(io, s.batcher.Release)
			if err != nil {
				return nil, err
			}
			s.engine = string(w.Engine().Backend)
			return w, nil
		})
	if err != nil {
		s.pool = nil
		return fmt.Errorf("engine: %w", err)
	}
	if m := s.opts.Metrics; m != nil {
		m.ModelLoaded(metrics.ModelInfo{Name: p.Model.Name, Digest: p.Model.Digest, Engine: s.engine, SEBlocks: len(p.Model.Blocks)})
	}
	s.log.Info("model loaded", "model", p.Model.Name, "digest", p.Model.Digest, "se_blocks", len(p.Model.Blocks),
		"engine", s.engine, "workers", p.Workers, "batch", p.Batch.MaxSize, "batch_delay", p.Batch.MaxDelay)
	return nil
}

// chooseLayout fills in workers and engine threads left at 0 (auto) in the plan and in eo, measuring the engine
// when both are (engine.ChooseLayout), and logs the layout.
func (s *Supervisor) chooseLayout(ctx context.Context, eo *engine.Options) error {
	p := s.plan
	if p.Workers > 0 && eo.Threads > 0 {
		return nil
	}
	cores := runtime.NumCPU()
	l, trials, err := engine.ChooseLayout(ctx, p.Model, *eo, engine.Layout{Workers: p.Workers, Threads: eo.Threads},
		cores, p.Batch.MaxSize, engine.AutoLayoutBudget)
	if err != nil {
		return fmt.Errorf("engine: choosing workers and threads: %w", err)
	}
	p.Workers, p.Engine.Threads, eo.Threads = l.Workers, l.Threads, l.Threads
	args := []any{"workers", l.Workers, "threads", l.Threads, "cores", cores}
	for _, t := range trials {
		args = append(args, fmt.Sprintf("images_per_cpu_s_%dt", t.Threads), math.Round(t.ImagesPerCPUSec))
	}
	s.log.Info("layout", args...)
	return nil
}

// goroutine starts fn as one of the pipeline's goroutines; a non-nil error other than cancellation becomes
// the pipeline's first error.
func (s *Supervisor) goroutine(fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			s.errOnce.Do(func() { s.firstErr = err })
		}
	}()
}

// producers counts the producers of a shared output: the last one to be done runs last (which closes the
// output), once. A producer can join while at least one other is still producing.
type producers struct {
	mu   sync.Mutex
	n    int
	last func()
}

// newProducers starts with n producers; with none, last runs at once.
func newProducers(n int, last func()) *producers {
	if n == 0 {
		last()
	}
	return &producers{n: n, last: last}
}

// add joins one producer; false when the output is already closed.
func (p *producers) add() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return false
	}
	p.n++
	return true
}

// done is called once by each producer when it is finished.
func (p *producers) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n--; p.n == 0 {
		p.last()
	}
}

// run starts every goroutine of the pipeline. From here on nothing fails.
func (s *Supervisor) run() {
	p := s.plan
	s.events = sink.NewEvents(s.bootID, s.log, s.opts.OnEvent)
	var framePub sink.FramePublisher
	var eventPub sink.EventPublisher
	var statusPub sink.StatusPublisher
	if s.pub != nil {
		framePub, eventPub, statusPub = s.pub, s.pub, s.pub
	}
	s.sink = sink.New(sink.Config{BootID: s.bootID, Model: message.Model{Name: p.Model.Name, Digest: p.Model.Digest},
		Blocks: p.Model.Blocks, MaxBatch: p.Batch.MaxSize, Drift: p.Drift, IncludeVectors: p.IncludeVectors},
		sink.Deps{Publisher: framePub, Counters: s.counters, Events: s.events, Metrics: s.opts.Metrics, OnFrame: s.opts.OnFrame, Log: s.log, CPU: s.cpu})

	// The event queue ends once every capture goroutine and the sink are done with it.
	s.eventProducers = newProducers(len(p.Streams)+1, s.events.Close)
	s.goroutine(func() error { s.events.Run(s.hard, eventPub); return nil })

	s.frames = make(chan capture.Frame)
	hold := 0
	if p.Fleet != nil {
		hold = 1 // released by BeginClose: streams come and go until then
	}
	s.forwarders = newProducers(len(p.Streams)+len(p.Push)+hold, func() { close(s.frames) })
	s.running = map[string]*runningStream{}
	s.streamErrs = make([]error, len(p.Streams))
	for i, st := range p.Streams {
		s.startStream(st, i)
	}
	for _, name := range p.Push {
		ps := &pusher{name: name, queue: pipeline.NewQueue[capture.Frame](name, p.QueueSize, p.PushPolicy, capture.DiscardFrame)}
		s.pushers[name] = ps
		s.counters.WatchQueue(name, ps.queue)
		s.states.Set(name, source.StateRunning)
		s.forward(ps.queue, nil)
	}

	batches := make(chan *pipeline.Batch[capture.Frame]) // closed by the batcher
	s.goroutine(func() error { return s.batcher.Run(s.hard, s.frames, batches, s.cancelFrame) })
	results := make(chan *infer.BatchResult) // closed by the pool
	s.goroutine(func() error { return s.pool.Run(s.hard, batches, results) })

	sideStop := make(chan struct{}) // closed by the sink goroutine once every result is handled
	s.goroutine(func() error {
		defer s.eventProducers.done()
		defer close(sideStop)
		for res := range results {
			s.sink.Handle(s.hard, res)
		}
		return nil
	})
	heartbeat := &sink.Heartbeat{Publisher: statusPub, Counters: s.counters, States: s.states, Version: s.opts.Version,
		BootID: s.bootID, Started: s.started, Log: s.log}
	s.goroutine(func() error { heartbeat.Run(s.hard, p.StatusInterval, sideStop); return nil })
	if s.opts.Summary != nil {
		summary := &sink.Summary{Out: s.opts.Summary, Sink: s.sink, Counters: s.counters, MaxBatch: p.Batch.MaxSize}
		s.goroutine(func() error { summary.Run(sideStop); return nil })
	}

	if p.Fleet != nil {
		ctl := fleet.New(*p.Fleet, s.pub.Conn(), s.bootID, s, s.log)
		s.fleet.Store(ctl)
		s.goroutine(func() error {
			err := ctl.Run(s.sources, s.hard)
			if err != nil {
				// Without the fleet this instance would run nothing: stop, and let the error say why.
				s.log.Error("fleet: cannot take part; stopping", "err", err)
				go s.BeginClose()
			}
			return err
		})
	}

	// finish: with no push streams (and no fleet) the pipeline ends by itself when every source has ended.
	go func() {
		s.wg.Wait()
		s.countLost()
		if s.firstErr == nil {
			heartbeat.Now(s.hard)
		}
		if s.pub != nil {
			s.closePublisher()
		}
		switch {
		case s.deadline.Load():
			s.err = fmt.Errorf("%w (%s) before every frame was published", ErrDrainDeadline, p.DrainTimeout)
		case s.firstErr != nil:
			s.err = s.firstErr
		default:
			s.err = s.allFailed()
		}
		s.hardCancel()
		close(s.done)
	}()
}

// forward starts the goroutine that moves q's frames into the batcher input; it closes forwarded (when not
// nil) once q is closed and drained. The caller has counted it in s.forwarders.
func (s *Supervisor) forward(q *pipeline.Queue[capture.Frame], forwarded chan struct{}) {
	counters := s.counters.Stream(q.Name())
	s.goroutine(func() error {
		defer s.forwarders.done()
		if forwarded != nil {
			defer close(forwarded)
		}
		for f := range q.C() {
			select {
			case s.frames <- f:
			case <-s.hard.Done():
				counters.Cancelled(1)
				f.Release()
			}
		}
		return nil
	})
}

// startStream starts the capture and forward goroutines of st, which is plan stream index (or -1: a stream
// started at run time). The caller has counted both in s.eventProducers and s.forwarders.
func (s *Supervisor) startStream(st plan.Stream, index int) {
	p := s.plan
	name := st.Source.Name
	ctx, stop := context.WithCancel(s.sources)
	r := &runningStream{stop: stop, forwarded: make(chan struct{})}
	s.streamsMu.Lock()
	s.running[name] = r
	s.streamsMu.Unlock()
	s.states.Set(name, source.StateStarting)
	// A stream started again continues its frame numbers after the frames its earlier runs captured, so
	// that its Nats-Msg-Ids (stream, boot id, seq) never repeat within the process.
	src := &capture.Source{Options: st.Source, SeqBase: s.streamStats(name).Captured, CPU: s.cpu, Shrink: s.shrink}
	q := pipeline.NewQueue[capture.Frame](name, p.QueueSize, st.Policy, capture.DiscardFrame)
	s.counters.WatchQueue(name, q)
	s.goroutine(func() error {
		defer s.eventProducers.done()
		defer stop()
		err := src.Run(ctx, q, func(e source.Event) {
			s.states.Set(e.Stream, source.StateAfter(e.Kind, st.Kind))
			if e.Kind == message.EventReconnected && s.opts.Metrics != nil {
				s.opts.Metrics.SourceReconnect(e.Stream)
			}
			s.events.Source(e)
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			if index >= 0 {
				s.streamErrs[index] = err
			}
			s.states.Set(name, source.StateFailed)
			s.log.Error("stream stopped", "stream", name, "err", err)
		}
		return nil // one stream's failure is that stream's; the others go on
	})
	s.forward(q, r.forwarded)
	s.log.Info("stream", "name", name, "policy", st.Policy.String(), "queue", p.QueueSize)
}

// StartStream starts a stream at run time (a fleet took its lease). It fails for a stream already running,
// a stream that does not resolve, and once BeginClose was called.
func (s *Supervisor) StartStream(cs config.Stream) error {
	st, err := s.plan.Stream(cs)
	if err != nil {
		return fmt.Errorf("stream %s: %w", cs.Name, err)
	}
	s.streamsMu.Lock()
	_, running := s.running[cs.Name]
	s.streamsMu.Unlock()
	if running {
		return fmt.Errorf("stream %s is already running", cs.Name)
	}
	if !s.forwarders.add() {
		return fmt.Errorf("stream %s: %w", cs.Name, ErrClosed)
	}
	if !s.eventProducers.add() {
		s.forwarders.done()
		return fmt.Errorf("stream %s: %w", cs.Name, ErrClosed)
	}
	if s.sources.Err() != nil {
		s.forwarders.done()
		s.eventProducers.done()
		return fmt.Errorf("stream %s: %w", cs.Name, ErrClosed)
	}
	s.startStream(st, -1)
	return nil
}

// StopStream stops a stream started by StartStream (or at start) and returns once every frame it captured
// has been processed and published (or dropped), so that another instance can take it over without both
// publishing; or when ctx ends, with an error saying what was still in flight.
func (s *Supervisor) StopStream(ctx context.Context, name string) error {
	s.streamsMu.Lock()
	r := s.running[name]
	delete(s.running, name)
	s.streamsMu.Unlock()
	if r == nil {
		return fmt.Errorf("stream %s is not running", name)
	}
	r.stop()
	select {
	case <-r.forwarded:
	case <-ctx.Done():
		return fmt.Errorf("stream %s: its queue was not drained: %w", name, ctx.Err())
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		st := s.streamStats(name)
		if st.InFlight() == 0 && st.Processed == st.Published+st.PublishDropped {
			s.states.Set(name, source.StateStopped)
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("stream %s: %d frames still in flight, %d not yet published: %w", name, st.InFlight(),
				st.Processed-min(st.Processed, st.Published+st.PublishDropped), ctx.Err())
		}
	}
}

// streamStats is one stream's counters.
func (s *Supervisor) streamStats(name string) pipeline.StreamStats {
	for _, st := range s.counters.Snapshot() {
		if st.Stream == name {
			return st
		}
	}
	return pipeline.StreamStats{Stream: name}
}

// cancelFrame discards a frame cancelled in flight, counting it.
func (s *Supervisor) cancelFrame(f capture.Frame) {
	s.counters.Stream(f.Info.Stream).Cancelled(1)
	capture.DiscardFrame(f)
}

// countLost counts as cancelled, once every goroutine has returned, the frames the worker pool dropped when
// the hard context ended (it drops undelivered batches without a discard function): what was captured and is
// neither queued, dropped, failed nor processed. Without a cancellation nothing can be missing.
func (s *Supervisor) countLost() {
	for _, st := range s.counters.Snapshot() {
		lost := st.InFlight() - min(st.InFlight(), uint64(st.QueueDepth))
		if lost == 0 {
			continue
		}
		s.counters.Stream(st.Stream).Cancelled(lost)
		if s.hard.Err() == nil {
			s.log.Error("frames lost without a cancellation; counted as dropped", "stream", st.Stream, "frames", lost)
		}
	}
}

// allFailed returns an error wrapping ErrAllStreamsFailed when every stream of the plan stopped for good and
// none delivered a frame, and there are no push streams; nil otherwise. A stream that ended (a file read to
// its end) or was stopped is not a failure.
func (s *Supervisor) allFailed() error {
	if len(s.plan.Streams) == 0 || len(s.plan.Push) > 0 {
		return nil
	}
	captured := map[string]uint64{}
	for _, c := range s.counters.Snapshot() {
		captured[c.Stream] = c.Captured
	}
	msgs := make([]string, len(s.plan.Streams))
	for i, st := range s.plan.Streams {
		err := s.streamErrs[i]
		if err == nil || captured[st.Source.Name] > 0 {
			return nil
		}
		msgs[i] = err.Error()
	}
	return fmt.Errorf("%w, none delivered a frame: %s", ErrAllStreamsFailed, strings.Join(msgs, "; "))
}

func (s *Supervisor) closePublisher() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.pub.Close(ctx); err != nil {
		s.log.Warn("closing the NATS publisher", "err", err)
	}
}

// Done is closed once the pipeline has drained (after BeginClose, or once every source has ended).
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Err is the pipeline's outcome, valid once Done is closed: nil after a complete drain, an error wrapping
// ErrDrainDeadline when frames were still in flight at the deadline, the first stage error, or an error
// wrapping ErrAllStreamsFailed when every stream failed without delivering a frame.
func (s *Supervisor) Err() error { return s.err }

// BeginClose stops the sources and pushing, and starts the drain deadline. It is idempotent.
func (s *Supervisor) BeginClose() {
	s.closeOnce.Do(func() {
		timeout := s.plan.DrainTimeout
		s.log.Info("stopping: sources closed, draining frames in flight", "drain_timeout", timeout)
		s.logOpening()
		s.closePushers()
		s.stopSources()
		if s.plan.Fleet != nil {
			s.forwarders.done() // the fleet's hold: the frame channel closes once the streams have drained
		}
		go func() { // the drain timer
			t := time.NewTimer(timeout)
			defer t.Stop()
			select {
			case <-t.C:
				s.deadline.Store(true)
				s.log.Warn("drain deadline passed; dropping frames still in flight", "drain_timeout", timeout)
				s.hardCancel()
			case <-s.done:
			}
		}()
	})
}

// logOpening says, once at shutdown, which streams have not delivered a frame since they were started or
// lost: their capture may be blocked in an open that cannot be interrupted, and shutdown waits for it for up to
// the stream's abandon_wait.
func (s *Supervisor) logOpening() {
	var names []string
	var wait time.Duration
	for _, st := range s.plan.Streams {
		switch state := s.states.Get(st.Source.Name); state {
		case source.StateStarting, source.StateReconnecting:
			names = append(names, fmt.Sprintf("%s (%s)", st.Source.Name, state))
			wait = max(wait, st.Source.AbandonWait)
		}
	}
	if len(names) > 0 {
		s.log.Warn("stopping: waiting for streams still opening their source", "streams", strings.Join(names, ", "),
			"wait_up_to", wait)
	}
}

// Abort cancels everything still in flight at once (what is dropped is counted).
func (s *Supervisor) Abort() { s.hardCancel() }

// Engine is the backend the workers run.
func (s *Supervisor) Engine() string { return s.engine }

// Counters are the per-stream counters.
func (s *Supervisor) Counters() *pipeline.Counters { return s.counters }

// StageCPU is the CPU time counted per stage.
func (s *Supervisor) StageCPU() *pipeline.StageCPU { return s.cpu }

// fleetState is the fleet controller's last round for the metrics endpoint; false without a fleet.
func (s *Supervisor) fleetState() (metrics.FleetState, bool) {
	ctl := s.fleet.Load()
	if ctl == nil {
		return metrics.FleetState{}, false
	}
	st := ctl.Last()
	if st == nil {
		return metrics.FleetState{}, false
	}
	f := metrics.FleetState{Members: len(st.Members), Desired: st.Desired, Share: st.Share, Held: len(st.Streams),
		Acquired: st.Moves.Acquired, Released: st.Moves.Released, Lost: st.Moves.Lost}
	for _, l := range st.Streams {
		f.OldestRenewalS = max(f.OldestRenewalS, l.RenewedAgoS)
	}
	return f, true
}

// Workers reports the busy and total inference workers, for metrics.
func (s *Supervisor) Workers() (busy, total int) { return s.pool.Busy(), s.pool.Size() }

// natsState reads the publisher's state for metrics and readiness; nil when nothing is published.
func (s *Supervisor) natsState() func() metrics.NATSState {
	pub := s.pub
	if pub == nil {
		return nil
	}
	return func() metrics.NATSState {
		st := pub.Stats()
		t := st.Total()
		ns := metrics.NATSState{Connected: st.Connected, JetStream: st.Mode == "jetstream", Buffered: st.Buffered,
			Published: t.Published, Dropped: t.Dropped, Reconnects: st.Reconnects}
		if ns.JetStream {
			// Sent but not yet acknowledged: what was encoded, less what was confirmed, given up, or still buffered.
			ns.AcksPending = max(0, int(int64(t.Enqueued)-int64(t.Published)-int64(t.Dropped)-int64(st.Buffered)))
		}
		return ns
	}
}
