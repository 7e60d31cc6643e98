package pipeline

import (
	"context"
	"testing"
)

// TestCountersAddUp: frames cancelled in flight count as dropped, and publish outcomes split the processed
// frames, so that captured = dropped + failed + processed and processed = published + publish_dropped.
func TestCountersAddUp(t *testing.T) {
	c := NewCounters()
	q := NewQueue[int]("cam", 4, DropNewest, nil)
	c.WatchQueue("cam", q)
	for i := range 10 {
		if _, err := q.Push(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	} // 4 queued, 6 dropped by the policy
	s := c.Stream("cam")
	outcomes := []func(){
		func() { s.Cancelled(1) },
		func() { s.Failed() },
		func() { s.Processed(); s.PublishDone(true) },
		func() { s.Processed(); s.PublishDone(false) },
	}
	for i, end := range outcomes {
		<-q.C()
		end()
		if st := c.Snapshot()[0]; st.InFlight() != uint64(len(outcomes)-1-i) {
			t.Fatalf("after %d frames ended: %d in flight, want %d (%+v)", i+1, st.InFlight(), len(outcomes)-1-i, st)
		}
	}
	c.Stream("other").Processed()
	st := c.Snapshot()
	if len(st) != 2 || st[0].Stream != "cam" || st[1].Stream != "other" {
		t.Fatalf("snapshot %+v, want cam and other in name order", st)
	}
	cam := st[0]
	if cam.Captured != 10 || cam.Dropped != 6+1 || cam.Cancelled != 1 || cam.Failed != 1 || cam.Processed != 2 ||
		cam.Published != 1 || cam.PublishDropped != 1 {
		t.Fatalf("cam %+v", cam)
	}
	if cam.Captured != cam.Dropped+cam.Failed+cam.Processed || cam.Processed != cam.Published+cam.PublishDropped {
		t.Errorf("cam %+v does not add up", cam)
	}
	if o := st[1]; o.Captured != 0 || o.Processed != 1 || o.InFlight() != 0 {
		t.Errorf("other %+v: more ended than captured must not wrap around", o)
	}
}

// TestWatchQueueAgain: a stream stopped and started again with a new queue keeps its counts.
func TestWatchQueueAgain(t *testing.T) {
	c := NewCounters()
	q1 := NewQueue[int]("a", 4, Block, nil)
	c.WatchQueue("a", q1)
	q1.Push(context.Background(), 1)
	q1.Push(context.Background(), 2)
	q2 := NewQueue[int]("a", 4, Block, nil)
	c.WatchQueue("a", q2)
	q2.Push(context.Background(), 3)
	if got := c.Snapshot()[0]; got.Captured != 3 || got.QueueDepth != 1 {
		t.Fatalf("after a second queue: captured %d, depth %d; want 3, 1", got.Captured, got.QueueDepth)
	}
}
