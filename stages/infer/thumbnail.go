package infer

import (
	"fmt"
	"image"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/sestream/sestream/pipeline"
)

// Defaults of ThumbnailOptions.
const (
	// DefaultThumbnailInterval is the shortest time between two thumbnails of one stream: 2 per second.
	DefaultThumbnailInterval = 500 * time.Millisecond
	// DefaultThumbnailWidth is the width of a thumbnail in pixels; the height keeps the frame's aspect ratio.
	DefaultThumbnailWidth = 320
	// DefaultThumbnailQuality is the JPEG quality (1-100).
	DefaultThumbnailQuality = 70
)

// Thumbnail is a small JPEG copy of one frame, for a live view of the stream.
type Thumbnail struct {
	// Stream, Seq and Captured identify the frame (see pipeline.FrameInfo).
	Stream   string
	Seq      uint64
	Captured time.Time
	// Width and Height are the thumbnail's size in pixels.
	Width, Height int
	// JPEG is the encoded image; it belongs to the receiver.
	JPEG []byte
}

// ThumbnailOptions configure thumbnails. The zero value makes none.
type ThumbnailOptions struct {
	// Sink receives every thumbnail. It is called from inference worker goroutines, while the batch waits:
	// it must return at once (store or hand off, never block). nil makes no thumbnails.
	Sink func(Thumbnail)
	// Interval is the shortest time between two thumbnails of one stream (0: DefaultThumbnailInterval).
	Interval time.Duration
	// Width is the thumbnail width in pixels (0: DefaultThumbnailWidth); frames narrower than that keep their size.
	Width int
	// Quality is the JPEG quality, 1-100 (0: DefaultThumbnailQuality).
	Quality int
}

// Thumbnailer makes rate-limited thumbnails of frames for every worker of a pipeline. A nil *Thumbnailer
// makes none and costs one comparison per frame. It is safe for concurrent use.
type Thumbnailer struct {
	opts   ThumbnailOptions
	now    func() time.Time
	failed atomic.Uint64 // frames whose thumbnail could not be encoded

	mu   sync.Mutex           // guards last
	last map[string]time.Time // stream -> when its last thumbnail was taken
}

// NewThumbnailer returns a Thumbnailer, or nil when o.Sink is nil.
func NewThumbnailer(o ThumbnailOptions) *Thumbnailer {
	if o.Sink == nil {
		return nil
	}
	if o.Interval <= 0 {
		o.Interval = DefaultThumbnailInterval
	}
	if o.Width <= 0 {
		o.Width = DefaultThumbnailWidth
	}
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = DefaultThumbnailQuality
	}
	return &Thumbnailer{opts: o, now: time.Now, last: map[string]time.Time{}}
}

// due reports whether stream may have a thumbnail now, and if so counts it as taken.
func (t *Thumbnailer) due(stream string) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[stream]; ok && now.Sub(last) < t.opts.Interval {
		return false
	}
	t.last[stream] = now
	return true
}

// Failed counts the frames whose thumbnail could not be encoded.
func (t *Thumbnailer) Failed() uint64 { return t.failed.Load() }

// Offer makes a thumbnail of m (8-bit BGR, not retained) when the frame's stream is due for one, and hands
// it to the sink. A frame that cannot be encoded is counted by Failed; the frame itself is not affected.
func (t *Thumbnailer) Offer(info pipeline.FrameInfo, m gocv.Mat) {
	if t == nil || m.Empty() || !t.due(info.Stream) {
		return
	}
	if err := t.encode(info, m); err != nil {
		t.failed.Add(1)
	}
}

func (t *Thumbnailer) encode(info pipeline.FrameInfo, m gocv.Mat) error {
	src := m
	w, h := m.Cols(), m.Rows()
	if w > t.opts.Width {
		h = max(1, h*t.opts.Width/w)
		w = t.opts.Width
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(m, &small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
		src = small
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, t.opts.Quality})
	if err != nil {
		return fmt.Errorf("thumbnail of stream %s frame %d: %w", info.Stream, info.Seq, err)
	}
	jpeg := append([]byte(nil), buf.GetBytes()...)
	buf.Close()
	t.opts.Sink(Thumbnail{Stream: info.Stream, Seq: info.Seq, Captured: info.Captured, Width: w, Height: h, JPEG: jpeg})
	return nil
}
