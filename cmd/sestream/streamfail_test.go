package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePNG writes a small picture, a frame for an image-folder stream.
func writePNG(t *testing.T, path string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	img.Set(0, 0, color.White)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunStreamFailuresExitCode: when every stream fails for good without a frame, sestream run exits 1 with
// one line naming each stream and its error; one failing stream beside a working one, or a stream that
// ends, is not a process failure.
func TestRunStreamFailuresExitCode(t *testing.T) {
	tiny := filepath.Join(engineTestdata, "se_tiny_64x64.onnx")
	random := make([]byte, 4096)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		streams []string // NAME=URL; $DIR is the test's temporary directory
		code    int
		line    []string // each must be on the last line of stderr ("" when the exit code is 0)
	}{
		{"missing file", []string{"a=$DIR/none.mp4"}, exitFailure,
			[]string{"sestream: every stream failed", "stream a: file $DIR/none.mp4: source not found"}},
		{"zero-byte file", []string{"a=$DIR/zero.mp4"}, exitFailure,
			[]string{"sestream: every stream failed", "stream a: file $DIR/zero.mp4: OpenCV cannot open it as video"}},
		{"random bytes", []string{"a=$DIR/random.mp4"}, exitFailure,
			[]string{"stream a: file $DIR/random.mp4: OpenCV cannot open it as video"}},
		{"empty folder", []string{"a=$DIR/empty"}, exitFailure,
			[]string{"stream a: images $DIR/empty: no image files"}},
		{"glob matching nothing", []string{"a=$DIR/none-*.png"}, exitFailure,
			[]string{"stream a: images $DIR/none-*.png: no image files"}},
		{"/etc/passwd as a video", []string{"a=/etc/passwd"}, exitFailure,
			[]string{"stream a: file /etc/passwd: OpenCV cannot open it as video"}},
		{"two streams fail", []string{"a=$DIR/none.mp4", "b=$DIR/zero.mp4"}, exitFailure,
			[]string{"sestream: every stream failed", "stream a: file $DIR/none.mp4: source not found; stream b: file $DIR/zero.mp4"}},
		{"one fails, one works", []string{"a=$DIR/none.mp4", "b=$DIR/frames"}, exitOK, nil},
		{"folder read to its end", []string{"b=$DIR/frames"}, exitOK, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			expand := func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
			for name, data := range map[string][]byte{"zero.mp4": nil, "random.mp4": random} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
				t.Fatal(err)
			}
			writePNG(t, filepath.Join(dir, "frames", "a.png"))
			writePNG(t, filepath.Join(dir, "frames", "b.png"))
			args := []string{"run", "--model", tiny, "--http", "", "--nats-listen", "127.0.0.1:0"}
			for _, s := range tc.streams {
				args = append(args, "--stream", expand(s))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out, errOut bytes.Buffer
			start := time.Now()
			code := execute(ctx, args, &out, &errOut)
			lines := strings.Split(strings.TrimRight(errOut.String(), "\n"), "\n")
			last := lines[len(lines)-1]
			t.Logf("exit %d after %v; last line: %s", code, time.Since(start).Round(time.Millisecond), last)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.code, clipOutput(errOut.String()))
			}
			for _, w := range tc.line {
				if !strings.Contains(last, expand(w)) {
					t.Errorf("last line of stderr does not contain %q: %s", expand(w), last)
				}
			}
			if tc.code == exitOK && strings.Contains(errOut.String(), "every stream failed") {
				t.Errorf("exit 0 but stderr reports every stream failed:\n%s", clipOutput(errOut.String()))
			}
		})
	}
}
