package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostDaemon(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (scripts/setup.sh installs it)")
	}
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-frames:v", "15", "-pix_fmt", "yuv420p", clip)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-model", "../../engine/testdata/se_tiny_64x64.onnx", "-video", clip, "-no-nats"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 15 {
		t.Fatalf("got %d result lines, want 15:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "frame ") || !strings.Contains(l, "attention drift warming") {
			t.Fatalf("line %d: %q", i, l)
		}
	}
	if !strings.HasPrefix(lines[14], "frame 15:") {
		t.Fatalf("last line %q, want frame 15", lines[14])
	}
}
