package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sestream/sestream"
)

// fourStreams writes a config of n looped file streams of the sample video, read as fast as the pipeline
// takes them (the throughput benchmark of docs/BENCHMARKS.md), and returns its path.
func fourStreams(t *testing.T, n int, extra string) string {
	t.Helper()
	sample, err := sestream.FindBundled(sestream.BundledSample)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("streams:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {name: s%d, url: %q, loop: true}\n", i, sample)
	}
	b.WriteString("batch: {max_size: 8, max_delay: 10ms}\nstatus: {interval: 1s}\nlog: {level: warn}\n" + extra)
	path := filepath.Join(t.TempDir(), "streams.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// processed returns the frames the pipeline served at base has processed, over all streams, from /metrics.
func processed(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "sestream_frames_processed_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

// throughput measures frames per second processed over d.
func throughput(t *testing.T, base string, d time.Duration) float64 {
	t.Helper()
	p0, t0 := processed(t, base), time.Now()
	time.Sleep(d)
	return (processed(t, base) - p0) / time.Since(t0).Seconds()
}

// rssMB is the resident set of this process (which runs the pipeline), in MiB.
func rssMB(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status: cannot measure RSS here")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// stuckClient opens the event stream with a 4 KiB receive buffer and never reads it.
func stuckClient(t *testing.T, base string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	return conn.(*net.TCPConn)
}

// peerClosed reports whether the server closed conn, without reading from it (TCP state CLOSE_WAIT).
func peerClosed(conn *net.TCPConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			closed = info.State == unix.BPF_TCP_CLOSE_WAIT || info.State == unix.BPF_TCP_CLOSE
		}
	})
	return closed
}

// TestDashboardSlowClient: on a 4-stream pipeline, a client that opens the event stream and never reads does
// not change the throughput or grow the process's memory beyond a bound, and is disconnected after the
// client timeout.
func TestDashboardSlowClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 4-stream pipeline for about 40 s")
	}
	base, _ := startRun(t, "--config", fourStreams(t, 4, ""))
	time.Sleep(3 * time.Second) // warm up
	before := throughput(t, base, 5*time.Second)
	rss0 := rssMB(t)
	conn := stuckClient(t, base)
	start := time.Now()
	var during []float64
	rssMax := rss0
	var gone time.Duration
	for time.Since(start) < 45*time.Second {
		during = append(during, throughput(t, base, 3*time.Second))
		rssMax = max(rssMax, rssMB(t))
		if peerClosed(conn) {
			gone = time.Since(start)
			break
		}
	}
	after := throughput(t, base, 5*time.Second)
	rssMax = max(rssMax, rssMB(t))
	t.Logf("throughput: %.0f frames/s before, %.0f during (3 s windows: %.0f), %.0f after; RSS %.0f MiB before, at most %.0f MiB with the stuck client",
		before, mean(during), during, after, rss0, rssMax)
	if gone == 0 {
		t.Fatalf("the stuck client was not disconnected within 45 s")
	}
	t.Logf("stuck client disconnected %.1f s after it connected (client timeout %v)", gone.Seconds(), 10*time.Second)
	if gone < 10*time.Second {
		t.Errorf("the stuck client was disconnected after %v, before the 10 s client timeout", gone)
	}
	// The machine is shared: allow for noise, but a client that held the pipeline back would show at once.
	if ref := (before + after) / 2; mean(during) < 0.8*ref {
		t.Errorf("throughput with a stuck client %.0f frames/s, without %.0f: more than 20%% lower", mean(during), ref)
	}
	if rssMax-rss0 > 64 {
		t.Errorf("RSS grew by %.0f MiB with a stuck client (bound 64 MiB)", rssMax-rss0)
	}
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// tab behaves like one open dashboard tab: it reads the event stream, decodes every update, and fetches each
// stream's thumbnail when a new one is announced. It stops when ctx is done.
func tab(ctx context.Context, t *testing.T, base string, updates *int64, mu *sync.Mutex) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var u update
		if json.Unmarshal([]byte(data), &u) != nil {
			t.Errorf("bad update %.100q", data)
			return
		}
		mu.Lock()
		*updates++
		mu.Unlock()
		for _, s := range u.Streams {
			if s.Frame != 0 {
				if fr, err := http.Get(base + "frame/" + s.Name); err == nil {
					io.Copy(io.Discard, fr.Body)
					fr.Body.Close()
				}
			}
		}
	}
}

// update is the part of an event-stream update a tab looks at.
type update struct {
	Streams []struct {
		Name    string            `json:"name"`
		Frame   uint64            `json:"frame"`
		Columns []json.RawMessage `json:"columns"`
	} `json:"streams"`
}

// TestDashboardCost measures the throughput of a 4-stream pipeline with no dashboard tab and with 4 tabs
// (alternating windows), and with the dashboard off. It takes about two minutes and is run on demand:
//
//	SESTREAM_DASHBOARD_COST=1 go test -run TestDashboardCost -v ./cmd/sestream/
func TestDashboardCost(t *testing.T) {
	if os.Getenv("SESTREAM_DASHBOARD_COST") == "" {
		t.Skip("a measurement (about 2 minutes): set SESTREAM_DASHBOARD_COST=1 to run it")
	}
	window := 10 * time.Second
	measure := func(extra string, tabs bool) (none, with []float64) {
		base, _ := startRun(t, "--config", fourStreams(t, 4, extra))
		time.Sleep(5 * time.Second)
		for round := 0; round < 3; round++ {
			none = append(none, throughput(t, base, window))
			if !tabs {
				continue
			}
			ctx, cancel := context.WithCancel(context.Background())
			var mu sync.Mutex
			var updates int64
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); tab(ctx, t, base, &updates, &mu) }()
			}
			time.Sleep(time.Second)
			with = append(with, throughput(t, base, window))
			cancel()
			wg.Wait()
			if updates == 0 {
				t.Errorf("the 4 tabs received no update")
			}
			t.Logf("round %d: %.0f frames/s without tabs, %.0f with 4 tabs (%d updates received)", round+1, none[round], with[round], updates)
		}
		return none, with
	}
	none, with := measure("", true)
	off, _ := measure("http: {dashboard: false}\n", false)
	ratio := median(with) / median(none)
	t.Logf("4 streams, frames/s (median of 3 windows of %v): dashboard off %.0f %v; on, no tabs %.0f %v; on, 4 tabs %.0f %v; 4 tabs / no tabs = %.3f",
		window, median(off), off, median(none), none, median(with), with, ratio)
	if ratio < 0.97 {
		t.Errorf("4 tabs cost %.1f%% of throughput (target: within 3%%)", 100*(1-ratio))
	}
}
