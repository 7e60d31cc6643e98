package stages

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sestream/sestream/pipeline"
	"go.uber.org/goleak"
)

const pythonGI = "/usr/bin/python3"

// rtspServer runs scripts/rtsp_server.py serving one file on 127.0.0.1.
type rtspServer struct {
	t    *testing.T
	file string
	port int
	cmd  *exec.Cmd
}

func needRTSPServer(t *testing.T) {
	t.Helper()
	check := exec.Command(pythonGI, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer")
	if out, err := check.CombinedOutput(); err != nil {
		t.Skipf("the RTSP tests need %s with GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0): %v\n%s", pythonGI, err, out)
	}
}

func rtspFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start launches the server and waits until it accepts connections.
func (s *rtspServer) start() {
	s.t.Helper()
	cmd := exec.Command(pythonGI, "../scripts/rtsp_server.py", "--file", s.file, "--port", strconv.Itoa(s.port), "--path", "/cam")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start rtsp_server.py: %v", err)
	}
	s.cmd = cmd
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "READY ") {
			s.stop()
			s.t.Fatalf("rtsp_server.py did not start: %q", line)
		}
	case <-time.After(30 * time.Second):
		s.stop()
		s.t.Fatal("rtsp_server.py did not start within 30s")
	}
}

// stop kills the server (SIGKILL: its connections close at once) and reaps it.
func (s *rtspServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT)
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

func (s *rtspServer) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// TestCaptureRTSPKillRestartStall reads a real RTSP server, kills and restarts it, then
// freezes it (SIGSTOP: the connection stays open but nothing arrives), and checks that the
// stage reports each loss, reconnects, resumes, and leaks neither goroutines nor Mats.
func TestCaptureRTSPKillRestartStall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an RTSP server")
	}
	needRTSPServer(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	checkMats(t)
	file := filepath.Join(t.TempDir(), "cam.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=10:duration=40", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-g", "10", file)
	srv := &rtspServer{t: t, file: file, port: rtspFreePort(t)}
	srv.start()
	defer srv.stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const stall = 2 * time.Second
	q := pipeline.NewQueue[Frame]("cam", 4, pipeline.DropOldest, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() {
		errc <- RunSource(ctx, SourceOptions{Name: "cam", URL: "rtsp://127.0.0.1:" + strconv.Itoa(srv.port) + "/cam",
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
	countKind := func(kind string) int {
		n := 0
		for _, k := range ev.kinds() {
			if k == kind {
				n++
			}
		}
		return n
	}
	waitKind := func(kind string, n int, timeout time.Duration) {
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
	ev.waitEvent(t, EventConnected, time.Second)

	// 1. The server dies: its connection closes, the read fails, the stage reconnects.
	srv.stop()
	waitKind(EventLost, 1, 15*time.Second)
	srv.start()
	waitKind(EventReconnected, 1, 30*time.Second)
	before := frames()
	waitFrames(before+10, 30*time.Second)

	// 2. The server freezes: the connection stays open, nothing arrives, the watchdog fires.
	errorsBefore := countKind(EventError)
	srv.signal(syscall.SIGSTOP)
	waitKind(EventLost, 2, stall+15*time.Second)
	waitKind(EventError, errorsBefore+1, 20*time.Second) // a reopen of the frozen server fails
	srv.signal(syscall.SIGCONT)
	waitKind(EventReconnected, 2, 30*time.Second)
	before = frames()
	waitFrames(before+5, 30*time.Second)

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	<-consumed
	srv.stop()

	var lost []SourceEvent
	var reconnected []SourceEvent
	for _, e := range ev.events {
		switch e.Kind {
		case EventLost:
			lost = append(lost, e)
		case EventReconnected:
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
