package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/stages/source"
	"gocv.io/x/gocv"
)

// FrameReader reads decoded frames from one opened source. It is used by one goroutine.
type FrameReader interface {
	// Read decodes the next frame into m (8-bit BGR, or as decoded), reusing m's memory when
	// it can. It returns the frame's position on the source's timeline when known.
	// At the end of the source it returns io.EOF. An error wrapping ErrFrameSkipped means
	// this read produced no frame but the source goes on (the error says what was skipped).
	Read(m *gocv.Mat) (pts time.Duration, hasPTS bool, err error)
	// Close releases the source. Read must not be called after it.
	Close() error
}

// Opener opens a source. It may block (in C) for as long as the source takes to answer.
type Opener func(ctx context.Context, spec source.Spec, opts source.Options) (FrameReader, error)

// ErrFrameSkipped marks a read that produced no frame while the source goes on.
var ErrFrameSkipped = errors.New("frame skipped")

// ErrSourceNotFound marks a file, directory or device that does not exist.
var ErrSourceNotFound = errors.New("source not found")

// OpenSource is the Opener of real sources: video files, RTSP/HTTP/other FFmpeg URLs and
// V4L2 devices through gocv VideoCapture, and image folders through gocv IMRead.
func OpenSource(ctx context.Context, spec source.Spec, opts source.Options) (FrameReader, error) {
	switch spec.Kind {
	case source.KindImages:
		return openImages(spec.Target, opts.FPS)
	case source.KindFile:
		st, err := os.Stat(spec.Target)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("file %s: %w", spec.Target, ErrSourceNotFound)
			}
			return nil, fmt.Errorf("file %s: %w", spec.Target, err)
		}
		if st.IsDir() || isImageName(spec.Target) {
			return openImages(spec.Target, opts.FPS)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("file %s: not a regular file", spec.Target)
		}
		return openCapture(spec, func() (*gocv.VideoCapture, error) {
			return gocv.VideoCaptureFileWithAPI(spec.Target, gocv.VideoCaptureFFmpeg)
		}, "file "+spec.Target, true)
	case source.KindRTSP, source.KindHTTP, source.KindNetwork:
		name := redact.URL(spec.Target)
		if err := resolveHost(ctx, spec.Target); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return openCapture(spec, func() (*gocv.VideoCapture, error) {
			release := ffmpegEnv.apply(opts)
			defer release()
			return gocv.VideoCaptureFileWithAPI(spec.Target, gocv.VideoCaptureFFmpeg)
		}, name, true)
	case source.KindDevice:
		if _, err := os.Stat(spec.Target); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("device %s: %w", spec.Target, ErrSourceNotFound)
			}
			return nil, fmt.Errorf("device %s: %w", spec.Target, err)
		}
		return openCapture(spec, func() (*gocv.VideoCapture, error) {
			return gocv.VideoCaptureDeviceWithAPI(spec.Device, gocv.VideoCaptureV4L2)
		}, "device "+spec.Target, false)
	}
	return nil, fmt.Errorf("source %s: unknown kind %q", redact.URL(spec.Target), spec.Kind)
}

// resolveHost looks the URL's host up so that a name that does not resolve is reported
// as such, before OpenCV would only say that it could not open the stream.
func resolveHost(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		return fmt.Errorf("host %q does not resolve: %w", host, err)
	}
	return nil
}

// videoReader reads a gocv VideoCapture.
type videoReader struct {
	vc      *gocv.VideoCapture
	name    string
	withPTS bool
	live    bool
	// total is the container's frame count (files only; 0 when unknown), read the frames read.
	total, read int
	// period is the nominal frame duration (0 when unknown); last the last PTS returned.
	period time.Duration
	last   time.Duration
}

func openCapture(spec source.Spec, open func() (*gocv.VideoCapture, error), name string, withPTS bool) (FrameReader, error) {
	vc, err := open()
	if err != nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		what := "OpenCV cannot open it"
		switch spec.Kind {
		case source.KindFile:
			what += " as video (not a video, unsupported codec, or truncated)"
		case source.KindDevice:
			what += " as a V4L2 capture device"
		default:
			what += " (unreachable, refused, wrong path, or unsupported stream)"
		}
		return nil, fmt.Errorf("%s: %s", name, what)
	}
	r := &videoReader{vc: vc, name: name, withPTS: withPTS, live: spec.Kind.Live()}
	if fps := vc.Get(gocv.VideoCaptureFPS); fps > 0 && fps < 1000 {
		r.period = time.Duration(float64(time.Second) / fps)
	}
	if spec.Kind == source.KindFile {
		if n := vc.Get(gocv.VideoCaptureFrameCount); n > 0 && n < 1e9 {
			r.total = int(n)
		}
	}
	return r, nil
}

func (r *videoReader) Read(m *gocv.Mat) (time.Duration, bool, error) {
	if !r.vc.Read(m) || m.Empty() {
		if r.total > 0 && r.read+1 < r.total {
			return 0, false, fmt.Errorf("%s ended after %d of %d frames: %w", r.name, r.read, r.total, errTruncated)
		}
		if r.live {
			return 0, false, fmt.Errorf("%s: read failed after %d frames (connection closed or stream ended): %w", r.name, r.read, io.EOF)
		}
		return 0, false, io.EOF
	}
	r.read++
	if !r.withPTS {
		return 0, false, nil
	}
	ms := r.vc.Get(gocv.VideoCapturePosMsec)
	if ms < 0 || ms != ms {
		return 0, false, nil
	}
	pts := time.Duration(ms*1000+0.5) * time.Microsecond
	if r.read > 1 && pts <= r.last {
		// OpenCV 4.6 reports position 0 for the frames drained from the decoder at the end
		// of a file: continue the timeline at the nominal rate instead.
		if r.period == 0 {
			return 0, false, nil
		}
		pts = r.last + r.period
	}
	r.last = pts
	return pts, true, nil
}

func (r *videoReader) Close() error { return r.vc.Close() }

// errTruncated marks a file that ended before its container said it would.
var errTruncated = errors.New("file is truncated or corrupt")

// imageReader reads a sorted list of image files.
type imageReader struct {
	files []string
	next  int
	// delivered counts the images read so far; with fps it sets their PTS.
	delivered int
	// notImages lists names skipped because they are not images; reported by the first Read.
	notImages []string
	fps       float64
}

func openImages(target string, fps float64) (FrameReader, error) {
	var names []string
	var notImages []string
	if strings.ContainsAny(target, "*?[") {
		m, err := filepath.Glob(target)
		if err != nil {
			return nil, fmt.Errorf("image glob %s: %w", target, err)
		}
		names = m
	} else {
		st, err := os.Stat(target)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("images %s: %w", target, ErrSourceNotFound)
			}
			return nil, fmt.Errorf("images %s: %w", target, err)
		}
		if !st.IsDir() {
			names = []string{target}
		} else {
			ents, err := os.ReadDir(target)
			if err != nil {
				return nil, fmt.Errorf("image directory %s: %w", target, err)
			}
			for _, e := range ents {
				if !e.Type().IsDir() {
					names = append(names, filepath.Join(target, e.Name()))
				}
			}
		}
	}
	sort.Strings(names)
	r := &imageReader{fps: fps}
	for _, n := range names {
		if isImageName(n) {
			r.files = append(r.files, n)
		} else if st, err := os.Stat(n); err == nil && !st.IsDir() {
			notImages = append(notImages, filepath.Base(n))
		}
	}
	if len(r.files) == 0 {
		return nil, fmt.Errorf("images %s: no image files (%d other files)", target, len(notImages))
	}
	r.notImages = notImages
	return r, nil
}

func (r *imageReader) Read(m *gocv.Mat) (time.Duration, bool, error) {
	if len(r.notImages) > 0 {
		n := r.notImages
		r.notImages = nil
		shown := n
		if len(shown) > 5 {
			shown = shown[:5]
		}
		return 0, false, &skipError{n: len(n), err: fmt.Errorf("skipped %d files that are not images (%s): %w",
			len(n), strings.Join(shown, ", "), ErrFrameSkipped)}
	}
	if r.next >= len(r.files) {
		return 0, false, io.EOF
	}
	i := r.next
	r.next++
	img := gocv.IMRead(r.files[i], gocv.IMReadColor)
	if img.Empty() {
		img.Close()
		return 0, false, &skipError{n: 1, err: fmt.Errorf("image %s cannot be decoded: %w", r.files[i], ErrFrameSkipped)}
	}
	m.Close()
	*m = img
	r.delivered++
	if r.fps > 0 {
		return time.Duration(float64(r.delivered-1) / r.fps * float64(time.Second)), true, nil
	}
	return 0, false, nil
}

func (r *imageReader) Close() error { return nil }

// skipError is an ErrFrameSkipped error that counts skipped files.
type skipError struct {
	n   int
	err error
}

func (e *skipError) Error() string { return e.err.Error() }
func (e *skipError) Unwrap() error { return e.err }

// ffmpegEnv guards OPENCV_FFMPEG_CAPTURE_OPTIONS. OpenCV reads that environment variable,
// which is process-global, when a capture is opened; it carries the RTSP transport and the
// socket timeout. sestream sets it for each network open while holding this lock, so
// concurrent opens of streams with different options do not see each other's value. When
// the variable was already set in the process environment before the first open, that
// value is used for every stream and the stream options do not change it.
var ffmpegEnv = &ffmpegOptions{}

type ffmpegOptions struct {
	mu       sync.Mutex
	once     sync.Once
	userSet  bool
	userOpts string
}

const ffmpegOptionsEnv = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

// ffmpegCaptureOptions is the value of OPENCV_FFMPEG_CAPTURE_OPTIONS for opts: pairs
// "key;value" joined by "|". timeout is FFmpeg's socket timeout in microseconds: twice the stall
// timeout, so that the watchdog reports a stall first. With the two equal, a frozen server raced
// them: each socket timeout let the decoder hand out one more buffered frame, which restarted the
// watchdog, and the loss came several stall timeouts late as a failed read.
func ffmpegCaptureOptions(opts source.Options) string {
	transport := opts.Transport
	if transport == "" {
		transport = source.DefaultTransport
	}
	stall := opts.StallTimeout
	if stall <= 0 {
		stall = source.DefaultStallTimeout
	}
	return "rtsp_transport;" + transport + "|timeout;" + strconv.FormatInt(2*stall.Microseconds(), 10)
}

// apply sets the variable for opts and returns the function that releases the lock.
func (f *ffmpegOptions) apply(opts source.Options) (release func()) {
	f.once.Do(func() {
		f.userOpts, f.userSet = os.LookupEnv(ffmpegOptionsEnv)
	})
	f.mu.Lock()
	if !f.userSet {
		os.Setenv(ffmpegOptionsEnv, ffmpegCaptureOptions(opts))
	}
	return f.mu.Unlock
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
