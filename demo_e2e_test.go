package sestream

import (
	"context"
	"encoding/csv"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/message"
)

// readCSV reads every row of a CSV file, header included.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// truth reads samples/fashion.truth.csv: the label index of every frame (0-based decode order).
func truth(t *testing.T) []int {
	t.Helper()
	rows := readCSV(t, "samples/fashion.truth.csv")
	var labels []int
	for _, r := range rows[1:] {
		first, _ := strconv.Atoi(r[0])
		last, _ := strconv.Atoi(r[1])
		label, _ := strconv.Atoi(r[2])
		if first != len(labels) {
			t.Fatalf("truth rows are not contiguous at frame %d", first)
		}
		for i := first; i <= last; i++ {
			labels = append(labels, label)
		}
	}
	return labels
}

// demoConfig is the deployment shape of the end-to-end tests: the bundled model, batches of up to 8,
// two workers, a real NATS server.
func demoConfig(t *testing.T, natsURL, backend string, stream config.Stream) *config.Config {
	t.Helper()
	cfg := testConfig(t, natsURL, stream)
	cfg.Model.Path = BundledModel
	cfg.Batch.MaxSize = 8
	cfg.Workers = 2
	cfg.Engine.Backend = backend
	cfg.Engine.Threads = 1
	return cfg
}

// runFile runs the sample video as a file through the pipeline and returns the top-1 class of every frame,
// as received by a NATS subscriber.
func runFile(t *testing.T, backend string, frames int) []int {
	t.Helper()
	srv := startNATS(t)
	c, nc := collect(t, srv.ClientURL())
	p, err := New(demoConfig(t, srv.ClientURL(), backend, config.Stream{Name: "sample", URL: BundledSample}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.results["sample"]) >= frames && len(c.attn["sample"]) >= frames
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	c.mu.Lock()
	defer c.mu.Unlock()
	rs, as := c.results["sample"], c.attn["sample"]
	if len(rs) != frames || len(as) != frames {
		t.Fatalf("%s: %d results and %d attention messages for %d frames", backend, len(rs), len(as), frames)
	}
	top := make([]int, frames)
	seen := make([]bool, frames)
	for i, r := range rs {
		f := int(r.Seq) - 1
		if f < 0 || f >= frames || seen[f] {
			t.Fatalf("%s: result seq %d duplicated or out of range", backend, r.Seq)
		}
		seen[f] = true
		if as[i].Seq != r.Seq || len(as[i].Blocks) != len(p.Model().Blocks) {
			t.Fatalf("%s: attention message %d has seq %d and %d blocks", backend, i, as[i].Seq, len(as[i].Blocks))
		}
		top[f] = r.Top[0].Index
	}
	return top
}

func accuracy(top, truth []int) (int, float64) {
	correct := 0
	for i := range top {
		if top[i] == truth[i] {
			correct++
		}
	}
	return correct, float64(correct) / float64(len(top))
}

// TestSampleVideoEndToEnd runs the bundled sample video as a file through batching (8) and two workers to a
// real NATS server with both engines: every frame has exactly one result and one attention message, the
// top-1 accuracy against the ground truth is at least 90%, and both engines agree on every frame.
func TestSampleVideoEndToEnd(t *testing.T) {
	labels := truth(t)
	ort := runFile(t, "onnxruntime", len(labels))
	correct, acc := accuracy(ort, labels)
	t.Logf("file, ONNX Runtime: top-1 %d/%d = %.4f", correct, len(labels), acc)
	if acc < 0.9 {
		t.Errorf("top-1 accuracy %.4f below 0.90", acc)
	}
	cv := runFile(t, "opencv", len(labels))
	for i := range ort {
		if ort[i] != cv[i] {
			t.Errorf("frame %d: ONNX Runtime says %d, OpenCV DNN says %d", i, ort[i], cv[i])
		}
	}
	correct, acc = accuracy(cv, labels)
	t.Logf("file, OpenCV DNN: top-1 %d/%d = %.4f", correct, len(labels), acc)
}

// TestSampleVideoRTSP serves the sample video from a real RTSP server (it plays once, in real time: about 42 s)
// and reads it live. Frames lost on the way are counted, not guessed: the frame a result belongs to comes
// from its presentation time, and the accuracy is over the frames that arrived.
func TestSampleVideoRTSP(t *testing.T) {
	if testing.Short() {
		t.Skip("plays the sample video in real time")
	}
	testfixtures.NeedRTSPServer(t)
	labels := truth(t)
	rtsp := &testfixtures.RTSPServer{T: t, File: BundledSample, Port: testfixtures.FreePort(t)}
	rtsp.Start()
	defer rtsp.Stop()
	srv := startNATS(t)
	c, nc := collect(t, srv.ClientURL())
	p, err := New(demoConfig(t, srv.ClientURL(), "onnxruntime", config.Stream{Name: "cam", URL: rtsp.URL()}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The server plays the file once: wait for the end of the stream, seen as the source losing it.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		c.mu.Lock()
		var ended bool
		for _, e := range c.events {
			ended = ended || (e.Stream == "cam" && (e.Kind == message.EventLost || e.Kind == message.EventEnded))
		}
		c.mu.Unlock()
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the RTSP stream did not end within 3 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	st := p.Stats()[0]
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return uint64(len(c.results["cam"])) == st.Published
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.results["cam"]
	if st.Captured != st.Processed+st.Dropped+st.Failed {
		t.Fatalf("counters do not add up: %+v", st)
	}
	lost := len(labels) - int(st.Captured)
	if lost == 0 {
		// Every frame of the file arrived, in order: result seq n is frame n-1, exactly. Frames the queue
		// dropped (drop_oldest, the live default) have no result and are counted.
		if uint64(len(rs)) != st.Captured-st.Dropped-st.Failed {
			t.Fatalf("%d results for %d captured, %d dropped, %d failed frames", len(rs), st.Captured, st.Dropped, st.Failed)
		}
		correct := 0
		for _, r := range rs {
			if r.Top[0].Index == labels[r.Seq-1] {
				correct++
			}
		}
		acc := float64(correct) / float64(len(rs))
		t.Logf("RTSP: all %d frames arrived, %d dropped by the queue, %d published; top-1 %d/%d = %.4f",
			len(labels), st.Dropped, st.Published, correct, len(rs), acc)
		if acc < 0.9 {
			t.Errorf("RTSP top-1 accuracy %.4f below 0.90", acc)
		}
		return
	}
	// Frames were lost on the way: place each result on the video's timeline by its presentation time.
	// OpenCV's RTSP timestamps can lag by one frame period, so this placement is approximate and the figure
	// is reported, with the count of lost frames, rather than held to the file's threshold.
	correct, matched := 0, 0
	seen := map[int]bool{}
	for _, r := range rs {
		if r.PTSMillis == nil {
			continue
		}
		f := int(math.Round(*r.PTSMillis * 12 / 1000))
		if f < 0 || f >= len(labels) || seen[f] {
			continue
		}
		seen[f] = true
		matched++
		if r.Top[0].Index == labels[f] {
			correct++
		}
	}
	t.Logf("RTSP: %d of %d frames arrived (%d lost on the way), %d dropped by the queue, %d published; %d placed by PTS, top-1 %d/%d = %.4f",
		st.Captured, len(labels), lost, st.Dropped, st.Published, matched, correct, matched, float64(correct)/float64(max(matched, 1)))
	if matched < len(labels)/2 {
		t.Fatalf("only %d results could be placed on the video's timeline", matched)
	}
	if acc := float64(correct) / float64(matched); acc < 0.8 {
		t.Errorf("RTSP top-1 accuracy %.4f (placed by PTS) below 0.80", acc)
	}
}
