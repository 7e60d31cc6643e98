package sestream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages"
)

// eventBuffer bounds the source and drift events waiting to be published.
const eventBuffer = 256

// Errors of the Pipeline's lifecycle, for errors.Is.
var (
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("pipeline already started")
	// ErrNotStarted: Push, Wait or Close before Start.
	ErrNotStarted = errors.New("pipeline not started")
	// ErrClosed: Push after Close, or after every source ended.
	ErrClosed = errors.New("pipeline closed")
	// ErrDrainDeadline: frames were still in flight when shutdown.drain_timeout passed.
	ErrDrainDeadline = errors.New("drain deadline passed")
)

// run is the state of a started pipeline.
type run struct {
	hard        context.Context    // ends every stage; cancelled after the drain deadline
	hardCancel  context.CancelFunc //
	stopSources context.CancelFunc // ends capture (and pushing); the rest drains
	pushCtx     context.Context    // done once pushing is over
	done        chan struct{}      // closed when everything has drained and Wait's error is set
	err         error
	closeOnce   sync.Once
	deadlineMu  sync.Mutex
	deadline    bool
}

// Run starts the pipeline and waits until every source has ended (files without loop) or ctx is cancelled;
// on cancel it closes the pipeline, draining frames in flight for up to shutdown.drain_timeout. It returns nil
// after a complete drain.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	select {
	case <-p.run.done:
	case <-ctx.Done():
		p.beginClose()
	}
	err := p.Wait()
	for _, st := range p.counters.Snapshot() {
		p.log.Info("stopped", "stream", st.Stream, "captured", st.Captured, "dropped", st.Dropped,
			"failed", st.Failed, "processed", st.Processed, "published", st.Published)
	}
	return err
}

// Start connects to NATS (or starts the embedded server), opens one engine per worker, and starts every
// source; it returns once frames are flowing. ctx bounds only the start itself. Start may be called once.
//
// Goroutines: one per source (stages.Source.Run, owns the capture), one per stream forwarding its queue to
// the batcher, the batcher, the worker pool (dispatcher, one goroutine per worker, deliverer), the sink
// (statistics, drift, publishing), the event publisher, the status heartbeat and the console summary.
func (p *Pipeline) Start(ctx context.Context) (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil {
		return ErrStarted
	}
	p.started = time.Now()
	hard, hardCancel := context.WithCancel(context.Background())
	sources, stopSources := context.WithCancel(hard)
	r := &run{hard: hard, hardCancel: hardCancel, stopSources: stopSources, pushCtx: sources, done: make(chan struct{})}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
			hardCancel()
		}
	}()

	var pub *stages.Publisher
	if !p.opts.NoNATS {
		if pub, err = stages.NewPublisher(ctx, p.natsOptions()); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		cleanup = append(cleanup, func() { p.closePublisher(pub) })
		p.log.Info("publishing", "nats", pub.ClientURL(), "prefix", pub.Prefix(), "boot_id", pub.BootID())
	}
	bootID := p.opts.BootID
	if pub != nil {
		bootID = pub.BootID()
	} else if bootID == "" {
		if bootID, err = message.NewBootID(); err != nil {
			return err
		}
	}

	if m := p.opts.Metrics; m != nil {
		m.Watch(metrics.Sources{Streams: p.counters.Snapshot, NATS: natsState(pub), Workers: p.workersBusy})
	}

	if p.cfg.Engine.Verify {
		pre := p.pre.WithDefaults()
		checks, err := CheckGates(ctx, p.model, p.engineOptions(), pre.Height, pre.Width)
		if err != nil {
			return err
		}
		for _, c := range checks {
			p.log.Info("SE self-check", "block", c.Block, "channels", c.Channels, "max_error", c.MaxError)
		}
	}

	batchPolicy := pipeline.BatchPolicy{MaxSize: p.cfg.Batch.MaxSize, MaxDelay: p.cfg.Batch.MaxDelay}
	batcher, err := pipeline.NewBatcher[stages.Frame](batchPolicy, p.cfg.Workers*2+2, nil)
	if err != nil {
		return err
	}
	inferOpts := stages.InferOptions{Model: p.model, Engine: p.engineOptions(), Preprocess: p.pre, Labels: p.labels,
		GateTopK: p.cfg.Attention.TopK}
	var engineName string
	pool, err := pipeline.NewPool[*pipeline.Batch[stages.Frame], *stages.BatchResult](p.cfg.Workers, p.cfg.Workers*2,
		func(i int) (pipeline.Worker[*pipeline.Batch[stages.Frame], *stages.BatchResult], error) {
			w, err := stages.NewInferWorker(inferOpts, batcher.Release)
			if err != nil {
				return nil, err
			}
			engineName = string(w.Engine().Backend)
			return w, nil
		})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	p.engine = engineName
	p.pool = pool
	if m := p.opts.Metrics; m != nil {
		m.ModelLoaded(metrics.ModelInfo{Name: p.model.Name, Digest: p.model.Digest, Engine: engineName, SEBlocks: len(p.model.Blocks)})
	}
	p.log.Info("model loaded", "model", p.model.Name, "digest", p.model.Digest, "se_blocks", len(p.model.Blocks),
		"engine", engineName, "workers", p.cfg.Workers, "batch", p.cfg.Batch.MaxSize, "batch_delay", p.cfg.Batch.MaxDelay)

	// From here on nothing fails: start the goroutines.
	events := make(chan *message.Event, eventBuffer) // closed once the sources and the sink are done
	emit := newEventEmitter(events, bootID, p.log, p.opts.OnEvent)
	var eventsDone sync.WaitGroup
	eventsDone.Add(1)
	go func() {
		defer eventsDone.Done()
		for e := range events {
			if pub == nil {
				continue
			}
			if err := pub.PublishEvent(hard, e); err != nil {
				p.log.Warn("publishing event", "stream", e.Stream, "kind", e.Kind, "err", err)
			}
		}
	}()

	frames := make(chan stages.Frame) // batcher input; closed once every stream's forwarder has returned
	var forwarders, sourcesWG sync.WaitGroup
	forward := func(q *pipeline.Queue[stages.Frame]) {
		forwarders.Add(1)
		go func() {
			defer forwarders.Done()
			for f := range q.C() {
				select {
				case frames <- f:
				case <-hard.Done():
					f.Mat.Close()
				}
			}
		}()
	}
	for i, so := range p.streams {
		policy, _ := p.queuePolicy(i) // checked by New
		q := pipeline.NewQueue[stages.Frame](so.Name, p.cfg.Queue.Size, policy, stages.DiscardFrame)
		p.counters.WatchQueue(so.Name, q)
		src := &stages.Source{Options: so}
		sourcesWG.Add(1)
		go func() {
			defer sourcesWG.Done()
			err := src.Run(sources, q, func(e stages.SourceEvent) {
				p.setState(e.Stream, stateOf(e, so))
				if e.Kind == "reconnected" && p.opts.Metrics != nil {
					p.opts.Metrics.SourceReconnect(e.Stream)
				}
				emit.source(e)
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				p.setState(so.Name, "failed")
				p.log.Error("stream stopped", "stream", so.Name, "err", err)
			}
		}()
		forward(q)
		p.log.Info("stream", "name", so.Name, "policy", policy, "queue", p.cfg.Queue.Size)
	}
	for _, ps := range p.pushers {
		p.counters.WatchQueue(ps.name, ps.queue)
		p.setState(ps.name, "running")
		forward(ps.queue)
	}
	go func() {
		forwarders.Wait()
		close(frames)
	}()

	batches := make(chan *pipeline.Batch[stages.Frame]) // closed by the batcher
	go batcher.Run(hard, frames, batches, stages.DiscardFrame)
	results := make(chan *stages.BatchResult) // closed by the pool
	poolErr := make(chan error, 1)
	go func() { poolErr <- pool.Run(hard, batches, results) }()

	s := newSink(p, pub, bootID, emit, engineName, batcher)
	sideStop := make(chan struct{}) // closed when the results are all handled
	var side sync.WaitGroup
	side.Add(1)
	go func() {
		defer side.Done()
		s.heartbeat(hard, sideStop)
	}()
	if p.opts.Summary != nil {
		side.Add(1)
		go func() {
			defer side.Done()
			s.summaryLoop(sideStop)
		}()
	}
	// With no push streams, the pipeline ends by itself when every source has ended: each source closes its
	// queue, and the stages drain behind it with no deadline.
	go func() {
		for res := range results {
			s.batch(hard, res)
		}
		close(sideStop)
		side.Wait()
		err := <-poolErr
		sourcesWG.Wait()
		close(events)
		eventsDone.Wait()
		if err == nil {
			s.statusNow(hard)
		}
		if pub != nil {
			p.closePublisher(pub)
		}
		r.deadlineMu.Lock()
		passed := r.deadline
		r.deadlineMu.Unlock()
		switch {
		case passed:
			r.err = fmt.Errorf("%w (%s) before every frame was published", ErrDrainDeadline, p.cfg.Shutdown.DrainTimeout)
		case err != nil && !errors.Is(err, context.Canceled):
			r.err = err
		}
		hardCancel()
		close(r.done)
	}()
	p.run = r
	return nil
}

func (p *Pipeline) closePublisher(pub *stages.Publisher) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pub.Close(ctx); err != nil {
		p.log.Warn("closing the NATS publisher", "err", err)
	}
}

// beginClose stops the sources and pushing, and starts the drain deadline. It is idempotent.
func (p *Pipeline) beginClose() {
	r := p.run
	r.closeOnce.Do(func() {
		p.log.Info("stopping: sources closed, draining frames in flight", "drain_timeout", p.cfg.Shutdown.DrainTimeout)
		p.closePushers()
		r.stopSources()
		go func() {
			t := time.NewTimer(p.cfg.Shutdown.DrainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				r.deadlineMu.Lock()
				r.deadline = true
				r.deadlineMu.Unlock()
				p.log.Warn("drain deadline passed; dropping frames still in flight", "drain_timeout", p.cfg.Shutdown.DrainTimeout)
				r.hardCancel()
			case <-r.done:
			}
		}()
	})
}

// Wait blocks until the pipeline has drained: after Close, or once every source has ended. It returns nil
// after a complete drain, an error wrapping ErrDrainDeadline when frames were still in flight at the deadline.
func (p *Pipeline) Wait() error {
	p.mu.Lock()
	r := p.run
	p.mu.Unlock()
	if r == nil {
		return ErrNotStarted
	}
	<-r.done
	return r.err
}

// Close stops the sources and refuses further pushes, lets the frames in flight be processed and published,
// and returns when that is done. The drain is bounded by shutdown.drain_timeout and by ctx: when either ends
// first, what is still in flight is dropped (and counted). Close after Close returns the same result.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	r := p.run
	p.mu.Unlock()
	if r == nil {
		return ErrNotStarted
	}
	p.beginClose()
	select {
	case <-r.done:
	case <-ctx.Done():
		r.hardCancel()
		<-r.done
	}
	return r.err
}

// setState records a stream's source state for status messages and metrics.
func (p *Pipeline) setState(stream, state string) {
	p.states.set(stream, state)
	if p.opts.Metrics != nil {
		p.opts.Metrics.SetSourceState(stream, state)
	}
}

// workersBusy reports the busy and total inference workers, for metrics.
func (p *Pipeline) workersBusy() (busy, total int) {
	p.mu.Lock()
	pool := p.pool
	p.mu.Unlock()
	if pool == nil {
		return 0, p.cfg.Workers
	}
	return pool.Busy(), pool.Size()
}

// natsState reads the publisher's state for metrics and readiness; nil when nothing is published.
func natsState(pub *stages.Publisher) func() metrics.NATSState {
	if pub == nil {
		return nil
	}
	return func() metrics.NATSState {
		s := pub.Stats()
		t := s.Total()
		st := metrics.NATSState{Connected: s.Connected, JetStream: s.Mode == "jetstream", Buffered: s.Buffered,
			Published: t.Published, Dropped: t.Dropped, Reconnects: s.Reconnects}
		if st.JetStream {
			// Sent but not yet acknowledged: what was encoded, less what was confirmed, given up, or still buffered.
			st.AcksPending = max(0, int(int64(t.Enqueued)-int64(t.Published)-int64(t.Dropped)-int64(s.Buffered)))
		}
		return st
	}
}

// stateOf maps a source event to the stream state reported in status messages.
func stateOf(e stages.SourceEvent, so stages.SourceOptions) string {
	switch e.Kind {
	case "connected", "reconnected":
		return "running"
	case "lost":
		return "reconnecting"
	case "ended":
		return "ended"
	case "error":
		if spec, err := stages.ParseSource(so.URL); err == nil && spec.Kind.Live() {
			return "reconnecting"
		}
		return "failed"
	}
	return "running"
}
