package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sestream/sestream/message"
)

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readTab reads the event stream like a dashboard tab: it decodes every update and fetches each announced
// thumbnail.
func readTab(ctx context.Context, base string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
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
			return
		}
		for _, s := range u.Streams {
			if s.Frame != 0 {
				if fr, err := http.Get(base + "/frame/" + s.Name); err == nil {
					io.Copy(io.Discard, fr.Body)
					fr.Body.Close()
				}
			}
		}
	}
}

// BenchmarkHubSecond: one op is one second of a 4-stream pipeline at 1500 frames/s in all (two messages per
// frame, gate vectors of 16+32+64 channels, a thumbnail per stream every 500 ms) going through the hub, with
// 0 or 4 tabs reading the event stream and fetching the thumbnails. cpu-ms/s is the CPU the process spent
// per second of traffic (the hub, the HTTP server, and also the tabs' reading and decoding and the loop that
// sends, so it is an upper bound): compare it with
// the pipeline's 2000 CPU-ms/s on 2 cores.
func BenchmarkHubSecond(b *testing.B) {
	for _, tabs := range []int{0, 4} {
		b.Run(fmt.Sprintf("tabs=%d", tabs), func(b *testing.B) {
			h := New(Options{Log: slog.New(slog.DiscardHandler)})
			srv := httptest.NewServer(h)
			defer srv.Close()
			defer h.Close()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i := 0; i < tabs; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); readTab(ctx, srv.URL) }()
			}
			streams := []string{"s1", "s2", "s3", "s4"}
			att, res := map[string][]byte{}, map[string][]byte{}
			for _, s := range streams {
				a := attention(s, 1, 16)
				// three blocks of 16, 32 and 64 channels, like the bundled model
				a = []byte(strings.Replace(string(a), `]}]}`, `]},`+blockJSON(1, 32)+`,`+blockJSON(2, 64)+`]}`, 1))
				att[s], res[s] = a, result(s, 1)
			}
			jpeg := make([]byte, 10<<10)
			time.Sleep(200 * time.Millisecond)
			b.ResetTimer()
			c0, t0 := cpuTime(), time.Now()
			for op := 0; op < b.N; op++ {
				start := time.Now()
				for slot := 0; slot < 100; slot++ { // 10 ms slots, 15 frames each (1500/s)
					for f := 0; f < 15; f++ {
						s := streams[f%4]
						h.Message(message.Subject("sestream", s, message.KindResult), nil, res[s])
						h.Message(message.Subject("sestream", s, message.KindAttention), nil, att[s])
					}
					if slot%50 == 0 {
						for _, s := range streams {
							h.Frame(s, uint64(op*2+slot/50+1), jpeg)
						}
					}
					time.Sleep(time.Until(start.Add(time.Duration(slot+1) * 10 * time.Millisecond)))
				}
			}
			elapsed := time.Since(t0).Seconds()
			b.ReportMetric(float64((cpuTime()-c0).Milliseconds())/elapsed, "cpu-ms/s")
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

func blockJSON(order, c int) string {
	vec := make([]string, c)
	for i := range vec {
		vec[i] = fmt.Sprintf("%.7f", 0.5+0.01*float64(i%10))
	}
	return fmt.Sprintf(`{"name":"b%d","order":%d,"channels":%d,"mean":0.5,"std":0.1,"min":0.4,"max":0.6,"entropy":0.99,"effective_channels":%d,"top":[[0,0.6],[1,0.59],[2,0.58],[3,0.57],[4,0.56]],"saturated":0,"suppressed":0,"drift":0.01,"vector":[%s]}`,
		order, order, c, c, strings.Join(vec, ","))
}
