package pipeline

import (
	"context"
	"testing"
	"time"
)

// BenchmarkQueuePushPop is one frame through a queue: a Push by the producer and a receive by the consumer.
func BenchmarkQueuePushPop(b *testing.B) {
	for _, p := range []Policy{Block, DropOldest, DropNewest} {
		b.Run(p.String(), func(b *testing.B) {
			q := NewQueue[FrameInfo]("bench", 16, p, nil)
			ctx := context.Background()
			f := FrameInfo{Stream: "cam"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.Seq = uint64(i)
				q.Push(ctx, f)
				<-q.C()
			}
		})
	}
}

// BenchmarkQueueDropOldestFull is a Push into a full drop_oldest queue: each push evicts one frame.
func BenchmarkQueueDropOldestFull(b *testing.B) {
	q := NewQueue[*FrameInfo]("bench", 16, DropOldest, nil)
	ctx := context.Background()
	f := &FrameInfo{Stream: "cam"}
	for i := 0; i < 16; i++ {
		q.Push(ctx, f)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q.Push(ctx, f)
	}
}

// BenchmarkBatcher is the per-frame cost of the batcher across goroutines: frames sent into the batcher,
// batches of 8 received and released by a consumer. ns/op is per frame.
func BenchmarkBatcher(b *testing.B) {
	batcher, _ := NewBatcher[*FrameInfo](BatchPolicy{MaxSize: 8, MaxDelay: time.Second}, 8, nil)
	in := make(chan *FrameInfo, 64)
	out := make(chan *Batch[*FrameInfo], 4)
	done := make(chan struct{})
	go func() {
		for batch := range out {
			batcher.Release(batch)
		}
		close(done)
	}()
	go batcher.Run(context.Background(), in, out, nil)
	f := &FrameInfo{Stream: "cam"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in <- f
	}
	close(in)
	<-done
}

// BenchmarkQueueBatcherPool is the whole runtime path per frame: queue, batcher (size 8) and a pool of two
// workers that do no work, delivering batches in order. ns/op is per frame.
func BenchmarkQueueBatcherPool(b *testing.B) {
	ctx := context.Background()
	q := NewQueue[*FrameInfo]("cam", 16, Block, nil)
	batcher, _ := NewBatcher[*FrameInfo](BatchPolicy{MaxSize: 8, MaxDelay: time.Second}, 8, nil)
	pool, _ := NewPool[*Batch[*FrameInfo], *Batch[*FrameInfo]](2, 4, func(int) (Worker[*Batch[*FrameInfo], *Batch[*FrameInfo]], error) {
		return passWorker{}, nil
	})
	batches := make(chan *Batch[*FrameInfo], 2)
	results := make(chan *Batch[*FrameInfo], 2)
	done := make(chan struct{})
	go func() {
		for batch := range results {
			batcher.Release(batch)
		}
		close(done)
	}()
	go batcher.Run(ctx, q.C(), batches, nil)
	go pool.Run(ctx, batches, results)
	f := &FrameInfo{Stream: "cam"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q.Push(ctx, f)
	}
	q.Close()
	<-done
}

type passWorker struct{}

func (passWorker) Process(_ context.Context, b *Batch[*FrameInfo]) *Batch[*FrameInfo] { return b }
func (passWorker) Close() error                                                       { return nil }
