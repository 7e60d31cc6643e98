package config

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/se"
)

// FieldError is one invalid configuration value.
type FieldError struct {
	// Key is the key path, e.g. "batch.max_size" or "streams[1].name".
	Key string
	// Reason says what is wrong and what is allowed.
	Reason string
}

// Error is "key: reason".
func (e FieldError) Error() string {
	if e.Key == "" {
		return e.Reason
	}
	return e.Key + ": " + e.Reason
}

// Error lists every invalid field of a configuration.
type Error struct {
	Fields []FieldError
}

// Error lists every invalid field, one per line after the first.
func (e *Error) Error() string {
	var b strings.Builder
	if len(e.Fields) == 1 {
		b.WriteString("invalid configuration: ")
		b.WriteString(e.Fields[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, "invalid configuration (%d problems):", len(e.Fields))
	for _, f := range e.Fields {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Has reports whether key is among the invalid fields.
func (e *Error) Has(key string) bool {
	for _, f := range e.Fields {
		if f.Key == key {
			return true
		}
	}
	return false
}

type validator struct{ fields []FieldError }

func (v *validator) add(key, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) oneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.add(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) positive(key string, n int) {
	if n < 1 {
		v.add(key, "must be at least 1, got %d", n)
	}
}

func (v *validator) durationPositive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be a positive duration such as 10ms or 5s, got %s", d)
	}
}

func (v *validator) finite(key string, f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		v.add(key, "must be a finite number, got %v", f)
		return false
	}
	return true
}

func (v *validator) hostPort(key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%q is not host:port: %v", addr, err)
		return
	}
	_ = host
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(key, "%q has an invalid port", addr)
	}
}

// Validate checks every field and returns a *Error listing all invalid ones, or nil.
func (c *Config) Validate() error {
	var v validator
	seen := map[string]int{}
	for i, s := range c.Streams {
		key := fmt.Sprintf("streams[%d]", i)
		if err := message.ValidateToken(s.Name); err != nil {
			v.add(key+".name", "stream %v; a stream name is one NATS subject token", err)
		} else if j, dup := seen[s.Name]; dup {
			v.add(key+".name", "stream name %q is also used by streams[%d]", s.Name, j)
		} else {
			seen[s.Name] = i
		}
		if strings.TrimSpace(s.URL) == "" {
			v.add(key+".url", "is empty; give a file, rtsp:// or http(s):// URL, a device or an image directory")
		}
		if v.finite(key+".fps", s.FPS) && s.FPS < 0 {
			v.add(key+".fps", "must be 0 (every frame) or positive, got %v", s.FPS)
		}
		v.oneOf(key+".transport", s.Transport, "tcp", "udp")
		if s.Policy != "" {
			v.oneOf(key+".policy", s.Policy, "block", "drop_oldest", "drop_newest")
		}
		v.durationPositive(key+".reconnect.initial", s.Reconnect.Initial)
		v.durationPositive(key+".reconnect.max", s.Reconnect.Max)
		if s.Reconnect.Max < s.Reconnect.Initial {
			v.add(key+".reconnect.max", "(%s) is less than reconnect.initial (%s)", s.Reconnect.Max, s.Reconnect.Initial)
		}
		v.durationPositive(key+".stall_timeout", s.StallTimeout)
	}

	v.positive("queue.size", c.Queue.Size)
	v.oneOf("queue.policy", c.Queue.Policy, "auto", "block", "drop_oldest", "drop_newest")

	p := c.Preprocess
	if p.Width < 0 {
		v.add("preprocess.width", "must be 0 (from the model) or positive, got %d", p.Width)
	}
	if p.Height < 0 {
		v.add("preprocess.height", "must be 0 (from the model) or positive, got %d", p.Height)
	}
	if p.Resize != "" {
		v.oneOf("preprocess.resize", p.Resize, "stretch", "letterbox", "center_crop")
	}
	if p.Color != "" {
		v.oneOf("preprocess.color", p.Color, "rgb", "bgr", "gray")
	}
	if v.finite("preprocess.scale", p.Scale) && p.Scale < 0 {
		v.add("preprocess.scale", "must be 0 (from the model) or positive, got %v", p.Scale)
	}
	channels := 0
	switch p.Color {
	case "gray":
		channels = 1
	case "rgb", "bgr":
		channels = 3
	}
	for _, list := range []struct {
		key    string
		values []float64
	}{{"preprocess.mean", p.Mean}, {"preprocess.std", p.Std}} {
		if len(list.values) == 0 {
			continue
		}
		if len(list.values) != 1 && len(list.values) != 3 {
			v.add(list.key, "needs 1 or 3 values (one per channel), got %d", len(list.values))
		} else if channels != 0 && len(list.values) != 1 && len(list.values) != channels {
			v.add(list.key, "has %d values but preprocess.color %q has %d channel(s)", len(list.values), p.Color, channels)
		}
		for i, f := range list.values {
			if !v.finite(fmt.Sprintf("%s[%d]", list.key, i), f) {
				continue
			}
			if list.key == "preprocess.std" && f <= 0 {
				v.add(fmt.Sprintf("%s[%d]", list.key, i), "must be positive, got %v", f)
			}
		}
	}
	if v.finite("preprocess.pad", p.Pad) && (p.Pad < 0 || p.Pad > 255) {
		v.add("preprocess.pad", "must be within 0..255, got %v", p.Pad)
	}

	v.oneOf("engine.backend", c.Engine.Backend, "auto", "onnxruntime", "opencv")
	if c.Engine.Threads < 0 {
		v.add("engine.threads", "must be 0 (library default) or positive, got %d", c.Engine.Threads)
	}

	v.positive("batch.max_size", c.Batch.MaxSize)
	if c.Batch.MaxSize > 1024 {
		v.add("batch.max_size", "must be at most 1024, got %d", c.Batch.MaxSize)
	}
	v.durationPositive("batch.max_delay", c.Batch.MaxDelay)
	v.positive("workers", c.Workers)
	if c.Workers > 64 {
		v.add("workers", "must be at most 64, got %d", c.Workers)
	}

	v.positive("attention.top_k", c.Attention.TopK)
	// The drift ranges are se's: config reports se's verdict under the key of the field.
	d := c.Attention.Drift
	dc := se.DriftConfig{Alpha: d.Alpha, Threshold: d.Threshold, Hysteresis: d.Hysteresis, Warmup: max(d.Warmup, 1), TopChanges: c.Attention.TopK}
	for field, err := range dc.FieldErrors() {
		v.add("attention.drift."+field, "%v", err)
	}
	if d.Warmup < 0 {
		v.add("attention.drift.warmup", "must be 0 or positive, got %d", d.Warmup)
	}

	n := c.NATS
	if err := message.ValidatePrefix(n.Prefix); err != nil {
		v.add("nats.prefix", "%v", err)
	}
	for _, u := range n.URLs() {
		if err := message.ValidateServerURL(u); err != nil {
			v.add("nats.url", "%v", err)
		}
	}

	if n.URL == "" {
		v.hostPort("nats.embedded.listen", n.Embedded.Listen)
	}
	if n.Token != "" && (n.User != "" || n.Password != "") {
		v.add("nats.token", "cannot be combined with nats.user/nats.password")
	}
	if (n.User == "") != (n.Password == "") {
		v.add("nats.user", "nats.user and nats.password must be given together")
	}
	if (n.TLS.Cert == "") != (n.TLS.Key == "") {
		v.add("nats.tls.cert", "nats.tls.cert and nats.tls.key must be given together")
	}
	v.positive("nats.buffer", n.Buffer)
	if n.JetStream.Enabled || n.Embedded.JetStream {
		if err := message.ValidateToken(n.JetStream.Stream); err != nil {
			v.add("nats.jetstream.stream", "JetStream stream %v", err)
		}
		v.positive("nats.jetstream.max_pending", n.JetStream.MaxPending)
		v.durationPositive("nats.jetstream.ack_timeout", n.JetStream.AckTimeout)
	}

	if c.HTTP.Listen != "" {
		v.hostPort("http.listen", c.HTTP.Listen)
	}
	v.oneOf("http.dashboard_frames", c.HTTP.DashboardFrames, "off", "local", "nats")
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.durationPositive("status.interval", c.Status.Interval)
	v.durationPositive("shutdown.drain_timeout", c.Shutdown.DrainTimeout)

	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Fields: v.fields}
}

// URLs splits nats.url into its comma-separated server URLs; empty means the embedded server.
func (n NATS) URLs() []string {
	var out []string
	for _, u := range strings.Split(n.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
