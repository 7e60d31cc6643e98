package natspub

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/message"
)

// frameOutcomes records what PublishFrame's done callbacks reported, per frame seq.
type frameOutcomes struct {
	mu    sync.Mutex
	calls map[uint64][]bool
}

func newFrameOutcomes() *frameOutcomes { return &frameOutcomes{calls: map[uint64][]bool{}} }

func (o *frameOutcomes) done(seq uint64) func(bool) {
	return func(published bool) {
		o.mu.Lock()
		o.calls[seq] = append(o.calls[seq], published)
		o.mu.Unlock()
	}
}

// count returns how many frames were reported published and dropped, and fails on a frame reported twice.
func (o *frameOutcomes) count(t *testing.T) (published, dropped int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for seq, c := range o.calls {
		if len(c) != 1 {
			t.Fatalf("frame %d: done called %d times (%v), want once", seq, len(c), c)
		}
		if c[0] {
			published++
		} else {
			dropped++
		}
	}
	return published, dropped
}

func (o *frameOutcomes) outcome(seq uint64) []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[seq]
}

// checkKindIdentity checks that every encoded message of a kind was published or dropped, nothing more.
func checkKindIdentity(t *testing.T, p *Publisher, kinds ...message.Kind) {
	t.Helper()
	st := p.Stats()
	for _, k := range kinds {
		ks := st.Kinds[k]
		if ks.Enqueued != ks.Published+ks.Dropped {
			t.Errorf("%s: enqueued %d != published %d + dropped %d", k, ks.Enqueued, ks.Published, ks.Dropped)
		}
	}
}

// TestPublishFrameOutcomeOutage: frames confirmed before a NATS outage count as published; frames published
// while the server is gone (more than the buffer holds, then unsent at Close) count as dropped, each exactly
// once.
func TestPublishFrameOutcomeOutage(t *testing.T) {
	s := testfixtures.NATSServer(t, &server.Options{})
	p, logs := newTestPublisher(t, Options{URLs: []string{s.ClientURL()}, BufferSize: 16,
		ReconnectWait: 20 * time.Millisecond, MaxReconnectWait: 50 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond})
	out := newFrameOutcomes()
	ctx := context.Background()
	const before, during = 20, 100
	for seq := uint64(1); seq <= before; seq++ {
		if err := p.PublishFrame(ctx, natsTestResult("cam1", seq), natsTestAttention("cam1", seq, 2), out.done(seq)); err != nil {
			t.Fatal(err)
		}
	}
	natsWaitFor(t, 10*time.Second, "the frames before the outage confirmed", func() bool {
		n, _ := out.count(t)
		return n == before
	})
	s.Shutdown()
	s.WaitForShutdown()
	natsWaitFor(t, 10*time.Second, "the publisher to see the outage", func() bool { return !p.Stats().Connected })
	for seq := uint64(before + 1); seq <= before+during; seq++ {
		if err := p.PublishFrame(ctx, natsTestResult("cam1", seq), natsTestAttention("cam1", seq, 2), out.done(seq)); err != nil {
			t.Fatal(err)
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := p.Close(closeCtx); err == nil || !strings.Contains(err.Error(), "unsent") {
		t.Errorf("Close during the outage: %v, want an error about unsent messages", err)
	}
	published, dropped := out.count(t)
	if published != before || dropped != during || published+dropped != before+during {
		t.Fatalf("frames published %d, dropped %d; want %d and %d", published, dropped, before, during)
	}
	st := p.Stats()
	for _, k := range []message.Kind{message.KindResult, message.KindAttention} {
		if ks := st.Kinds[k]; ks.Published != before || ks.Dropped != during {
			t.Errorf("%s: %+v, want %d published and %d dropped", k, ks, before, during)
		}
	}
	checkKindIdentity(t, p, message.KindResult, message.KindAttention)
	if !strings.Contains(logs.String(), "buffer full while disconnected") {
		t.Errorf("log does not report the buffer overflow:\n%s", logs)
	}
}

// TestPublishFrameOutcomeRefused: a server whose max_payload is smaller than some attention messages makes
// those frames dropped (their result was confirmed, but a frame counts as published only when both are).
func TestPublishFrameOutcomeRefused(t *testing.T) {
	s := testfixtures.NATSServer(t, &server.Options{MaxPayload: 4096})
	p, logs := newTestPublisher(t, Options{URLs: []string{s.ClientURL()}})
	out := newFrameOutcomes()
	ctx := context.Background()
	const frames = 50
	for seq := uint64(1); seq <= frames; seq++ {
		blocks := 1
		if seq%2 == 0 {
			blocks = 40 // about 14 kB of JSON: more than the server takes
		}
		if err := p.PublishFrame(ctx, natsTestResult("cam1", seq), natsTestAttention("cam1", seq, blocks), out.done(seq)); err != nil {
			t.Fatal(err)
		}
	}
	closePublisher(t, p, 10*time.Second)
	published, dropped := out.count(t)
	if published != frames/2 || dropped != frames/2 {
		t.Fatalf("frames published %d, dropped %d; want %d each", published, dropped, frames/2)
	}
	for seq := uint64(1); seq <= frames; seq++ {
		if got, want := out.outcome(seq), seq%2 == 1; len(got) != 1 || got[0] != want {
			t.Errorf("frame %d: outcome %v, want [%v]", seq, got, want)
		}
	}
	st := p.Stats()
	if r, a := st.Kinds[message.KindResult], st.Kinds[message.KindAttention]; r.Published != frames || r.Dropped != 0 ||
		a.Published != frames/2 || a.Dropped != frames/2 {
		t.Errorf("results %+v, attention %+v; want %d results published, %d attention published and dropped", r, a, frames, frames/2)
	}
	checkKindIdentity(t, p, message.KindResult, message.KindAttention)
	if !strings.Contains(logs.String(), "message cannot be published") {
		t.Errorf("log does not name the refused messages:\n%s", logs)
	}
}

// TestPublishFrameOutcomeErrors: when PublishFrame fails before anything is queued, done still runs once,
// with false.
func TestPublishFrameOutcomeErrors(t *testing.T) {
	p, _ := newTestPublisher(t, Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0"}})
	out := newFrameOutcomes()
	ctx := context.Background()
	if err := p.PublishFrame(ctx, natsTestResult("bad.name", 1), natsTestAttention("bad.name", 1, 1), out.done(1)); err == nil {
		t.Error("PublishFrame with a bad stream name: no error")
	}
	closePublisher(t, p, 5*time.Second)
	if err := p.PublishFrame(ctx, natsTestResult("cam1", 2), natsTestAttention("cam1", 2, 1), out.done(2)); !errors.Is(err, ErrPublisherClosed) {
		t.Errorf("PublishFrame after Close: %v, want ErrPublisherClosed", err)
	}
	if published, dropped := out.count(t); published != 0 || dropped != 2 {
		t.Fatalf("published %d, dropped %d; want 0 and 2", published, dropped)
	}
	// A nil callback is allowed.
	if err := p.PublishFrame(ctx, natsTestResult("cam1", 3), natsTestAttention("cam1", 3, 1), nil); !errors.Is(err, ErrPublisherClosed) {
		t.Errorf("PublishFrame after Close without a callback: %v", err)
	}
}
