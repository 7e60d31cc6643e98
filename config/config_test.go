package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
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
		{"workers", cfg.Workers, 0},
		{"queue.size", cfg.Queue.Size, 16},
		{"queue.policy", cfg.Queue.Policy, "auto"},
		{"engine.backend", cfg.Engine.Backend, "auto"},
		{"engine.threads", cfg.Engine.Threads, 0},
		{"attention.top_k", cfg.Attention.TopK, 5},
		{"attention.drift.frame_quantile", cfg.Attention.Drift.FrameQuantile, 0.95},
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
workers: -1
queue:
  policy: sometimes
engine:
  backend: tensorflow
attention:
  top_k: 0
  drift:
    frame_quantile: 1.5
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
		"attention.drift.frame_quantile", "log.format", "streams[0].name", "streams[0].url", "streams[0].fps",
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
		"attention:\n  drift:\n    frame_quantile: .nan\n",
	} {
		f.Add(seed)
	}
	for _, tc := range badConfigCases {
		if tc.yaml != "" && len(tc.yaml) < 4096 {
			f.Add(tc.yaml)
		}
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

// TestDriftRangesAreSes: config accepts exactly the drift settings that se accepts, for every drift key at and
// beyond both ends of se's range (a drift threshold of 1.5 once passed config's validation and then switched
// drift off at run time, because config and se each had their own range).
func TestDriftRangesAreSes(t *testing.T) {
	for _, r := range se.MonitorRanges() {
		for _, v := range []float64{r.Min, r.Max, r.Min - 1, r.Max * 2, (r.Min + r.Max) / 2} {
			if r.Integer {
				v = math.Round(v)
			}
			value := strconv.FormatFloat(v, 'f', -1, 64)
			_, err := Load(Options{File: writeFile(t, "attention:\n  drift:\n    "+r.Name+": "+value+"\n"), LookupEnv: noEnv})
			mc := se.DefaultMonitorConfig()
			seErr := mc.FieldErrors()[r.Name]
			if seErr == nil {
				d := Default().Attention.Drift
				fields := map[string]any{}
				_ = fields
				if cerr := setDriftField(&d, r.Name, v); cerr != nil {
					t.Fatal(cerr)
				}
				seErr = d.Monitor().FieldErrors()[r.Name]
			}
			if (err == nil) != (seErr == nil) {
				t.Errorf("attention.drift.%s = %s: config says %v, se says %v", r.Name, value, err, seErr)
			}
			if err != nil && !strings.Contains(err.Error(), "attention.drift."+r.Name) {
				t.Errorf("attention.drift.%s = %s: error does not name the key: %v", r.Name, value, err)
			}
		}
	}
}

// setDriftField sets the Drift field whose key is name, through the same mapstructure tags Load uses.
func setDriftField(d *Drift, name string, v float64) error {
	rv := reflect.ValueOf(d).Elem()
	for i := range rv.NumField() {
		if rv.Type().Field(i).Tag.Get("mapstructure") != name {
			continue
		}
		switch f := rv.Field(i); f.Kind() {
		case reflect.Int:
			f.SetInt(int64(v))
		case reflect.Float64:
			f.SetFloat(v)
		default:
			return fmt.Errorf("drift field %s is %s", name, f.Kind())
		}
		return nil
	}
	return fmt.Errorf("no drift field %s", name)
}

// badConfigCases are configurations that must be refused with a *Error naming the key (or the variable or
// file) at fault; the sestream command exits with code 2 on them (cmd/sestream tests that). FuzzLoadYAML is
// seeded from them.
var badConfigCases = []struct {
	name string
	yaml string            // the file; "" reads none
	env  map[string]string // the environment, also listed by Environ
	key  string            // Error.Has(key)
	want string            // in the message
}{
	{"queue too large", "queue:\n  size: 2000000000\n", nil, "queue.size", "queue.size: must be within 1..1024, got 2000000000"},
	{"threads too many", "engine:\n  threads: 100000\n", nil, "engine.threads", "engine.threads: must be within 0..256 (0 = auto), got 100000"},
	{"threads negative", "engine:\n  threads: -1\n", nil, "engine.threads", "must be within 0..256"},
	{"batch too large", "batch:\n  max_size: 1025\n", nil, "batch.max_size", "batch.max_size: must be within 1..1024, got 1025"},
	{"workers too many", "workers: 65\n", nil, "workers", "workers: must be within 0..64 (0 = auto), got 65"},
	{"buffer too large", "nats:\n  buffer: 1048577\n", nil, "nats.buffer", "nats.buffer: must be within 1..1048576, got 1048577"},
	{"max pending too large", "nats:\n  jetstream:\n    enabled: true\n    max_pending: 65537\n", nil, "nats.jetstream.max_pending", "must be within 1..65536, got 65537"},
	{"top_k too large", "attention:\n  top_k: 4097\n", nil, "attention.top_k", "attention.top_k: must be within 1..4096, got 4097"},
	{"top_k negative", "attention:\n  top_k: -3\n", nil, "attention.top_k", "attention.top_k: must be within 1..4096, got -3"},
	{"warmup too long", "attention:\n  drift:\n    warmup_frames: 1000001\n", nil, "attention.drift.warmup_frames", "must be within 10..1000000"},
	{"width too large", "preprocess:\n  width: 8193\n", nil, "preprocess.width", "preprocess.width: must be within 0..8192 (0 = from the model), got 8193"},
	{"height too large", "preprocess:\n  height: 100000\n", nil, "preprocess.height", "preprocess.height: must be within 0..8192"},
	{"too many streams", manyStreams(MaxStreams + 1), nil, "streams", "streams: has 257 streams, at most 256 are allowed"},
	{"overflow", "queue:\n  size: 99999999999999999999999\n", nil, "queue.size", "queue.size: 99999999999999999999999 is out of range; must be within 1..1024"},
	{"negative overflow", "workers: -99999999999999999999999\n", nil, "workers", "workers: -99999999999999999999999 is out of range; must be within 0..64 (0 = auto)"},
	{"uint64 wraps", "nats:\n  buffer: 18446744073709551615\n", nil, "nats.buffer", "nats.buffer: 18446744073709551615 is out of range"},
	{"overflow without bound", "streams:\n  - name: a\n    url: x.mp4\nattention:\n  drift:\n    warmup_frames: 1e30\n", nil, "attention.drift.warmup_frames", "1e30 is out of range"},
	{"fraction", "queue:\n  size: 2.5\n", nil, "queue.size", "queue.size: 2.5 is not a whole number"},
	{"overflow from env", "", map[string]string{"SESTREAM_QUEUE_SIZE": "99999999999999999999999"}, "queue.size", "99999999999999999999999"},
	{"streams as a map", "streams:\n  name: cam1\n  url: x.mp4\n", nil, "streams", `streams: must be a list (each entry starts with "- ", e.g. "- name: cam1"), got a mapping at line 2`},
	{"streams as a map of names", "streams:\n  cam1: rtsp://cam/1\n", nil, "streams", "streams: must be a list"},
	{"streams as a scalar", "streams: rtsp://cam/1\n", nil, "streams", `streams: must be a list (each entry starts with "- ", e.g. "- name: cam1"), got "rtsp://cam/1" at line 1`},
	{"mean as a map", "preprocess:\n  mean: {r: 0.5}\n", nil, "preprocess.mean", "preprocess.mean: must be a list, got a mapping"},
	{"second document", "workers: 2\n---\nworkers: 3\n", nil, "--config", "holds more than one YAML document (the second starts at line 2)"},
	{"second document that does not parse", "workers: 2\n---\n: : [\n", nil, "--config", "holds more than one YAML document (the second does not parse"},
	{"env typo", "", map[string]string{"SESTREAM_BATCH_MAX_SZIE": "4"}, "SESTREAM_BATCH_MAX_SZIE", "SESTREAM_BATCH_MAX_SZIE: environment variable names no configuration key; did you mean SESTREAM_BATCH_MAX_SIZE?"},
	{"env unknown", "", map[string]string{"SESTREAM_COLOUR": "red"}, "SESTREAM_COLOUR", "SESTREAM_COLOUR: environment variable names no configuration key (see docs/config.md)"},
	{"env streams", "", map[string]string{"SESTREAM_STREAMS": "cam1=x.mp4"}, "SESTREAM_STREAMS", "streams are set in the file or with --stream"},
	{"unknown scheme", "streams:\n  - name: cam1\n    url: foo://x\n", nil, "streams[0].url",
		`streams[0].url: source url foo://x: unknown scheme "foo"; sestream reads file:// rtsp:// rtsps:// http:// https:// udp:// rtp:// srt:// rtmp:// rtmps:// tcp:// URLs`},
	{"scheme typo", "streams:\n  - name: cam1\n    url: rstp://user:pw@cam/live\n", nil, "streams[0].url", `source url rstp://user:xxxxx@cam/live: unknown scheme "rstp"`},
	{"stream name too long", "streams:\n  - name: " + strings.Repeat("a", 20000) + "\n    url: x.mp4\n", nil, "streams[0].name",
		`streams[0].name: stream name "aaaaaaaaaaaaaaaaaaaaaaaa..." is 20000 bytes long, longer than 64`},
	{"stream name 65 bytes", "streams:\n  - name: " + strings.Repeat("b", 65) + "\n    url: x.mp4\n", nil, "streams[0].name", "is 65 bytes long, longer than 64"},
	{"stream name slash", "streams:\n  - name: cam/1\n    url: x.mp4\n", nil, "streams[0].name", `contains '/' at byte 3, which is not a letter, digit, '-' or '_'`},
	{"stream name colon", "streams:\n  - name: \"cam:1\"\n    url: x.mp4\n", nil, "streams[0].name", `contains ':' at byte 3`},
	{"token and user", "nats:\n  token: t\n  user: u\n  password: p\n", nil, "nats.token", "nats.token: cannot be combined with nats.user/nats.password"},
	{"cert without key", "nats:\n  tls:\n    cert: c.pem\n", nil, "nats.tls.cert", "nats.tls.cert: nats.tls.cert and nats.tls.key must be given together"},
}

// manyStreams is a streams list of n streams s0, s1, ...
func manyStreams(n int) string {
	var b strings.Builder
	b.WriteString("streams:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    url: x.mp4\n", i)
	}
	return b.String()
}

func loadCase(t testing.TB, body string, env map[string]string) (*Config, error) {
	opts := Options{LookupEnv: envMap(env), Environ: func() []string {
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}}
	if body != "" {
		path := filepath.Join(t.TempDir(), "sestream.yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		opts.File = path
	}
	return Load(opts)
}

func TestBadConfigNamed(t *testing.T) {
	for _, tc := range badConfigCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadCase(t, tc.yaml, tc.env)
			cerr, ok := err.(*Error)
			if !ok {
				t.Fatalf("Load = %T %v, want a *config.Error", err, err)
			}
			if !cerr.Has(tc.key) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name %s with %q:\n%v", tc.key, tc.want, err)
			}
			if len(err.Error()) > 2000 {
				t.Fatalf("message of %d bytes: a long value is repeated whole", len(err.Error()))
			}
		})
	}
}

// TestBoundsEdges: every bounded key takes its limits and refuses one past them, from the environment as from
// a file.
func TestBoundsEdges(t *testing.T) {
	for key, b := range Bounds() {
		env := map[string]string{}
		if strings.HasPrefix(key, "nats.jetstream.") {
			env["SESTREAM_NATS_JETSTREAM_ENABLED"] = "true"
		}
		for _, n := range []int{b.Min, b.Max} {
			env[EnvName(key)] = strconv.Itoa(n)
			if _, err := loadCase(t, "", env); err != nil {
				t.Errorf("%s = %d refused: %v", key, n, err)
			}
		}
		for _, n := range []int{b.Min - 1, b.Max + 1} {
			env[EnvName(key)] = strconv.Itoa(n)
			_, err := loadCase(t, "", env)
			if cerr, ok := err.(*Error); !ok || !cerr.Has(key) || !strings.Contains(err.Error(), "must be within "+b.String()) {
				t.Errorf("%s = %d: error %v, want it named with its range %s", key, n, err, b)
			}
		}
	}
}

// TestIntegerKeysBounded: every integer key that sizes memory or goroutines has a bound (warmup too, so that
// no integer key is unbounded).
func TestIntegerKeysBounded(t *testing.T) {
	bounds := Bounds()
	for key, value := range defaults() {
		if _, isInt := value.(int); isInt {
			if _, ok := bounds[key]; !ok {
				t.Errorf("integer key %s has no bound in Bounds", key)
			}
		}
	}
}

func TestGoodConfigAccepted(t *testing.T) {
	for _, body := range []string{
		"streams:\n  - name: Kamera-Süd_2\n    url: srt://10.0.0.7:9000\n  - name: " + strings.Repeat("c", 64) + "\n    url: udp://@:1234\n",
		"queue:\n  size: 1024\nworkers: 64\nbatch:\n  max_size: 1.0e3\n",
		"workers: 2\n---\n",
		"workers: 2\n...\n",
	} {
		if _, err := loadCase(t, body, map[string]string{"SESTREAM_FIXTURES": "/tmp/x", "OTHER_VAR": "1"}); err != nil {
			t.Errorf("%q refused: %v", body, err)
		}
	}
}

// TestDocsListEveryBound: docs/config.md gives every bound on the key's row.
func TestDocsListEveryBound(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for key, b := range Bounds() {
		found := false
		for _, line := range strings.Split(string(doc), "\n") {
			if strings.HasPrefix(line, "| `"+key+"`") {
				found = true
				if !strings.Contains(line, fmt.Sprintf("%d..%d", b.Min, b.Max)) {
					t.Errorf("docs/config.md row of %s does not give its range %d..%d: %s", key, b.Min, b.Max, line)
				}
			}
		}
		if !found {
			t.Errorf("docs/config.md has no row for %s", key)
		}
	}
	if !strings.Contains(string(doc), fmt.Sprintf("at most %d streams", MaxStreams)) {
		t.Errorf("docs/config.md does not say at most %d streams", MaxStreams)
	}
	for _, name := range testEnv() {
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/config.md does not list %s", name)
		}
	}
}
