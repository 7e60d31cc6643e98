package source

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
)

// Kind says how a source URL is opened.
type Kind string

const (
	// KindFile is a video file read with OpenCV's FFmpeg backend. A path that turns out
	// to be a directory or an image file is read as KindImages instead.
	KindFile Kind = "file"
	// KindImages is a directory, a glob pattern or a single file of still images, read in
	// sorted name order.
	KindImages Kind = "images"
	// KindRTSP is an rtsp:// or rtsps:// camera stream (FFmpeg backend, TCP by default).
	KindRTSP Kind = "rtsp"
	// KindHTTP is an http:// or https:// stream that FFmpeg opens: MJPEG, HLS, a served file.
	KindHTTP Kind = "http"
	// KindNetwork is a URL of one of the other FFmpeg network protocols in NetworkSchemes (udp://, rtp://,
	// srt://, rtmp://, rtmps://, tcp://).
	KindNetwork Kind = "network"
	// KindDevice is a V4L2 capture device: an index such as "0" or a path such as /dev/video0.
	KindDevice Kind = "device"
)

// Live reports whether the kind is a live source: live sources reconnect forever with
// backoff and are watched for stalls; files and images end.
func (k Kind) Live() bool {
	switch k {
	case KindRTSP, KindHTTP, KindNetwork, KindDevice:
		return true
	}
	return false
}

// Spec is a parsed source URL.
type Spec struct {
	Kind Kind
	// Target is what is opened: a path, a glob pattern, a URL, or a device path /dev/videoN.
	Target string
	// Device is the V4L2 device index for KindDevice.
	Device int
}

// ParseSource classifies a source URL without touching the file system or the network.
// A plain path is KindFile; Open decides later whether it is a directory or an image.
func Parse(raw string) (Spec, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return Spec{}, errors.New("source url is empty")
	}
	if s != raw {
		return Spec{}, fmt.Errorf("source url %q has leading or trailing spaces", raw)
	}
	if strings.ContainsRune(s, 0) {
		return Spec{}, fmt.Errorf("source url %q contains a NUL byte", raw)
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 4095 || strconv.Itoa(n) != s {
			return Spec{}, fmt.Errorf("source %q: want a device index 0-4095 without sign or leading zeros", raw)
		}
		return Spec{Kind: KindDevice, Target: "/dev/video" + s, Device: n}, nil
	}
	if rest, ok := strings.CutPrefix(s, "/dev/video"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n > 4095 || strconv.Itoa(n) != rest {
			return Spec{}, fmt.Errorf("source %q: want a device path /dev/videoN", raw)
		}
		return Spec{Kind: KindDevice, Target: s, Device: n}, nil
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok && isScheme(scheme) {
		u, err := url.Parse(s)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return Spec{}, fmt.Errorf("source url %s: %w", redact.URL(s), err)
		}
		switch strings.ToLower(u.Scheme) {
		case "file":
			if u.Host != "" && u.Host != "localhost" {
				return Spec{}, fmt.Errorf("source url %s: file URLs must be local", s)
			}
			if u.Path == "" {
				return Spec{}, fmt.Errorf("source url %s: no path", s)
			}
			return pathSpec(u.Path), nil
		case "rtsp", "rtsps":
			if u.Hostname() == "" {
				return Spec{}, fmt.Errorf("source url %s: no host", redact.URL(s))
			}
			return Spec{Kind: KindRTSP, Target: s}, nil
		case "http", "https":
			if u.Hostname() == "" {
				return Spec{}, fmt.Errorf("source url %s: no host", redact.URL(s))
			}
			return Spec{Kind: KindHTTP, Target: s}, nil
		}
		if slices.Contains(NetworkSchemes(), strings.ToLower(u.Scheme)) {
			if u.Host == "" {
				return Spec{}, fmt.Errorf("source url %s: no host", redact.URL(s))
			}
			return Spec{Kind: KindNetwork, Target: s}, nil
		}
		return Spec{}, fmt.Errorf("source url %s: unknown scheme %q; sestream reads %s:// URLs, file paths, devices and image directories",
			redact.URL(s), u.Scheme, strings.Join(Schemes(), ":// "))
	}
	return pathSpec(s), nil
}

// Schemes lists every URL scheme Parse accepts, in the order error messages name them.
func Schemes() []string {
	return append([]string{"file", "rtsp", "rtsps", "http", "https"}, NetworkSchemes()...)
}

// NetworkSchemes lists the schemes of the other FFmpeg network protocols a source may use (KindNetwork).
// FFmpeg knows more (its "ffmpeg -protocols"); only these live video transports are accepted, so that a typo
// or a protocol that reads local resources (concat:, pipe:, data:) is refused when the configuration is read.
func NetworkSchemes() []string {
	return []string{"udp", "rtp", "srt", "rtmp", "rtmps", "tcp"}
}

func pathSpec(p string) Spec {
	if strings.ContainsAny(p, "*?[") {
		return Spec{Kind: KindImages, Target: p}
	}
	return Spec{Kind: KindFile, Target: p}
}

// isScheme reports whether s is a URL scheme per RFC 3986 (and not a Windows drive letter).
func isScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// Options configure one capture stream. The zero value of every field but Name and
// URL means its documented default (see WithDefaults).
type Options struct {
	// Name is the stream's name: it labels frames and events.
	Name string
	// URL is the source: a video file path or file:// URL, a directory or glob of images,
	// rtsp(s)://, http(s)://, another FFmpeg URL, or a V4L2 device ("0", "/dev/video0").
	URL string
	// FPS takes frames evenly at this rate (frames per second) from the source's timeline:
	// the first frame of every 1/FPS slot is kept. 0 keeps every frame. For image folders,
	// which have no timeline, FPS > 0 paces delivery at that rate instead (nothing is skipped).
	FPS float64
	// Loop restarts a file (or image folder) at its end instead of ending the stream.
	Loop bool
	// Realtime paces a file to its own timeline, as a camera would deliver it. Default false:
	// files are read as fast as the pipeline takes them.
	Realtime bool
	// Transport is the RTSP transport, "tcp" (default) or "udp".
	Transport string
	// ReconnectInitial is the first delay before reopening a failed live source (default
	// 500ms); each further failed attempt doubles it up to ReconnectMax (default 30s).
	// Each delay is drawn uniformly from [d/2, d] (jitter) so cameras do not retry in step.
	ReconnectInitial, ReconnectMax time.Duration
	// StallTimeout is how long a live source may go without delivering a frame before it is
	// abandoned and reopened (default 10s). It is also given to FFmpeg as its socket timeout.
	StallTimeout time.Duration
	// OpenTimeout bounds opening a live source (default 20s).
	OpenTimeout time.Duration
	// AbandonWait is how long Run waits, when it returns, for reads that the stall watchdog
	// abandoned to come back from C (default 15s). See docs/sources.md.
	AbandonWait time.Duration
}

// Source option defaults.
const (
	DefaultReconnectInitial = 500 * time.Millisecond
	DefaultReconnectMax     = 30 * time.Second
	DefaultStallTimeout     = 10 * time.Second
	DefaultOpenTimeout      = 20 * time.Second
	DefaultAbandonWait      = 15 * time.Second
	DefaultTransport        = "tcp"
)

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.Transport == "" {
		o.Transport = DefaultTransport
	}
	if o.ReconnectInitial == 0 {
		o.ReconnectInitial = DefaultReconnectInitial
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = max(DefaultReconnectMax, o.ReconnectInitial)
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.OpenTimeout == 0 {
		o.OpenTimeout = DefaultOpenTimeout
	}
	if o.AbandonWait == 0 {
		o.AbandonWait = DefaultAbandonWait
	}
	return o
}

// Validate reports every invalid field of o, each named by its field.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("source %q: %s: %s", o.Name, field, fmt.Sprintf(format, args...)))
	}
	if o.Name == "" {
		bad("name", "is empty")
	}
	if _, err := Parse(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("source %q: url: %w", o.Name, err))
	}
	if math.IsNaN(o.FPS) || math.IsInf(o.FPS, 0) || o.FPS < 0 {
		bad("fps", "%v is not a rate >= 0", o.FPS)
	}
	switch o.Transport {
	case "", "tcp", "udp":
	default:
		bad("transport", "%q is not tcp or udp", o.Transport)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"reconnect_initial", o.ReconnectInitial}, {"reconnect_max", o.ReconnectMax},
		{"stall_timeout", o.StallTimeout}, {"open_timeout", o.OpenTimeout}, {"abandon_wait", o.AbandonWait},
	} {
		if d.v < 0 {
			bad(d.field, "%v is negative", d.v)
		}
	}
	if o.ReconnectMax > 0 && o.ReconnectMax < o.ReconnectInitial {
		bad("reconnect_max", "%v is less than reconnect_initial %v", o.ReconnectMax, o.ReconnectInitial)
	}
	return errors.Join(errs...)
}

// Event is a change of a source's state, as capture reports it. The sink turns it into a message.Event.
type Event struct {
	// Stream is the stream's name.
	Stream string
	// Kind is one of message.EventConnected, EventLost, EventReconnected, EventEnded, EventError.
	Kind message.EventKind
	// Time is the wall-clock time of the event.
	Time time.Time
	// URL is the source URL with any password removed.
	URL string
	// Attempt counts the open attempts since the source was last delivering (1 = first try).
	Attempt int
	// Outage is, for reconnected, the time from lost to the first new frame.
	Outage time.Duration
	// RetryIn is, for an error of a live source, the delay before the next attempt.
	RetryIn time.Duration
	// Frames is the number of frames the stream has delivered so far (its last sequence number).
	Frames uint64
	// Skipped counts, for image sources, files skipped so far (not images or not decodable).
	Skipped int
	// Err says what went wrong, for lost and error.
	Err string
}

// State is a stream's source state, as status messages and metrics report it.
type State string

// Source states.
const (
	StateStarting     State = "starting"     // configured, no frame yet
	StateRunning      State = "running"      // delivering frames
	StateReconnecting State = "reconnecting" // a live source lost or failing, retrying with backoff
	StateEnded        State = "ended"        // a file or folder reached its end
	StateFailed       State = "failed"       // stopped for good (a file that cannot be read)
	StateStopped      State = "stopped"      // stopped at run time (a fleet moved it to another instance or removed it)
)

// States lists every state, in the order metrics export them.
var States = [...]State{StateStarting, StateRunning, StateReconnecting, StateEnded, StateFailed}

// StateAfter is the state a stream is in after an event of kind e, for a source of kind k.
func StateAfter(e message.EventKind, k Kind) State {
	switch e {
	case message.EventLost:
		return StateReconnecting
	case message.EventEnded:
		return StateEnded
	case message.EventError:
		if k.Live() {
			return StateReconnecting
		}
		return StateFailed
	}
	return StateRunning
}
