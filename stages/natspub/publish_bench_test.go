package natspub

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkPublishFrame publishes one frame's result and attention (16 SE blocks) per
// iteration through the embedded server, with one subscriber reading everything. ns/op includes
// waiting, at the end, for every message to be confirmed (flushed, or acknowledged by JetStream);
// caller-us/frame is the time the pipeline's goroutine spends in the two Publish calls (mostly
// waiting for buffer room, since the loop publishes as fast as it can); cpu-us/frame is the CPU
// time of the whole process (encoding, client, embedded server, subscriber) per frame, which
// leaves out the time other processes held the CPU on a busy machine.
func BenchmarkPublishFrame(b *testing.B) {
	for _, mode := range []string{"core", "jetstream"} {
		b.Run(mode, func(b *testing.B) {
			log, _ := natsTestLogger()
			o := Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0", StoreDir: b.TempDir()}, Logger: log, BufferSize: 4096}
			if mode == "jetstream" {
				o.JetStream = JetStreamOptions{Enabled: true, Create: true}
			}
			p, err := New(context.Background(), o)
			if err != nil {
				b.Fatal(err)
			}
			sub, err := nats.Connect(p.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			var received atomic.Int64
			s, _ := sub.Subscribe("sestream.>", func(*nats.Msg) { received.Add(1) })
			s.SetPendingLimits(-1, -1)
			sub.Flush()

			res, att := natsTestResult("cam1", 1), natsTestAttention("cam1", 1, 16)
			rb, _ := json.Marshal(res)
			ab, _ := json.Marshal(att)
			ctx := context.Background()
			var caller time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := natsProcessCPU(b)
			for i := range b.N {
				seq := uint64(i + 1)
				res.Seq, att.Seq = seq, seq
				t0 := time.Now()
				if err := p.PublishResult(ctx, res); err != nil {
					b.Fatal(err)
				}
				if err := p.PublishAttention(ctx, att); err != nil {
					b.Fatal(err)
				}
				caller += time.Since(t0)
			}
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.Close(cctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu := natsProcessCPU(b) - cpu0
			if st := p.Stats().Total(); st.Published != uint64(2*b.N) {
				b.Fatalf("published %d of %d", st.Published, 2*b.N)
			}
			b.ReportMetric(float64(len(rb)+len(ab)), "bytes/frame")
			b.ReportMetric(float64(caller.Microseconds())/float64(b.N), "caller-us/frame")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/frame")
		})
	}
}

// natsProcessCPU returns the user + system CPU time the process has used.
func natsProcessCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
