package natspub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/goleak"

	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/message"
)

func compileMessageSchema(t *testing.T, kind message.Kind) *jsonschema.Schema {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "docs", "schemas", kind.String()+".json"))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("schema of %s: %v", kind, err)
	}
	return s
}

// TestNATSEmbeddedPublishesEveryKind runs the embedded server and checks subjects, headers, and
// that every message published validates against its JSON Schema.
func TestNATSEmbeddedPublishesEveryKind(t *testing.T) {
	p, _ := newTestPublisher(t, Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0"}, BootID: "b00t"})
	sub, err := nats.Connect(p.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := newNATSCollector()
	if _, err := sub.Subscribe("sestream.>", got.handle); err != nil {
		t.Fatal(err)
	}
	sub.Flush()

	ctx := context.Background()
	res := natsTestResult("cam1", 7)
	res.Top, res.Outputs = nil, []float32{0.25, -3, 9.5}
	if err := p.PublishResult(ctx, res); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishAttention(ctx, natsTestAttention("cam1", 7, 16)); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishEvent(ctx, &message.Event{Stream: "cam1", Kind: message.EventLost,
		Details: &message.EventDetails{Attempt: 2, Error: "connection refused"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishStatus(ctx, &message.Status{Version: "test", UptimeSeconds: 1.5,
		Streams: []message.StreamStatus{{Name: "cam1", FPSIn: 25, FPSOut: 25, Captured: 10, Processed: 9, State: "running"}}}); err != nil {
		t.Fatal(err)
	}
	natsWaitFor(t, 5*time.Second, "4 messages", func() bool { return got.count() == 4 })

	want := map[string]struct {
		kind message.Kind
		id   string
	}{
		"sestream.cam1.result":    {message.KindResult, "cam1:b00t:7:result"},
		"sestream.cam1.attention": {message.KindAttention, "cam1:b00t:7:attention"},
		"sestream.cam1.event":     {message.KindEvent, "cam1:b00t:event:1"},
		"sestream.status":         {message.KindStatus, "status:b00t:1"},
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, m := range got.msgs {
		w, ok := want[m.Subject]
		if !ok {
			t.Errorf("unexpected subject %q", m.Subject)
			continue
		}
		delete(want, m.Subject)
		if id := m.Header.Get("Nats-Msg-Id"); id != w.id {
			t.Errorf("%s: Nats-Msg-Id %q, want %q", m.Subject, id, w.id)
		}
		kind, v, err := message.Decode(m.Data)
		if err != nil || kind != w.kind {
			t.Errorf("%s: decoded %v, %v", m.Subject, kind, err)
			continue
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if err := compileMessageSchema(t, kind).Validate(doc); err != nil {
			t.Errorf("%s message does not validate against docs/schemas/%s.json: %v\n%s", kind, kind, err, m.Data)
		}
		if st, ok := v.(*message.Status); ok {
			if st.NATS.Mode != "core" || !st.NATS.Connected || !strings.HasPrefix(st.NATS.Server, "embedded nats://127.0.0.1:") {
				t.Errorf("status nats part %+v", st.NATS)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("no message on %v", want)
	}
	s := p.Stats()
	if tot := s.Total(); tot.Enqueued != 4 || tot.Published+uint64(s.Buffered) > 4 || tot.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestNATSEmbeddedPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	log, _ := natsTestLogger()
	_, err = New(context.Background(), Options{Embedded: EmbeddedOptions{Listen: addr}, Logger: log})
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("New on a busy port: %v, want an error naming %s", err, addr)
	}
}

func TestNATSBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"http url", Options{URLs: []string{"http://127.0.0.1:8080"}}, []string{`"http://127.0.0.1:8080"`, `scheme "http" is not a NATS scheme`}},
		{"no scheme", Options{URLs: []string{"127.0.0.1:4222"}}, []string{"127.0.0.1:4222"}},
		{"url password hidden", Options{URLs: []string{"https://bob:hunter2@example.invalid"}}, []string{"bob:xxxxx@"}},
		{"creds file missing", Options{URLs: []string{"nats://127.0.0.1:1"}, CredsFile: filepath.Join(dir, "user.creds")},
			[]string{"nats creds file", "user.creds", "no such file"}},
		{"nkey seed missing", Options{URLs: []string{"nats://127.0.0.1:1"}, NKeySeedFile: filepath.Join(dir, "seed.nk")},
			[]string{"nkey seed file", "seed.nk"}},
		{"cert without key", Options{URLs: []string{"tls://127.0.0.1:1"}, TLS: TLSOptions{CertFile: natsWriteFile(t, dir, "c.pem", nil)}},
			[]string{"cert file and key file"}},
		{"bad prefix", Options{Prefix: "a.*"}, []string{"prefix", "wildcard *"}},
		{"bad listen", Options{Embedded: EmbeddedOptions{Listen: "localhost"}}, []string{"listen address", "localhost"}},
		{"bad stream name", Options{JetStream: JetStreamOptions{Enabled: true, Stream: "A.B"}}, []string{"stream name", "dot"}},
		{"negative buffer", Options{BufferSize: -1}, []string{"buffer size -1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Logger, _ = natsTestLogger()
			p, err := New(context.Background(), tc.opts)
			if err == nil {
				p.Close(context.Background())
				t.Fatal("New accepted bad options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a password: %v", err)
			}
		})
	}
}

func TestPublishBadStreamNames(t *testing.T) {
	p, _ := newTestPublisher(t, Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0"}})
	ctx := context.Background()
	for _, name := range []string{"", "cam.1", "cam 1", "cam*", ">", "a\tb"} {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			errs := []error{
				p.PublishResult(ctx, natsTestResult(name, 1)),
				p.PublishAttention(ctx, natsTestAttention(name, 1, 1)),
				p.PublishEvent(ctx, &message.Event{Stream: name, Kind: message.EventEnded}),
			}
			for i, err := range errs {
				if !errors.Is(err, message.ErrBadToken) {
					t.Errorf("publish %d with stream %q: %v, want ErrBadToken", i, name, err)
				}
			}
		})
	}
	if err := p.PublishEvent(ctx, &message.Event{Stream: "cam1", Kind: "exploded"}); err == nil {
		t.Error("PublishEvent accepted an unknown event kind")
	}
	if n := p.Stats().Total().Enqueued; n != 0 {
		t.Errorf("%d bad messages were enqueued", n)
	}
}

// TestNATSUnreachableAtStart: with no server, the default is to log, keep retrying and buffer;
// FailIfUnreachable makes it an error. When a server appears, the buffered messages go out.
func TestNATSUnreachableAtStart(t *testing.T) {
	port := testfixtures.FreePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	fast := Options{URLs: []string{url}, ReconnectWait: 20 * time.Millisecond, MaxReconnectWait: 100 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond}

	failing := fast
	failing.FailIfUnreachable = true
	start := time.Now()
	failing.Logger, _ = natsTestLogger()
	_, err := New(context.Background(), failing)
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("FailIfUnreachable: %v, want an error naming %s", err, url)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v", d)
	}

	p, logs := newTestPublisher(t, fast)
	ctx := context.Background()
	for seq := uint64(1); seq <= 10; seq++ {
		if err := p.PublishResult(ctx, natsTestResult("cam1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Connected || s.Total().Published != 0 {
		t.Fatalf("published without a server: %+v", s)
	}
	if !strings.Contains(logs.String(), "cannot reach server, retrying") {
		t.Errorf("log does not say it is retrying:\n%s", logs)
	}
	startNATSServer(t, port)
	natsWaitFor(t, 10*time.Second, "10 results published after the server came up", func() bool {
		return p.Stats().Total().Published == 10
	})
	if s := p.Stats(); s.Total().Dropped != 0 || !s.Connected {
		t.Errorf("stats %+v", s)
	}
}

// TestJetStreamStreamMissing: a missing stream that may not be created is a clear error.
func TestJetStreamStreamMissing(t *testing.T) {
	o := Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir()},
		JetStream: JetStreamOptions{Enabled: true, Stream: "VIDEO"}}
	o.Logger, _ = natsTestLogger()
	_, err := New(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), `stream "VIDEO" does not exist`) {
		t.Fatalf("missing stream: %v", err)
	}
	o.JetStream.Create = true
	p, _ := newTestPublisher(t, o)
	if err := p.PublishResult(context.Background(), natsTestResult("cam1", 1)); err != nil {
		t.Fatal(err)
	}
	closePublisher(t, p, 10*time.Second)
	if s := p.Stats(); s.Mode != "jetstream" || s.Kinds[message.KindResult].Acked != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPublishOutbox(t *testing.T) {
	m := func(i int) *outMsg { return &outMsg{msg: nats.Msg{Subject: strconv.Itoa(i)}} }
	names := func(ms []*outMsg) string {
		var s []string
		for _, x := range ms {
			s = append(s, x.msg.Subject)
		}
		return strings.Join(s, ",")
	}
	o := newOutbox(3)
	for i := 1; i <= 3; i++ {
		if v, full, _ := o.push(m(i), false); v != nil || full {
			t.Fatalf("push %d into a box with room: %v %v", i, v, full)
		}
	}
	if v, full, _ := o.push(m(4), false); v != nil || !full {
		t.Fatalf("push into a full box without evict: %v %v", v, full)
	}
	v, full, _ := o.push(m(5), true)
	if full || v == nil || v.msg.Subject != "1" {
		t.Fatalf("push with evict: victim %v, full %v", v, full)
	}
	if got := names(o.take(nil, 2)); got != "2,3" {
		t.Fatalf("take 2 = %s", got)
	}
	o.push(m(6), false)
	o.push(m(7), false)
	if got := names(o.take(nil, 10)); got != "5,6,7" || o.len() != 0 {
		t.Fatalf("take all = %s, left %d", got, o.len())
	}
	o.push(m(8), false)
	if got := names(o.closeAndTake()); got != "8" {
		t.Fatalf("closeAndTake = %s", got)
	}
	if _, _, closed := o.push(m(9), true); !closed || o.len() != 0 {
		t.Fatalf("push after close: closed %v, len %d", closed, o.len())
	}
}

func TestReconnectBackoff(t *testing.T) {
	base, maxWait := 100*time.Millisecond, 2*time.Second
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, 1000 * time.Millisecond, 2 * time.Second},
		{1000, 1000 * time.Millisecond, 2 * time.Second},
	}
	delay := Options{ReconnectWait: base, MaxReconnectWait: maxWait}.reconnectDelay
	for _, tc := range tests {
		for range 20 {
			if d := delay(tc.attempt); d < tc.lo || d > tc.hi {
				t.Fatalf("backoff attempt %d = %v, want in [%v, %v]", tc.attempt, d, tc.lo, tc.hi)
			}
		}
	}
}

// TestPublisherCloseLeavesNoGoroutines: Close stops the sender, the connection and the embedded server.
func TestPublisherCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, js := range []bool{false, true} {
		log, _ := natsTestLogger()
		p, err := New(context.Background(), Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir()},
			JetStream: JetStreamOptions{Enabled: js, Create: true}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.PublishResult(context.Background(), natsTestResult("cam1", 1)); err != nil {
			t.Fatal(err)
		}
		closePublisher(t, p, 10*time.Second)
		if err := p.PublishResult(context.Background(), natsTestResult("cam1", 2)); !errors.Is(err, ErrPublisherClosed) {
			t.Fatalf("publish after Close: %v", err)
		}
		if n := p.Stats().Total().Published; n != 1 {
			t.Fatalf("jetstream %v: published %d before Close returned", js, n)
		}
	}
}

// TestPublisherCloseWhileDisconnected: what cannot be sent before Close's context ends is counted as
// dropped and reported, never silently lost.
func TestPublisherCloseWhileDisconnected(t *testing.T) {
	log, logs := natsTestLogger()
	p, err := New(context.Background(), Options{URLs: []string{"nats://127.0.0.1:" + strconv.Itoa(testfixtures.FreePort(t))},
		ConnectTimeout: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		if err := p.PublishResult(context.Background(), natsTestResult("cam1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = p.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "5 messages unsent") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want 5 messages unsent", err)
	}
	if r := p.Stats().Kinds[message.KindResult]; r.Dropped != 5 || r.Published != 0 {
		t.Fatalf("counters %+v", r)
	}
	// The first drop is logged at once, later ones at most every 5s, and the rest at Close.
	logged := 0
	for _, m := range regexp.MustCompile(`dropped (\d+) messages \(\d+ result\)" reasons="unsent at close`).FindAllStringSubmatch(logs.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		logged += n
	}
	if logged != 5 {
		t.Fatalf("log reports %d drops, want 5:\n%s", logged, logs)
	}
}

// TestJetStreamStreamDeleted: when the stream disappears mid-run, the publisher creates it again
// (if allowed) or, when not allowed, drops the messages after their retries and counts them.
func TestJetStreamStreamDeleted(t *testing.T) {
	for _, create := range []bool{true, false} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) {
			o := Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), JetStream: true},
				JetStream: JetStreamOptions{Enabled: true, Create: true, Retries: 2, AckTimeout: 500 * time.Millisecond}}
			p, _ := newTestPublisher(t, o)
			p.opts.JetStream.Create = create // the stream exists now; from here on, only this decides
			ctx := context.Background()
			if err := p.PublishResult(ctx, natsTestResult("cam1", 1)); err != nil {
				t.Fatal(err)
			}
			natsWaitFor(t, 10*time.Second, "first result acknowledged", func() bool { return p.Stats().Total().Acked == 1 })
			nc, err := nats.Connect(p.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if err := js.DeleteStream(ctx, DefaultStreamName); err != nil {
				t.Fatal(err)
			}
			for seq := uint64(2); seq <= 4; seq++ {
				if err := p.PublishResult(ctx, natsTestResult("cam1", seq)); err != nil {
					t.Fatal(err)
				}
			}
			natsWaitFor(t, 20*time.Second, "3 results acknowledged or dropped", func() bool {
				r := p.Stats().Kinds[message.KindResult]
				return r.Acked+r.Dropped == 4
			})
			r := p.Stats().Kinds[message.KindResult]
			if create && r.Acked != 4 {
				t.Fatalf("with create: %+v, want all 4 acknowledged", r)
			}
			if !create && r.Dropped != 3 {
				t.Fatalf("without create: %+v, want 3 dropped", r)
			}
		})
	}
}

// TestPublisherConcurrentClose: goroutines publish while Close runs; every message is either
// published or counted as dropped.
func TestPublisherConcurrentClose(t *testing.T) {
	p, _ := newTestPublisher(t, Options{Embedded: EmbeddedOptions{Listen: "127.0.0.1:0"}, BufferSize: 16})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= 300; seq++ {
				err := p.PublishResult(context.Background(), natsTestResult(fmt.Sprintf("cam%d", g), seq))
				if errors.Is(err, ErrPublisherClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Close(ctx)
	wg.Wait()
	tot := p.Stats().Total()
	if tot.Enqueued != tot.Published+tot.Dropped || p.Stats().Buffered != 0 {
		t.Fatalf("enqueued %d != published %d + dropped %d (buffered %d)", tot.Enqueued, tot.Published, tot.Dropped, p.Stats().Buffered)
	}
	t.Logf("enqueued %d, published %d, dropped %d", tot.Enqueued, tot.Published, tot.Dropped)
}
