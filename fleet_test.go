package sestream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/fleet"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/stages/natspub"
)

// TestFleetStopAndStartAgain: a one-instance fleet, publishing with JetStream, stops a stream removed from
// the fleet's list only once every frame it captured is published, starts it again when it comes back
// (continuing its frame numbers, so no message id repeats: the JetStream stream holds every result once),
// and releases its leases when closed.
func TestFleetStopAndStartAgain(t *testing.T) {
	srv := startNATS(t, func(o *server.Options) { o.JetStream = true })
	clip := makeVideo(t, 50, "160x120")
	cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "a", URL: clip, Loop: true, Realtime: true},
		config.Stream{Name: "b", URL: clip, Loop: true, Realtime: true})
	cfg.Fleet = config.Fleet{Enabled: true, Name: "one", LeaseTTL: 3 * time.Second, RenewInterval: 200 * time.Millisecond, MaxMoves: 1, Replicas: 1}
	cfg.NATS.JetStream.Enabled, cfg.NATS.JetStream.Create = true, true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, nc := collect(t, srv.ClientURL())
	m := metrics.New(metrics.Options{Version: "test"})
	p, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	count := func(stream string) (int, uint64, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		rs := c.results[stream]
		if len(rs) == 0 {
			return 0, 0, ""
		}
		return len(rs), rs[len(rs)-1].Seq, rs[len(rs)-1].BootID
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s: %s", what)
			}
		}
	}
	wait("results of a and b", func() bool { n, _, _ := count("a"); m, _, _ := count("b"); return n > 5 && m > 5 })

	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, fleet.StreamsBucket(cfg.Fleet.BucketName()))
	if err != nil {
		t.Fatal(err)
	}
	list := func(names ...string) {
		t.Helper()
		data := "["
		for i, n := range names {
			if i > 0 {
				data += ","
			}
			data += `{"name":"` + n + `","url":"` + clip + `","loop":true,"realtime":true}`
		}
		if _, err := kv.Put(ctx, fleet.StreamsKey, []byte(data+"]")); err != nil {
			t.Fatal(err)
		}
	}

	list("b")
	var stopped int
	wait("a stopped", func() bool {
		for _, st := range p.Stats() {
			if st.Stream == "a" && st.InFlight() == 0 && st.QueueDepth == 0 {
				n, _, _ := count("a")
				time.Sleep(600 * time.Millisecond) // a few renew intervals: nothing more comes
				m, _, _ := count("a")
				stopped = m
				return n == m
			}
		}
		return false
	})
	_, lastSeq, boot := count("a")
	for _, st := range p.Stats() {
		if st.Stream == "a" && (st.Captured != st.Processed+st.Dropped+st.Failed || st.Processed != st.Published) {
			t.Errorf("stream a stopped with frames not accounted for: %+v", st)
		}
		if st.Stream == "a" && int(st.Published) != stopped {
			t.Errorf("stream a: %d frames published by the counters, %d results received", st.Published, stopped)
		}
	}

	list("a", "b")
	wait("a started again", func() bool { n, _, _ := count("a"); return n > stopped+3 })
	c.mu.Lock()
	again := c.results["a"][stopped]
	c.mu.Unlock()
	if again.BootID != boot || again.Seq != lastSeq+1 {
		t.Errorf("first frame of a after its restart: boot %s seq %d, want boot %s seq %d", again.BootID, again.Seq, boot, lastSeq+1)
	}

	// The metrics endpoint shows the fleet as of the last renewal round: both streams held, a's release and
	// its second acquisition counted.
	wait("fleet metrics", func() bool {
		f := fleetMetrics(t, m)
		return f["sestream_fleet_streams_held"] == 2 && f["sestream_fleet_members"] == 1 && f["sestream_fleet_streams_desired"] == 2 &&
			f["sestream_fleet_lease_changes_total/acquired"] == 3 && f["sestream_fleet_lease_changes_total/released"] == 1 &&
			f["sestream_fleet_lease_changes_total/lost"] == 0
	})

	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Every result of a, from both of its runs, is in the JetStream stream exactly once, under its own id.
	stream, err := js.Stream(ctx, natspub.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{cfg.NATS.Prefix + ".a.result"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			id := msg.Headers().Get(nats.MsgIdHdr)
			if id == "" || ids[id] {
				t.Errorf("result in the JetStream stream with id %q: missing or repeated", id)
			}
			ids[id] = true
		}
		if n == 0 {
			break
		}
	}
	wait("the subscriber has every result of a", func() bool { n, _, _ := count("a"); return n >= len(ids) })
	t.Logf("%d results of a in the JetStream stream", len(ids))
	if received, _, _ := count("a"); len(ids) != received {
		t.Errorf("JetStream stream holds %d results of a, %d were delivered", len(ids), received)
	}

	leases, err := js.KeyValue(ctx, cfg.Fleet.BucketName())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b"} {
		if e, err := leases.Get(ctx, fleet.LeasePrefix+s); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
			t.Errorf("lease of %s after Close: %v %v, want it released", s, e, err)
		}
	}
}

// fleetMetrics gathers m's sestream_fleet_* series by name (name/label value for the labelled one).
func fleetMetrics(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "sestream_fleet_") {
			continue
		}
		for _, s := range f.GetMetric() {
			name := f.GetName()
			for _, l := range s.GetLabel() {
				name += "/" + l.GetValue()
			}
			switch {
			case s.Gauge != nil:
				out[name] = s.Gauge.GetValue()
			case s.Counter != nil:
				out[name] = s.Counter.GetValue()
			}
		}
	}
	return out
}
