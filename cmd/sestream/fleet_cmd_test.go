package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFleetCommandErrors: bad flags and bad stream lists are usage errors (exit 2) naming what is wrong,
// checked before anything is written; an unreachable server is a runtime failure (exit 1).
func TestFleetCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("- {name: cam.1, url: x.mp4}\n"), 0o644)
	notList := filepath.Join(dir, "map.yaml")
	os.WriteFile(notList, []byte("name: a\nurl: x.mp4\n"), 0o644)
	badConfig := filepath.Join(dir, "config.yaml")
	os.WriteFile(badConfig, []byte("workers: 2\nstreams:\n  - {name: a, url: x.mp4, lopo: true}\n"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad fleet name", []string{"fleet", "status", "--fleet", "a.b"}, exitUsage, "--fleet: name \"a.b\" contains a dot"},
		{"bad url", []string{"fleet", "status", "--nats", "http://x:4222"}, exitUsage, "--nats"},
		{"missing list file", []string{"fleet", "streams", "--set", filepath.Join(dir, "none.yaml")}, exitUsage, "--set"},
		{"bad stream name", []string{"fleet", "streams", "--set", bad}, exitUsage, bad + "[0].name: stream name \"cam.1\" contains a dot"},
		{"not a list", []string{"fleet", "streams", "--set", notList}, exitUsage, "must be a list of streams"},
		{"config file with a bad stream", []string{"fleet", "streams", "--set", badConfig}, exitUsage, "streams[0].lopo: unknown key"},
		{"set and clear", []string{"fleet", "streams", "--set", bad, "--clear"}, exitUsage, "--set and --clear"},
		{"no server", []string{"fleet", "status", "--nats", "nats://127.0.0.1:1"}, exitFailure, "nats server nats://127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := execute(context.Background(), tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, want %d; stderr does not contain %q:\n%s", code, tc.code, tc.want, errOut.String())
			}
		})
	}
}
