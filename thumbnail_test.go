package sestream

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/message"
)

// TestThumbnailsAndOnConnect: with a thumbnail sink, every stream gets JPEG thumbnails of its frames at most
// once per interval; OnConnect receives the publishing connection, and a subscription on it sees the
// pipeline's own messages.
func TestThumbnailsAndOnConnect(t *testing.T) {
	srv := startNATS(t)
	cfg := testConfig(t, srv.ClientURL(), config.Stream{Name: "a", URL: BundledSample}, config.Stream{Name: "b", URL: BundledSample})
	var mu sync.Mutex
	thumbs := map[string][]Thumbnail{}
	var subscribed int
	var seen int
	opts := Options{
		Thumbnails: ThumbnailOptions{Interval: time.Hour, Width: 64, Sink: func(th Thumbnail) {
			mu.Lock()
			thumbs[th.Stream] = append(thumbs[th.Stream], th)
			mu.Unlock()
		}},
		OnConnect: func(nc *nats.Conn) {
			mu.Lock()
			subscribed++
			mu.Unlock()
			if _, err := nc.Subscribe(message.AllSubjects(message.DefaultPrefix), func(*nats.Msg) {
				mu.Lock()
				seen++
				mu.Unlock()
			}); err != nil {
				t.Error(err)
			}
		},
	}
	p, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if subscribed != 1 || seen == 0 {
		t.Fatalf("OnConnect called %d times, %d messages seen on its subscription", subscribed, seen)
	}
	for _, s := range []string{"a", "b"} {
		th := thumbs[s]
		if len(th) != 1 { // one per hour
			t.Fatalf("stream %s: %d thumbnails, want 1", s, len(th))
		}
		if th[0].Width != 64 || th[0].Height != 36 || !bytes.HasPrefix(th[0].JPEG, []byte{0xff, 0xd8}) || th[0].Seq == 0 {
			t.Fatalf("stream %s: thumbnail %dx%d seq %d, %d bytes", s, th[0].Width, th[0].Height, th[0].Seq, len(th[0].JPEG))
		}
	}
}
