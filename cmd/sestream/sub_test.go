package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/stages/natspub"
)

// startTestPublisher runs a publisher with its embedded server on a free port.
func startTestPublisher(t *testing.T) *natspub.Publisher {
	t.Helper()
	p, err := natspub.New(context.Background(), natspub.Options{
		Embedded: natspub.EmbeddedOptions{Listen: "127.0.0.1:0"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// runSubWhilePublishing runs `sestream sub args...` and publishes a frame (result + attention of
// stream cam1 and cam2), an event and a status every 10 ms until sub exits or 10 s pass.
func runSubWhilePublishing(t *testing.T, p *natspub.Publisher, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runWhilePublishing(t, p, append([]string{"sub", "--nats", p.ClientURL()}, args...)...)
}

// runWhilePublishing runs the command line args as runSubWhilePublishing does, adding nothing to it.
func runWhilePublishing(t *testing.T, p *natspub.Publisher, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		done <- execute(ctx, args, &out, &errOut)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case code = <-done:
			return code, out.String(), errOut.String()
		case <-tick.C:
		}
		for _, stream := range []string{"cam1", "cam2"} {
			p.PublishResult(ctx, &message.Result{Stream: stream, Seq: seq, Captured: time.Now(), Engine: "onnxruntime",
				Batch: message.Batch{ID: seq, Size: 2}, Top: []message.Class{{Index: 1, Label: "trouser", Score: 0.75}},
				Timings: message.Timings{Inference: 4, Total: 9.5}})
			p.PublishAttention(ctx, &message.Attention{Stream: stream, Seq: seq, Captured: time.Now(),
				Blocks: []message.Block{{Name: "b0", Channels: 8, Stats: message.Stats{Mean: 0.5, Std: 0.1}}, {Name: "b1", Channels: 8, Stats: message.Stats{Mean: 0.25, Std: 0.05}}},
				Drift:  &message.Drift{Phase: "detecting", Score: 1.5, Hits: 12, RiseCount: 12, On: true}})
		}
		p.PublishEvent(ctx, &message.Event{Stream: "cam1", Kind: message.EventConnected})
		p.PublishStatus(ctx, &message.Status{Version: "test"})
	}
}

func TestSub(t *testing.T) {
	p := startTestPublisher(t)
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, line string)
	}{
		{"results of one stream", []string{"--stream", "cam2", "--kind", "result", "--count", "3"}, func(t *testing.T, line string) {
			if !strings.HasPrefix(line, "cam2 #") || !strings.Contains(line, "trouser 0.750 latency 9.5ms") {
				t.Errorf("line %q", line)
			}
		}},
		{"attention drift", []string{"--kind", "attention", "--count", "2"}, func(t *testing.T, line string) {
			if !strings.Contains(line, "drift 1.50 hits 12/12 ON | gates mean±std 0.50±0.10 0.25±0.05") {
				t.Errorf("line %q", line)
			}
		}},
		{"events", []string{"--kind", "event", "--count", "2"}, func(t *testing.T, line string) {
			if !strings.HasPrefix(line, "cam1 event connected") {
				t.Errorf("line %q", line)
			}
		}},
		{"status", []string{"--kind", "status", "--count", "1"}, func(t *testing.T, line string) {
			if !strings.HasPrefix(line, "status test up") || !strings.Contains(line, "nats core connected") {
				t.Errorf("line %q", line)
			}
		}},
		{"json", []string{"--stream", "cam1", "--json", "--count", "4"}, func(t *testing.T, line string) {
			kind, v, err := message.Decode([]byte(line))
			if err != nil || kind == message.KindStatus {
				t.Errorf("line %q: %v %v", line, kind, err)
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["stream"] != "cam1" {
				t.Errorf("line %q: %v", line, v)
			}
		}},
		{"everything", []string{"--count", "12"}, func(t *testing.T, line string) {
			if !strings.HasPrefix(line, "cam") && !strings.HasPrefix(line, "status") {
				t.Errorf("line %q", line)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runSubWhilePublishing(t, p, tc.args...)
			if code != exitOK {
				t.Fatalf("exit code %d: %s", code, errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			want, err := strconv.Atoi(tc.args[len(tc.args)-1]) // every case ends with --count N
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != want {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), want, out)
			}
			for _, l := range lines {
				tc.check(t, l)
			}
		})
	}
}

func TestSubBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad kind", []string{"--kind", "frames"}, exitUsage, "--kind"},
		{"dotted stream", []string{"--stream", "a.b"}, exitUsage, "--stream"},
		{"wildcard stream", []string{"--stream", ">"}, exitUsage, "wildcard"},
		{"http url", []string{"--nats", "http://127.0.0.1:8222"}, exitUsage, "not a NATS scheme"},
		{"negative count", []string{"--count", "-1"}, exitUsage, "--count"},
		{"bad prefix", []string{"--prefix", "a b"}, exitUsage, "--prefix"},
		{"nobody there", []string{"--nats", "nats://127.0.0.1:1"}, exitFailure, "is sestream run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := execute(context.Background(), append([]string{"sub"}, tc.args...), &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errOut.String(), tc.want)
			}
		})
	}
}
