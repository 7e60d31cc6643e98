package source

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/message"
)

var parseSourceCases = []struct {
	url    string
	kind   Kind
	target string
	device int
	err    string
}{
	{"clip.mp4", KindFile, "clip.mp4", 0, ""},
	{"/data/videos/a b.mkv", KindFile, "/data/videos/a b.mkv", 0, ""},
	{"file:///data/clip.mp4", KindFile, "/data/clip.mp4", 0, ""},
	{"file://localhost/data/clip.mp4", KindFile, "/data/clip.mp4", 0, ""},
	{"/data/frames/*.jpg", KindImages, "/data/frames/*.jpg", 0, ""},
	{"frames/img_[0-9].png", KindImages, "frames/img_[0-9].png", 0, ""},
	{"rtsp://cam1.local:554/stream1", KindRTSP, "rtsp://cam1.local:554/stream1", 0, ""},
	{"RTSP://10.0.0.5/live", KindRTSP, "RTSP://10.0.0.5/live", 0, ""},
	{"rtsps://user:secret@cam/x", KindRTSP, "rtsps://user:secret@cam/x", 0, ""},
	{"http://cam/mjpg/video.mjpg", KindHTTP, "http://cam/mjpg/video.mjpg", 0, ""},
	{"https://example.org/live/index.m3u8", KindHTTP, "https://example.org/live/index.m3u8", 0, ""},
	{"udp://239.0.0.1:1234", KindNetwork, "udp://239.0.0.1:1234", 0, ""},
	{"0", KindDevice, "/dev/video0", 0, ""},
	{"12", KindDevice, "/dev/video12", 12, ""},
	{"/dev/video3", KindDevice, "/dev/video3", 3, ""},
	{"C://x", KindFile, "C://x", 0, ""},
	{"", "", "", 0, "empty"},
	{" clip.mp4", "", "", 0, "spaces"},
	{"-1", "", "", 0, "want a device index"},
	{"007", "", "", 0, "want a device index"},
	{"99999", "", "", 0, "want a device index"},
	{"/dev/videoX", "", "", 0, "want a device path"},
	{"/dev/video01", "", "", 0, "want a device path"},
	{"rtsp:///nohost", "", "", 0, "no host"},
	{"http://", "", "", 0, "no host"},
	{"file://otherhost/x.mp4", "", "", 0, "must be local"},
	{"rtsp://user:secret@cam:bad/x", "", "", 0, "rtsp://user:xxxxx@cam:bad/x"},
	{"SRT://10.0.0.7:9000?mode=caller", KindNetwork, "SRT://10.0.0.7:9000?mode=caller", 0, ""},
	{"rtmp://live.example/app/key", KindNetwork, "rtmp://live.example/app/key", 0, ""},
	{"rtp://239.0.0.2:5004", KindNetwork, "rtp://239.0.0.2:5004", 0, ""},
	{"tcp://10.0.0.8:5000", KindNetwork, "tcp://10.0.0.8:5000", 0, ""},
	{"udp://@:1234", KindNetwork, "udp://@:1234", 0, ""},
	{"foo://x", "", "", 0, `unknown scheme "foo"; sestream reads file:// rtsp:// rtsps:// http:// https:// udp:// rtp:// srt:// rtmp:// rtmps:// tcp:// URLs`},
	{"rstp://cam1/live", "", "", 0, `unknown scheme "rstp"`},
	{"ftp://user:secret@host/clip.mp4", "", "", 0, "ftp://user:xxxxx@host/clip.mp4: unknown scheme"},
	{"udp://", "", "", 0, "no host"},
}

// TestSchemesAreParsed: every scheme Schemes lists is one Parse accepts.
func TestSchemesAreParsed(t *testing.T) {
	for _, s := range Schemes() {
		host := "host"
		if s == "file" {
			host = "localhost"
		}
		if _, err := Parse(s + "://" + host + "/x"); err != nil {
			t.Errorf("Schemes lists %s, but Parse refuses it: %v", s, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseSourceCases {
		t.Run(tc.url, func(t *testing.T) {
			spec, err := Parse(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %+v, %v; want error containing %q", tc.url, spec, err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.url, err)
			}
			if spec.Kind != tc.kind || spec.Target != tc.target || spec.Device != tc.device {
				t.Fatalf("Parse(%q) = %+v, want kind %s target %q device %d", tc.url, spec, tc.kind, tc.target, tc.device)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseSourceCases {
		f.Add(tc.url)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		spec, err := Parse(raw)
		if err != nil {
			if spec != (Spec{}) {
				t.Fatalf("error %v with a spec %+v", err, spec)
			}
			return
		}
		if spec.Target == "" || spec.Kind == "" {
			t.Fatalf("Parse(%q) = %+v", raw, spec)
		}
		if spec.Kind == KindDevice && spec.Target != fmt.Sprint("/dev/video", spec.Device) {
			t.Fatalf("device spec %+v", spec)
		}
		if spec.Kind.Live() != (spec.Kind != KindFile && spec.Kind != KindImages) {
			t.Fatalf("kind %s live %v", spec.Kind, spec.Kind.Live())
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	ok := Options{Name: "cam", URL: "clip.mp4"}
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"minimal", ok, nil},
		{"udp", Options{Name: "cam", URL: "rtsp://cam/x", Transport: "udp", FPS: 5}, nil},
		{"everything wrong", Options{URL: "", FPS: -1, Transport: "quic", StallTimeout: -time.Second},
			[]string{"name: is empty", "url: source url is empty", "fps: -1", `transport: "quic"`, "stall_timeout: -1s"}},
		{"nan fps", Options{Name: "cam", URL: "x.mp4", FPS: math.NaN()}, []string{"fps: NaN"}},
		{"max below initial", Options{Name: "cam", URL: "x.mp4", ReconnectInitial: time.Second, ReconnectMax: time.Millisecond},
			[]string{"reconnect_max: 1ms is less than reconnect_initial 1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.WithDefaults().Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	d := Options{}.WithDefaults()
	if d.Transport != "tcp" || d.ReconnectInitial != DefaultReconnectInitial || d.ReconnectMax != DefaultReconnectMax ||
		d.StallTimeout != DefaultStallTimeout || d.OpenTimeout != DefaultOpenTimeout || d.AbandonWait != DefaultAbandonWait {
		t.Fatalf("defaults %+v", d)
	}
}

func TestStateAfter(t *testing.T) {
	for _, tc := range []struct {
		event message.EventKind
		kind  Kind
		want  State
	}{
		{message.EventConnected, KindFile, StateRunning},
		{message.EventReconnected, KindRTSP, StateRunning},
		{message.EventLost, KindRTSP, StateReconnecting},
		{message.EventEnded, KindFile, StateEnded},
		{message.EventError, KindFile, StateFailed},
		{message.EventError, KindImages, StateFailed},
		{message.EventError, KindRTSP, StateReconnecting},
		{message.EventError, KindDevice, StateReconnecting},
	} {
		if got := StateAfter(tc.event, tc.kind); got != tc.want {
			t.Errorf("StateAfter(%s, %s) = %s, want %s", tc.event, tc.kind, got, tc.want)
		}
	}
}
