package capture

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/matcheck"
	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/source"
	"go.uber.org/goleak"
)

// TestCaptureRTSPKillRestartStall reads a real RTSP server, kills and restarts it, then
// freezes it (SIGSTOP: the connection stays open but nothing arrives), and checks that the
// stage reports each loss, reconnects, resumes, and leaks neither goroutines nor Mats.
func TestCaptureRTSPKillRestartStall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an RTSP server")
	}
	testfixtures.NeedRTSPServer(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	file := filepath.Join(t.TempDir(), "cam.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=10:duration=40", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-g", "10", file)
	srv := &testfixtures.RTSPServer{T: t, File: file, Port: testfixtures.FreePort(t)}
	srv.Start()
	defer srv.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const stall = 2 * time.Second
	q := pipeline.NewQueue[Frame]("cam", 4, pipeline.DropOldest, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() {
		errc <- RunSource(ctx, source.Options{Name: "cam", URL: srv.URL(),
			StallTimeout: stall, ReconnectInitial: 100 * time.Millisecond, ReconnectMax: time.Second,
			OpenTimeout: 10 * time.Second}, q, ev.event)
	}()
	var mu sync.Mutex
	var seqs []uint64
	frames := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs)
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for f := range q.C() {
			if f.Info.Width != 160 || f.Info.Height != 96 || f.Mat.Empty() {
				t.Errorf("frame %+v", f.Info)
			}
			mu.Lock()
			seqs = append(seqs, f.Info.Seq)
			mu.Unlock()
			DiscardFrame(f)
		}
	}()
	waitFrames := func(n int, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for frames() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d frames within %v, want %d; events %v", frames(), timeout, n, ev.kinds())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	countKind := func(kind message.EventKind) int {
		n := 0
		for _, k := range ev.kinds() {
			if k == kind {
				n++
			}
		}
		return n
	}
	waitKind := func(kind message.EventKind, n int, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for countKind(kind) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d %q events within %v, want %d; events %+v", countKind(kind), kind, timeout, n, ev.events)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitFrames(10, 30*time.Second)
	ev.waitEvent(t, message.EventConnected, time.Second)

	// 1. The server dies: its connection closes, the read fails, the stage reconnects.
	srv.Stop()
	waitKind(message.EventLost, 1, 15*time.Second)
	srv.Start()
	waitKind(message.EventReconnected, 1, 30*time.Second)
	before := frames()
	waitFrames(before+10, 30*time.Second)

	// 2. The server freezes: the connection stays open, nothing arrives, the watchdog fires.
	errorsBefore := countKind(message.EventError)
	srv.Signal(syscall.SIGSTOP)
	waitKind(message.EventLost, 2, stall+15*time.Second)
	waitKind(message.EventError, errorsBefore+1, 20*time.Second) // a reopen of the frozen server fails
	srv.Signal(syscall.SIGCONT)
	waitKind(message.EventReconnected, 2, 30*time.Second)
	before = frames()
	waitFrames(before+5, 30*time.Second)

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	<-consumed
	srv.Stop()

	var lost []source.Event
	var reconnected []source.Event
	for _, e := range ev.events {
		switch e.Kind {
		case message.EventLost:
			lost = append(lost, e)
		case message.EventReconnected:
			reconnected = append(reconnected, e)
		}
	}
	if !strings.Contains(lost[1].Err, "no frame for 2s") {
		t.Errorf("second loss %+v, want the stall watchdog's", lost[1])
	}
	for i, r := range reconnected {
		if r.Outage <= 0 || r.Attempt < 1 || r.Frames != lost[i].Frames+1 {
			t.Errorf("reconnected %+v after lost %+v", r, lost[i])
		}
	}
	if reconnected[1].Attempt < 2 {
		t.Errorf("reconnect after the freeze took attempt %d; the first reopen should have failed", reconnected[1].Attempt)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence not increasing: %d after %d", seqs[i], seqs[i-1])
		}
	}
	t.Logf("%d frames, events %v", len(seqs), ev.kinds())
}
