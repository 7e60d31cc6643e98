package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(1000, 0)
	r := &Limiter{Every: time.Second, Now: func() time.Time { return now }}
	for i := 0; i < 5; i++ {
		r.Warn(l, "publishing failed", "i", i)
		now = now.Add(100 * time.Millisecond)
	}
	now = now.Add(time.Second)
	r.Warn(l, "publishing failed", "i", 5)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "repeated") || !strings.Contains(lines[1], "repeated=4") {
		t.Errorf("lines do not count what was held back:\n%s", buf.String())
	}
}
