package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/source"
	"github.com/spf13/pflag"
)

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sestream.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	cfg, err := Load(Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"batch.max_size", cfg.Batch.MaxSize, 8},
		{"batch.max_delay", cfg.Batch.MaxDelay, 10 * time.Millisecond},
		{"workers", cfg.Workers, 1},
		{"queue.size", cfg.Queue.Size, 16},
		{"queue.policy", cfg.Queue.Policy, "auto"},
		{"engine.backend", cfg.Engine.Backend, "auto"},
		{"engine.threads", cfg.Engine.Threads, 2},
		{"attention.top_k", cfg.Attention.TopK, 5},
		{"attention.drift.alpha", cfg.Attention.Drift.Alpha, 0.05},
		{"nats.url", cfg.NATS.URL, ""},
		{"nats.embedded.listen", cfg.NATS.Embedded.Listen, "127.0.0.1:4222"},
		{"nats.prefix", cfg.NATS.Prefix, "sestream"},
		{"http.listen", cfg.HTTP.Listen, "127.0.0.1:9090"},
		{"log.level", cfg.Log.Level, "info"},
		{"shutdown.drain_timeout", cfg.Shutdown.DrainTimeout, 10 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if len(cfg.Streams) != 0 {
		t.Errorf("streams = %v, want none (the demo stream is chosen by the runner)", cfg.Streams)
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	file := writeFile(t, `
batch:
  max_size: 4
  max_delay: 20ms
workers: 3
log:
  level: warn
streams:
  - name: cam1
    url: rtsp://127.0.0.1:8554/cam1
`)
	flags := pflag.NewFlagSet("run", pflag.ContinueOnError)
	flags.Int("batch-size", 0, "")
	flags.Int("workers", 0, "")
	flags.String("log-level", "", "")
	if err := flags.Parse([]string{"--workers=5"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Options{
		File:      file,
		Flags:     flags,
		FlagKeys:  map[string]string{"batch-size": "batch.max_size", "workers": "workers", "log-level": "log.level"},
		LookupEnv: envMap(map[string]string{"SESTREAM_WORKERS": "4", "SESTREAM_LOG_LEVEL": "debug", "SESTREAM_PREPROCESS_MEAN": "0.5, 0.25,0.125"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Batch.MaxSize != 4 {
		t.Errorf("batch.max_size = %d, want 4 from the file (flag not given must not override)", cfg.Batch.MaxSize)
	}
	if cfg.Batch.MaxDelay != 20*time.Millisecond {
		t.Errorf("batch.max_delay = %v, want 20ms from the file", cfg.Batch.MaxDelay)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want debug: env beats the file", cfg.Log.Level)
	}
	if cfg.Workers != 5 {
		t.Errorf("workers = %d, want 5: the flag beats env and file", cfg.Workers)
	}
	if got := cfg.Preprocess.Mean; len(got) != 3 || got[0] != 0.5 || got[1] != 0.25 || got[2] != 0.125 {
		t.Errorf("preprocess.mean from env = %v, want [0.5 0.25 0.125]", got)
	}
	if len(cfg.Streams) != 1 || cfg.Streams[0].Transport != "tcp" || cfg.Streams[0].Reconnect.Max != source.DefaultReconnectMax {
		t.Errorf("stream defaults not applied: %+v", cfg.Streams)
	}
}

func TestEveryInvalidFieldReported(t *testing.T) {
	file := writeFile(t, `
batch:
  max_size: 0
  max_delay: -1s
workers: 0
queue:
  policy: sometimes
engine:
  backend: tensorflow
attention:
  top_k: 0
  drift:
    alpha: 1.5
log:
  format: xml
streams:
  - name: "cam.1"
    url: ""
    fps: -2
  - name: "cam 2"
    url: /tmp/x.mp4
    transport: quic
  - name: "*"
    url: a
  - name: ">"
    url: b
  - name: ok
    url: c
  - name: ok
    url: d
nats:
  url: http://127.0.0.1:4222
  tls:
    cert: c.pem
`)
	_, err := Load(Options{File: file, LookupEnv: noEnv})
	cerr, ok := err.(*Error)
	if !ok {
		t.Fatalf("Load error = %T %v, want *config.Error", err, err)
	}
	want := []string{
		"batch.max_size", "batch.max_delay", "workers", "queue.policy", "engine.backend", "attention.top_k",
		"attention.drift.alpha", "log.format", "streams[0].name", "streams[0].url", "streams[0].fps",
		"streams[1].name", "streams[1].transport", "streams[2].name", "streams[3].name", "streams[5].name",
		"nats.url", "nats.tls.cert",
	}
	for _, key := range want {
		if !cerr.Has(key) {
			t.Errorf("no error reported for %s", key)
		}
	}
	if len(cerr.Fields) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(cerr.Fields), len(want), err)
	}
	for _, f := range cerr.Fields {
		if !strings.Contains(err.Error(), f.Key+": ") {
			t.Errorf("message does not name %s:\n%v", f.Key, err)
		}
	}
}

func TestUnknownKeysRejected(t *testing.T) {
	cases := []struct {
		name, yaml, key string
	}{
		{"typo nested", "batch:\n  max_szie: 4\n", "batch.max_szie"},
		{"unknown top level", "wrokers: 2\n", "wrokers"},
		{"unknown stream field", "streams:\n  - name: a\n    url: b\n    frame_rate: 5\n", "streams[0].frame_rate"},
		{"deep typo", "attention:\n  drift:\n    threshhold: 0.2\n", "attention.drift.threshhold"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(Options{File: writeFile(t, c.yaml), LookupEnv: noEnv})
			cerr, ok := err.(*Error)
			if !ok || !cerr.Has(c.key) {
				t.Fatalf("error = %v, want unknown key %s", err, c.key)
			}
		})
	}
}

func TestWrongTypesNamed(t *testing.T) {
	_, err := Load(Options{LookupEnv: envMap(map[string]string{"SESTREAM_BATCH_MAX_DELAY": "soon", "SESTREAM_WORKERS": "two"})})
	cerr, ok := err.(*Error)
	if !ok || !cerr.Has("batch.max_delay") || !cerr.Has("workers") {
		t.Fatalf("error = %v, want batch.max_delay and workers named", err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(Options{File: filepath.Join(t.TempDir(), "nope.yaml"), LookupEnv: noEnv})
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("error = %v, want it to name the missing file", err)
	}
}

func TestExampleConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found in ../configs (err %v)", err)
	}
	for _, f := range files {
		if _, err := Load(Options{File: f, LookupEnv: noEnv}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestEnvNames(t *testing.T) {
	if got := EnvName("nats.jetstream.max_pending"); got != "SESTREAM_NATS_JETSTREAM_MAX_PENDING" {
		t.Errorf("EnvName = %s", got)
	}
	for _, k := range Keys() {
		if strings.ContainsAny(k, " -") {
			t.Errorf("key %q has characters an env var name cannot carry", k)
		}
	}
}

func FuzzLoadYAML(f *testing.F) {
	for _, seed := range []string{
		"batch:\n  max_size: 4\n",
		"streams:\n  - name: a\n    url: b\n",
		"workers: [1, 2]\n",
		"nats: 3\n",
		": :\n",
		"attention:\n  drift:\n    alpha: .nan\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Options{File: path, LookupEnv: noEnv})
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Load accepted a config that does not validate: %v", verr)
			}
		}
	})
}

// TestDocsListEveryKey keeps docs/config.md true to the code: every key has a row.
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/config.md does not document %s", k)
		}
	}
	for _, k := range []string{"streams[].name", "streams[].url", "streams[].fps", "streams[].loop", "streams[].realtime", "streams[].transport",
		"streams[].policy", "streams[].reconnect.initial", "streams[].reconnect.max", "streams[].stall_timeout"} {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/config.md does not document %s", k)
		}
	}
}

// TestDriftRangesAreSes: config accepts exactly the drift settings that se accepts (a threshold of 1.5 once
// passed validation and then switched drift off at run time).
func TestDriftRangesAreSes(t *testing.T) {
	for _, tc := range []struct {
		key   string
		value string
	}{
		{"threshold", "1.5"}, {"threshold", "2"}, {"threshold", "1"}, {"threshold", "0.2"}, {"threshold", "0"},
		{"alpha", "0"}, {"alpha", "1"}, {"alpha", "1.01"}, {"hysteresis", "0.05"}, {"hysteresis", "0.5"},
	} {
		_, err := Load(Options{File: writeFile(t, "attention:\n  drift:\n    "+tc.key+": "+tc.value+"\n"), LookupEnv: noEnv})
		d := Default().Attention.Drift
		v, _ := strconv.ParseFloat(tc.value, 64)
		switch tc.key {
		case "threshold":
			d.Threshold = v
		case "alpha":
			d.Alpha = v
		case "hysteresis":
			d.Hysteresis = v
		}
		seErr := se.DriftConfig{Alpha: d.Alpha, Threshold: d.Threshold, Hysteresis: d.Hysteresis, Warmup: max(d.Warmup, 1), TopChanges: 5}.Validate()
		if (err == nil) != (seErr == nil) {
			t.Errorf("attention.drift.%s = %s: config says %v, se says %v", tc.key, tc.value, err, seErr)
		}
		if err != nil && !strings.Contains(err.Error(), "attention.drift."+tc.key) {
			t.Errorf("attention.drift.%s = %s: error does not name the key: %v", tc.key, tc.value, err)
		}
	}
}
