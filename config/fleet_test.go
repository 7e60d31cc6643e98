package config

import (
	"strings"
	"testing"
	"time"
)

// TestParseStreams: a fleet's desired stream list is read by the rules of the streams section, defaults
// applied, every bad field named under the list's own key path.
func TestParseStreams(t *testing.T) {
	got, err := ParseStreams("fleet streams", []byte(`[{"name": "a", "url": "x.mp4", "loop": true}, {"name": "b", "url": "rtsp://cam/live", "fps": 5}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || !got[0].Loop || got[1].FPS != 5 || got[1].Transport != "tcp" || got[1].StallTimeout == 0 {
		t.Fatalf("parsed %+v", got)
	}
	bad := []struct{ name, data, want string }{
		{"not a list", `{"name": "a"}`, "fleet streams: must be a list of streams"},
		{"not YAML", "[: :", "fleet streams: is not a YAML or JSON list"},
		{"unknown key", `[{"name": "a", "url": "x.mp4", "lopo": true}]`, "fleet streams[0].lopo: unknown key"},
		{"bad name", `[{"name": "a.b", "url": "x.mp4"}]`, "fleet streams[0].name: stream name \"a.b\" contains a dot"},
		{"duplicate", `[{"name": "a", "url": "x.mp4"}, {"name": "a", "url": "y.mp4"}]`, "fleet streams[1].name: stream name \"a\" is also used by fleet streams[0]"},
		{"no url", `[{"name": "a"}]`, "fleet streams[0].url: is empty"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStreams("fleet streams", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestFleetValidation: the fleet section is checked by key path, and only when enabled does it need NATS
// servers and a sound lease timing.
func TestFleetValidation(t *testing.T) {
	cases := []struct {
		name, body string
		key, want  string
	}{
		{"no nats url", "fleet:\n  enabled: true\n", "fleet.enabled", "needs nats.url"},
		{"renew too slow", "nats:\n  url: nats://127.0.0.1:4222\nfleet:\n  enabled: true\n  lease_ttl: 3s\n  renew_interval: 2s\n", "fleet.renew_interval", "at most a third of fleet.lease_ttl"},
		{"bad name", "nats:\n  url: nats://127.0.0.1:4222\nfleet:\n  enabled: true\n  name: a.b\n", "fleet.name", "contains a dot"},
		{"replicas", "fleet:\n  replicas: 7\n", "fleet.replicas", "must be within 1..5, got 7"},
		{"zero ttl", "nats:\n  url: nats://127.0.0.1:4222\nfleet:\n  enabled: true\n  lease_ttl: 0s\n", "fleet.lease_ttl", "must be a positive duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(Options{File: writeFile(t, tc.body), LookupEnv: noEnv})
			e, ok := err.(*Error)
			if !ok || !e.Has(tc.key) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %s: ...%s...", err, tc.key, tc.want)
			}
		})
	}
	cfg, err := Load(Options{File: writeFile(t, "nats:\n  url: nats://127.0.0.1:4222\nfleet:\n  enabled: true\n  name: site1\n"), LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Fleet; f.BucketName() != "sestream_fleet_site1" || f.LeaseTTL != 15*time.Second || f.RenewInterval != 2*time.Second {
		t.Fatalf("fleet defaults: %+v (bucket %s)", f, f.BucketName())
	}
}
