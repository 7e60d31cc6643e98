package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/testfixtures"
)

// fakeRunner records which streams one instance runs, and checks against the others that no stream runs on
// two instances at once.
type fakeRunner struct {
	id    string
	world *world
}

type world struct {
	t       *testing.T
	mu      sync.Mutex
	running map[string]string // stream -> instance
	starts  map[string]int    // stream -> starts
}

func (r *fakeRunner) StartStream(s config.Stream) error {
	w := r.world
	w.mu.Lock()
	defer w.mu.Unlock()
	if other, ok := w.running[s.Name]; ok {
		w.t.Errorf("stream %s started on %s while it runs on %s", s.Name, r.id, other)
	}
	w.running[s.Name] = r.id
	w.starts[s.Name]++
	return nil
}

func (r *fakeRunner) StopStream(_ context.Context, name string) error {
	w := r.world
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running[name] != r.id {
		return fmt.Errorf("stream %s is not running on %s", name, r.id)
	}
	delete(w.running, name)
	return nil
}

// perInstance counts the streams each instance runs.
func (w *world) perInstance() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, id := range w.running {
		out[id]++
	}
	return out
}

func (w *world) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// proxy forwards TCP connections to a server until frozen; then it forwards nothing and closes nothing, as a
// network partition does.
type proxy struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); u.Close() })
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) freeze() { p.frozen.Store(true) }

// pipe copies from src to dst until either fails; once frozen it reads and drops.
func (p *proxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func startServer(t *testing.T) *server.Server {
	t.Helper()
	return testfixtures.NATSServer(t, &server.Options{JetStream: true})
}

type instance struct {
	c                  *Controller
	nc                 *nats.Conn
	cancel, cancelHard context.CancelFunc
	done               chan struct{}
}

func startInstance(t *testing.T, url, id string, cfg Config, w *world) *instance {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg.Instance = id
	c := New(cfg, nc, id, &fakeRunner{id: id, world: w}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	live, cancel := context.WithCancel(context.Background())
	hard, cancelHard := context.WithCancel(context.Background())
	in := &instance{c: c, nc: nc, cancel: cancel, cancelHard: cancelHard, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		if err := c.Run(live, hard); err != nil {
			t.Errorf("instance %s: %v", id, err)
		}
	}()
	t.Cleanup(func() { cancelHard(); cancel(); <-in.done })
	return in
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func streams(n int) []config.Stream {
	out := make([]config.Stream, n)
	for i := range out {
		out[i] = config.Stream{Name: fmt.Sprintf("s%d", i), URL: "x.mp4"}
	}
	return out
}

// TestLeases: three instances share six streams two each and never run one twice; a crashed instance's
// streams move to the others after the lease TTL; a new instance takes its share from the others without
// a stream running twice; a stream added to or removed from the list in the bucket starts or stops on
// exactly one instance.
func TestLeases(t *testing.T) {
	s := startServer(t)
	w := &world{t: t, running: map[string]string{}, starts: map[string]int{}}
	cfg := Config{Name: "t", Bucket: "fleet_t", LeaseTTL: 1500 * time.Millisecond, RenewInterval: 250 * time.Millisecond,
		MaxMoves: 1, Replicas: 1, Prefix: "sestream", Streams: streams(6)}
	a := startInstance(t, s.ClientURL(), "a", cfg, w)
	startInstance(t, s.ClientURL(), "b", cfg, w)
	startInstance(t, s.ClientURL(), "c", cfg, w)
	balanced := func(n, each int) func() bool {
		return func() bool {
			per := w.perInstance()
			if w.total() != n {
				return false
			}
			for _, k := range per {
				if k > each {
					return false
				}
			}
			return true
		}
	}
	took := waitFor(t, 20*time.Second, "six streams two per instance", balanced(6, 2))
	t.Logf("balanced in %s: %v", took, w.perInstance())

	// A crash: the hard context first, so that leaving cannot release anything.
	a.cancelHard()
	a.cancel()
	<-a.done
	w.mu.Lock()
	for name, id := range w.running {
		if id == "a" {
			delete(w.running, name) // a crashed: its streams are not running anywhere
		}
	}
	w.mu.Unlock()
	took = waitFor(t, 20*time.Second, "six streams on b and c", balanced(6, 3))
	t.Logf("failover in %s (lease TTL %s): %v", took, cfg.LeaseTTL, w.perInstance())
	if took > cfg.LeaseTTL+2*time.Second {
		t.Errorf("failover took %s, more than lease TTL + 2 s", took)
	}

	px := newProxy(t, s.Addr().String())
	d := startInstance(t, px.url(), "d", cfg, w)
	took = waitFor(t, 20*time.Second, "rebalanced onto d", func() bool { return balanced(6, 2)() && w.perInstance()["d"] == 2 })
	t.Logf("rebalanced in %s: %v", took, w.perInstance())

	// A partition: d's connection goes silent (nothing is forwarded, nothing is closed), so every call of d
	// times out. It must stop its streams itself before its leases expire (the world fails the test if
	// another instance starts one while d still runs it), and b and c take them over.
	cut := time.Now()
	px.freeze()
	waitFor(t, 20*time.Second, "d stopped its streams", func() bool { return w.perInstance()["d"] == 0 })
	stopped := time.Since(cut)
	took = waitFor(t, 20*time.Second, "six streams on b and c after the partition", balanced(6, 3))
	t.Logf("partitioned d stopped its streams after %s; b and c run all six after %s", stopped, time.Since(cut))
	if stopped > cfg.LeaseTTL {
		t.Errorf("the partitioned instance stopped its streams after %s, later than the lease TTL %s", stopped, cfg.LeaseTTL)
	}
	d.cancel()
	<-d.done
	startInstance(t, s.ClientURL(), "e", cfg, w)
	waitFor(t, 20*time.Second, "rebalanced onto e", func() bool { return balanced(6, 2)() && w.perInstance()["e"] == 2 })

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), StreamsBucket(cfg.Bucket))
	if err != nil {
		t.Fatal(err)
	}
	list := `[{"name":"s0","url":"x.mp4"},{"name":"s1","url":"x.mp4"},{"name":"s2","url":"x.mp4"},{"name":"s3","url":"x.mp4"},{"name":"s4","url":"x.mp4"},{"name":"s5","url":"x.mp4"},{"name":"s6","url":"x.mp4"}]`
	if _, err := kv.Put(context.Background(), StreamsKey, []byte(list)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "s6 started", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.running["s6"] != "" })
	if _, err := kv.Put(context.Background(), StreamsKey, []byte(`[{"name":"s0","url":"x.mp4"},{"name":"s1","url":"x.mp4"},{"name":"s2","url":"x.mp4"},{"name":"s3","url":"x.mp4"},{"name":"s4","url":"x.mp4"},{"name":"s5","url":"x.mp4"}]`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "s6 stopped", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.running["s6"] == "" })
	time.Sleep(3 * cfg.RenewInterval)
	w.mu.Lock()
	starts := w.starts["s6"]
	w.mu.Unlock()
	if starts != 1 || w.total() != 6 {
		t.Errorf("s6 started %d times (want 1); %d streams running (want 6)", starts, w.total())
	}

	// A changed entry (another URL) is started again, on the instance that holds it.
	w.mu.Lock()
	owner, before := w.running["s0"], w.starts["s0"]
	w.mu.Unlock()
	changed := `[{"name":"s0","url":"y.mp4"},{"name":"s1","url":"x.mp4"},{"name":"s2","url":"x.mp4"},{"name":"s3","url":"x.mp4"},{"name":"s4","url":"x.mp4"},{"name":"s5","url":"x.mp4"}]`
	if _, err := kv.Put(context.Background(), StreamsKey, []byte(changed)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "s0 started again", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.starts["s0"] == before+1 })
	w.mu.Lock()
	now := w.running["s0"]
	w.mu.Unlock()
	if now != owner {
		t.Errorf("s0 restarted on %s, want its owner %s", now, owner)
	}
}

// TestBucketTTLMismatch: an instance whose lease TTL differs from the bucket's refuses to join, naming both.
func TestBucketTTLMismatch(t *testing.T) {
	s := startServer(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "fleet_x", TTL: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, running: map[string]string{}, starts: map[string]int{}}
	c := New(Config{Name: "x", Bucket: "fleet_x", LeaseTTL: 6 * time.Second, RenewInterval: time.Second, MaxMoves: 1, Replicas: 1,
		Prefix: "sestream", Streams: streams(1)}, nc, "a", &fakeRunner{id: "a", world: w}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Run(ctx, ctx)
	var be *BucketError
	if !errors.As(err, &be) || be.TTL != 3*time.Second || be.Want != 6*time.Second {
		t.Fatalf("Run: %v, want a BucketError naming TTL 3s and 6s", err)
	}
	t.Log(err)
}
