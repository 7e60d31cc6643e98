package sestream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/metrics"
)

// serveMetrics serves m on a free loopback port until the test ends and returns the base URL.
func serveMetrics(t *testing.T, m *metrics.Metrics, log *slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.ServeListener(ctx, ln, m, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func metricsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metricSample returns the value of the series `name{labels}` in a Prometheus text exposition, where labels is the
// exact label set as printed (e.g. `stream="a"`), or -1 when absent.
func metricSample(text, name, labels string) float64 {
	prefix := name + " "
	if labels != "" {
		prefix = name + "{" + labels + "} "
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// streamCounts reads one stream's frame counters from one scrape.
type streamCounts struct{ captured, dropped, failed, processed, published, inFlight float64 }

func countsOf(text, stream string) streamCounts {
	l := `stream="` + stream + `"`
	return streamCounts{
		captured:  metricSample(text, "sestream_frames_captured_total", l),
		dropped:   metricSample(text, "sestream_frames_dropped_total", `reason="`+metrics.DropReasonQueue+`",`+l),
		failed:    metricSample(text, "sestream_frames_failed_total", l),
		processed: metricSample(text, "sestream_frames_processed_total", l),
		published: metricSample(text, "sestream_frames_published_total", l),
		inFlight:  metricSample(text, "sestream_frames_in_flight", l),
	}
}

func metricsWait(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsEndToEnd runs two looping file streams (one with a 2-frame drop_oldest queue, so it drops) into a
// real NATS server and scrapes /metrics and /readyz: not ready before the model is loaded, ready while frames
// flow and NATS is connected, not ready once NATS goes away; after the drain, every stream's
// processed + dropped + failed == captured, and processed frames match the results received.
func TestMetricsEndToEnd(t *testing.T) {
	srv := startNATS(t)
	clip := makeVideo(t, 30, "96x64")
	cfg := testConfig(t, srv.ClientURL(),
		config.Stream{Name: "steady", URL: clip, Loop: true, Policy: "block"},
		config.Stream{Name: "lossy", URL: clip, Loop: true, Policy: "drop_oldest"})
	cfg.Queue.Size = 2
	col, _ := collect(t, srv.ClientURL())

	m := metrics.New(metrics.Options{Version: "e2e", MaxBatch: cfg.Batch.MaxSize, ProducingWindow: 2 * time.Second})
	base := serveMetrics(t, m, slog.New(slog.DiscardHandler))
	if code, body := metricsGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "model: not loaded") {
		t.Fatalf("/readyz before the pipeline exists: %d %q, want 503 naming the model", code, body)
	}

	p, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := metricsGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "model: not loaded") {
		t.Fatalf("/readyz before Start: %d %q, want 503 naming the model", code, body)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close(context.Background())
		}
	})

	metricsWait(t, "/readyz to turn ready", 30*time.Second, func() bool {
		code, _ := metricsGet(t, base+"/readyz")
		return code == http.StatusOK
	})

	// While running: counters only grow, published <= processed, and the identity holds within each scrape.
	prev := map[string]streamCounts{}
	for i := 0; i < 5; i++ {
		_, text := metricsGet(t, base+"/metrics")
		for _, s := range []string{"steady", "lossy"} {
			c := countsOf(text, s)
			if c.captured < 0 || c.processed < 0 || c.inFlight < 0 {
				t.Fatalf("scrape %d: stream %s missing from /metrics:\n%s", i, s, text)
			}
			if c.captured != c.dropped+c.failed+c.processed+c.inFlight {
				t.Errorf("scrape %d, %s: captured %v != dropped %v + failed %v + processed %v + in flight %v", i, s,
					c.captured, c.dropped, c.failed, c.processed, c.inFlight)
			}
			if c.published > c.processed {
				t.Errorf("scrape %d, %s: published %v > processed %v", i, s, c.published, c.processed)
			}
			if p := prev[s]; c.captured < p.captured || c.processed < p.processed || c.dropped < p.dropped {
				t.Errorf("scrape %d, %s: a counter went down: %+v then %+v", i, s, p, c)
			}
			prev[s] = c
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, text := metricsGet(t, base+"/metrics")
	for _, want := range []string{"sestream_frame_latency_seconds_count{stream=\"steady\"}", "sestream_batch_size_count",
		"sestream_attention_entropy{block=", "sestream_model_info{", `sestream_source_state{state="running",stream="lossy"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// NATS goes away: /readyz names it.
	srv.Shutdown()
	metricsWait(t, "/readyz to report NATS down", 10*time.Second, func() bool {
		code, body := metricsGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "nats: not connected")
	})
	if _, body := metricsGet(t, base+"/readyz"); strings.Contains(body, "model:") {
		t.Errorf("/readyz with NATS down also blames the model:\n%s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closed = true
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, text = metricsGet(t, base+"/metrics")
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, s := range []string{"steady", "lossy"} {
		c := countsOf(text, s)
		if c.processed+c.dropped+c.failed != c.captured {
			t.Errorf("%s after the drain: processed %v + dropped %v + failed %v != captured %v", s, c.processed, c.dropped, c.failed, c.captured)
		}
		if c.inFlight != 0 {
			t.Errorf("%s after the drain: %v frames in flight", s, c.inFlight)
		}
		if c.processed == 0 {
			t.Errorf("%s: no frame processed", s)
		}
		// A result the server delivered but never confirmed (NATS went away) counts as publish_dropped, not
		// published: what arrived is bounded by what was processed.
		if got := float64(len(col.results[s])); got > c.processed {
			t.Errorf("%s: %v results received, more than the %v processed", s, got, c.processed)
		}
		t.Logf("%s: captured %v dropped %v failed %v processed %v published %v (results received before NATS went away: %d)",
			s, c.captured, c.dropped, c.failed, c.processed, c.published, len(col.results[s]))
	}
	if c := countsOf(text, "steady"); c.dropped != 0 {
		t.Errorf("steady (block policy) dropped %v frames", c.dropped)
	}
}

// authNATS starts a NATS server that wants user "sestream" with password, or token when password is empty.
func authNATS(t *testing.T, password, token string) *server.Server {
	t.Helper()
	return startNATS(t, func(o *server.Options) {
		if password != "" {
			o.Username, o.Password = "sestream", password
		} else {
			o.Authorization = token
		}
	})
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers (log handlers, the summary writer).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	secretPassword = "pw-9c41e7-do-not-log"
	secretToken    = "tok-5b8d02-do-not-log"
)

// TestSecretsStayOut runs the pipeline against NATS servers that want a password (given in the config file, or
// inside nats.url from the environment) or a token (given in the environment), and checks that neither secret
// appears in the logs (text and JSON), the console summary, /metrics, /readyz, the status and event messages,
// or the error texts of a refused connection and of a bad configuration.
func TestSecretsStayOut(t *testing.T) {
	clip := makeVideo(t, 20, "96x64")
	dir := t.TempDir()
	tests := []struct {
		name     string
		password string // the server wants user sestream with this password, else the token
		yaml     func(port int) string
		env      func(port int) map[string]string
		wrong    func(c *config.NATS) // makes the credentials wrong
	}{
		{"password in the config file", secretPassword,
			func(port int) string {
				return fmt.Sprintf("nats:\n  url: nats://127.0.0.1:%d\n  user: sestream\n  password: %s\n", port, secretPassword)
			},
			func(int) map[string]string { return nil },
			func(c *config.NATS) { c.Password += "-wrong" }},
		{"password in nats.url from the environment", secretPassword,
			func(int) string { return "" },
			func(port int) map[string]string {
				return map[string]string{"SESTREAM_NATS_URL": fmt.Sprintf("nats://sestream:%s@127.0.0.1:%d", secretPassword, port)}
			},
			func(c *config.NATS) { c.URL = strings.Replace(c.URL, secretPassword, secretPassword+"-wrong", 1) }},
		{"token in the environment", "",
			func(port int) string { return fmt.Sprintf("nats:\n  url: nats://127.0.0.1:%d\n", port) },
			func(int) map[string]string { return map[string]string{"SESTREAM_NATS_TOKEN": secretToken} },
			func(c *config.NATS) { c.Token += "-wrong" }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := authNATS(t, tt.password, secretToken)
			port := srv.Addr().(*net.TCPAddr).Port
			file := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
			body := tt.yaml(port) + fmt.Sprintf("model:\n  path: %s\nhttp:\n  listen: \"\"\nstatus:\n  interval: 100ms\nbatch:\n  max_size: 4\nstreams:\n  - name: cam\n    url: %s\n    loop: true\n", testModel, clip)
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			env := tt.env(port)
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			cfg, err := config.Load(config.Options{File: file, LookupEnv: lookup})
			if err != nil {
				t.Fatal(err)
			}

			var logs, summary lockedBuffer
			jsonLog := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			textLog := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			m := metrics.New(metrics.Options{Version: "secrets"})
			base := serveMetrics(t, m, jsonLog)

			// Everything sestream publishes besides the per-frame messages, read by an authenticated client.
			auth := nats.Token(secretToken)
			if tt.password != "" {
				auth = nats.UserInfo("sestream", secretPassword)
			}
			nc, err := nats.Connect(srv.ClientURL(), auth)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			var msgMu sync.Mutex
			var msgs bytes.Buffer
			status := 0
			sub, err := nc.Subscribe("sestream.>", func(msg *nats.Msg) {
				msgMu.Lock()
				defer msgMu.Unlock()
				if !strings.HasSuffix(msg.Subject, ".result") && !strings.HasSuffix(msg.Subject, ".attention") {
					msgs.Write(msg.Data)
					msgs.WriteByte('\n')
				}
				if msg.Subject == "sestream.status" {
					status++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}

			p, err := New(cfg, Options{Logger: textLog, Summary: &summary, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			metricsWait(t, "two status messages", 20*time.Second, func() bool { msgMu.Lock(); defer msgMu.Unlock(); return status >= 2 })
			time.Sleep(1100 * time.Millisecond) // one console summary line
			_, metricsText := metricsGet(t, base+"/metrics")
			_, ready := metricsGet(t, base+"/readyz")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}

			// A refused connection: the same secrets, one of them wrong.
			bad := *cfg
			tt.wrong(&bad.NATS)
			bad.NATS.RequireConnect = true
			var refused string
			if pb, err := New(&bad, Options{Logger: jsonLog}); err != nil {
				refused = err.Error()
			} else if err := pb.Start(context.Background()); err != nil {
				refused = err.Error()
			} else {
				pb.Close(context.Background())
				t.Error("wrong NATS credentials were accepted")
			}
			// A configuration error next to the secrets.
			_, cfgErr := config.Load(config.Options{File: file, LookupEnv: func(k string) (string, bool) {
				if k == "SESTREAM_NATS_BUFFER" {
					return "-1", true
				}
				return lookup(k)
			}})
			if cfgErr == nil {
				t.Fatal("nats.buffer -1 was accepted")
			}

			msgMu.Lock()
			published := msgs.String()
			msgMu.Unlock()
			checkNoSecrets(t, []secretPlace{
				{"logs", logs.String()}, {"console summary", summary.String()}, {"/metrics", metricsText}, {"/readyz", ready},
				{"status and event messages", published}, {"refused connection error", refused}, {"config error", cfgErr.Error()},
			})
		})
	}
}

// TestSecretsConfigErrors checks that configuration errors about NATS settings do not repeat the secrets.
func TestSecretsConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"token with a password", map[string]string{"SESTREAM_NATS_URL": "nats://127.0.0.1:4222", "SESTREAM_NATS_USER": "u",
			"SESTREAM_NATS_PASSWORD": secretPassword, "SESTREAM_NATS_TOKEN": secretToken}},
		{"password without user", map[string]string{"SESTREAM_NATS_URL": "nats://127.0.0.1:4222", "SESTREAM_NATS_PASSWORD": secretPassword}},
		{"credentials in a URL of the wrong scheme", map[string]string{"SESTREAM_NATS_URL": "http://sestream:" + secretPassword + "@127.0.0.1:4222"}},
		{"token in a URL of the wrong scheme", map[string]string{"SESTREAM_NATS_URL": "http://" + secretToken + "@127.0.0.1:4222"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(config.Options{LookupEnv: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }})
			if err == nil {
				t.Fatal("the configuration was accepted")
			}
			checkNoSecrets(t, []secretPlace{{"config error", err.Error()}})
		})
	}
}

type secretPlace struct{ where, text string }

func checkNoSecrets(t *testing.T, places []secretPlace) {
	t.Helper()
	for _, pl := range places {
		if pl.text == "" {
			t.Errorf("%s: nothing captured, so nothing was checked", pl.where)
		}
		for _, s := range []string{secretPassword, secretToken} {
			if strings.Contains(pl.text, s) {
				t.Errorf("%s contain the secret %q:\n%s", pl.where, s, linesWith(pl.text, s))
			}
		}
	}
}

// linesWith returns the lines of text that contain s.
func linesWith(text, s string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
