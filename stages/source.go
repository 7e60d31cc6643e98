package stages

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SourceKind says how a source URL is opened.
type SourceKind string

const (
	// KindFile is a video file read with OpenCV's FFmpeg backend. A path that turns out
	// to be a directory or an image file is read as KindImages instead.
	KindFile SourceKind = "file"
	// KindImages is a directory, a glob pattern or a single file of still images, read in
	// sorted name order.
	KindImages SourceKind = "images"
	// KindRTSP is an rtsp:// or rtsps:// camera stream (FFmpeg backend, TCP by default).
	KindRTSP SourceKind = "rtsp"
	// KindHTTP is an http:// or https:// stream that FFmpeg opens: MJPEG, HLS, a served file.
	KindHTTP SourceKind = "http"
	// KindNetwork is any other URL with a scheme FFmpeg may know (udp://, rtmp://, srt://).
	KindNetwork SourceKind = "network"
	// KindDevice is a V4L2 capture device: an index such as "0" or a path such as /dev/video0.
	KindDevice SourceKind = "device"
)

// Live reports whether the kind is a live source: live sources reconnect forever with
// backoff and are watched for stalls; files and images end.
func (k SourceKind) Live() bool {
	switch k {
	case KindRTSP, KindHTTP, KindNetwork, KindDevice:
		return true
	}
	return false
}

// SourceSpec is a parsed source URL.
type SourceSpec struct {
	Kind SourceKind
	// Target is what is opened: a path, a glob pattern, a URL, or a device path /dev/videoN.
	Target string
	// Device is the V4L2 device index for KindDevice.
	Device int
}

// ParseSource classifies a source URL without touching the file system or the network.
// A plain path is KindFile; Open decides later whether it is a directory or an image.
func ParseSource(raw string) (SourceSpec, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return SourceSpec{}, errors.New("source url is empty")
	}
	if s != raw {
		return SourceSpec{}, fmt.Errorf("source url %q has leading or trailing spaces", raw)
	}
	if strings.ContainsRune(s, 0) {
		return SourceSpec{}, fmt.Errorf("source url %q contains a NUL byte", raw)
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 4095 || strconv.Itoa(n) != s {
			return SourceSpec{}, fmt.Errorf("source %q: want a device index 0-4095 without sign or leading zeros", raw)
		}
		return SourceSpec{Kind: KindDevice, Target: "/dev/video" + s, Device: n}, nil
	}
	if rest, ok := strings.CutPrefix(s, "/dev/video"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n > 4095 || strconv.Itoa(n) != rest {
			return SourceSpec{}, fmt.Errorf("source %q: want a device path /dev/videoN", raw)
		}
		return SourceSpec{Kind: KindDevice, Target: s, Device: n}, nil
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok && isScheme(scheme) {
		u, err := url.Parse(s)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return SourceSpec{}, fmt.Errorf("source url %s: %w", redactURL(s), err)
		}
		switch strings.ToLower(u.Scheme) {
		case "file":
			if u.Host != "" && u.Host != "localhost" {
				return SourceSpec{}, fmt.Errorf("source url %s: file URLs must be local", s)
			}
			if u.Path == "" {
				return SourceSpec{}, fmt.Errorf("source url %s: no path", s)
			}
			return pathSpec(u.Path), nil
		case "rtsp", "rtsps":
			if u.Hostname() == "" {
				return SourceSpec{}, fmt.Errorf("source url %s: no host", redactURL(s))
			}
			return SourceSpec{Kind: KindRTSP, Target: s}, nil
		case "http", "https":
			if u.Hostname() == "" {
				return SourceSpec{}, fmt.Errorf("source url %s: no host", redactURL(s))
			}
			return SourceSpec{Kind: KindHTTP, Target: s}, nil
		}
		return SourceSpec{Kind: KindNetwork, Target: s}, nil
	}
	return pathSpec(s), nil
}

func pathSpec(p string) SourceSpec {
	if strings.ContainsAny(p, "*?[") {
		return SourceSpec{Kind: KindImages, Target: p}
	}
	return SourceSpec{Kind: KindFile, Target: p}
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

// redactURL hides the password of a URL so it can go into errors, logs and events.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		if u.User == nil {
			return s
		}
		return u.Redacted()
	}
	// Unparsable: hide whatever stands between "user:" and "@" in the authority.
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndexByte(authority, '@')
	colon := strings.IndexByte(authority, ':')
	if at < 0 || colon < 0 || colon > at {
		return s
	}
	start := len(s) - len(rest) + colon + 1
	return s[:start] + "xxxxx" + s[start+at-colon-1:]
}

// SourceOptions configure one capture stream. The zero value of every field but Name and
// URL means its documented default (see WithDefaults).
type SourceOptions struct {
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
func (o SourceOptions) WithDefaults() SourceOptions {
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
func (o SourceOptions) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("source %q: %s: %s", o.Name, field, fmt.Sprintf(format, args...)))
	}
	if o.Name == "" {
		bad("name", "is empty")
	}
	if _, err := ParseSource(o.URL); err != nil {
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

// Event kinds of SourceEvent.
const (
	// EventConnected: the first frame arrived from a source opened for the first time.
	EventConnected = "connected"
	// EventLost: a live source that was delivering stopped (read failure, end, or stall).
	EventLost = "lost"
	// EventReconnected: the first frame arrived after a loss; Outage says how long it took.
	EventReconnected = "reconnected"
	// EventEnded: a file or image folder reached its end (and does not loop).
	EventEnded = "ended"
	// EventError: an attempt to open failed, a file was bad, or images were skipped.
	// For live sources another attempt follows after RetryIn.
	EventError = "error"
)

// SourceEvent is a change of a source's state. It is sent on <prefix>.<stream>.event, so
// every field is JSON friendly; durations are in milliseconds in JSON.
type SourceEvent struct {
	// Stream is the stream's name.
	Stream string `json:"stream"`
	// Kind is one of connected, lost, reconnected, ended, error.
	Kind string `json:"kind"`
	// Time is the wall-clock time of the event.
	Time time.Time `json:"time"`
	// URL is the source URL with any password removed.
	URL string `json:"url"`
	// Attempt counts the open attempts since the source was last delivering (1 = first try).
	Attempt int `json:"attempt,omitempty"`
	// Outage is, for reconnected, the time from lost to the first new frame.
	Outage time.Duration `json:"-"`
	// OutageMS is Outage in milliseconds.
	OutageMS int64 `json:"outage_ms,omitempty"`
	// RetryIn is, for an error of a live source, the delay before the next attempt.
	RetryIn time.Duration `json:"-"`
	// RetryInMS is RetryIn in milliseconds.
	RetryInMS int64 `json:"retry_in_ms,omitempty"`
	// Frames is the number of frames the stream has delivered so far (its last sequence number).
	Frames uint64 `json:"frames"`
	// Skipped counts, for image sources, files skipped so far (not images or not decodable).
	Skipped int `json:"skipped,omitempty"`
	// Err says what went wrong, for lost and error.
	Err string `json:"error,omitempty"`
}

func (e SourceEvent) withMS() SourceEvent {
	e.OutageMS = e.Outage.Milliseconds()
	e.RetryInMS = e.RetryIn.Milliseconds()
	return e
}

// backoffDelay is the delay before open attempt number attempt+1 after attempt failures
// (attempt >= 1): initial doubled per failure, capped at maxDelay, then drawn from
// [d/2, d] by r in [0,1).
func backoffDelay(attempt int, initial, maxDelay time.Duration, r float64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	r = min(max(r, 0), 1)
	return d/2 + time.Duration(r*float64(d/2))
}

// imageExts are the file extensions read by image sources (lower case).
var imageExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".jpe": true, ".png": true, ".bmp": true, ".dib": true,
	".tif": true, ".tiff": true, ".webp": true, ".pbm": true, ".pgm": true, ".ppm": true,
	".pnm": true, ".pxm": true, ".jp2": true, ".sr": true, ".ras": true, ".hdr": true, ".pic": true,
}

func isImageName(name string) bool {
	return imageExts[strings.ToLower(filepath.Ext(name))]
}
