package testfixtures

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RTSPServer runs scripts/rtsp_server.py (GStreamer's RTSP server through /usr/bin/python3) serving one H.264
// MP4 file at rtsp://127.0.0.1:Port/cam. The file plays once, in real time, from the first client's connect.
type RTSPServer struct {
	T    testing.TB
	File string
	Port int
	cmd  *exec.Cmd
}

// NeedRTSPServer skips the test when GStreamer's RTSP server cannot be imported (scripts/setup.sh installs it).
func NeedRTSPServer(t testing.TB) {
	t.Helper()
	check := exec.Command(Python, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer")
	if out, err := check.CombinedOutput(); err != nil {
		t.Skipf("the RTSP tests need %s with GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0): %v\n%s", Python, err, out)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is the stream's address.
func (s *RTSPServer) URL() string { return "rtsp://127.0.0.1:" + strconv.Itoa(s.Port) + "/cam" }

// Start launches the server and waits until it accepts connections.
func (s *RTSPServer) Start() {
	s.T.Helper()
	script := filepath.Join(root(), "scripts", "rtsp_server.py")
	cmd := exec.Command(Python, script, "--file", s.File, "--port", strconv.Itoa(s.Port), "--path", "/cam")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.T.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.T.Fatalf("start rtsp_server.py: %v", err)
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
			s.Stop()
			s.T.Fatalf("rtsp_server.py did not start: %q", line)
		}
	case <-time.After(30 * time.Second):
		s.Stop()
		s.T.Fatal("rtsp_server.py did not start within 30s")
	}
}

// Stop kills the server (SIGKILL: its connections close at once) and reaps it. It is safe to call twice.
func (s *RTSPServer) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT)
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Signal sends sig to the server (SIGSTOP freezes it: connections stay open, nothing arrives).
func (s *RTSPServer) Signal(sig syscall.Signal) {
	s.T.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.T.Fatal(err)
	}
}
