package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sestream/sestream/internal/testfixtures"
)

// Fleet test timing: the default 15 s lease TTL (above nats-server's 4-9 s election timeout), renewed every 500 ms.
const (
	fleetTTL   = 15 * time.Second
	fleetRenew = 500 * time.Millisecond
	fleetFPS   = 12 // the sample video's frame rate; streams are paced at it (realtime)
	// overlapBound is the most frames an old owner may publish after the new owner's first: a stream's drain
	// before its lease is released is bounded by a renew interval.
	overlapBound = int(fleetFPS * fleetRenew / time.Second)
)

// proc is a child process the test started and kills at its end.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t *testing.T, name, logPath string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// tail is the end of the process's output, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Sprintf("--- %s (%s) ---\n%s", p.name, p.log, b)
}

// natsNode is one nats-server of the test cluster.
type natsNode struct {
	name          string
	port, cluster int
	conf          string
	p             *proc
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// startCluster starts three nats-server processes clustered on loopback, with JetStream.
func startCluster(t *testing.T, bin, dir string) []*natsNode {
	t.Helper()
	nodes := make([]*natsNode, 3)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i), port: testfixtures.FreePort(t), cluster: testfixtures.FreePort(t)}
	}
	for i, n := range nodes {
		var routes []string
		for j, o := range nodes {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.cluster))
			}
		}
		store := filepath.Join(dir, n.name+"-js")
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n}\ncluster {\n  name: fleettest\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			n.name, n.port, store, n.cluster, strings.Join(routes, ", "))
		n.conf = filepath.Join(dir, n.name+".conf")
		if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		n.p = startProc(t, "nats-server "+n.name, filepath.Join(dir, n.name+".log"), bin, "-c", n.conf)
	}
	// Ready when JetStream answers through every node (a meta leader is elected).
	for _, n := range nodes {
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := func() error {
				nc, err := nats.Connect(n.url(), nats.Timeout(time.Second))
				if err != nil {
					return err
				}
				defer nc.Close()
				js, err := jetstream.New(nc)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err = js.AccountInfo(ctx)
				return err
			}()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("JetStream cluster not ready through %s: %v\n%s", n.name, err, n.p.tail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nodes
}

// sighting is one result message as the observer received it.
type sighting struct {
	stream, boot, seq string
	at                time.Time
}

// observer records every result message of the fleet.
type observer struct {
	mu   sync.Mutex
	seen []sighting
}

func (o *observer) handle(m *nats.Msg) {
	parts := strings.Split(m.Header.Get("Nats-Msg-Id"), ":") // <stream>:<boot id>:<seq>:<kind>
	if len(parts) != 4 {
		return
	}
	o.mu.Lock()
	o.seen = append(o.seen, sighting{stream: parts[0], boot: parts[1], seq: parts[2], at: time.Now()})
	o.mu.Unlock()
}

// since returns the sightings at or after t.
func (o *observer) since(t time.Time) []sighting {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := sort.Search(len(o.seen), func(i int) bool { return !o.seen[i].at.Before(t) })
	return append([]sighting(nil), o.seen[i:]...)
}

// owners maps each stream to the boot ids that published it in ss.
func owners(ss []sighting) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, s := range ss {
		if out[s.stream] == nil {
			out[s.stream] = map[string]int{}
		}
		out[s.stream][s.boot]++
	}
	return out
}

// perBoot counts the streams each boot id published in ss (a stream counted for each boot that published it).
func perBoot(ss []sighting) map[string]int {
	out := map[string]int{}
	for _, bs := range owners(ss) {
		for b := range bs {
			out[b]++
		}
	}
	return out
}

// segment is a run of one stream's results from one boot id.
type segment struct {
	boot        string
	first, last time.Time
	frames      int
}

// segments splits each stream's sightings into runs by boot id, in time order.
func segments(ss []sighting) map[string][]segment {
	out := map[string][]segment{}
	for _, s := range ss {
		segs := out[s.stream]
		if n := len(segs); n > 0 && segs[n-1].boot == s.boot {
			segs[n-1].last = s.at
			segs[n-1].frames++
			continue
		}
		out[s.stream] = append(segs, segment{boot: s.boot, first: s.at, last: s.at, frames: 1})
	}
	return out
}

// handover is one change of owner of a stream.
type handover struct {
	stream, from, to string
	// gap is the time from the old owner's last result to the new owner's first (negative: an overlap);
	// overlapFrames counts the old owner's results after the new owner's first.
	gap           time.Duration
	overlapFrames int
}

// periods splits each stream's sightings into ownership periods: the results of one boot id with no pause
// longer than a second (a stream's results come every 83 ms).
func periods(ss []sighting) map[string][]segment {
	type key struct{ stream, boot string }
	open := map[key]*segment{}
	out := map[string][]segment{}
	for _, s := range ss {
		k := key{s.stream, s.boot}
		if p := open[k]; p != nil && s.at.Sub(p.last) <= time.Second {
			p.last = s.at
			p.frames++
			continue
		}
		if p := open[k]; p != nil {
			out[s.stream] = append(out[s.stream], *p)
		}
		open[k] = &segment{boot: s.boot, first: s.at, last: s.at, frames: 1}
	}
	for k, p := range open {
		out[k.stream] = append(out[k.stream], *p)
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].first.Before(ps[j].first) })
	}
	return out
}

// handovers lists every change of owner in ss, from one ownership period to the next of another boot id.
func handovers(ss []sighting) []handover {
	var out []handover
	for stream, ps := range periods(ss) {
		for i := 1; i < len(ps); i++ {
			prev, cur := ps[i-1], ps[i]
			if prev.boot == cur.boot {
				continue
			}
			h := handover{stream: stream, from: prev.boot, to: cur.boot, gap: cur.first.Sub(prev.last)}
			for _, s := range ss {
				if s.stream == stream && s.boot == prev.boot && s.at.After(cur.first) && !s.at.After(prev.last) {
					h.overlapFrames++
				}
			}
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].stream < out[j].stream })
	return out
}

// waitUntil polls cond every 200 ms until it holds or timeout passes; it returns how long that took.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, logs func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("after %s: %s\n%s", timeout, what, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFleet runs a fleet of three sestream processes sharing six looping file streams over a three-node
// nats-server cluster, and checks the lease protocol end to end: every stream is published by exactly one
// instance at a time; after a SIGKILL the dead instance's streams resume on the others within lease TTL + 2 s;
// killing the NATS node that leads the lease bucket (a leader change) stops nothing and runs nothing twice; a
// restarted instance takes its share back with bounded handover gaps; a stream added to and removed from the
// fleet's list at run time starts and stops on exactly one instance.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and three sestream processes")
	}
	natsBin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nats-server"); err2 != nil {
			t.Skip("nats-server is not installed (apt-get install nats-server): " + err.Error())
		}
		natsBin = "/usr/sbin/nats-server"
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sestream")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tiny, _ := filepath.Abs(filepath.Join(engineTestdata, "se_tiny_64x64.onnx"))
	sample, _ := filepath.Abs(filepath.Join("..", "..", "samples", "fashion.mp4"))

	nodes := startCluster(t, natsBin, dir)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url())
	}
	var procs []*proc
	logs := func() string {
		var b strings.Builder
		for _, p := range procs {
			b.WriteString(p.tail())
			b.WriteString("\n")
		}
		return b.String()
	}

	streamList := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "  - {name: cam%d, url: %q, loop: true, realtime: true}\n", i, sample)
		}
		return b.String()
	}
	instanceConfig := func(i int) string {
		path := filepath.Join(dir, fmt.Sprintf("i%d.yaml", i))
		cfg := fmt.Sprintf(`streams:
%smodel:
  path: %q
workers: 1
engine:
  threads: 1
batch:
  max_size: 4
  max_delay: 20ms
nats:
  url: %q
http:
  listen: ""
status:
  interval: 2s
shutdown:
  drain_timeout: 5s
fleet:
  enabled: true
  name: t
  instance: i%d
  lease_ttl: %s
  renew_interval: %s
  replicas: 3
`, streamList(6), tiny, strings.Join(urls, ","), i, fleetTTL, fleetRenew)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	startInstance := func(i int) *proc {
		p := startProc(t, fmt.Sprintf("sestream i%d", i), filepath.Join(dir, fmt.Sprintf("i%d-%d.log", i, len(procs))), bin, "run", "--config", instanceConfig(i))
		procs = append(procs, p)
		return p
	}

	// The observer listens on node 0, which the test never kills.
	obsConn, err := nats.Connect(nodes[0].url(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer obsConn.Close()
	obs := &observer{}
	if _, err := obsConn.Subscribe("sestream.*.result", obs.handle); err != nil {
		t.Fatal(err)
	}

	insts := []*proc{startInstance(0), startInstance(1), startInstance(2)}
	// stable: over the last window, n streams each published by exactly one boot id, each boot publishing at
	// most perInstance streams, and bootCount boot ids in all.
	stable := func(window time.Duration, n, perInstance, bootCount int) func() bool {
		return func() bool {
			ss := obs.since(time.Now().Add(-window))
			own := owners(ss)
			if len(own) != n {
				return false
			}
			for _, bs := range own {
				if len(bs) != 1 {
					return false
				}
			}
			pb := perBoot(ss)
			for _, k := range pb {
				if k > perInstance {
					return false
				}
			}
			return len(pb) == bootCount
		}
	}
	took := waitUntil(t, 120*time.Second, "6 streams, 2 per instance on 3 instances, each from one instance for 3 s", stable(3*time.Second, 6, 2, 3), logs)
	t.Logf("fleet balanced %s after start: %v", took, perBoot(obs.since(time.Now().Add(-3*time.Second))))

	// sestream fleet status sees the same.
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"fleet", "status", "--nats", strings.Join(urls, ","), "--fleet", "t", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("fleet status: exit %d: %s", code, errOut.String())
	}
	var view fleetView
	if err := json.Unmarshal(out.Bytes(), &view); err != nil {
		t.Fatalf("fleet status --json: %v\n%s", err, out.String())
	}
	if len(view.Members) != 3 || len(view.Leases) != 6 {
		t.Errorf("fleet status: %d members and %d leases, want 3 and 6:\n%s", len(view.Members), len(view.Leases), out.String())
	}
	for _, m := range view.Members {
		if m.Moves == nil || len(m.Streams) != 2 {
			t.Errorf("fleet status: member %s %s holds %v, moves %v; want 2 streams and a status report", m.Instance, m.BootID, m.Streams, m.Moves)
		}
	}
	out.Reset()
	if code := execute(context.Background(), []string{"fleet", "status", "--nats", urls[1], "--fleet", "t"}, &out, &errOut); code != 0 {
		t.Fatalf("fleet status: exit %d: %s", code, errOut.String())
	}
	t.Logf("sestream fleet status:\n%s", out.String())
	if text := out.String(); !strings.Contains(text, "fleet t (bucket sestream_fleet_t): 3 members, 6 streams leased") {
		t.Errorf("fleet status does not say 3 members and 6 leases:\n%s", text)
	}

	// 1. SIGKILL instance 0: its streams resume on the others within lease TTL + 2 s.
	before := obs.since(time.Now().Add(-2 * time.Second))
	victimBoot := ""
	for _, l := range view.Leases {
		if l.Instance == "i0" {
			victimBoot = l.BootID
		}
	}
	var victimStreams []string
	for stream, bs := range owners(before) {
		if bs[victimBoot] > 0 {
			victimStreams = append(victimStreams, stream)
		}
	}
	sort.Strings(victimStreams)
	killed := time.Now()
	insts[0].kill()
	resumed := map[string]time.Duration{}
	waitUntil(t, fleetTTL+30*time.Second, fmt.Sprintf("streams %v of the killed instance published by another", victimStreams), func() bool {
		for _, s := range obs.since(killed) {
			if s.boot != victimBoot && contains(victimStreams, s.stream) {
				if _, ok := resumed[s.stream]; !ok {
					resumed[s.stream] = s.at.Sub(killed)
				}
			}
		}
		return len(resumed) == len(victimStreams)
	}, logs)
	for _, s := range victimStreams {
		t.Logf("failover: stream %s resumed on another instance %s after the SIGKILL (lease TTL %s)", s, resumed[s].Round(time.Millisecond), fleetTTL)
		if resumed[s] > fleetTTL+2*time.Second {
			t.Errorf("stream %s resumed %s after the SIGKILL, more than lease TTL + 2 s (%s)", s, resumed[s].Round(time.Millisecond), fleetTTL+2*time.Second)
		}
	}
	waitUntil(t, 30*time.Second, "6 streams on the 2 survivors, 3 each", stable(3*time.Second, 6, 3, 2), logs)

	// 2. Kill the NATS node that leads the lease bucket (not node 0, the observer's): the bucket gets a new
	// leader, and every stream goes on, on the instance that had it.
	js, err := jetstream.New(obsConn)
	if err != nil {
		t.Fatal(err)
	}
	leader := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_sestream_fleet_t")
		if err != nil {
			return ""
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	}
	// First a leader change on its own: the bucket's leader steps down (at least once, until the leader is
	// not node 0).
	ownersBefore := owners(obs.since(time.Now().Add(-3 * time.Second)))
	stepdowns := time.Now()
	first := leader()
	for i := range 10 {
		if l := leader(); i > 0 && l != "" && l != nodes[0].name {
			break
		}
		obsConn.Request("$JS.API.STREAM.LEADER.STEPDOWN.KV_sestream_fleet_t", nil, 5*time.Second)
		time.Sleep(2 * time.Second)
	}
	old := leader()
	t.Logf("lease bucket leader %s -> %s by step-down", first, old)
	for stream, segs := range segments(obs.since(stepdowns)) {
		if len(segs) != 1 || ownersBefore[stream][segs[0].boot] == 0 {
			t.Errorf("stream %s changed owner while the lease bucket's leader stepped down: %d runs", stream, len(segs))
		}
	}
	var victimNode *natsNode
	for _, n := range nodes {
		if n.name == old && n != nodes[0] {
			victimNode = n
		}
	}
	if victimNode == nil {
		t.Fatalf("lease bucket leader %q: want one of n1, n2", old)
	}
	nodeKilled := time.Now()
	victimNode.p.kill()
	time.Sleep(fleetTTL + 3*time.Second)
	newLeader := leader()
	t.Logf("killed NATS node %s (lease bucket leader); leader now %q", old, newLeader)
	if newLeader == "" || newLeader == old {
		t.Errorf("lease bucket leader after killing %s: %q, want another node", old, newLeader)
	}
	during := obs.since(nodeKilled)
	for stream, segs := range segments(during) {
		if len(segs) != 1 {
			t.Errorf("stream %s changed owner after the NATS node was killed: %d runs", stream, len(segs))
		}
		if _, ok := ownersBefore[stream][segs[0].boot]; !ok {
			t.Errorf("stream %s moved to %s when the NATS node was killed", stream, segs[0].boot)
		}
	}
	if n := len(owners(during)); n != 6 {
		t.Errorf("%d streams published after the NATS node was killed, want 6", n)
	}
	maxGap := map[string]time.Duration{}
	last := map[string]time.Time{}
	for _, s := range during {
		if l, ok := last[s.stream]; ok && s.at.Sub(l) > maxGap[s.stream] {
			maxGap[s.stream] = s.at.Sub(l)
		}
		last[s.stream] = s.at
	}
	var worst time.Duration
	for _, g := range maxGap {
		worst = max(worst, g)
	}
	t.Logf("NATS node loss: longest pause of a stream's results %s over %s", worst.Round(time.Millisecond), fleetTTL+3*time.Second)

	// 3. Restart instance 0: the streams rebalance to 2 per instance, moved one at a time.
	restarted := time.Now()
	insts[0] = startInstance(0)
	took = waitUntil(t, 90*time.Second, "rebalanced to 2 streams per instance on 3 instances", stable(3*time.Second, 6, 2, 3), logs)
	t.Logf("rebalanced %s after the restart", took.Round(time.Millisecond))
	moved := handovers(obs.since(restarted))
	if len(moved) < 2 {
		t.Errorf("rebalancing moved %d streams, want at least 2 (the new instance's share)", len(moved))
	}
	if len(moved) > 3 {
		t.Errorf("rebalancing moved %d streams, want at most 3 (bounded moves, no thrash): %+v", len(moved), moved)
	}
	for _, h := range moved {
		frames := h.gap.Seconds() * fleetFPS
		t.Logf("handover: stream %s %s -> %s: gap %s (%.0f frames at %d fps), overlap %d frames", h.stream, h.from, h.to,
			h.gap.Round(time.Millisecond), max(0, frames), fleetFPS, h.overlapFrames)
		if h.gap < -fleetRenew || h.overlapFrames > overlapBound {
			t.Errorf("stream %s: handover overlap %s, %d frames: longer than the drain bound (renew interval %s)", h.stream, -h.gap, h.overlapFrames, fleetRenew)
		}
	}

	// 4. Add a stream at run time, then remove it: it runs on exactly one instance, and nothing else moves.
	ownersNow := owners(obs.since(time.Now().Add(-2 * time.Second)))
	set := func(n int) {
		t.Helper()
		path := filepath.Join(dir, fmt.Sprintf("streams%d.yaml", n))
		if err := os.WriteFile(path, []byte(streamList(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := execute(context.Background(), []string{"fleet", "streams", "--nats", strings.Join(urls[:1], ","), "--fleet", "t", "--set", path}, &out, &errOut); code != 0 {
			t.Fatalf("fleet streams --set: exit %d: %s", code, errOut.String())
		}
	}
	added := time.Now()
	set(7)
	took = waitUntil(t, 30*time.Second, "cam6 published", func() bool { return len(owners(obs.since(added))["cam6"]) > 0 }, logs)
	t.Logf("added stream cam6: first result %s after the list was written", took.Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	// Remove it by clearing the list: the fleet goes back to the configured six streams.
	removed := time.Now()
	out.Reset()
	errOut.Reset()
	if code := execute(context.Background(), []string{"fleet", "streams", "--nats", urls[0], "--fleet", "t", "--clear"}, &out, &errOut); code != 0 {
		t.Fatalf("fleet streams --clear: exit %d: %s", code, errOut.String())
	}
	waitUntil(t, 30*time.Second, "cam6 stopped", func() bool {
		ss := obs.since(time.Now().Add(-3 * time.Second))
		return len(owners(ss)["cam6"]) == 0 && time.Since(removed) > 3*time.Second
	}, logs)
	period := obs.since(added)
	if bs := owners(period)["cam6"]; len(bs) != 1 {
		t.Errorf("cam6 was published by %d instances, want exactly 1: %v", len(bs), bs)
	}
	var lastCam6 time.Time
	for _, s := range period {
		if s.stream == "cam6" {
			lastCam6 = s.at
		}
	}
	t.Logf("removed stream cam6: last result %s after the list was written", lastCam6.Sub(removed).Round(time.Millisecond))
	for stream, segs := range segments(period) {
		if stream == "cam6" {
			continue
		}
		if len(segs) != 1 || ownersNow[stream][segs[0].boot] == 0 {
			t.Errorf("stream %s moved while cam6 was added and removed: %d runs", stream, len(segs))
		}
	}

	// 5. SIGTERM one instance: it drains its streams and releases their leases, and the others take them
	// over within a few renew intervals instead of a lease TTL.
	term := insts[1]
	m := regexp.MustCompile(`msg=publishing .*boot_id=([0-9a-f]+)`).FindStringSubmatch(readFile(term.log))
	if m == nil {
		t.Fatalf("%s logged no boot id", term.name)
	}
	termBoot := m[1]
	var termStreams []string
	for stream, bs := range owners(obs.since(time.Now().Add(-2 * time.Second))) {
		if bs[termBoot] > 0 {
			termStreams = append(termStreams, stream)
		}
	}
	sort.Strings(termStreams)
	if len(termStreams) == 0 {
		t.Fatalf("%s (boot id %s) publishes no stream", term.name, termBoot)
	}
	termAt := time.Now()
	term.cmd.Process.Signal(syscall.SIGTERM)
	waitUntil(t, 30*time.Second, fmt.Sprintf("streams %v of the stopped instance published by another", termStreams), func() bool {
		own := owners(obs.since(termAt))
		for _, s := range termStreams {
			if len(own[s]) == 0 || len(own[s]) == 1 && own[s][termBoot] > 0 {
				return false // not yet published by another instance
			}
		}
		return true
	}, logs)
	for _, h := range handovers(obs.since(termAt.Add(-time.Second))) {
		if h.from != termBoot {
			continue
		}
		t.Logf("SIGTERM handover: stream %s: gap %s (%.0f frames at %d fps), overlap %d frames", h.stream,
			h.gap.Round(time.Millisecond), max(0, h.gap.Seconds()*fleetFPS), fleetFPS, h.overlapFrames)
		if h.gap < -fleetRenew || h.overlapFrames > overlapBound {
			t.Errorf("stream %s: handover overlap %s, %d frames", h.stream, -h.gap, h.overlapFrames)
		}
	}
	select {
	case <-term.done:
	case <-time.After(30 * time.Second):
		t.Errorf("the instance did not exit within 30 s of SIGTERM")
	}
	if code := term.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("SIGTERM: exit code %d, want 0", code)
	}

	// Over the whole test: no message id twice (a stream started again on an instance continues its
	// numbering), every change of owner, and its overlap.
	ids := map[sighting]int{}
	for _, s := range obs.since(time.Time{}) {
		s.at = time.Time{}
		ids[s]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("result %s:%s:%s published %d times", id.stream, id.boot, id.seq, n)
		}
	}
	all := handovers(obs.since(time.Time{}))
	var worstOverlap time.Duration
	worstFrames := 0
	for _, h := range all {
		worstOverlap = max(worstOverlap, -h.gap)
		worstFrames = max(worstFrames, h.overlapFrames)
	}
	t.Logf("whole test: %d changes of owner; largest overlap %s, %d frames (bound: %s, %d frames)", len(all),
		max(0, worstOverlap).Round(time.Millisecond), worstFrames, fleetRenew, overlapBound)
	if worstOverlap > fleetRenew || worstFrames > overlapBound {
		t.Errorf("a handover overlapped by %s, %d frames: more than the drain bound", worstOverlap, worstFrames)
	}
	if t.Failed() {
		t.Log(logs())
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
