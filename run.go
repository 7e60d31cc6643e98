package sestream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages"
)

// eventBuffer bounds the source and drift events waiting to be published.
const eventBuffer = 256

// Run runs the pipeline until every source has ended (files without loop) or ctx is cancelled.
//
// On cancel, the sources stop at once and the frames already captured are processed and published, up to
// shutdown.drain_timeout; after that, what is still in flight is dropped and Run returns. Run returns nil
// after a complete drain, and an error when the pipeline could not start or the drain deadline passed.
//
// Goroutines: one per source (stages.Source.Run, owns the capture), one per stream forwarding its queue to
// the batcher, the batcher, the worker pool (dispatcher, one goroutine per worker, deliverer), the event
// publisher, the status heartbeat, the console summary; the sink (statistics, drift, publishing) runs on
// the caller's goroutine.
func (p *Pipeline) Run(ctx context.Context) error {
	p.started = time.Now()
	// hard ends everything; sources end the capture only. Cancelling ctx cancels sources, then hard after the
	// drain deadline.
	hard, hardCancel := context.WithCancel(context.Background())
	defer hardCancel()
	sources, stopSources := context.WithCancel(hard)
	defer stopSources()
	drained := make(chan struct{}) // closed when Run is done draining
	defer close(drained)
	var deadlinePassed bool
	var deadlineMu sync.Mutex
	go func() {
		select {
		case <-ctx.Done():
		case <-drained:
			return
		}
		p.log.Info("stopping: sources closed, draining in-flight frames", "drain_timeout", p.cfg.Shutdown.DrainTimeout)
		stopSources()
		t := time.NewTimer(p.cfg.Shutdown.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			deadlineMu.Lock()
			deadlinePassed = true
			deadlineMu.Unlock()
			p.log.Warn("drain deadline passed; dropping frames still in flight", "drain_timeout", p.cfg.Shutdown.DrainTimeout)
			hardCancel()
		case <-drained:
		}
	}()

	pub, err := stages.NewPublisher(hard, p.natsOptions())
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := pub.Close(closeCtx); err != nil {
			p.log.Warn("closing the NATS publisher", "err", err)
		}
	}()
	p.log.Info("publishing", "nats", pub.ClientURL(), "prefix", pub.Prefix(), "boot_id", pub.BootID())

	if p.cfg.Engine.Verify {
		pre := p.pre.WithDefaults()
		checks, err := CheckGates(hard, p.model, p.engineOptions(), pre.Height, pre.Width)
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
	p.log.Info("model loaded", "model", p.model.Name, "digest", p.model.Digest, "se_blocks", len(p.model.Blocks),
		"engine", engineName, "workers", p.cfg.Workers, "batch", p.cfg.Batch.MaxSize, "batch_delay", p.cfg.Batch.MaxDelay)

	events := make(chan *message.Event, eventBuffer) // closed after the sources and the sink are done
	var eventsDone sync.WaitGroup
	eventsDone.Add(1)
	go func() {
		defer eventsDone.Done()
		for e := range events {
			if err := pub.PublishEvent(hard, e); err != nil {
				p.log.Warn("publishing event", "stream", e.Stream, "kind", e.Kind, "err", err)
			}
		}
	}()
	emit := newEventEmitter(events, pub.BootID(), p.log)

	frames := make(chan stages.Frame) // batcher input; closed once every stream's forwarder has returned
	var forwarders, sourcesWG sync.WaitGroup
	for i, so := range p.streams {
		policy, err := p.queuePolicy(i)
		if err != nil {
			return err
		}
		q := pipeline.NewQueue[stages.Frame](so.Name, p.cfg.Queue.Size, policy, stages.DiscardFrame)
		p.counters.WatchQueue(so.Name, q)
		src := &stages.Source{Options: so}
		sourcesWG.Add(1)
		go func() {
			defer sourcesWG.Done()
			err := src.Run(sources, q, func(e stages.SourceEvent) {
				p.states.set(e.Stream, stateOf(e, so))
				emit.source(e)
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				p.states.set(so.Name, "failed")
				p.log.Error("stream stopped", "stream", so.Name, "err", err)
			}
		}()
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
		p.log.Info("stream", "name", so.Name, "policy", policy, "queue", p.cfg.Queue.Size)
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

	s := newSink(p, pub, emit, engineName, batcher)
	var side sync.WaitGroup
	sideStop := make(chan struct{}) // closed when the results are all handled
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

	for res := range results {
		s.batch(hard, res)
	}
	close(sideStop)
	side.Wait()
	err = <-poolErr
	sourcesWG.Wait()
	close(events)
	eventsDone.Wait()

	deadlineMu.Lock()
	passed := deadlinePassed
	deadlineMu.Unlock()
	if passed {
		return fmt.Errorf("drain deadline %s passed before every frame was published: %w", p.cfg.Shutdown.DrainTimeout, errStopped)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	s.statusNow(hard)
	return nil
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
