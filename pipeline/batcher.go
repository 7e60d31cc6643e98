package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// BatchPolicy bounds a batch by size and by time. Both bounds are required: a batcher that could wait forever
// for a full batch is a configuration error.
type BatchPolicy struct {
	// MaxSize is the largest batch; a batch is flushed as soon as it holds MaxSize items.
	MaxSize int
	// MaxDelay is the longest an item waits in an open batch: the batch is flushed MaxDelay after its first item.
	MaxDelay time.Duration
	// WhenIdle sends an open batch, however small, as soon as the receiver takes it, unless items arrive
	// fast enough to fill it within MaxDelay. With a Pool as the receiver the batch is taken when a worker is
	// idle (the pool takes a batch only then). So at light load (one camera) every frame goes at once instead
	// of waiting MaxDelay for frames that will not come, and under load batches still fill: the batcher keeps
	// a moving average of the gap between items, and while (MaxSize - items) x gap <= MaxDelay it waits for
	// MaxSize or MaxDelay as without WhenIdle.
	WhenIdle bool
}

// Validate reports a policy without a size or time bound.
func (p BatchPolicy) Validate() error {
	var errs []error
	if p.MaxSize < 1 {
		errs = append(errs, fmt.Errorf("batch max size must be at least 1, got %d", p.MaxSize))
	}
	if p.MaxDelay <= 0 {
		errs = append(errs, fmt.Errorf("batch max delay must be positive, got %s", p.MaxDelay))
	}
	return errors.Join(errs...)
}

// FlushReason says why a batch was closed.
type FlushReason int

const (
	// FlushSize: the batch reached MaxSize.
	FlushSize FlushReason = iota
	// FlushDeadline: MaxDelay passed since the batch's first item.
	FlushDeadline
	// FlushShutdown: the input ended (the pipeline is draining).
	FlushShutdown
	// FlushIdle: the receiver was ready for a batch before it was full (BatchPolicy.WhenIdle).
	FlushIdle

	flushReasons = iota
)

func (r FlushReason) String() string {
	switch r {
	case FlushSize:
		return "size"
	case FlushDeadline:
		return "deadline"
	case FlushShutdown:
		return "shutdown"
	case FlushIdle:
		return "idle"
	}
	return fmt.Sprintf("FlushReason(%d)", int(r))
}

// Batch is a group of items processed together. Batches are pooled: whoever finishes with a batch hands it
// back with Batcher.Release and must not use it afterwards.
type Batch[T any] struct {
	// ID numbers batches from 1 in the order the batcher closed them.
	ID uint64
	// Items are in arrival order; len(Items) is between 1 and MaxSize.
	Items []T
	// Opened is when the first item arrived; Closed is when the batch was flushed.
	Opened, Closed time.Time
	// Reason is why the batch was flushed.
	Reason FlushReason
}

// BatchStats counts what a batcher produced.
type BatchStats struct {
	Batches uint64
	Items   uint64
	// BySize[n] counts batches of n items, for n in 1..MaxSize.
	BySize []uint64
	// ByReason counts batches per FlushReason.
	ByReason [flushReasons]uint64
}

// Batcher groups items from one input channel into batches. Several streams can feed that channel, so one
// batch may hold frames of several streams, each stream's frames in their arrival order.
type Batcher[T any] struct {
	policy BatchPolicy
	now    func() time.Time
	free   chan *Batch[T] // recycled batches; Release sends, Run receives
	nextID uint64

	batches, items atomic.Uint64
	bySize         []atomic.Uint64
	byReason       [flushReasons]atomic.Uint64
}

// NewBatcher returns a batcher for p. pool is how many batches are kept for reuse (one per worker plus the
// batches in flight between stages is enough); now is the clock, nil meaning time.Now.
func NewBatcher[T any](p BatchPolicy, pool int, now func() time.Time) (*Batcher[T], error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if pool < 1 {
		pool = 1
	}
	if now == nil {
		now = time.Now
	}
	return &Batcher[T]{
		policy: p,
		now:    now,
		free:   make(chan *Batch[T], pool),
		bySize: make([]atomic.Uint64, p.MaxSize+1),
	}, nil
}

// Policy returns the batcher's policy.
func (b *Batcher[T]) Policy() BatchPolicy { return b.policy }

// Release hands a batch back for reuse. The caller must not touch it or its items afterwards.
func (b *Batcher[T]) Release(batch *Batch[T]) {
	var zero T
	for i := range batch.Items {
		batch.Items[i] = zero // drop references so pooled batches keep nothing alive
	}
	batch.Items = batch.Items[:0]
	select {
	case b.free <- batch:
	default: // pool full: let the garbage collector have it
	}
}

func (b *Batcher[T]) newBatch() *Batch[T] {
	select {
	case batch := <-b.free:
		return batch
	default:
		return &Batch[T]{Items: make([]T, 0, b.policy.MaxSize)}
	}
}

// Run reads items from in and sends batches to out until in is closed, then flushes the open batch, closes out
// and returns nil. If ctx ends first, Run returns ctx.Err() after closing out; the items of a batch it could not
// send are given to discard (which may be nil) so their resources can be released.
func (b *Batcher[T]) Run(ctx context.Context, in <-chan T, out chan<- *Batch[T], discard func(T)) error {
	defer close(out)
	timer := time.NewTimer(time.Hour)
	stopTimer(timer)
	var open *Batch[T]
	send := func(reason FlushReason) error {
		batch := open
		open = nil
		stopTimer(timer)
		b.nextID++
		batch.ID = b.nextID
		batch.Closed = b.now()
		batch.Reason = reason
		n := len(batch.Items) // read before the send: the receiver owns the batch afterwards
		select {
		case out <- batch:
			b.account(n, reason)
			return nil
		case <-ctx.Done():
			if discard != nil {
				for _, it := range batch.Items {
					discard(it)
				}
			}
			return ctx.Err()
		}
	}
	var gap time.Duration // moving average of the time between items (WhenIdle)
	var last time.Time
	for {
		var deadline <-chan time.Time
		var idle chan<- *Batch[T] // out while a batch may go to an idle receiver; nil (never ready) otherwise
		n := 0
		if open != nil {
			deadline = timer.C
			if b.policy.WhenIdle && time.Duration(b.policy.MaxSize-len(open.Items))*gap > b.policy.MaxDelay {
				// The receiver owns the batch the moment it takes it: stamp it now, as if it were sent.
				idle, n = out, len(open.Items)
				open.ID, open.Closed, open.Reason = b.nextID+1, b.now(), FlushIdle
			}
		}
		select {
		case idle <- open:
			b.nextID++
			b.account(n, FlushIdle)
			open = nil
			stopTimer(timer)
		case item, ok := <-in:
			if !ok {
				if open != nil {
					return send(FlushShutdown)
				}
				return nil
			}
			if b.policy.WhenIdle {
				now := b.now()
				if !last.IsZero() {
					gap += (now.Sub(last) - gap) / 8
				} else {
					gap = b.policy.MaxDelay // no history: behave as at light load
				}
				last = now
			}
			if open == nil {
				open = b.newBatch()
				open.Opened = b.now()
				timer.Reset(b.policy.MaxDelay)
			}
			open.Items = append(open.Items, item)
			if len(open.Items) >= b.policy.MaxSize {
				if err := send(FlushSize); err != nil {
					return err
				}
			}
		case <-deadline:
			if err := send(FlushDeadline); err != nil {
				return err
			}
		case <-ctx.Done():
			if open != nil && discard != nil {
				for _, it := range open.Items {
					discard(it)
				}
			}
			return ctx.Err()
		}
	}
}

// account records a batch sent for reason.
func (b *Batcher[T]) account(n int, reason FlushReason) {
	b.batches.Add(1)
	b.items.Add(uint64(n))
	b.bySize[n].Add(1)
	b.byReason[reason].Add(1)
}

// Stats returns what the batcher has sent so far.
func (b *Batcher[T]) Stats() BatchStats {
	s := BatchStats{Batches: b.batches.Load(), Items: b.items.Load(), BySize: make([]uint64, len(b.bySize))}
	for i := range b.bySize {
		s.BySize[i] = b.bySize[i].Load()
	}
	for i := range b.byReason {
		s.ByReason[i] = b.byReason[i].Load()
	}
	return s
}

// stopTimer stops t and drains its channel so that a later Reset starts clean.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}
