package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/message"
)

func testHub(t *testing.T, o Options) (*Hub, *httptest.Server) {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := New(o)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return h, srv
}

// attention returns an attention message of stream with one block of c channels (gate vector included).
func attention(stream string, seq uint64, c int) []byte {
	vec := make([]string, c)
	for i := range vec {
		vec[i] = fmt.Sprintf("%.4f", 0.5+0.4*float64((int(seq)+i)%10)/10)
	}
	return fmt.Appendf(nil, `{"schema":"sestream.attention/v1","stream":%q,"seq":%d,"captured":"2026-12-02T10:00:00Z","blocks":[{"name":"b0","order":0,"channels":%d,"mean":0.5,"std":0.1,"top":[[0,0.9]],"vector":[%s]}]}`,
		stream, seq, c, strings.Join(vec, ","))
}

func result(stream string, seq uint64) []byte {
	return fmt.Appendf(nil, `{"schema":"sestream.result/v1","stream":%q,"seq":%d,"top":[{"index":3,"label":"Dress","score":0.9}],"timings_ms":{"total":12.5}}`, stream, seq)
}

// sseReader reads update events from an event stream.
type sseReader struct{ r *bufio.Reader }

func (s sseReader) next(t *testing.T) update {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var u update
			if err := json.Unmarshal([]byte(data), &u); err != nil {
				t.Fatalf("update %q: %v", data, err)
			}
			return u
		}
	}
}

func openEvents(t *testing.T, url string) (sseReader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return sseReader{bufio.NewReader(resp.Body)}, func() { cancel(); resp.Body.Close() }
}

func TestSnapshotThenUpdates(t *testing.T) {
	h, srv := testHub(t, Options{Tick: 20 * time.Millisecond, ColumnInterval: time.Nanosecond, ResultInterval: time.Nanosecond, History: 5, Source: "test"})
	p := message.DefaultPrefix
	for seq := uint64(1); seq <= 8; seq++ {
		h.Message(message.Subject(p, "cam1", message.KindAttention), nil, attention("cam1", seq, 16))
	}
	h.Message(message.Subject(p, "cam1", message.KindResult), nil, result("cam1", 8))
	h.Message(message.Subject(p, "cam1", message.KindEvent), nil, []byte(`{"schema":"sestream.event/v1","stream":"cam1","kind":"drift_on","details":{"block":"b0","frame":7}}`))
	h.Message(message.StatusSubject(p), nil, []byte(`{"schema":"sestream.status/v1","version":"v1","streams":[{"name":"cam1","fps_in":25,"state":"running"}],"nats":{"connected":true}}`))
	h.Message("other.cam1.result", nil, result("cam1", 9)) // not under the prefix: ignored
	time.Sleep(50 * time.Millisecond)                      // let the hub goroutine apply them

	ev, stop := openEvents(t, srv.URL)
	defer stop()
	u := ev.next(t)
	if !u.Snapshot || u.Source != "test" || u.History != 5 || len(u.Streams) != 1 {
		t.Fatalf("snapshot %+v", u)
	}
	s := u.Streams[0]
	if s.Name != "cam1" || len(s.Columns) != 5 || s.Columns[0].Seq != 4 || s.Columns[4].Seq != 8 {
		t.Fatalf("snapshot columns: want the last 5 frames 4..8, got %+v", s.Columns)
	}
	if !strings.Contains(string(s.Result), `"seq":8`) || len(s.Events) != 1 || !strings.Contains(string(s.Status), `"fps_in":25`) {
		t.Fatalf("snapshot stream: %+v", s)
	}
	if !strings.Contains(string(u.Process), `"version":"v1"`) || strings.Contains(string(u.Process), "streams") {
		t.Fatalf("process %s", u.Process)
	}
	var blk struct {
		Vector []float64 `json:"vector"`
	}
	if err := json.Unmarshal(s.Columns[4].Blocks[0], &blk); err != nil || len(blk.Vector) != 16 {
		t.Fatalf("block of the last column: %s (%v)", s.Columns[4].Blocks[0], err)
	}

	// An update carries only what changed: one new column, a new frame.
	h.Message(message.Subject(p, "cam1", message.KindAttention), nil, attention("cam1", 9, 16))
	h.Frame("cam1", 9, []byte("jpeg"))
	// A tick may fall between the two calls: then the column and the frame come in two updates.
	var cols []uint64
	for frame := uint64(0); frame != 9; {
		if u = ev.next(t); u.Snapshot || len(u.Streams) != 1 || u.Streams[0].Result != nil || len(cols) > 1 {
			t.Fatalf("update %+v (columns so far %v)", u, cols)
		}
		for _, c := range u.Streams[0].Columns {
			cols = append(cols, c.Seq)
		}
		frame = u.Streams[0].Frame
	}
	if len(cols) != 1 || cols[0] != 9 {
		t.Fatalf("updates carried columns %v, want only the new frame 9", cols)
	}
}

// TestJoinBetweenTicks: a client that connects between two pushes gets the pending changes in its snapshot,
// and not again in the next update.
func TestJoinBetweenTicks(t *testing.T) {
	h, srv := testHub(t, Options{Tick: 300 * time.Millisecond, ColumnInterval: time.Nanosecond})
	subj := message.Subject("sestream", "cam1", message.KindAttention)
	for seq := uint64(1); seq <= 3; seq++ {
		h.Message(subj, nil, attention("cam1", seq, 4))
	}
	time.Sleep(20 * time.Millisecond) // applied, not yet pushed
	ev, stop := openEvents(t, srv.URL)
	defer stop()
	if u := ev.next(t); !u.Snapshot || len(u.Streams) != 1 || len(u.Streams[0].Columns) != 3 {
		t.Fatalf("snapshot %+v", u)
	}
	h.Message(subj, nil, attention("cam1", 4, 4))
	u := ev.next(t)
	if len(u.Streams) != 1 || len(u.Streams[0].Columns) != 1 || u.Streams[0].Columns[0].Seq != 4 {
		t.Fatalf("update after the snapshot: %+v, want only column 4", u.Streams)
	}
}

func TestSamplingSkipsBeforeDecoding(t *testing.T) {
	h, srv := testHub(t, Options{Tick: 10 * time.Millisecond, ColumnInterval: time.Hour, ResultInterval: time.Hour})
	for seq := uint64(1); seq <= 100; seq++ {
		h.Message(message.Subject("sestream", "a", message.KindAttention), nil, attention("a", seq, 8))
		h.Message(message.Subject("sestream", "a", message.KindResult), nil, []byte("not even JSON"))
	}
	time.Sleep(50 * time.Millisecond)
	ev, stop := openEvents(t, srv.URL)
	defer stop()
	u := ev.next(t)
	if len(u.Streams) != 1 || len(u.Streams[0].Columns) != 1 || u.Streams[0].Columns[0].Seq != 1 || u.Streams[0].Result != nil {
		t.Fatalf("want only the first attention message kept (one per hour), got %+v", u.Streams)
	}
	if h.Stats().Lost != 0 {
		t.Errorf("lost %d", h.Stats().Lost)
	}
}

func TestFrameEndpoint(t *testing.T) {
	h, srv := testHub(t, Options{})
	h.Message(message.FrameSubject("sestream", "cam1"), nats.Header{message.HeaderSeq: []string{"42"}}, []byte("\xff\xd8jpeg"))
	resp, err := http.Get(srv.URL + "/frame/cam1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("X-Frame-Seq") != "42" || string(b) != "\xff\xd8jpeg" {
		t.Fatalf("GET /frame/cam1: %s %v %q", resp.Status, resp.Header, b)
	}
	resp, err = http.Get(srv.URL + "/frame/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /frame/nope: %s", resp.Status)
	}
}

func TestPageIsServed(t *testing.T) {
	_, srv := testHub(t, Options{})
	for path, want := range map[string]string{"/": "<canvas", "/static/app.js": "EventSource", "/static/style.css": ".heatmap"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/" {
			want = "static/app.js"
		}
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %s, body does not contain %q", path, resp.Status, want)
		}
	}
}

func TestManyClientsAndLimit(t *testing.T) {
	h, srv := testHub(t, Options{Tick: 10 * time.Millisecond, MaxClients: 6, ColumnInterval: time.Nanosecond})
	var readers []sseReader
	for i := 0; i < 6; i++ {
		ev, stop := openEvents(t, srv.URL)
		defer stop()
		ev.next(t) // snapshot
		readers = append(readers, ev)
	}
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("7th client: %s, want 503", resp.Status)
	}
	h.Message(message.Subject("sestream", "x", message.KindAttention), nil, attention("x", 1, 4))
	for i, ev := range readers {
		if u := ev.next(t); len(u.Streams) != 1 || u.Streams[0].Name != "x" {
			t.Fatalf("client %d: %+v", i, u)
		}
	}
	if n := h.Clients(); n != 6 {
		t.Fatalf("Clients() = %d, want 6", n)
	}
}

// TestStuckClientIsDisconnected: a client that sends its request and never reads fills its socket buffers and
// its queue; the hub goes on taking messages at once, drops that client's oldest updates, and disconnects it
// after ClientTimeout, while another client keeps receiving.
func TestStuckClientIsDisconnected(t *testing.T) {
	h, srv := testHub(t, Options{Tick: 5 * time.Millisecond, ColumnInterval: time.Nanosecond, ClientTimeout: 500 * time.Millisecond,
		SendBuffer: 8 << 10, ClientQueue: 4})
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	good, stop := openEvents(t, srv.URL)
	defer stop()
	good.next(t)
	go func() { // the good client reads everything
		for {
			if _, err := good.r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	for deadline := time.Now().Add(2 * time.Second); h.Clients() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("clients %d, want 2", h.Clients())
		}
	}
	start := time.Now()
	var slowest time.Duration
	seq := uint64(0)
	for time.Since(start) < 10*time.Second && h.Clients() > 1 {
		seq++
		t0 := time.Now()
		h.Message(message.Subject("sestream", "cam1", message.KindAttention), nil, attention("cam1", seq, 256))
		slowest = max(slowest, time.Since(t0))
		time.Sleep(200 * time.Microsecond)
	}
	gone := time.Since(start)
	if h.Clients() != 1 {
		t.Fatalf("the stuck client is still connected after %v (%d messages)", gone, seq)
	}
	if h.Stats().Disconnected != 1 {
		t.Errorf("Disconnected = %d, want 1", h.Stats().Disconnected)
	}
	t.Logf("stuck client disconnected after %v and %d messages; slowest Message call %v", gone, seq, slowest)
	if slowest > 250*time.Millisecond { // scheduling noise is tens of ms; blocking on the client would be 500 ms

		t.Errorf("a Message call took %v while a client was stuck", slowest)
	}
	// the server reset the stuck connection (discarding what its socket held)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the stuck connection was not closed: %v", err)
	}
}

func BenchmarkMessageSampledOut(b *testing.B) {
	h := New(Options{Log: slog.New(slog.DiscardHandler), ColumnInterval: time.Hour})
	defer h.Close()
	data := attention("cam1", 1, 64)
	subj := message.Subject("sestream", "cam1", message.KindAttention)
	h.Message(subj, nil, data)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Message(subj, nil, data)
	}
}
