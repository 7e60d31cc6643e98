package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/sestream/sestream/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePipeline is a stand-in for the pipeline's snapshot functions, moved by the tests.
type fakePipeline struct {
	mu      sync.Mutex
	streams map[string]*pipeline.StreamStats
	nats    NATSState
	busy    int
}

func newFake(names ...string) *fakePipeline {
	f := &fakePipeline{streams: map[string]*pipeline.StreamStats{}}
	for _, n := range names {
		f.streams[n] = &pipeline.StreamStats{Stream: n, QueueCap: 16}
	}
	return f
}

func (f *fakePipeline) sources() Sources {
	return Sources{
		Streams: func() []pipeline.StreamStats {
			f.mu.Lock()
			defer f.mu.Unlock()
			var out []pipeline.StreamStats
			for _, s := range f.streams {
				out = append(out, *s)
			}
			return out
		},
		NATS: func() NATSState {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.nats
		},
		Workers: func() (int, int) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.busy, 2
		},
	}
}

// frames moves a stream's counters as the pipeline would: each captured frame ends as dropped, failed or
// processed (published when processed), or stays in flight.
func (f *fakePipeline) frames(stream string, captured, dropped, failed, processed, published uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.streams[stream]
	s.Captured += captured
	s.Dropped += dropped
	s.Failed += failed
	s.Processed += processed
	s.Published += published
	s.QueueDepth = int(s.Captured - s.Dropped - s.Failed - s.Processed)
}

func (f *fakePipeline) setNATS(n NATSState) {
	f.mu.Lock()
	f.nats = n
	f.mu.Unlock()
}

// serve starts m's endpoint on a free loopback port and returns its base URL; the server stops with the test.
func serve(t *testing.T, m *Metrics, log *slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, m, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

type families map[string]*dto.MetricFamily

func scrape(t *testing.T, base string) (families, string) {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams, body
}

// value returns the value of the series of name whose labels include want, and whether there is one.
func (f families) value(name string, want ...string) (float64, bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func (f families) must(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.value(name, labels...)
	if !ok {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return v
}

// TestScrapeCounters drives the counters through several steps and checks after each scrape that every stream's
// frames add up: captured == dropped + failed + processed + in flight, and that counters only grow.
func TestScrapeCounters(t *testing.T) {
	f := newFake("cam1", "cam2")
	m := New(Options{Version: "v-test", MaxBatch: 4})
	m.Watch(f.sources())
	base := serve(t, m, slog.New(slog.DiscardHandler))

	type step struct {
		stream                                          string
		captured, dropped, failed, processed, published uint64
	}
	steps := []step{
		{"cam1", 10, 0, 0, 8, 8},
		{"cam2", 5, 2, 1, 1, 1},
		{"cam1", 20, 5, 0, 16, 15},
		{"cam2", 0, 0, 0, 1, 1},
		{"cam1", 0, 0, 1, 0, 1},
	}
	prev := map[string]float64{}
	for i, s := range steps {
		f.frames(s.stream, s.captured, s.dropped, s.failed, s.processed, s.published)
		fams, _ := scrape(t, base)
		for _, name := range []string{"cam1", "cam2"} {
			captured := fams.must(t, "sestream_frames_captured_total", "stream", name)
			dropped := fams.must(t, "sestream_frames_dropped_total", "stream", name, "reason", DropReasonQueue)
			failed := fams.must(t, "sestream_frames_failed_total", "stream", name)
			processed := fams.must(t, "sestream_frames_processed_total", "stream", name)
			published := fams.must(t, "sestream_frames_published_total", "stream", name)
			inFlight := fams.must(t, "sestream_frames_in_flight", "stream", name)
			if captured != dropped+failed+processed+inFlight {
				t.Errorf("step %d, %s: captured %v != dropped %v + failed %v + processed %v + in flight %v",
					i, name, captured, dropped, failed, processed, inFlight)
			}
			if published > processed {
				t.Errorf("step %d, %s: published %v > processed %v", i, name, published, processed)
			}
			if captured < prev[name] {
				t.Errorf("step %d, %s: captured went down from %v to %v", i, name, prev[name], captured)
			}
			prev[name] = captured
			if depth := fams.must(t, "sestream_queue_depth", "stream", name); depth != inFlight {
				t.Errorf("step %d, %s: queue depth %v, want %v", i, name, depth, inFlight)
			}
		}
	}
	fams, _ := scrape(t, base)
	want := map[string][4]float64{"cam1": {30, 5, 1, 24}, "cam2": {5, 2, 1, 2}}
	for name, w := range want {
		got := [4]float64{
			fams.must(t, "sestream_frames_captured_total", "stream", name),
			fams.must(t, "sestream_frames_dropped_total", "stream", name, "reason", DropReasonQueue) +
				fams.must(t, "sestream_frames_dropped_total", "stream", name, "reason", DropReasonDrain),
			fams.must(t, "sestream_frames_failed_total", "stream", name),
			fams.must(t, "sestream_frames_processed_total", "stream", name),
		}
		if got != w {
			t.Errorf("%s: captured, dropped, failed, processed = %v, want %v", name, got, w)
		}
		if got[1]+got[2]+got[3] != got[0] {
			t.Errorf("%s: processed + dropped + failed = %v, captured %v", name, got[1]+got[2]+got[3], got[0])
		}
	}
	if v := fams.must(t, "sestream_queue_capacity", "stream", "cam1"); v != 16 {
		t.Errorf("queue capacity %v, want 16", v)
	}
	if v := fams.must(t, "sestream_workers"); v != 2 {
		t.Errorf("workers %v, want 2", v)
	}
	if v := fams.must(t, "sestream_build_info", "version", "v-test"); v != 1 {
		t.Errorf("build_info %v, want 1", v)
	}
}

// TestObservations checks the hot-path methods against what a scrape shows.
func TestObservations(t *testing.T) {
	m := New(Options{MaxBatch: 8})
	base := serve(t, m, nil)
	sizes := []int{8, 8, 4, 2, 8}
	for _, n := range sizes {
		m.ObserveBatch(n, 8, 3*time.Millisecond)
	}
	for i := 0; i < 7; i++ {
		m.ObserveFrame("cam1", 40*time.Millisecond)
	}
	m.ObserveFrame("cam2", 2*time.Second)
	d := 0.25
	m.SetAttention("cam1", "se1", 0.4, 0.1, 0.9, nil)
	m.SetAttention("cam1", "se1", 0.5, 0.12, 0.8, &d)
	m.SetDrift("cam1", true)
	m.SetDrift("cam1", true)
	m.SetDrift("cam1", false)
	m.SetDrift("cam1", true)
	m.SetAttention("cam1", "se2", 0.6, 0.2, 0.7, nil)
	m.SetSourceState("cam1", "running")
	m.SetSourceState("cam2", "starting")
	m.SetSourceState("cam2", "reconnecting")
	m.SourceReconnect("cam2")
	m.SourceReconnect("cam2")
	m.ModelLoaded(ModelInfo{Name: "fashion-se", Digest: "sha256:abc", Engine: "onnxruntime", SEBlocks: 3})

	fams, _ := scrape(t, base)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sestream_batch_size", nil, float64(len(sizes))},
		{"sestream_batch_fill_ratio", nil, float64(len(sizes))},
		{"sestream_inference_seconds", nil, float64(len(sizes))},
		{"sestream_frame_latency_seconds", []string{"stream", "cam1"}, 7},
		{"sestream_frame_latency_seconds", []string{"stream", "cam2"}, 1},
		{"sestream_attention_mean_gate", []string{"stream", "cam1", "block", "se1"}, 0.5},
		{"sestream_attention_entropy", []string{"stream", "cam1", "block", "se1"}, 0.8},
		{"sestream_attention_drift_score", []string{"stream", "cam1", "block", "se1"}, 0.25},
		{"sestream_attention_gate_std", []string{"stream", "cam1", "block", "se1"}, 0.12},
		{"sestream_attention_drift_active", []string{"stream", "cam1"}, 1},
		{"sestream_attention_drift_events_total", []string{"stream", "cam1"}, 2},
		{"sestream_attention_mean_gate", []string{"stream", "cam1", "block", "se2"}, 0.6},
		{"sestream_attention_drift_score", []string{"stream", "cam1", "block", "se2"}, 0},
		{"sestream_source_state", []string{"stream", "cam1", "state", "running"}, 1},
		{"sestream_source_state", []string{"stream", "cam1", "state", "reconnecting"}, 0},
		{"sestream_source_state", []string{"stream", "cam2", "state", "reconnecting"}, 1},
		{"sestream_source_state", []string{"stream", "cam2", "state", "starting"}, 0},
		{"sestream_source_reconnects_total", []string{"stream", "cam2"}, 2},
		{"sestream_model_info", []string{"model", "fashion-se", "engine", "onnxruntime", "digest", "sha256:abc", "se_blocks", "3"}, 1},
	}
	for _, tt := range tests {
		if got := fams.must(t, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Sum of the fill ratios: 1 + 1 + 0.5 + 0.25 + 1.
	h := fams["sestream_batch_fill_ratio"].GetMetric()[0].GetHistogram()
	if got := h.GetSampleSum(); got != 3.75 {
		t.Errorf("batch fill ratio sum %v, want 3.75", got)
	}
	// Batch size buckets are one per size: le="4" holds the batches of 2 and 4.
	for _, b := range fams["sestream_batch_size"].GetMetric()[0].GetHistogram().GetBucket() {
		if b.GetUpperBound() == 4 && b.GetCumulativeCount() != 2 {
			t.Errorf("batch size le=4: %d, want 2", b.GetCumulativeCount())
		}
	}
	// The 2 s frame lands above 1 s; the 40 ms frames below 0.064 s.
	for _, b := range fams["sestream_frame_latency_seconds"].GetMetric()[0].GetHistogram().GetBucket() {
		if b.GetUpperBound() == 0.064 && b.GetCumulativeCount() != 7 {
			t.Errorf("cam1 latency le=0.064: %d, want 7", b.GetCumulativeCount())
		}
	}
}

func TestHealthz(t *testing.T) {
	m := New(Options{})
	base := serve(t, m, nil)
	code, body := get(t, base+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	resp, err := http.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
}

// TestReadyz walks /readyz through start-up, ready, NATS lost, NATS back, and a stalled source, with a fake clock.
func TestReadyz(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	f := newFake("cam1", "cam2")
	m := New(Options{ProducingWindow: 5 * time.Second, Now: clock})
	base := serve(t, m, nil)

	steps := []struct {
		name    string
		do      func()
		ready   bool
		reasons []string // substrings of the body
		absent  []string // substrings the body must not have
	}{
		{"nothing watched", func() {}, false,
			[]string{"model: not loaded", "pipeline: not started"}, []string{"nats:", "sources:"}},
		{"watched, nothing moving", func() { m.Watch(f.sources()) }, false,
			[]string{"model: not loaded", "no stream captured a frame in the last 5s (cam1, cam2)", "nats: not connected"}, nil},
		{"frames, model loading", func() { f.frames("cam1", 3, 0, 0, 0, 0); m.SetSourceState("cam2", "reconnecting") }, false,
			[]string{"model: not loaded", "nats: not connected"}, []string{"sources:"}},
		{"model loaded, NATS still down", func() { m.ModelLoaded(ModelInfo{Name: "m", Engine: "opencv"}) }, false,
			[]string{"nats: not connected"}, []string{"model:", "sources:"}},
		{"NATS connected", func() { f.setNATS(NATSState{Connected: true}) }, true, nil, []string{"not"}},
		{"NATS lost", func() { f.setNATS(NATSState{Connected: false, Buffered: 12}) }, false,
			[]string{"nats: not connected"}, []string{"model:", "sources:"}},
		{"NATS back", func() { f.setNATS(NATSState{Connected: true}) }, true, nil, nil},
		{"frames keep coming", func() { advance(4 * time.Second); f.frames("cam1", 1, 0, 0, 1, 1) }, true, nil, nil},
		{"source stalls", func() { advance(6 * time.Second) }, false,
			[]string{"no stream captured a frame in the last 5s (cam1, cam2 reconnecting)"}, []string{"nats:", "model:"}},
		{"other source resumes", func() { m.SetSourceState("cam2", "running"); f.frames("cam2", 1, 0, 0, 0, 0) }, true, nil, nil},
		{"no NATS used", func() {
			f.setNATS(NATSState{})
			src := f.sources()
			src.NATS = nil
			m.Watch(src)
		}, true, nil, nil},
	}
	for _, s := range steps {
		s.do()
		code, body := get(t, base+"/readyz")
		wantCode := http.StatusServiceUnavailable
		if s.ready {
			wantCode = http.StatusOK
		}
		if code != wantCode {
			t.Errorf("%s: /readyz %d, want %d\n%s", s.name, code, wantCode, body)
		}
		if s.ready && body != "ready\n" {
			t.Errorf("%s: body %q, want \"ready\\n\"", s.name, body)
		}
		for _, r := range s.reasons {
			if !strings.Contains(body, r) {
				t.Errorf("%s: body lacks %q:\n%s", s.name, r, body)
			}
		}
		for _, r := range s.absent {
			if strings.Contains(body, r) {
				t.Errorf("%s: body has %q:\n%s", s.name, r, body)
			}
		}
		fams, _ := scrape(t, base)
		if v := fams.must(t, "sestream_ready"); (v == 1) != s.ready {
			t.Errorf("%s: sestream_ready %v, want ready=%v", s.name, v, s.ready)
		}
	}
}

func TestServeBadAddress(t *testing.T) {
	m := New(Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String(), m, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "http.listen "+ln.Addr().String()) {
		t.Errorf("Serve on a taken port: %v, want an error naming http.listen and the address", err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	m := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", m, slog.New(slog.DiscardHandler)) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of cancel")
	}
}

func TestHotPathAllocs(t *testing.T) {
	m := New(Options{MaxBatch: 8})
	d := 0.1
	m.ObserveFrame("cam1", time.Millisecond)
	m.SetAttention("cam1", "se1", 0.5, 0.1, 0.5, &d)
	m.SetSourceState("cam1", "running")
	tests := []struct {
		name string
		f    func()
	}{
		{"ObserveBatch", func() { m.ObserveBatch(8, 8, time.Millisecond) }},
		{"ObserveFrame", func() { m.ObserveFrame("cam1", time.Millisecond) }},
		{"SetAttention", func() { m.SetAttention("cam1", "se1", 0.5, 0.1, 0.5, &d) }},
		{"SetSourceState", func() { m.SetSourceState("cam1", "running") }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", tt.name, n)
		}
	}
}

func BenchmarkObserveFrame(b *testing.B) {
	m := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveFrame("cam1", 30*time.Millisecond)
	}
}

func BenchmarkSetAttention(b *testing.B) {
	m := New(Options{})
	d := 0.01
	b.ReportAllocs()
	for b.Loop() {
		m.SetAttention("cam1", "features.3.se", 0.5, 0.1, 0.9, &d)
	}
}

func BenchmarkScrape(b *testing.B) {
	f := newFake("cam1", "cam2", "cam3", "cam4")
	m := New(Options{MaxBatch: 8})
	m.Watch(f.sources())
	for _, s := range []string{"cam1", "cam2", "cam3", "cam4"} {
		m.ObserveFrame(s, time.Millisecond)
		for _, blk := range []string{"se1", "se2", "se3"} {
			m.SetAttention(s, blk, 0.5, 0.1, 0.5, nil)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFleetMetrics: the fleet series appear only while Sources.Fleet reports a state, with its values.
func TestFleetMetrics(t *testing.T) {
	m := New(Options{Version: "test"})
	var (
		mu    sync.Mutex
		state FleetState
		in    bool
	)
	src := newFake("a").sources()
	src.Fleet = func() (FleetState, bool) {
		mu.Lock()
		defer mu.Unlock()
		return state, in
	}
	m.Watch(src)
	base := serve(t, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	fams, body := scrape(t, base)
	for name := range fams {
		if strings.HasPrefix(name, "sestream_fleet_") {
			t.Fatalf("%s exported before the fleet's first round:\n%s", name, body)
		}
	}
	mu.Lock()
	state, in = FleetState{Members: 3, Desired: 7, Share: 3, Held: 2, OldestRenewalS: 0.25, Acquired: 4, Released: 2, Lost: 1}, true
	mu.Unlock()
	fams, body = scrape(t, base)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sestream_fleet_members", nil, 3},
		{"sestream_fleet_streams_desired", nil, 7},
		{"sestream_fleet_streams_share", nil, 3},
		{"sestream_fleet_streams_held", nil, 2},
		{"sestream_fleet_lease_renewal_age_seconds", nil, 0.25},
		{"sestream_fleet_lease_changes_total", []string{"change", "acquired"}, 4},
		{"sestream_fleet_lease_changes_total", []string{"change", "released"}, 2},
		{"sestream_fleet_lease_changes_total", []string{"change", "lost"}, 1},
	} {
		if v, ok := fams.value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v\n%s", c.name, c.labels, v, ok, c.want, body)
		}
	}
}
