package config

import (
	"fmt"
	"math"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/source"
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

// Limits of the integer keys that size memory or goroutines. A value above its limit is an error, so that a
// typo cannot make the process allocate or start without bound. docs/config.md lists each.
const (
	// MaxStreams bounds the number of streams: each has a capture goroutine and a frame queue.
	MaxStreams = 256
	// MaxQueueSize bounds queue.size, in frames per stream (a 1080p BGR frame is 6 MB).
	MaxQueueSize = 1024
	// MaxInputSide bounds preprocess.width and preprocess.height, in pixels (model.MaxInputSide, which
	// preprocessing also enforces).
	MaxInputSide = model.MaxInputSide
	// MaxThreads bounds engine.threads, per worker.
	MaxThreads = 256
	// MaxBatchSize bounds batch.max_size, in frames.
	MaxBatchSize = 1024
	// MaxWorkers bounds workers: each owns one engine session and its tensors.
	MaxWorkers = 64
	// MaxTopK bounds attention.top_k, in gates per SE block per frame.
	MaxTopK = 4096
	// MaxNATSBuffer bounds nats.buffer, in messages.
	MaxNATSBuffer = 1 << 20
	// MaxPending bounds nats.jetstream.max_pending, in publishes awaiting acknowledgement.
	MaxPending = 1 << 16
	// MaxMoves bounds fleet.max_moves, in streams per renew interval.
	MaxMoves = MaxStreams
	// MaxReplicas bounds fleet.replicas and nats.jetstream.replicas (JetStream's own limit).
	MaxReplicas = 5
)

// Bound is the allowed range of an integer key, both ends included.
type Bound struct {
	Min, Max int
	// Zero says what 0 means when Min is 0 ("from the model"); empty when 0 is an ordinary value or not allowed.
	Zero string
}

// String is "1..1024", or "0..8192 (0 = from the model)".
func (b Bound) String() string {
	s := fmt.Sprintf("%d..%d", b.Min, b.Max)
	if b.Zero != "" {
		s += " (0 = " + b.Zero + ")"
	}
	return s
}

// Bounds returns the range of every integer key, by key path. It is the one list Validate, the file check and
// docs/config.md follow.
func Bounds() map[string]Bound {
	b := map[string]Bound{
		"queue.size":                 {1, MaxQueueSize, ""},
		"preprocess.width":           {0, MaxInputSide, "from the model"},
		"preprocess.height":          {0, MaxInputSide, "from the model"},
		"engine.threads":             {0, MaxThreads, "auto"},
		"batch.max_size":             {1, MaxBatchSize, ""},
		"workers":                    {0, MaxWorkers, "auto"},
		"attention.top_k":            {1, MaxTopK, ""},
		"nats.buffer":                {1, MaxNATSBuffer, ""},
		"nats.jetstream.max_pending": {1, MaxPending, ""},
		"nats.jetstream.replicas":    {1, MaxReplicas, ""},
		"fleet.max_moves":            {1, MaxMoves, ""},
		"fleet.replicas":             {1, MaxReplicas, ""},
	}
	for _, r := range se.MonitorRanges() { // the drift ranges are se's
		if r.Integer {
			b["attention.drift."+r.Name] = Bound{Min: int(r.Min), Max: int(r.Max)}
		}
	}
	return b
}

type validator struct {
	fields []FieldError
	bounds map[string]Bound
}

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

// inRange checks an integer key against its Bound.
func (v *validator) inRange(key string, n int) {
	b, ok := v.bounds[key]
	if !ok {
		panic("config: no bound for " + key)
	}
	if n < b.Min || n > b.Max {
		v.add(key, "must be within %s, got %d", b, n)
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
	v := validator{bounds: Bounds()}
	if len(c.Streams) > MaxStreams {
		v.add("streams", "has %d streams, at most %d are allowed", len(c.Streams), MaxStreams)
	}
	v.streams("streams", c.Streams)

	v.inRange("queue.size", c.Queue.Size)
	v.oneOf("queue.policy", c.Queue.Policy, "auto", "block", "drop_oldest", "drop_newest")

	p := c.Preprocess
	v.inRange("preprocess.width", p.Width)
	v.inRange("preprocess.height", p.Height)
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
	v.inRange("engine.threads", c.Engine.Threads)

	v.inRange("batch.max_size", c.Batch.MaxSize)
	v.durationPositive("batch.max_delay", c.Batch.MaxDelay)
	v.inRange("workers", c.Workers)

	v.inRange("attention.top_k", c.Attention.TopK)
	// The drift ranges are se's (se.MonitorRanges): config reports se's verdict under the key of the field.
	// Integer keys are checked against their Bounds entry (made from the same ranges) like every integer key.
	drift := c.Attention.Drift.Monitor().FieldErrors()
	for _, r := range se.MonitorRanges() {
		if err := drift[r.Name]; err != nil && !r.Integer {
			v.add("attention.drift."+r.Name, "%v", err)
		}
	}
	dv := reflect.ValueOf(c.Attention.Drift)
	for i := range dv.NumField() {
		if dv.Field(i).Kind() == reflect.Int {
			v.inRange("attention.drift."+dv.Type().Field(i).Tag.Get("mapstructure"), int(dv.Field(i).Int()))
		}
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
	v.fields = append(v.fields, n.AuthErrors()...)
	v.inRange("nats.buffer", n.Buffer)
	if n.JetStream.Enabled || n.Embedded.JetStream {
		if err := message.ValidateToken(n.JetStream.Stream); err != nil {
			v.add("nats.jetstream.stream", "JetStream stream %v", err)
		}
		v.inRange("nats.jetstream.max_pending", n.JetStream.MaxPending)
		v.durationPositive("nats.jetstream.ack_timeout", n.JetStream.AckTimeout)
		v.inRange("nats.jetstream.replicas", n.JetStream.Replicas)
	}

	if c.HTTP.Listen != "" {
		v.hostPort("http.listen", c.HTTP.Listen)
	}
	v.oneOf("http.dashboard_frames", c.HTTP.DashboardFrames, "off", "local", "nats")
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.durationPositive("status.interval", c.Status.Interval)
	v.durationPositive("shutdown.drain_timeout", c.Shutdown.DrainTimeout)
	c.Fleet.validate(&v, c.NATS)

	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Fields: v.fields}
}

// streams checks a list of streams whose key path is list ("streams", or where a fleet's list came from).
func (v *validator) streams(list string, streams []Stream) {
	seen := map[string]int{}
	for i, s := range streams {
		key := fmt.Sprintf("%s[%d]", list, i)
		if err := message.ValidateToken(s.Name); err != nil {
			v.add(key+".name", "stream %v (a stream name is 1-%d letters, digits, '-' or '_')", err, message.MaxTokenLen)
		} else if j, dup := seen[s.Name]; dup {
			v.add(key+".name", "stream name %q is also used by %s[%d]", s.Name, list, j)
		} else {
			seen[s.Name] = i
		}
		if strings.TrimSpace(s.URL) == "" {
			v.add(key+".url", "is empty; give a file, rtsp:// or http(s):// URL, a device or an image directory")
		} else if _, err := source.Parse(s.URL); err != nil {
			v.add(key+".url", "%v", err)
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
}

// ValidateStreams checks a streams list by the rules of the streams section, naming each bad field under
// list ("streams[1].url"); a fleet's desired stream list is checked with it.
func ValidateStreams(list string, streams []Stream) error {
	v := validator{bounds: Bounds()}
	if len(streams) > MaxStreams {
		v.add(list, "has %d streams, at most %d are allowed", len(streams), MaxStreams)
	}
	v.streams(list, streams)
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Fields: v.fields}
}

// AuthErrors reports the combinations of credentials and TLS files that cannot work together, by key path:
// a token with a user or password, a user without a password (or the reverse), a certificate without its key
// (or the reverse). Validate includes them; `sestream sub` checks its flags with it too.
func (n NATS) AuthErrors() []FieldError {
	var v validator
	if n.Token != "" && (n.User != "" || n.Password != "") {
		v.add("nats.token", "cannot be combined with nats.user/nats.password")
	}
	if (n.User == "") != (n.Password == "") {
		v.add("nats.user", "nats.user and nats.password must be given together")
	}
	if (n.TLS.Cert == "") != (n.TLS.Key == "") {
		v.add("nats.tls.cert", "nats.tls.cert and nats.tls.key must be given together")
	}
	return v.fields
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

// validate checks the fleet section; with fleet.enabled it needs NATS servers (nats.url) to share.
func (f Fleet) validate(v *validator, n NATS) {
	v.inRange("fleet.max_moves", f.MaxMoves)
	v.inRange("fleet.replicas", f.Replicas)
	if !f.Enabled {
		return
	}
	if err := message.ValidateToken(f.Name); err != nil {
		v.add("fleet.name", "fleet %v", err)
	}
	if f.Bucket != "" {
		if err := message.ValidateToken(f.Bucket); err != nil {
			v.add("fleet.bucket", "bucket %v", err)
		}
	}
	v.durationPositive("fleet.lease_ttl", f.LeaseTTL)
	v.durationPositive("fleet.renew_interval", f.RenewInterval)
	if f.RenewInterval > 0 && f.LeaseTTL > 0 && 3*f.RenewInterval > f.LeaseTTL {
		v.add("fleet.renew_interval", "(%s) must be at most a third of fleet.lease_ttl (%s), so that a lease is renewed twice before a missed renewal can lose it", f.RenewInterval, f.LeaseTTL)
	}
	if len(n.URLs()) == 0 {
		v.add("fleet.enabled", "needs nats.url: the instances of a fleet share a NATS server or cluster with JetStream, not each its own embedded server")
	}
}

// BucketName is the fleet's lease bucket: fleet.bucket, or "sestream_fleet_<name>".
func (f Fleet) BucketName() string {
	if f.Bucket != "" {
		return f.Bucket
	}
	return "sestream_fleet_" + f.Name
}
