package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// catchesSIGTERM reports whether the process has a handler for SIGTERM, from SigCgt in /proc/PID/status.
func catchesSIGTERM(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, err
			}
			return mask&(1<<(uint(syscall.SIGTERM)-1)) != 0, nil
		}
	}
	return false, errors.New("no SigCgt line")
}

// TestEarlySIGTERM: a SIGTERM sent as soon as the process catches it at all (while its shared libraries are
// still initialising, before the Go runtime and main run) stops it cleanly, with a line that says so, instead
// of killing it with the default action (exit 143).
func TestEarlySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "sestream")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "frames", "a.png"))
	tiny, err := filepath.Abs(filepath.Join(engineTestdata, "se_tiny_64x64.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(bin, "run", "--model", tiny, "--stream", "a="+filepath.Join(dir, "frames"),
				"--http", "", "--nats-listen", "127.0.0.1:0")
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Microsecond) {
				caught, err := catchesSIGTERM(cmd.Process.Pid)
				if err != nil || caught {
					break // an error: the process has already exited; Wait says how
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the process did not catch SIGTERM within 10 s")
				}
			}
			sent := time.Since(start)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-waited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-waited
				t.Fatalf("still running 30 s after SIGTERM; stderr:\n%s", clipOutput(stderr.String()))
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			t.Logf("SIGTERM %v after start; exit %d (signaled %v) after %v; stderr:\n%s", sent.Round(time.Millisecond),
				cmd.ProcessState.ExitCode(), ws.Signaled(), time.Since(start).Round(time.Millisecond), clipOutput(stderr.String()))
			if ws.Signaled() || cmd.ProcessState.ExitCode() != exitOK {
				t.Fatalf("exit %d (killed by a signal: %v), want %d", cmd.ProcessState.ExitCode(), ws.Signaled(), exitOK)
			}
			if !strings.Contains(stderr.String(), "sestream: stopped by a signal before the pipeline started") &&
				!strings.Contains(stderr.String(), "stopping: sources closed") &&
				!strings.Contains(stderr.String(), "a signal came while the pipeline was starting") {
				t.Errorf("stderr does not say the process stopped for a signal:\n%s", clipOutput(stderr.String()))
			}
		})
	}
}

// silentServer accepts TCP connections and never answers: an RTSP camera that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// lockedWriter is an io.Writer safe for the pipeline's goroutines and the test.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestShutdownNamesStreamsStillOpening: stopping while an RTSP open hangs on a silent server logs, once, which
// stream shutdown waits for and for how long at most.
func TestShutdownNamesStreamsStillOpening(t *testing.T) {
	addr := silentServer(t)
	// The hung open ends when FFmpeg's socket timeout (stall_timeout, 10 s) passes: give the drain more than
	// that, so that the stop is a complete drain rather than a race between two 10 s timers.
	t.Setenv("SESTREAM_SHUTDOWN_DRAIN_TIMEOUT", "30s")
	tiny := filepath.Join(engineTestdata, "se_tiny_64x64.onnx")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedWriter
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- execute(ctx, []string{"run", "--model", tiny, "--stream", "cam=rtsp://" + addr + "/cam", "--http", "",
			"--nats-listen", "127.0.0.1:0"}, &bytes.Buffer{}, &stderr)
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "msg=stream name=cam"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not start within 30 s:\n%s", stderr.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // the open is under way
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("still running 60 s after the stop:\n%s", stderr.String())
	}
	out := stderr.String()
	t.Logf("exit %d after %v:\n%s", code, time.Since(start).Round(time.Millisecond), clipOutput(out))
	const line = `msg="stopping: waiting for streams still opening their source" streams="cam (starting)" wait_up_to=`
	if n := strings.Count(out, line); n != 1 {
		t.Errorf("%q logged %d times, want once", line, n)
	}
	if code != exitOK {
		t.Errorf("exit %d, want %d", code, exitOK)
	}
}
