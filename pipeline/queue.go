package pipeline

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Policy decides what a full Queue does with a new item.
type Policy int

const (
	// Block makes Push wait until there is room (or its context ends). Nothing is dropped.
	Block Policy = iota
	// DropOldest evicts the oldest queued item to make room, so the freshest item wins.
	DropOldest
	// DropNewest discards the item being pushed and keeps what is queued.
	DropNewest
)

// String returns the policy's config name: "block", "drop_oldest" or "drop_newest".
func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropOldest:
		return "drop_oldest"
	case DropNewest:
		return "drop_newest"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy parses a policy's config name.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "block":
		return Block, nil
	case "drop_oldest":
		return DropOldest, nil
	case "drop_newest":
		return DropNewest, nil
	}
	return 0, fmt.Errorf("unknown queue policy %q (want block, drop_oldest or drop_newest)", s)
}

// Queue is a bounded FIFO between two stages with a policy for when it is full.
//
// One producer calls Push and, when done, Close; any number of consumers receive from C.
// Items that the policy drops are handed to the discard function given to NewQueue,
// so their resources (Mats, pooled buffers) can be released; discard must not block.
type Queue[T any] struct {
	name    string
	ch      chan T // closed by Close, which only the producer calls
	policy  Policy
	discard func(T)
	offered atomic.Uint64
	pushed  atomic.Uint64
	dropped atomic.Uint64
}

// NewQueue returns a queue holding at most capacity items. discard may be nil.
func NewQueue[T any](name string, capacity int, policy Policy, discard func(T)) *Queue[T] {
	if capacity < 1 {
		capacity = 1
	}
	return &Queue[T]{name: name, ch: make(chan T, capacity), policy: policy, discard: discard}
}

// Name returns the name given to NewQueue.
func (q *Queue[T]) Name() string { return q.name }

// Policy returns the queue's policy.
func (q *Queue[T]) Policy() Policy { return q.policy }

// Push offers v to the queue under its policy. It returns true when v was queued and
// false when v itself was dropped (DropNewest on a full queue). With Block it waits for
// room and returns ctx.Err() if ctx ends first; v is then not queued and not discarded:
// the caller still owns it.
func (q *Queue[T]) Push(ctx context.Context, v T) (bool, error) {
	select {
	case q.ch <- v:
		q.offered.Add(1)
		q.pushed.Add(1)
		return true, nil
	default:
	}
	if q.policy != Block {
		q.offered.Add(1)
	}
	switch q.policy {
	case DropNewest:
		q.drop(v)
		return false, nil
	case DropOldest:
		for {
			select {
			case q.ch <- v:
				q.pushed.Add(1)
				return true, nil
			default:
			}
			select {
			case old := <-q.ch:
				q.drop(old)
			default:
				// A consumer emptied a slot between the two selects; retry the send.
			}
		}
	default:
		select {
		case q.ch <- v:
			q.offered.Add(1)
			q.pushed.Add(1)
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (q *Queue[T]) drop(v T) {
	q.dropped.Add(1)
	if q.discard != nil {
		q.discard(v)
	}
}

// C is the receive side. It is closed after Close once the queued items are drained.
func (q *Queue[T]) C() <-chan T { return q.ch }

// Close tells consumers that no more items will come. Only the producer calls it, once.
func (q *Queue[T]) Close() { close(q.ch) }

// Len is the number of items queued now.
func (q *Queue[T]) Len() int { return len(q.ch) }

// Cap is the queue's capacity.
func (q *Queue[T]) Cap() int { return cap(q.ch) }

// Offered counts the items given to Push, queued or dropped; a Block push abandoned because its context
// ended is not counted (the caller kept the item).
func (q *Queue[T]) Offered() uint64 { return q.offered.Load() }

// Pushed counts the items that entered the queue.
func (q *Queue[T]) Pushed() uint64 { return q.pushed.Load() }

// Dropped counts the items the policy dropped: evicted (DropOldest) or refused (DropNewest).
func (q *Queue[T]) Dropped() uint64 { return q.dropped.Load() }
