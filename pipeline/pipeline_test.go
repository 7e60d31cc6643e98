package pipeline

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Block, DropOldest, DropNewest} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParsePolicy("drop_all"); err == nil {
		t.Error("ParsePolicy accepted drop_all")
	}
}

// TestQueuePoliciesSlowConsumer pushes 100 items into a queue of 10 while the consumer is stalled, then lets it
// drain: the counts of kept and dropped items, and which items survive, are exact for each policy.
func TestQueuePoliciesSlowConsumer(t *testing.T) {
	cases := []struct {
		policy      Policy
		wantDropped uint64
		wantFirst   int // first item the consumer receives
	}{
		{DropOldest, 90, 90},
		{DropNewest, 90, 0},
	}
	for _, c := range cases {
		t.Run(c.policy.String(), func(t *testing.T) {
			var discarded []int
			q := NewQueue[int]("cam", 10, c.policy, func(v int) { discarded = append(discarded, v) })
			for i := 0; i < 100; i++ {
				if _, err := q.Push(context.Background(), i); err != nil {
					t.Fatal(err)
				}
			}
			q.Close()
			var got []int
			for v := range q.C() {
				got = append(got, v)
			}
			if q.Offered() != 100 {
				t.Errorf("offered = %d, want 100", q.Offered())
			}
			if q.Dropped() != c.wantDropped || uint64(len(discarded)) != c.wantDropped {
				t.Errorf("dropped = %d, discarded %d, want %d", q.Dropped(), len(discarded), c.wantDropped)
			}
			if len(got) != 10 || got[0] != c.wantFirst {
				t.Fatalf("consumer got %v, want 10 items starting at %d", got, c.wantFirst)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("kept items out of order: %v", got)
				}
			}
			if q.Pushed()+q.Dropped() != 100+uint64(btoi(c.policy == DropOldest))*c.wantDropped {
				// DropOldest: every item entered (100) and 90 were later evicted; DropNewest: 10 entered, 90 refused.
				t.Errorf("pushed %d + dropped %d inconsistent with policy %s", q.Pushed(), q.Dropped(), c.policy)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestQueueBlockWaitsAndHonoursContext(t *testing.T) {
	q := NewQueue[int]("file", 2, Block, nil)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if ok, err := q.Push(ctx, i); !ok || err != nil {
			t.Fatalf("push %d: %v %v", i, ok, err)
		}
	}
	// A full blocking queue waits for the consumer: nothing is lost.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if ok, err := q.Push(ctx, 2); !ok || err != nil {
			t.Errorf("blocked push: %v %v", ok, err)
		}
	}()
	select {
	case <-done:
		t.Fatal("push on a full Block queue returned before the consumer took anything")
	case <-time.After(20 * time.Millisecond):
	}
	if v := <-q.C(); v != 0 {
		t.Fatalf("got %d, want 0", v)
	}
	<-done
	// A cancelled context releases a blocked producer; the item stays the caller's.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if ok, err := q.Push(cctx, 3); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("push with cancelled ctx = %v, %v", ok, err)
	}
	if q.Dropped() != 0 {
		t.Fatalf("Block policy dropped %d items", q.Dropped())
	}
	q.Close()
}

// TestQueueDropOldestConcurrent checks the counts stay exact with a consumer racing the producer.
func TestQueueDropOldestConcurrent(t *testing.T) {
	q := NewQueue[int]("cam", 4, DropOldest, nil)
	var received atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range q.C() {
			received.Add(1)
			if rand.Intn(4) == 0 {
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()
	const n = 20000
	for i := 0; i < n; i++ {
		q.Push(context.Background(), i)
	}
	q.Close()
	wg.Wait()
	if received.Load()+q.Dropped() != n {
		t.Fatalf("received %d + dropped %d != pushed %d", received.Load(), q.Dropped(), n)
	}
}

func collectBatches(t *testing.T, b *Batcher[int], in chan int) <-chan []*Batch[int] {
	t.Helper()
	out := make(chan *Batch[int])
	res := make(chan []*Batch[int], 1)
	go func() {
		var got []*Batch[int]
		for batch := range out {
			got = append(got, batch)
		}
		res <- got
	}()
	go func() {
		if err := b.Run(context.Background(), in, out, nil); err != nil {
			t.Errorf("batcher: %v", err)
		}
	}()
	return res
}

func TestBatcherFlushBySize(t *testing.T) {
	b, err := NewBatcher[int](BatchPolicy{MaxSize: 4, MaxDelay: time.Hour}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan int)
	res := collectBatches(t, b, in)
	for i := 0; i < 12; i++ {
		in <- i
	}
	close(in)
	got := <-res
	if len(got) != 3 {
		t.Fatalf("got %d batches, want 3", len(got))
	}
	for i, batch := range got {
		if batch.Reason != FlushSize || len(batch.Items) != 4 || batch.ID != uint64(i+1) || batch.Items[0] != i*4 {
			t.Errorf("batch %d = id %d reason %s items %v", i, batch.ID, batch.Reason, batch.Items)
		}
	}
	if s := b.Stats(); s.Batches != 3 || s.Items != 12 || s.BySize[4] != 3 || s.ByReason[FlushSize] != 3 {
		t.Errorf("stats = %+v", s)
	}
}

func TestBatcherFlushByDeadline(t *testing.T) {
	b, _ := NewBatcher[int](BatchPolicy{MaxSize: 8, MaxDelay: 20 * time.Millisecond}, 2, nil)
	in := make(chan int)
	res := collectBatches(t, b, in)
	in <- 1
	in <- 2
	in <- 3
	time.Sleep(100 * time.Millisecond) // well past the deadline: the open batch must have been flushed
	in <- 4
	close(in)
	got := <-res
	if len(got) != 2 {
		t.Fatalf("got %d batches, want 2", len(got))
	}
	if got[0].Reason != FlushDeadline || len(got[0].Items) != 3 {
		t.Errorf("first batch: reason %s items %v, want deadline with 3 items", got[0].Reason, got[0].Items)
	}
	if waited := got[0].Closed.Sub(got[0].Opened); waited < 20*time.Millisecond {
		t.Errorf("deadline flush after %v, before max delay", waited)
	}
	if got[1].Reason != FlushShutdown || len(got[1].Items) != 1 || got[1].Items[0] != 4 {
		t.Errorf("second batch: reason %s items %v, want shutdown with [4]", got[1].Reason, got[1].Items)
	}
}

func TestBatcherFlushAtShutdown(t *testing.T) {
	b, _ := NewBatcher[int](BatchPolicy{MaxSize: 8, MaxDelay: time.Hour}, 2, nil)
	in := make(chan int)
	res := collectBatches(t, b, in)
	for i := 0; i < 5; i++ {
		in <- i
	}
	close(in)
	got := <-res
	if len(got) != 1 || got[0].Reason != FlushShutdown || len(got[0].Items) != 5 {
		t.Fatalf("got %d batches (%+v), want one shutdown batch of 5", len(got), got)
	}
}

func TestBatcherCancelDiscards(t *testing.T) {
	b, _ := NewBatcher[int](BatchPolicy{MaxSize: 8, MaxDelay: time.Hour}, 2, nil)
	in := make(chan int)
	out := make(chan *Batch[int])
	ctx, cancel := context.WithCancel(context.Background())
	var discarded atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx, in, out, func(int) { discarded.Add(1) }) }()
	in <- 1
	in <- 2
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if discarded.Load() != 2 {
		t.Fatalf("discarded %d items of the open batch, want 2", discarded.Load())
	}
	if _, ok := <-out; ok {
		t.Fatal("out not closed after cancel")
	}
}

func TestBatchPolicyRejectsUnbounded(t *testing.T) {
	for _, p := range []BatchPolicy{{MaxSize: 0, MaxDelay: time.Millisecond}, {MaxSize: 8}, {MaxSize: -1, MaxDelay: -1}} {
		if _, err := NewBatcher[int](p, 1, nil); err == nil {
			t.Errorf("NewBatcher(%+v) accepted an unbounded policy", p)
		}
	}
}

type frame struct {
	stream string
	seq    int
}

// slowWorker takes a random time per batch so that workers finish out of order.
type slowWorker struct {
	closed *atomic.Int32
}

func (w slowWorker) Process(_ context.Context, b *Batch[frame]) []frame {
	time.Sleep(time.Duration(rand.Intn(3000)) * time.Microsecond)
	return append([]frame(nil), b.Items...)
}

func (w slowWorker) Close() error { w.closed.Add(1); return nil }

// TestPoolKeepsStreamOrder runs three streams through a batcher and four workers that finish out of order,
// and checks every stream's frames leave in sequence with none lost, then that every worker was closed.
func TestPoolKeepsStreamOrder(t *testing.T) {
	const streams, perStream = 3, 200
	batcher, _ := NewBatcher[frame](BatchPolicy{MaxSize: 5, MaxDelay: time.Millisecond}, 8, nil)
	var closed atomic.Int32
	pool, err := NewPool[*Batch[frame], []frame](4, 8, func(int) (Worker[*Batch[frame], []frame], error) {
		return slowWorker{&closed}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := make(chan frame)
	batches := make(chan *Batch[frame])
	results := make(chan []frame)
	var wg sync.WaitGroup
	for s := 0; s < streams; s++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			for i := 1; i <= perStream; i++ {
				in <- frame{name, i}
			}
		}(string(rune('a' + s)))
	}
	go func() { wg.Wait(); close(in) }()
	go batcher.Run(ctx, in, batches, nil)
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx, batches, results) }()

	last := map[string]int{}
	total := 0
	for out := range results {
		for _, f := range out {
			if f.seq != last[f.stream]+1 {
				t.Fatalf("stream %s: frame %d after %d", f.stream, f.seq, last[f.stream])
			}
			last[f.stream] = f.seq
			total++
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if total != streams*perStream {
		t.Fatalf("delivered %d frames, want %d", total, streams*perStream)
	}
	if closed.Load() != 4 {
		t.Fatalf("%d workers closed, want 4", closed.Load())
	}
}

// gatedWorker blocks until released, to hold batches in flight during shutdown.
type gatedWorker struct {
	gate    chan struct{}
	started chan struct{}
}

func (w gatedWorker) Process(ctx context.Context, b *Batch[frame]) []frame {
	w.started <- struct{}{}
	select {
	case <-w.gate:
	case <-ctx.Done():
		return nil
	}
	return append([]frame(nil), b.Items...)
}
func (w gatedWorker) Close() error { return nil }

// TestShutdownDrainsInFlight closes the input while two batches are inside workers: both must still be
// delivered, and Run must return nil and leave no goroutine behind (checked by goleak in TestMain).
func TestShutdownDrainsInFlight(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 2)
	pool, _ := NewPool[*Batch[frame], []frame](2, 2, func(int) (Worker[*Batch[frame], []frame], error) {
		return gatedWorker{gate, started}, nil
	})
	in := make(chan *Batch[frame], 2)
	in <- &Batch[frame]{ID: 1, Items: []frame{{"a", 1}}}
	in <- &Batch[frame]{ID: 2, Items: []frame{{"a", 2}}}
	close(in) // sources stopped: no more input
	out := make(chan []frame, 2)
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(context.Background(), in, out) }()
	<-started
	<-started
	close(gate) // the in-flight batches finish
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var got []frame
	for o := range out {
		got = append(got, o...)
	}
	if len(got) != 2 || got[0].seq != 1 || got[1].seq != 2 {
		t.Fatalf("drained %v, want frames 1 and 2 in order", got)
	}
}

// TestPoolCancelStops checks a hard stop (drain deadline passed) returns promptly with ctx.Err().
func TestPoolCancelStops(t *testing.T) {
	started := make(chan struct{}, 1)
	pool, _ := NewPool[*Batch[frame], []frame](1, 1, func(int) (Worker[*Batch[frame], []frame], error) {
		return gatedWorker{make(chan struct{}), started}, nil
	})
	in := make(chan *Batch[frame], 1)
	in <- &Batch[frame]{ID: 1}
	out := make(chan []frame)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx, in, out) }()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

func TestNewPoolClosesOnError(t *testing.T) {
	var closed atomic.Int32
	_, err := NewPool[*Batch[frame], []frame](3, 3, func(i int) (Worker[*Batch[frame], []frame], error) {
		if i == 2 {
			return nil, errors.New("no engine")
		}
		return slowWorker{&closed}, nil
	})
	if err == nil || closed.Load() != 2 {
		t.Fatalf("err = %v, closed = %d; want an error and the 2 made workers closed", err, closed.Load())
	}
}

func TestCounters(t *testing.T) {
	c := NewCounters()
	s := c.Stream("cam1")
	q := NewQueue[int]("cam1", 4, DropNewest, nil)
	c.WatchQueue("cam1", q)
	for i := 0; i < 6; i++ {
		q.Push(context.Background(), i)
	}
	s.Processed()
	snap := c.Snapshot()
	if len(snap) != 1 || snap[0].Captured != 6 || snap[0].Dropped != 2 || snap[0].QueueDepth != 4 || snap[0].QueueCap != 4 || snap[0].Processed != 1 {
		t.Fatalf("snapshot = %+v", snap)
	}
}

// TestBatcherReleaseReuse has the consumer release every batch at once, so batches are reused while the
// batcher keeps running; with -race this checks the batcher never touches a batch it has handed over.
func TestBatcherReleaseReuse(t *testing.T) {
	b, _ := NewBatcher[int](BatchPolicy{MaxSize: 3, MaxDelay: time.Millisecond}, 1, nil)
	in := make(chan int)
	out := make(chan *Batch[int])
	go func() {
		for i := 0; i < 300; i++ {
			in <- i
		}
		close(in)
	}()
	errc := make(chan error, 1)
	go func() { errc <- b.Run(context.Background(), in, out, nil) }()
	next := 0
	for batch := range out {
		for _, v := range batch.Items {
			if v != next {
				t.Fatalf("got %d, want %d", v, next)
			}
			next++
		}
		b.Release(batch)
	}
	if err := <-errc; err != nil || next != 300 || b.Stats().Items != 300 {
		t.Fatalf("err %v, received %d, stats %+v", err, next, b.Stats())
	}
}

// TestBatcherWhenIdle: with WhenIdle, a receiver that is ready takes the open batch at once, however small;
// while the receiver is busy the batch keeps filling up to MaxSize.
func TestBatcherWhenIdle(t *testing.T) {
	b, err := NewBatcher[int](BatchPolicy{MaxSize: 4, MaxDelay: time.Hour, WhenIdle: true}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, out := make(chan int), make(chan *Batch[int])
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background(), in, out, nil) }()

	// An idle receiver: one item goes at once, not after MaxDelay (an hour).
	in <- 1
	select {
	case batch := <-out:
		if len(batch.Items) != 1 || batch.Reason != FlushIdle || batch.ID != 1 {
			t.Fatalf("batch %d: %d items, reason %s; want batch 1 of 1 item, idle", batch.ID, len(batch.Items), batch.Reason)
		}
		b.Release(batch)
	case <-time.After(10 * time.Second):
		t.Fatal("an idle receiver did not get the open batch")
	}
	// A busy receiver (nobody reading): items accumulate into one full batch.
	for i := 2; i <= 5; i++ {
		in <- i
	}
	batch := <-out
	if len(batch.Items) != 4 || batch.Reason != FlushSize || batch.ID != 2 || batch.Items[0] != 2 {
		t.Fatalf("batch %d: items %v, reason %s; want batch 2 of [2 3 4 5], size", batch.ID, batch.Items, batch.Reason)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.ByReason[FlushIdle] != 1 || s.ByReason[FlushSize] != 1 || s.Items != 5 {
		t.Errorf("stats %+v", s)
	}
}

// TestPoolTakesInputOnlyWhenIdle: the pool takes a new input only when a worker is free, so a batcher in front
// of it keeps filling.
func TestPoolTakesInputOnlyWhenIdle(t *testing.T) {
	release := make(chan struct{})
	pool, err := NewPool[int, int](1, 4, func(int) (Worker[int, int], error) {
		return workerFunc(func(_ context.Context, v int) int { <-release; return v }), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	in, out := make(chan int), make(chan int, 4)
	go pool.Run(context.Background(), in, out)
	in <- 1 // taken by the idle worker, which now blocks
	select {
	case in <- 2:
		t.Fatal("the pool took an input while its only worker was busy")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	in <- 2
	close(in)
	if a, b := <-out, <-out; a != 1 || b != 2 {
		t.Fatalf("outputs %d, %d", a, b)
	}
}

// workerFunc is a Worker from a function; Close does nothing.
type workerFunc func(context.Context, int) int

func (f workerFunc) Process(ctx context.Context, v int) int { return f(ctx, v) }
func (f workerFunc) Close() error                           { return nil }

// TestBatcherWhenIdleFillsUnderLoad: with WhenIdle and a receiver always ready, items that arrive often enough
// to fill a batch within MaxDelay still make full batches (throughput under load is kept).
func TestBatcherWhenIdleFillsUnderLoad(t *testing.T) {
	var clock atomic.Int64 // fake minutes
	now := func() time.Time { return time.Unix(clock.Load()*60, 0) }
	b, err := NewBatcher[int](BatchPolicy{MaxSize: 8, MaxDelay: time.Hour, WhenIdle: true}, 4, now)
	if err != nil {
		t.Fatal(err)
	}
	in, out := make(chan int), make(chan *Batch[int])
	go b.Run(context.Background(), in, out, nil)
	var sizes []int
	got := make(chan struct{})
	go func() {
		defer close(got)
		for batch := range out {
			sizes = append(sizes, len(batch.Items))
			b.Release(batch)
		}
	}()
	for i := range 400 { // one item a (fake) minute: 8 fill well within the hour
		clock.Add(1)
		in <- i
	}
	close(in)
	<-got
	tail := sizes[len(sizes)-11 : len(sizes)-1] // the last batch is what was left at shutdown
	for _, n := range tail {
		if n != 8 {
			t.Fatalf("last batches %v, want full batches of 8 once items arrive fast (all sizes %v)", tail, sizes)
		}
	}
}
