package config

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/natspub"
	"github.com/sestream/sestream/stages/source"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix is the prefix of environment variables: SESTREAM_BATCH_MAX_SIZE sets batch.max_size.
const EnvPrefix = "SESTREAM"

// defaults lists every scalar key with its default. Env variables and flags can only set keys listed here.
//
// Defaults of settings that configure another package's type come from that package: stream settings from
// stages/source, NATS settings from stages/natspub and message, drift from se.
func defaults() map[string]any {
	drift := se.DefaultMonitorConfig()
	return map[string]any{
		"queue.size":                         16,
		"queue.policy":                       "auto",
		"preprocess.width":                   0,
		"preprocess.height":                  0,
		"preprocess.resize":                  "",
		"preprocess.color":                   "",
		"preprocess.scale":                   0.0,
		"preprocess.mean":                    []float64{},
		"preprocess.std":                     []float64{},
		"preprocess.pad":                     114.0,
		"model.path":                         "",
		"model.labels":                       "",
		"engine.backend":                     "auto",
		"engine.threads":                     0,
		"engine.library":                     "",
		"engine.opencv_backend":              "default",
		"engine.opencv_target":               "cpu",
		"engine.verify":                      false,
		"batch.max_size":                     8,
		"batch.max_delay":                    10 * time.Millisecond,
		"batch.when_idle":                    true,
		"workers":                            0,
		"attention.top_k":                    5,
		"attention.include_vectors":          false,
		"attention.drift.enabled":            true,
		"attention.drift.group_size":         drift.GroupSize,
		"attention.drift.shrinkage":          drift.Shrinkage,
		"attention.drift.memory_frames":      drift.MemoryFrames,
		"attention.drift.refresh_frames":     drift.RefreshFrames,
		"attention.drift.warmup_frames":      drift.WarmupFrames,
		"attention.drift.calibration_frames": drift.CalibrationFrames,
		"attention.drift.frame_quantile":     drift.FrameQuantile,
		"attention.drift.window_frames":      drift.WindowFrames,
		"attention.drift.false_alarm_frames": drift.FalseAlarmFrames,
		"attention.drift.fall_frames":        drift.FallFrames,
		"attention.drift.outlier_ratio":      drift.OutlierRatio,
		"attention.drift.outlier_weight":     drift.OutlierWeight,
		"attention.drift.absorb_frames":      drift.AbsorbFrames,
		"attention.drift.top_channels":       drift.TopChannels,
		"attention.drift.stillness":          drift.Stillness,
		"nats.url":                           "",
		"nats.embedded.listen":               natspub.DefaultEmbeddedListen,
		"nats.embedded.jetstream":            false,
		"nats.embedded.store_dir":            "",
		"nats.prefix":                        message.DefaultPrefix,
		"nats.user":                          "",
		"nats.password":                      "",
		"nats.token":                         "",
		"nats.creds":                         "",
		"nats.nkey":                          "",
		"nats.tls.ca":                        "",
		"nats.tls.cert":                      "",
		"nats.tls.key":                       "",
		"nats.jetstream.enabled":             false,
		"nats.jetstream.stream":              natspub.DefaultStreamName,
		"nats.jetstream.create":              true,
		"nats.jetstream.max_pending":         natspub.DefaultMaxPending,
		"nats.jetstream.ack_timeout":         natspub.DefaultAckTimeout,
		"nats.jetstream.replicas":            1,
		"nats.buffer":                        natspub.DefaultBufferSize,
		"nats.require_connect":               false,
		"http.listen":                        "127.0.0.1:9090",
		"http.dashboard":                     true,
		"http.dashboard_frames":              "local",
		"log.level":                          "info",
		"log.format":                         "text",
		"status.interval":                    5 * time.Second,
		"status.summary":                     false,
		"shutdown.drain_timeout":             10 * time.Second,
		"fleet.enabled":                      false,
		"fleet.name":                         "default",
		"fleet.instance":                     "",
		"fleet.bucket":                       "",
		"fleet.lease_ttl":                    15 * time.Second,
		"fleet.renew_interval":               2 * time.Second,
		"fleet.max_moves":                    1,
		"fleet.replicas":                     1,
	}
}

// Options says where Load reads from besides the defaults.
type Options struct {
	// File is a YAML config file; empty reads none.
	File string
	// Flags are command-line flags whose names are bound to keys by FlagKeys.
	Flags *pflag.FlagSet
	// FlagKeys maps a flag name to the config key it sets (e.g. "batch-size" -> "batch.max_size").
	// A flag that was not given on the command line does not override anything.
	FlagKeys map[string]string
	// LookupEnv reads environment variables; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Environ lists the environment as "NAME=value" strings, to find SESTREAM_* variables that name no key.
	// Nil means os.Environ when LookupEnv is nil too, and no such check when only LookupEnv is given.
	Environ func() []string
}

// testEnv lists the SESTREAM_* variables that are not configuration keys: sestream's own tests read them
// (docs/config.md lists them too), so they are not reported as unknown.
func testEnv() []string {
	return []string{"SESTREAM_FIXTURES", "SESTREAM_SOAK", "SESTREAM_SOAK_FAST", "SESTREAM_DASHBOARD_PNG", "SESTREAM_DASHBOARD_COST"}
}

// Load merges defaults, then the file, then SESTREAM_* environment variables, then flags, into a Config, and
// validates it. Every problem is reported at once: the error is a *Error listing each bad key path.
func Load(opts Options) (*Config, error) {
	v := viper.New()
	for key, value := range defaults() {
		v.SetDefault(key, value)
	}
	var errs Error
	if opts.File != "" {
		data, err := os.ReadFile(opts.File)
		if err == nil {
			v.SetConfigType("yaml")
			err = v.ReadConfig(bytes.NewReader(data))
		}
		if err != nil {
			return nil, &Error{Fields: []FieldError{{Key: "--config", Reason: fmt.Sprintf("reading %s: %v", opts.File, err)}}}
		}
		// What the YAML decoder would drop or wrap around without a word.
		errs.Fields = append(errs.Fields, checkYAML(opts.File, data)...)
	}
	lookup, environ := opts.LookupEnv, opts.Environ
	if lookup == nil {
		lookup = os.LookupEnv
		if environ == nil {
			environ = os.Environ
		}
	}
	for _, key := range sortedKeys(defaults()) {
		name := EnvName(key)
		if value, ok := lookup(name); ok {
			v.Set(key, envValue(key, value))
		}
	}
	if environ != nil {
		errs.Fields = append(errs.Fields, unknownEnv(environ())...)
	}
	if opts.Flags != nil {
		for flag, key := range opts.FlagKeys {
			f := opts.Flags.Lookup(flag)
			if f == nil {
				return nil, fmt.Errorf("config: flag --%s is bound to %s but not defined", flag, key)
			}
			if f.Changed {
				v.Set(key, flagValue(f))
			}
		}
	}

	var cfg Config
	decode := func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			wholeNumberHook,
		)
	}
	// A key the file check reported is not reported again: it named the value as written, or said that a list
	// was given as a mapping (whose entries, decoded as a list of one, would only add noise).
	reported := func(key string) bool {
		for _, f := range errs.Fields {
			if f.Key == key || strings.HasPrefix(f.Reason, "must be a list") && strings.HasPrefix(key, f.Key+"[") {
				return true
			}
		}
		return false
	}
	if err := v.Unmarshal(&cfg, decode); err != nil {
		for _, f := range decodeErrors(err) {
			if reported(f.Key) {
				continue
			}
			if b, ok := Bounds()[f.Key]; ok && (strings.HasSuffix(f.Reason, " is out of range") || strings.HasSuffix(f.Reason, " is not a whole number")) {
				f.Reason += "; must be within " + b.String()
			}
			errs.Fields = append(errs.Fields, f)
		}
	}
	cfg.applyStreamDefaults()
	// Validate what did decode too, so that one run reports every problem; a key that failed to decode is
	// reported once, by its decode error.
	if err := cfg.Validate(); err != nil {
		for _, f := range err.(*Error).Fields {
			if !reported(f.Key) {
				errs.Fields = append(errs.Fields, f)
			}
		}
	}
	if len(errs.Fields) > 0 {
		return nil, &errs
	}
	return &cfg, nil
}

// Default returns the configuration with no file, environment or flags: the built-in demo.
func Default() *Config {
	cfg, err := Load(Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		panic("config: defaults do not validate: " + err.Error())
	}
	return cfg
}

// EnvName is the environment variable that sets key: "batch.max_size" -> "SESTREAM_BATCH_MAX_SIZE".
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every key that the environment and flags can set, sorted.
func Keys() []string { return sortedKeys(defaults()) }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// envValue turns an environment string into the value viper should hold for key: lists are comma-separated.
func envValue(key, value string) any {
	if _, isList := defaults()[key].([]float64); isList {
		if strings.TrimSpace(value) == "" {
			return []string{}
		}
		parts := strings.Split(value, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	return value
}

func flagValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return f.Value.String()
}

// AddStream appends a stream with every field but its name and URL at its default, as a streams entry that
// gives only name and url would have. Call Validate afterwards.
func (c *Config) AddStream(name, url string) {
	c.Streams = append(c.Streams, Stream{Name: name, URL: url})
	c.applyStreamDefaults()
}

// applyStreamDefaults gives every stream the source defaults (owned by stages/source) for the fields it
// leaves empty.
func (c *Config) applyStreamDefaults() {
	for i := range c.Streams {
		s := &c.Streams[i]
		if s.Transport == "" {
			s.Transport = source.DefaultTransport
		}
		if s.Reconnect.Initial == 0 {
			s.Reconnect.Initial = source.DefaultReconnectInitial
		}
		if s.Reconnect.Max == 0 {
			s.Reconnect.Max = max(source.DefaultReconnectMax, s.Reconnect.Initial)
		}
		if s.StallTimeout == 0 {
			s.StallTimeout = source.DefaultStallTimeout
		}
	}
}

var (
	invalidKeysRE = regexp.MustCompile(`^'([^']*)' has invalid keys: (.*)$`)
	fieldErrRE    = regexp.MustCompile(`^'([^']*)' (.*)$`)
)

// decodeErrors turns mapstructure's messages into one FieldError per key path.
func decodeErrors(err error) []FieldError {
	var lines []string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			lines = append(lines, strings.Split(e.Error(), "\n")...)
		}
	} else {
		lines = strings.Split(err.Error(), "\n")
	}
	var out []FieldError
	for _, line := range lines {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed due to") || strings.HasSuffix(line, "error(s) decoding:") {
			continue
		}
		if m := invalidKeysRE.FindStringSubmatch(line); m != nil {
			for _, k := range strings.Split(m[2], ",") {
				out = append(out, FieldError{Key: joinKey(m[1], strings.TrimSpace(k)), Reason: "unknown key"})
			}
			continue
		}
		if m := fieldErrRE.FindStringSubmatch(line); m != nil {
			out = append(out, FieldError{Key: normalizeKey(m[1]), Reason: m[2]})
			continue
		}
		out = append(out, FieldError{Key: "", Reason: line})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func joinKey(parent, child string) string {
	if parent == "" {
		return child
	}
	return normalizeKey(parent) + "." + child
}

// normalizeKey turns mapstructure's "streams[0].fps" into "streams[0].fps" and drops a leading dot.
func normalizeKey(k string) string { return strings.TrimPrefix(k, ".") }

// ParseStreams reads a streams list written as YAML or JSON (a list of entries with the keys of the streams
// section: name, url, loop, ...), gives each entry the stream defaults, and validates it. list names the list
// in errors ("fleet streams[2].url: ..."); errors are a *Error. A fleet's desired stream list is read with it.
func ParseStreams(list string, data []byte) ([]Stream, error) {
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, &Error{Fields: []FieldError{{Key: list, Reason: fmt.Sprintf("is not a YAML or JSON list: %v", err)}}}
	}
	if _, ok := raw.([]any); !ok {
		return nil, &Error{Fields: []FieldError{{Key: list, Reason: fmt.Sprintf("must be a list of streams, got %T", raw)}}}
	}
	var cfg Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		ErrorUnused: true, WeaklyTypedInput: true, Result: &cfg.Streams,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), wholeNumberHook),
	})
	if err != nil {
		return nil, err
	}
	if err := dec.Decode(raw); err != nil {
		fields := decodeErrors(err)
		for i := range fields {
			fields[i].Key = list + fields[i].Key
		}
		return nil, &Error{Fields: fields}
	}
	cfg.applyStreamDefaults()
	if err := ValidateStreams(list, cfg.Streams); err != nil {
		return nil, err
	}
	return cfg.Streams, nil
}
