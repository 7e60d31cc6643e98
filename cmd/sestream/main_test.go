package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badConfig, []byte("batch:\n  max_szie: 3\nworkers: -1\n"), 0o644)
	notModel := filepath.Join(dir, "notes.onnx")
	os.WriteFile(notModel, []byte("this is text, not a model"), 0o644)
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"version", []string{"version"}, exitOK, []string{"sestream "}},
		{"help", []string{"run", "--help"}, exitOK, []string{"built-in demo"}},
		{"unknown command", []string{"frobnicate"}, exitUsage, []string{"unknown command"}},
		{"unknown flag", []string{"run", "--bogus"}, exitUsage, []string{"unknown flag"}},
		{"bad config", []string{"run", "--config", badConfig}, exitUsage, []string{"batch.max_szie: unknown key", "workers: must be within 0..64 (0 = auto), got -1"}},
		{"missing config", []string{"run", "--config", filepath.Join(dir, "none.yaml")}, exitUsage, []string{"none.yaml"}},
		{"not a model", []string{"run", "--model", notModel, "--stream", "a=x.mp4"}, exitUsage, []string{"model.path", "notes.onnx"}},
		{"bad stream flag", []string{"run", "--stream", "no-equals-sign"}, exitUsage, []string{"NAME=URL"}},
		{"bad stream name", []string{"run", "--stream", "cam>1=x.mp4"}, exitUsage, []string{"streams[0].name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := execute(context.Background(), c.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != c.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, c.code, all)
			}
			for _, s := range c.contains {
				if !strings.Contains(all, s) {
					t.Errorf("output does not contain %q:\n%s", s, all)
				}
			}
		})
	}
}
