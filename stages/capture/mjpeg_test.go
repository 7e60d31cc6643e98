package capture

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/matcheck"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/source"
	"go.uber.org/goleak"
	"gocv.io/x/gocv"
)

// mjpegHandler serves numbered JPEG frames as multipart/x-mixed-replace, the way IP
// cameras serve MJPEG over HTTP, at 25 frames per second until the client goes away.
func mjpegHandler(t *testing.T, frames int) http.Handler {
	var jpegs [][]byte
	for i := 0; i < frames; i++ {
		v := float64(16 + 3*i)
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(v, v, v, 0), clipH, clipW, gocv.MatTypeCV8UC3)
		buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		jpegs = append(jpegs, append([]byte(nil), buf.GetBytes()...))
		buf.Close()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary=frame")
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			j := jpegs[i%len(jpegs)]
			if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(j)); err != nil {
				return
			}
			if _, err := w.Write(append(j, '\r', '\n')); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	})
}

func TestCaptureHTTPMJPEG(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	matcheck.Check(t)
	srv := httptest.NewServer(mjpegHandler(t, 20))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := pipeline.NewQueue[Frame]("mjpeg", 8, pipeline.Block, DiscardFrame)
	ev := &collected{}
	errc := make(chan error, 1)
	go func() {
		errc <- RunSource(ctx, source.Options{Name: "mjpeg", URL: srv.URL + "/video.mjpg", StallTimeout: 5 * time.Second}, q, ev.event)
	}()
	var got []int
	for f := range q.C() {
		if f.Info.Width != clipW || f.Info.Height != clipH {
			t.Errorf("frame %+v", f.Info)
		}
		got = append(got, frameIndex(f.Mat))
		DiscardFrame(f)
		if len(got) == 25 {
			cancel()
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := append(seqIndices(20), seqIndices(5)...)
	if len(got) < 25 || !slices.Equal(got[:25], want) {
		t.Fatalf("MJPEG frames %v, want %v", got, want)
	}
	if k := ev.kinds(); !slices.Equal(k, []message.EventKind{message.EventConnected}) {
		t.Fatalf("events %v", k)
	}
}
