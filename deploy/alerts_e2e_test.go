package deploy

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/testfixtures"
)

// These tests run the shipped alert rules in Debian's Prometheus against a live `sestream run`, cause the
// fault an alert is about, and measure the time from the fault to the alert firing. Prometheus scrapes and
// evaluates every second (5 s and 15 s in the shipped prometheus.yml); alerts whose `for:` would make a test
// wait minutes get a short one in the test's copy, and the log says so. In production, add the shipped
// `for:` to the measured time.

// shortFor replaces long `for:` durations in the tests' copy of alerts.yml.
const shortFor = 2 * time.Second

// sampleVideo is the bundled sample, an H.264 MP4 of 41.7 s at 12 fps.
func sampleVideo(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(root, "samples", "fashion.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// lightEngine keeps sestream's share of a busy test machine small: one worker, one thread, small batches.
const lightEngine = `engine:
  threads: 1
workers: 1
batch:
  max_size: 4
status:
  interval: 1s
log:
  format: json
`

// logFiring logs how long after the fault the alert became pending (active) and firing, and returns the
// second.
func logFiring(t *testing.T, name string, fault time.Time, a alert, forInTest time.Duration) time.Duration {
	t.Helper()
	firing := time.Since(fault)
	pending := a.ActiveAt.Sub(fault)
	t.Logf("%s: fault to pending %v, to firing %v (for: %v in this test)", name,
		pending.Round(100*time.Millisecond), firing.Round(100*time.Millisecond), forInTest)
	return firing
}

// TestAlertSourceLost kills the RTSP server of a live stream: SestreamSourceDown must fire for that stream.
func TestAlertSourceLost(t *testing.T) {
	needPrometheus(t)
	testfixtures.NeedRTSPServer(t)
	rtsp := &testfixtures.RTSPServer{T: t, File: sampleVideo(t), Port: testfixtures.FreePort(t)}
	rtsp.Start()
	t.Cleanup(rtsp.Stop)
	s := startSestream(t, fmt.Sprintf(`streams:
  - name: cam
    url: %s
    transport: tcp
    fps: 4
    reconnect:
      initial: 500ms
      max: 2s
nats:
  embedded:
    listen: %s
%s`, rtsp.URL(), loopback(testfixtures.FreePort(t)), lightEngine))
	prom := startPrometheus(t, promSetup{
		Targets: sestreamTargets(t, s.Addr),
		For:     map[string]time.Duration{"SestreamSourceDown": shortFor},
	})
	prom.waitQuery(`sestream_source_state{stream="cam", state="running"} == 1`, 60*time.Second, s.process)
	prom.waitQuery(`sestream_frames_processed_total{stream="cam"} > 0`, 30*time.Second, s.process)
	match := map[string]string{"stream": "cam"}
	prom.requireQuiet("SestreamSourceDown", match)
	prom.ruleHealth()

	fault := time.Now()
	rtsp.Stop()
	a := prom.waitFiring("SestreamSourceDown", match, 60*time.Second)
	logFiring(t, "SestreamSourceDown (RTSP server killed)", fault, a, shortFor)
	if a.Labels["state"] != "reconnecting" {
		t.Errorf("SestreamSourceDown fired with state %q, want reconnecting (a live source retries)", a.Labels["state"])
	}
	if s.exited() {
		t.Errorf("sestream exited (%v) when its camera went away; it should keep reconnecting", s.err)
	}
}

// TestAlertNATSDisconnected runs sestream against Debian's nats-server and kills it: SestreamNATSDisconnected
// must fire, and resolve once the server is back.
func TestAlertNATSDisconnected(t *testing.T) {
	needPrometheus(t)
	nats := startNATSServer(t)
	s := startSestream(t, fmt.Sprintf(`streams:
  - name: cam
    url: %s
    loop: true
    realtime: true
    fps: 4
nats:
  url: %s
%s`, sampleVideo(t), nats.URL(), lightEngine))
	prom := startPrometheus(t, promSetup{
		Targets: sestreamTargets(t, s.Addr),
		For:     map[string]time.Duration{"SestreamNATSDisconnected": shortFor},
	})
	prom.waitQuery(`sestream_nats_connected == 1`, 60*time.Second, s.process)
	prom.waitQuery(`sestream_nats_published_messages_total > 0`, 30*time.Second, s.process)
	prom.requireQuiet("SestreamNATSDisconnected", nil)
	prom.ruleHealth()

	fault := time.Now()
	nats.kill()
	a := prom.waitFiring("SestreamNATSDisconnected", nil, 60*time.Second)
	logFiring(t, "SestreamNATSDisconnected (nats-server killed)", fault, a, shortFor)

	back := time.Now()
	nats.start()
	waitFor(t, "SestreamNATSDisconnected resolved", 60*time.Second, s.process, func() bool {
		return len(prom.alerts("SestreamNATSDisconnected", nil)) == 0
	})
	t.Logf("SestreamNATSDisconnected: nats-server back to alert resolved %v", time.Since(back).Round(100*time.Millisecond))
}

// TestAlertSestreamDown kills sestream itself: SestreamDown must fire.
func TestAlertSestreamDown(t *testing.T) {
	needPrometheus(t)
	s := startSestream(t, fmt.Sprintf(`streams:
  - name: cam
    url: %s
    loop: true
    realtime: true
    fps: 2
nats:
  embedded:
    listen: %s
%s`, sampleVideo(t), loopback(testfixtures.FreePort(t)), lightEngine))
	prom := startPrometheus(t, promSetup{
		Targets: sestreamTargets(t, s.Addr),
		For:     map[string]time.Duration{"SestreamDown": shortFor},
	})
	prom.waitQuery(`up{job="sestream"} == 1`, 30*time.Second, s.process)
	prom.requireQuiet("SestreamDown", nil)

	fault := time.Now()
	s.kill()
	a := prom.waitFiring("SestreamDown", nil, 60*time.Second)
	logFiring(t, "SestreamDown (sestream killed)", fault, a, shortFor)
}
