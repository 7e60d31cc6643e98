package natspub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/message"
)

// natsServerProcess is the Debian nats-server binary run as a separate process.
type natsServerProcess struct {
	t    testing.TB
	bin  string
	port int
	args []string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// startNATSServer runs nats-server on 127.0.0.1 with extra args; the test stops it.
func startNATSServer(t testing.TB, port int, args ...string) *natsServerProcess {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		// Debian installs it in /usr/sbin, which is not on every user's PATH.
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			t.Skip("nats-server binary not installed (Debian package nats-server; scripts/setup.sh installs it): " + err.Error())
		}
		bin = "/usr/sbin/nats-server"
	}
	s := &natsServerProcess{t: t, bin: bin, port: port, args: args}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *natsServerProcess) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *natsServerProcess) start() {
	s.t.Helper()
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port)}, s.args...)
	s.log = new(bytes.Buffer)
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("nats-server on port %d not up after 10s: %v\n%s", s.port, err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server with SIGKILL: no goodbye to clients, no flush of anything.
func (s *natsServerProcess) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// natsLogBuffer is a goroutine-safe log sink.
type natsLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *natsLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *natsLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func natsTestLogger() (*slog.Logger, *natsLogBuffer) {
	buf := new(natsLogBuffer)
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// gateDialer dials TCP only while open; tests use it to hold a client off a restarted server.
type gateDialer struct {
	mu   sync.Mutex
	open bool
}

func (g *gateDialer) set(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
}

func (g *gateDialer) Dial(network, address string) (net.Conn, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		return nil, errors.New("test gate closed")
	}
	return net.DialTimeout(network, address, time.Second)
}

// natsCollector subscribes to subjects and records every message.
type natsCollector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	seqs map[uint64]int // result seq -> times received
}

func newNATSCollector() *natsCollector { return &natsCollector{seqs: make(map[uint64]int)} }

func (c *natsCollector) handle(m *nats.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	var r struct {
		Schema string `json:"schema"`
		Seq    uint64 `json:"seq"`
	}
	if json.Unmarshal(m.Data, &r) == nil && r.Schema == message.SchemaResult {
		c.seqs[r.Seq]++
	}
}

func (c *natsCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *natsCollector) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seqs)
}

// missingBefore counts the results 1..n below seq that have not arrived.
func (c *natsCollector) missingBefore(n, seq uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	missing := 0
	for s := uint64(1); s <= n && s < seq; s++ {
		if c.seqs[s] == 0 {
			missing++
		}
	}
	return missing
}

// waitQuiet waits until want results have arrived, or until none has arrived for 500ms (at most 10s).
func waitQuiet(t *testing.T, c *natsCollector, want uint64) {
	t.Helper()
	last, since := c.unique(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := c.unique()
		if uint64(n) >= want || n == last && time.Since(since) > 500*time.Millisecond {
			return
		}
		if n != last {
			last, since = n, time.Now()
		}
	}
}

// natsWaitFor polls cond every 10ms until it holds or timeout passes.
func natsWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func natsTestResult(stream string, seq uint64) *message.Result {
	return &message.Result{
		Stream: stream, Seq: seq, Captured: time.Now(), Width: 1280, Height: 720,
		Batch: message.Batch{ID: seq, Size: 1}, Model: message.Model{Name: "tiny-se"}, Engine: "onnxruntime",
		Top:     []message.Class{{Index: 3, Label: "dress", Score: 0.8}, {Index: 0, Label: "t-shirt", Score: 0.1}},
		Timings: message.Timings{Preprocess: 1, Queue: 2, Inference: 5, Publish: 0.01, Total: 8.01},
	}
}

func natsTestAttention(stream string, seq uint64, blocks int) *message.Attention {
	a := &message.Attention{Stream: stream, Seq: seq, Captured: time.Now(), Model: message.Model{Name: "tiny-se"}}
	for i := range blocks {
		a.Blocks = append(a.Blocks, message.Block{
			Name: fmt.Sprintf("features.%d.se.gate", i), Order: i, Channels: 16 << (i % 4),
			Stats: message.Stats{Mean: 0.5, Std: 0.2, Min: 0.01, Max: 0.99, Entropy: 0.93, EffectiveChannels: 14.2,
				Top: []message.TopGate{{Channel: 1, Value: 0.99}, {Channel: 7, Value: 0.97}, {Channel: 4, Value: 0.95}, {Channel: 12, Value: 0.9}, {Channel: 2, Value: 0.88}}, Saturated: 0.1, Suppressed: 0.05},
		})
	}
	return a
}

func newTestPublisher(t testing.TB, o Options) (*Publisher, *natsLogBuffer) {
	t.Helper()
	log, buf := natsTestLogger()
	if o.Logger == nil {
		o.Logger = log
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p, buf
}

func closePublisher(t testing.TB, p *Publisher, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func natsWriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func natsTestEvent() *message.Event {
	return &message.Event{Stream: "cam1", Kind: message.EventConnected}
}
