package deploy

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/testfixtures"
)

// tamperFPS is the frame rate of scripts/tamper_video.sh's videos.
const tamperFPS = 12

// tamperWindow is one labelled event window of tamper.mp4 (tamper.labels.csv).
type tamperWindow struct {
	Kind                  string
	FirstFrame, LastFrame int // inclusive, 0-based
}

// tamperVideos returns the directory holding scripts/tamper_video.sh's tamper.mp4, tamper.labels.csv and
// normal.mp4, made once into the user's cache (named after the script's and the sample's hash) and reused.
func tamperVideos(t *testing.T) string {
	t.Helper()
	if lookBinary("ffmpeg") == "" {
		t.Skip("skipping: ffmpeg is not installed (Debian package ffmpeg; scripts/setup.sh installs it)")
	}
	script := filepath.Join(root, "scripts", "tamper_video.sh")
	h := sha256.New()
	for _, f := range []string{script, filepath.Join(root, "samples", "fashion.mp4")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sestream-fixtures", "tamper-"+hex.EncodeToString(h.Sum(nil)[:6]))
	if _, err := os.Stat(filepath.Join(dir, "normal.mp4")); err == nil {
		return dir
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "tamper-making-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	if out, err := exec.Command("bash", script, tmp).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, tmp, err, out)
	}
	// Another test process may have made it meanwhile: then its copy stays.
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "normal.mp4")); serr != nil {
			t.Fatal(err)
		}
	}
	t.Logf("made the tamper videos into %s in %v", dir, time.Since(start).Round(time.Millisecond))
	return dir
}

func readTamperLabels(t *testing.T, path string) []tamperWindow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) < 2 || len(rows[0]) != 5 || rows[0][0] != "kind" || rows[0][3] != "first_frame" || rows[0][4] != "last_frame" {
		t.Fatalf("%s: header %v, want kind,start_s,end_s,first_frame,last_frame and at least one window", path, rows[:1])
	}
	var out []tamperWindow
	for _, r := range rows[1:] {
		first, err1 := strconv.Atoi(r[3])
		last, err2 := strconv.Atoi(r[4])
		if err1 != nil || err2 != nil || last < first {
			t.Fatalf("%s: bad row %v", path, r)
		}
		out = append(out, tamperWindow{r[0], first, last})
	}
	return out
}

// driftInterval is the scrape and evaluation interval of the drift tests. sestream reads the videos as fast
// as it can (realtime: false), some 40-75 times faster than a camera delivers them, so an alarm that lasts
// about 5 s of video lasts 70-130 ms: the interval is scaled down with the video's pace.
const driftInterval = 50 * time.Millisecond

// driftFallFrames is how long an alarm outlasts the change that raised it with the default attention.drift
// settings: window_frames + fall_frames (docs/attention.md).
const driftFallFrames = 24

// runDrift runs sestream on one stream of video under a Prometheus scraping every driftInterval that was
// scraping before sestream started. With until nil it waits for the stream to end (a file without loop); otherwise it
// stops sestream once until returns true, or fails after timeout.
func runDrift(t *testing.T, stream, video string, loop bool, timeout time.Duration, until func(*promServer) bool) *promServer {
	t.Helper()
	addr := loopback(testfixtures.FreePort(t))
	prom := startPrometheus(t, promSetup{Targets: sestreamTargets(t, addr), Interval: driftInterval})
	// Prometheus starts scraping a few seconds after it is ready (target discovery sends its first update
	// after a delay); sestream may finish the video sooner. Wait for the first, failed, scrape.
	prom.waitQuery(`up{job="sestream"}`, 30*time.Second, nil)
	s := startSestreamOn(t, addr, fmt.Sprintf(`streams:
  - name: %s
    url: %s
    realtime: false
    loop: %t
nats:
  embedded:
    listen: %s
%s`, stream, video, loop, loopback(testfixtures.FreePort(t)), lightEngine))
	start := time.Now()
	if until == nil {
		select {
		case <-s.done:
		case <-time.After(timeout):
			t.Fatalf("sestream did not finish %s within %v", video, timeout)
		}
		if s.err != nil {
			t.Fatalf("sestream on %s: %v", video, s.err)
		}
	} else {
		waitFor(t, "the end of the "+stream+" run", timeout, s.process, func() bool { return until(prom) })
		s.stop()
	}
	t.Logf("sestream ran %s (realtime: false, loop: %t) for %v", filepath.Base(video), loop, time.Since(start).Round(100*time.Millisecond))
	// One more evaluation, so that the last scrape's values reach the rules.
	time.Sleep(3 * driftInterval)
	return prom
}

// single returns the one series a selector matched, failing otherwise.
func single(t *testing.T, what string, m map[string][]point) []point {
	t.Helper()
	if len(m) != 1 {
		t.Fatalf("%s: %d series, want 1: %v", what, len(m), m)
	}
	for _, pts := range m {
		return pts
	}
	return nil
}

// lastValue is the value of the last point, or -1 when there is none.
func lastValue(pts []point) float64 {
	if len(pts) == 0 {
		return -1
	}
	return pts[len(pts)-1].Value
}

// TestAlertAttentionDrift runs the tamper video of scripts/tamper_video.sh through sestream, which must raise
// SestreamAttentionDrift in the tamper windows and nowhere else, and its normal video, looped past its end,
// which must raise none. The shipped rule has no `for:`; only the intervals are the test's.
func TestAlertAttentionDrift(t *testing.T) {
	needPrometheus(t)
	dir := tamperVideos(t)
	windows := readTamperLabels(t, filepath.Join(dir, "tamper.labels.csv"))

	t.Run("tamper", func(t *testing.T) {
		prom := runDrift(t, "tamper", filepath.Join(dir, "tamper.mp4"), false, 5*time.Minute, nil)
		processed := single(t, "frames processed", prom.series(`sestream_frames_processed_total{stream="tamper"}[15m]`))
		// sestream ends with the file, so the last scrape may miss its last frames, not the last window's.
		if n, last := lastValue(processed), windows[len(windows)-1]; n < float64(last.LastFrame+driftFallFrames) {
			t.Errorf("the last scrape saw %v frames of tamper.mp4 processed, want at least %d (the end of the %s window and its alarm)",
				n, last.LastFrame+driftFallFrames, last.Kind)
		}
		rises := lastValue(single(t, "drift events", prom.series(`sestream_attention_drift_events_total{stream="tamper"}[15m]`)))
		firing := prom.series(`ALERTS{alertname="SestreamAttentionDrift", alertstate="firing", stream="tamper"}[15m]`)
		var fired []point
		for _, pts := range firing {
			fired = append(fired, pts...)
		}
		sort.Slice(fired, func(i, j int) bool { return fired[i].At.Before(fired[j].At) })
		if len(fired) == 0 {
			t.Fatalf("SestreamAttentionDrift never fired on the tamper video (sestream counted %v alarm rises)", rises)
		}
		// frameAt is the processed count of the last scrape at or before at.
		frameAt := func(at time.Time) int {
			n := 0
			for _, p := range processed {
				if !p.At.After(at) {
					n = int(p.Value)
				}
			}
			return n
		}
		// faultAt brackets the moment frame f was processed: the last scrape before it and the first after.
		faultAt := func(f int) (before, after time.Time, ok bool) {
			for _, p := range processed {
				if int(p.Value) > f {
					return before, p.At, !before.IsZero()
				}
				before = p.At
			}
			return before, after, false
		}
		// A scrape's processed count runs ahead of the frame its alarm state is from by up to one scrape
		// interval's worth of frames.
		slack := 0
		for i := 1; i < len(processed); i++ {
			slack = max(slack, int(processed[i].Value-processed[i-1].Value))
		}
		inWindow := func(f int, w tamperWindow) bool {
			return f > w.FirstFrame && f <= w.LastFrame+driftFallFrames+slack
		}
		caught := 0
		for _, w := range windows {
			before, after, ok := faultAt(w.FirstFrame)
			if !ok {
				t.Errorf("window %s (frames %d-%d): no scrape saw it processed", w.Kind, w.FirstFrame, w.LastFrame)
				continue
			}
			var first *point
			for i := range fired {
				if inWindow(frameAt(fired[i].At), w) {
					first = &fired[i]
					break
				}
			}
			if first == nil {
				t.Logf("window %-11s frames %4d-%4d: no firing seen at %v scrapes", w.Kind, w.FirstFrame, w.LastFrame, driftInterval)
				continue
			}
			caught++
			frames := frameAt(first.At) - w.FirstFrame
			t.Logf("window %-11s frames %4d-%4d: SestreamAttentionDrift firing %v-%v after its first frame was processed, at most %d frames (%.2f s of video) into it",
				w.Kind, w.FirstFrame, w.LastFrame, first.At.Sub(after).Round(10*time.Millisecond), first.At.Sub(before).Round(10*time.Millisecond),
				frames, float64(frames)/tamperFPS)
		}
		t.Logf("sestream raised %v drift alarms; Prometheus saw SestreamAttentionDrift firing in %d of %d windows (at most %d frames processed between two scrapes)",
			rises, caught, len(windows), slack)
		// No firing outside the windows and the frames an alarm outlasts them by.
		for _, p := range fired {
			f := frameAt(p.At)
			inside := false
			for _, w := range windows {
				inside = inside || inWindow(f, w)
			}
			if !inside {
				t.Errorf("SestreamAttentionDrift fired at %s with %d frames processed, outside every tamper window", p.At.Format("15:04:05.000"), f)
			}
		}
		if caught == 0 {
			t.Error("SestreamAttentionDrift fired in no tamper window")
		}
	})

	t.Run("normal", func(t *testing.T) {
		// normal.mp4 is 4000 frames; a second pass runs over the loop's seam.
		const frames = 6000
		prom := runDrift(t, "normal", filepath.Join(dir, "normal.mp4"), true, 5*time.Minute, func(p *promServer) bool {
			return len(p.query(fmt.Sprintf(`sestream_frames_processed_total{stream="normal"} >= %d`, frames))) > 0
		})
		n := lastValue(single(t, "frames processed", prom.series(`sestream_frames_processed_total{stream="normal"}[15m]`)))
		if n < frames {
			t.Errorf("sestream processed %v frames, want at least %d", n, frames)
		}
		if got := prom.series(`ALERTS{alertname="SestreamAttentionDrift", stream="normal"}[15m]`); len(got) > 0 {
			t.Errorf("SestreamAttentionDrift was pending or firing on normal video: %v", got)
		}
		// The counter sees an alarm that rose and fell between two scrapes, too.
		if rises := lastValue(single(t, "drift events", prom.series(`sestream_attention_drift_events_total{stream="normal"}[15m]`))); rises != 0 {
			t.Errorf("sestream raised %v drift alarms on normal video, want 0", rises)
		}
		scrapes := 0
		for _, pts := range prom.series(`sestream_attention_drift_active{stream="normal"}[15m]`) {
			scrapes += len(pts)
			for _, p := range pts {
				if p.Value != 0 {
					t.Errorf("sestream_attention_drift_active was %v at %s", p.Value, p.At.Format("15:04:05.000"))
					break
				}
			}
		}
		if scrapes == 0 {
			t.Error("no scrape holds sestream_attention_drift_active for the stream")
		}
		if !t.Failed() {
			t.Logf("normal.mp4 looped: %v frames processed, no drift alarm, SestreamAttentionDrift never pending or firing (%d scrapes)", n, scrapes)
		}
	})
}
