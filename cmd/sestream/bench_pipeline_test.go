package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/engine"
)

// TestBenchPipeline runs `bench --pipeline --json` on the bundled model and a short generated video and checks
// that every number is present and positive. It makes no assertion on speed.
func TestBenchPipeline(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("skipping: ffmpeg is not installed (Debian package ffmpeg; scripts/setup.sh installs it)")
	}
	modelPath, err := sestream.FindBundled(sestream.BundledModel)
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(t.TempDir(), "testsrc2.mp4")
	gen := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-frames:v", "100",
		"-pix_fmt", "yuv420p", "-c:v", "libx264", video)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	profile := filepath.Join(t.TempDir(), "cpu.prof")
	args := []string{"bench", "--pipeline", "--model", modelPath, "--video", video, "--streams", "2", "--batch", "4",
		"--phase-time", "300ms", "--json", "--cpuprofile", profile}
	if code := execute(ctx, args, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	for _, key := range []string{"engine", "model", "video"} {
		if s, ok := got[key].(string); !ok || s == "" {
			t.Errorf("%s = %v, want a non-empty string", key, got[key])
		}
	}
	for _, key := range []string{"streams", "workers", "threads", "batch", "cores", "frames", "seconds", "frames_per_sec",
		"engine_images_per_sec", "engine_cores", "decode_frames_per_sec", "decode_cores", "preprocess_ms", "queue_ms",
		"inference_ms_per_frame", "cpu_ms_per_frame", "pipeline_cores", "limit_frames_per_sec", "fraction_of_limit",
		"parts_cpu_ms_per_frame", "cpu_efficiency", "batch_fill"} {
		if v, ok := got[key].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", key, got[key])
		}
	}
	stages, _ := got["stage_cpu_ms_per_frame"].(map[string]any)
	for _, key := range []string{"decode", "preprocess", "inference", "sink", "other"} {
		if _, ok := stages[key].(float64); !ok {
			t.Errorf("stage_cpu_ms_per_frame[%s] = %v, want a number", key, stages[key])
		}
	}
	for _, key := range []string{"decode", "preprocess", "inference"} {
		if v, _ := stages[key].(float64); v <= 0 {
			t.Errorf("stage_cpu_ms_per_frame[%s] = %v, want a positive number", key, stages[key])
		}
	}
	// Workers and threads were left to auto: the layout was measured, one trial per candidate thread count.
	if got["layout"] != "auto" {
		t.Errorf("layout = %v, want auto", got["layout"])
	}
	if trials, _ := got["layout_trials"].([]any); len(trials) != len(engine.AutoThreadCandidates(runtime.NumCPU())) {
		t.Errorf("layout_trials = %v, want one per candidate of %v", got["layout_trials"], engine.AutoThreadCandidates(runtime.NumCPU()))
	}
	if st, err := os.Stat(profile); err != nil {
		t.Errorf("--cpuprofile: %v", err)
	} else if st.Size() == 0 {
		t.Errorf("--cpuprofile %s is empty", profile)
	}
	if f, _ := got["frames"].(float64); f > 200 {
		t.Errorf("frames = %v, want at most the 2 x 100 frames of the video", f)
	}
}

// TestBenchPipelineFlags: bad --pipeline flags exit with code 2 and a message naming the flag.
func TestBenchPipelineFlags(t *testing.T) {
	modelPath, err := sestream.FindBundled(sestream.BundledModel)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := []string{"bench", "--pipeline", "--model", modelPath}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no video", base, "--video"},
		{"missing video", append(base[:4:4], "--video", filepath.Join(dir, "none.mp4")), "--video"},
		{"video is a directory", append(base[:4:4], "--video", dir), "--video"},
		{"streams 0", append(base[:4:4], "--video", modelPath, "--streams", "0"), "--streams"},
		{"workers -1", append(base[:4:4], "--video", modelPath, "--workers", "-1"), "--workers"},
		{"workers too many", append(base[:4:4], "--video", modelPath, "--workers", "65"), "--workers"},
		{"phase-time 0", append(base[:4:4], "--video", modelPath, "--phase-time", "0s"), "--phase-time"},
		{"batch 0", append(base[:4:4], "--video", modelPath, "--batch", "0"), "--batch"},
		{"threads -1", append(base[:4:4], "--video", modelPath, "--threads", "-1"), "--threads"},
		{"no-gates", append(base[:4:4], "--video", modelPath, "--no-gates"), "--no-gates"},
		{"video without pipeline", []string{"bench", "--model", modelPath, "--video", modelPath}, "--video"},
		{"streams without pipeline", []string{"bench", "--model", modelPath, "--streams", "2"}, "--streams"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := execute(context.Background(), c.args, &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit code %d, stderr %q; want %d and a message naming %s", code, stderr.String(), exitUsage, c.want)
			}
		})
	}
}
