package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Worker processes one input at a time. Each worker is used by a single goroutine, so it may own resources
// that must not be shared between goroutines, such as an inference session.
type Worker[In, Out any] interface {
	// Process handles in and returns its output. Errors are part of Out: the pool delivers every output.
	Process(ctx context.Context, in In) Out
	// Close releases the worker's resources. The pool calls it once, after the worker's last Process.
	Close() error
}

// Pool runs inputs through a fixed set of workers concurrently and delivers the outputs in input order, so a
// stream whose frames entered in order leaves in order however many workers there are.
type Pool[In, Out any] struct {
	workers []Worker[In, Out]
	window  int

	busy      atomic.Int64
	processed atomic.Uint64
}

// NewPool creates n workers with newWorker(i) for i in 0..n-1. If any fails, those already made are closed and
// the error names the worker. window bounds how many inputs may be in flight (taken but not yet delivered);
// it is at least n.
func NewPool[In, Out any](n, window int, newWorker func(i int) (Worker[In, Out], error)) (*Pool[In, Out], error) {
	if n < 1 {
		return nil, fmt.Errorf("pool needs at least 1 worker, got %d", n)
	}
	if window < n {
		window = n
	}
	p := &Pool[In, Out]{window: window}
	for i := 0; i < n; i++ {
		w, err := newWorker(i)
		if err != nil {
			closeErr := p.closeWorkers()
			return nil, errors.Join(fmt.Errorf("starting worker %d: %w", i, err), closeErr)
		}
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// Size is the number of workers.
func (p *Pool[In, Out]) Size() int { return len(p.workers) }

// Busy is the number of workers processing an input now.
func (p *Pool[In, Out]) Busy() int { return int(p.busy.Load()) }

// Processed counts the inputs whose outputs were delivered.
func (p *Pool[In, Out]) Processed() uint64 { return p.processed.Load() }

// ticket carries one input through a worker and back to the deliverer, which emits tickets in the order the
// dispatcher took them. Tickets are recycled through the free list, so the steady state allocates nothing.
type ticket[In, Out any] struct {
	in   In
	out  Out
	done chan struct{} // capacity 1; the worker sends when out is set
}

// Run takes inputs from in until it is closed, processes them on the workers and sends each output to out in
// input order. When in is closed and every output is delivered, Run closes the workers and out and returns nil.
// If ctx ends first, Run stops taking inputs, waits for the workers to return, closes them and out, and
// returns ctx.Err(); outputs not yet delivered are dropped. Run may be called once.
func (p *Pool[In, Out]) Run(ctx context.Context, in <-chan In, out chan<- Out) error {
	defer close(out)
	free := make(chan *ticket[In, Out], p.window)  // closed by nobody; garbage once Run returns
	order := make(chan *ticket[In, Out], p.window) // closed by the dispatcher when it stops taking inputs
	work := make(chan *ticket[In, Out])            // closed by the dispatcher when it stops taking inputs
	for i := 0; i < p.window; i++ {
		free <- &ticket[In, Out]{done: make(chan struct{}, 1)}
	}

	idle := make(chan struct{}, len(p.workers)) // a token per worker waiting for work; closed by nobody

	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func(w Worker[In, Out]) {
			defer wg.Done()
			for {
				idle <- struct{}{} // never blocks: one token per worker at most
				t, ok := <-work
				if !ok {
					return
				}
				p.busy.Add(1)
				t.out = w.Process(ctx, t.in)
				p.busy.Add(-1)
				t.done <- struct{}{}
			}
		}(w)
	}

	// Dispatcher: takes a ticket, waits for an idle worker, and only then takes an input, so that an upstream
	// batcher keeps filling its batch while every worker is busy; records the input's place in the order and
	// hands it to that worker.
	go func() {
		defer close(work)
		defer close(order)
		for {
			var t *ticket[In, Out]
			select {
			case t = <-free:
			case <-ctx.Done():
				return
			}
			select {
			case <-idle:
			case <-ctx.Done():
				return
			}
			select {
			case item, ok := <-in:
				if !ok {
					return
				}
				t.in = item
			case <-ctx.Done():
				return
			}
			order <- t // never blocks: order has room for every ticket
			select {
			case work <- t:
			case <-ctx.Done():
				t.done <- struct{}{} // not processed; the deliverer drops it
				return
			}
		}
	}()

	// Deliverer: emits outputs in dispatch order.
	var runErr error
	var zeroIn In
	var zeroOut Out
	for t := range order {
		<-t.done
		if ctx.Err() != nil {
			runErr = ctx.Err()
		} else {
			select {
			case out <- t.out:
				p.processed.Add(1)
			case <-ctx.Done():
				runErr = ctx.Err()
			}
		}
		t.in, t.out = zeroIn, zeroOut
		free <- t
	}
	wg.Wait()
	if ctx.Err() != nil {
		runErr = ctx.Err()
	}
	return errors.Join(runErr, p.closeWorkers())
}

func (p *Pool[In, Out]) closeWorkers() error {
	var errs []error
	for i, w := range p.workers {
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing worker %d: %w", i, err))
		}
	}
	p.workers = nil
	return errors.Join(errs...)
}
