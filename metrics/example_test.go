package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/pipeline"
)

// A pipeline registers its snapshot functions once, reports the model when it is loaded, and calls the
// Observe and Set methods from its stages; /readyz and /metrics read them.
func Example() {
	m := metrics.New(metrics.Options{Version: "v1.0.0", MaxBatch: 8})
	counters := pipeline.NewCounters()
	cam1 := counters.Stream("cam1")
	var connected atomic.Bool
	m.Watch(metrics.Sources{
		Streams: counters.Snapshot,
		NATS:    func() metrics.NATSState { return metrics.NATSState{Connected: connected.Load()} },
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	fmt.Print(get(srv.URL + "/readyz"))

	m.ModelLoaded(metrics.ModelInfo{Name: "fashion-se", Engine: "onnxruntime", SEBlocks: 3})
	m.ObserveBatch(6, 8, 4*time.Millisecond)
	m.ObserveFrame("cam1", 35*time.Millisecond)
	cam1.Processed()
	connected.Store(true)
	fmt.Print(get(srv.URL + "/readyz"))

	for _, line := range strings.Split(get(srv.URL+"/metrics"), "\n") {
		if strings.HasPrefix(line, "sestream_frames_processed_total") || strings.HasPrefix(line, "sestream_batch_fill_ratio_sum") {
			fmt.Println(line)
		}
	}
	// Output:
	// not ready:
	// model: not loaded yet
	// sources: no stream captured a frame in the last 10s (cam1)
	// nats: not connected
	// not ready:
	// sources: no stream captured a frame in the last 10s (cam1)
	// sestream_batch_fill_ratio_sum 0.75
	// sestream_frames_processed_total{stream="cam1"} 1
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
