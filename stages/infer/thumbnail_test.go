package infer

import (
	"image/color"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/sestream/sestream/internal/matcheck"
	"github.com/sestream/sestream/pipeline"
)

func TestThumbnailer(t *testing.T) {
	matcheck.Check(t)
	if NewThumbnailer(ThumbnailOptions{}) != nil {
		t.Fatal("no sink: want a nil Thumbnailer")
	}
	var nilT *Thumbnailer
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 120, 200, 0), 360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	nilT.Offer(pipeline.FrameInfo{Stream: "a", Seq: 1}, frame) // a nil Thumbnailer does nothing

	var mu sync.Mutex
	var got []Thumbnail
	th := NewThumbnailer(ThumbnailOptions{Sink: func(t Thumbnail) { mu.Lock(); got = append(got, t); mu.Unlock() }, Interval: time.Second})
	now := time.Unix(1000, 0)
	th.now = func() time.Time { return now }
	for seq := uint64(1); seq <= 5; seq++ { // stream a: only the first of five frames within a second
		th.Offer(pipeline.FrameInfo{Stream: "a", Seq: seq}, frame)
		now = now.Add(100 * time.Millisecond)
	}
	th.Offer(pipeline.FrameInfo{Stream: "b", Seq: 1}, frame) // another stream has its own rate
	now = now.Add(time.Second)
	th.Offer(pipeline.FrameInfo{Stream: "a", Seq: 6}, frame)
	if len(got) != 3 || got[0].Seq != 1 || got[1].Stream != "b" || got[2].Seq != 6 {
		t.Fatalf("thumbnails %v, want a#1, b#1, a#6", got)
	}
	tn := got[0]
	if tn.Width != DefaultThumbnailWidth || tn.Height != 180 {
		t.Fatalf("thumbnail %dx%d, want 320x180 (aspect ratio kept)", tn.Width, tn.Height)
	}
	img, err := gocv.IMDecode(tn.JPEG, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Cols() != 320 || img.Rows() != 180 {
		t.Fatalf("decoded %dx%d", img.Cols(), img.Rows())
	}
	v := img.GetVecbAt(90, 160)
	if c := (color.RGBA{R: v[2], G: v[1], B: v[0]}); absDiff(c.R, 200) > 8 || absDiff(c.G, 120) > 8 || absDiff(c.B, 40) > 8 {
		t.Fatalf("decoded colour %v, want about (200,120,40)", c)
	}
	if th.Failed() != 0 {
		t.Fatalf("Failed() = %d", th.Failed())
	}

}

func absDiff(a, b uint8) uint8 {
	if a > b {
		return a - b
	}
	return b - a
}

func BenchmarkThumbnailerSkip(b *testing.B) {
	th := NewThumbnailer(ThumbnailOptions{Sink: func(Thumbnail) {}, Interval: time.Hour})
	frame := gocv.NewMatWithSize(360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	info := pipeline.FrameInfo{Stream: "a", Seq: 1}
	th.Offer(info, frame)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		th.Offer(info, frame)
	}
}

func BenchmarkThumbnailEncode(b *testing.B) {
	th := NewThumbnailer(ThumbnailOptions{Sink: func(Thumbnail) {}})
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 120, 200, 0), 360, 640, gocv.MatTypeCV8UC3)
	defer frame.Close()
	info := pipeline.FrameInfo{Stream: "a", Seq: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := th.encode(info, frame); err != nil {
			b.Fatal(err)
		}
	}
}
