package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/pipeline"
)

var parseSourceCases = []struct {
	url    string
	kind   SourceKind
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
}

func TestParseSource(t *testing.T) {
	for _, tc := range parseSourceCases {
		t.Run(tc.url, func(t *testing.T) {
			spec, err := ParseSource(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseSource(%q) = %+v, %v; want error containing %q", tc.url, spec, err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSource(%q): %v", tc.url, err)
			}
			if spec.Kind != tc.kind || spec.Target != tc.target || spec.Device != tc.device {
				t.Fatalf("ParseSource(%q) = %+v, want kind %s target %q device %d", tc.url, spec, tc.kind, tc.target, tc.device)
			}
		})
	}
}

func FuzzParseSource(f *testing.F) {
	for _, tc := range parseSourceCases {
		f.Add(tc.url)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		spec, err := ParseSource(raw)
		if err != nil {
			if spec != (SourceSpec{}) {
				t.Fatalf("error %v with a spec %+v", err, spec)
			}
			return
		}
		if spec.Target == "" || spec.Kind == "" {
			t.Fatalf("ParseSource(%q) = %+v", raw, spec)
		}
		if spec.Kind == KindDevice && spec.Target != fmt.Sprint("/dev/video", spec.Device) {
			t.Fatalf("device spec %+v", spec)
		}
		if spec.Kind.Live() != (spec.Kind != KindFile && spec.Kind != KindImages) {
			t.Fatalf("kind %s live %v", spec.Kind, spec.Kind.Live())
		}
	})
}

func TestSourceOptionsValidate(t *testing.T) {
	ok := SourceOptions{Name: "cam", URL: "clip.mp4"}
	for _, tc := range []struct {
		name string
		opts SourceOptions
		want []string
	}{
		{"minimal", ok, nil},
		{"udp", SourceOptions{Name: "cam", URL: "rtsp://cam/x", Transport: "udp", FPS: 5}, nil},
		{"everything wrong", SourceOptions{URL: "", FPS: -1, Transport: "quic", StallTimeout: -time.Second},
			[]string{"name: is empty", "url: source url is empty", "fps: -1", `transport: "quic"`, "stall_timeout: -1s"}},
		{"nan fps", SourceOptions{Name: "cam", URL: "x.mp4", FPS: math.NaN()}, []string{"fps: NaN"}},
		{"max below initial", SourceOptions{Name: "cam", URL: "x.mp4", ReconnectInitial: time.Second, ReconnectMax: time.Millisecond},
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
	d := SourceOptions{}.WithDefaults()
	if d.Transport != "tcp" || d.ReconnectInitial != DefaultReconnectInitial || d.ReconnectMax != DefaultReconnectMax ||
		d.StallTimeout != DefaultStallTimeout || d.OpenTimeout != DefaultOpenTimeout || d.AbandonWait != DefaultAbandonWait {
		t.Fatalf("defaults %+v", d)
	}
}

func TestSourceEventJSON(t *testing.T) {
	e := SourceEvent{Stream: "cam", Kind: EventReconnected, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		URL: "rtsp://cam/x", Attempt: 3, Outage: 1500 * time.Millisecond, Frames: 42}.withMS()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"stream":"cam","kind":"reconnected","time":"2026-01-02T03:04:05Z","url":"rtsp://cam/x","attempt":3,"outage_ms":1500,"frames":42}`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
}

func TestFFmpegCaptureOptions(t *testing.T) {
	for _, tc := range []struct {
		opts SourceOptions
		want string
	}{
		{SourceOptions{}, "rtsp_transport;tcp|timeout;10000000"},
		{SourceOptions{Transport: "udp", StallTimeout: 3 * time.Second}, "rtsp_transport;udp|timeout;3000000"},
	} {
		if got := ffmpegCaptureOptions(tc.opts); got != tc.want {
			t.Errorf("ffmpegCaptureOptions(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
}

func TestRedactedURLInEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := pipeline.NewQueue[Frame]("cam", 1, pipeline.DropOldest, DiscardFrame)
	ev := &collected{}
	src := &Source{Options: SourceOptions{Name: "cam", URL: "rtsp://admin:hunter2@127.0.0.1:1/x", ReconnectInitial: time.Hour},
		Open: func(context.Context, SourceSpec, SourceOptions) (FrameReader, error) {
			defer cancel()
			return nil, fmt.Errorf("refused")
		}}
	if err := src.Run(ctx, q, ev.event); err != nil {
		t.Fatal(err)
	}
	for _, e := range ev.events {
		if strings.Contains(e.URL, "hunter2") || !strings.Contains(e.URL, "admin") {
			t.Fatalf("event URL %q", e.URL)
		}
	}
}

// ExampleRunSource reads a folder of images into a queue and preprocesses each frame into
// its slot of a batch tensor.
func ExampleRunSource() {
	dir := filepath.Join("testdata", "preprocess")
	q := pipeline.NewQueue[Frame]("folder", 2, pipeline.Block, DiscardFrame)
	var events []string // appended by RunSource's goroutine; read after q is closed
	go RunSource(context.Background(), SourceOptions{Name: "folder", URL: filepath.Join(dir, "*.png")}, q, func(e SourceEvent) {
		events = append(events, fmt.Sprint(e.Kind, " after ", e.Frames, " frames"))
	})
	p, err := NewPreprocessor(PreprocessOptions{Width: 32, Height: 24, Resize: ResizeLetterbox})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	batch := make([]float32, 2*p.TensorLen()) // NCHW, N = 2
	for f := range q.C() {
		slot := batch[0:p.TensorLen()]
		tr, err := p.Into(slot, f.Mat)
		DiscardFrame(f)
		if err != nil {
			fmt.Println(err)
			continue
		}
		x, y := tr.ToSource(16, 12)
		fmt.Printf("frame %d %dx%d: tensor centre is source (%.1f, %.1f)\n", f.Info.Seq, f.Info.Width, f.Info.Height, x, y)
	}
	fmt.Println(strings.Join(events, ", "))
	// Output:
	// frame 1 101x67: tensor centre is source (50.5, 35.1)
	// connected after 1 frames, ended after 1 frames
}
