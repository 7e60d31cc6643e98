// Package plan resolves a validated configuration and a loaded model into everything a running pipeline
// needs, once: streams with their queue policies, preprocessing with the model's input size, engine, batch,
// attention and NATS settings. Nothing reads the configuration after the plan is made.
package plan

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/internal/fleet"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/se"
	"github.com/sestream/sestream/stages/natspub"
	"github.com/sestream/sestream/stages/preprocess"
	"github.com/sestream/sestream/stages/source"
)

// DemoStream is the name of the built-in demo stream, used when the configuration has no streams.
const DemoStream = "demo"

// InputError is a problem with what the user configured or supplied: a model, a labels file, a stream.
type InputError struct {
	// Key is the configuration key at fault.
	Key string
	Err error
}

// Error names the configuration key and the problem.
func (e *InputError) Error() string {
	if e.Key == "" {
		return e.Err.Error()
	}
	return e.Key + ": " + e.Err.Error()
}

// streamError puts a stream's error from Plan.Stream under the stream's key.
func streamError(key string, err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return &InputError{Key: key + ie.Key, Err: ie.Err}
	}
	return &InputError{Key: key, Err: err}
}

// Unwrap returns the underlying error, so errors.Is sees model and source errors.
func (e *InputError) Unwrap() error { return e.Err }

// Stream is one captured stream: its source and the policy of its frame queue.
type Stream struct {
	Source source.Options
	Kind   source.Kind
	Policy pipeline.Policy
}

// Plan is a resolved pipeline. It is read-only once made.
type Plan struct {
	Model  *model.Model
	Labels []string
	// Streams are the captured streams, Push the names of streams the host program pushes frames into; both
	// have queues of QueueSize frames. PushPolicy is the push queues' policy.
	Streams    []Stream
	Push       []string
	PushPolicy pipeline.Policy
	QueueSize  int
	// Preprocess is the complete preprocessing (defaults applied) for the model's input.
	Preprocess preprocess.Options
	Engine     engine.Options
	Workers    int
	Batch      pipeline.BatchPolicy
	// Verify runs the SE self-check at start.
	Verify bool
	// TopK is the number of largest gates listed per SE block.
	TopK           int
	IncludeVectors bool
	// Drift configures attention drift (one monitor per stream over all its SE blocks); nil when drift is off
	// or the model has no SE blocks.
	Drift *se.MonitorConfig
	// NATS configures the publisher (connection and JetStream); NATS.Prefix is the subject prefix.
	NATS           natspub.Options
	StatusInterval time.Duration
	DrainTimeout   time.Duration
	// Fleet, when not nil, makes this pipeline one instance of a fleet: Streams is empty at start, and the
	// fleet starts and stops streams at run time (each resolved by Stream).
	Fleet *fleet.Config

	queuePolicy string // queue.policy, for streams resolved at run time
}

// Bundled locates the demo's model and video; the root package supplies it.
type Bundled interface {
	Model() (string, error)
	Sample() (string, error)
}

// New resolves cfg (already validated by config) against the model it names. push are the names of the host
// program's push streams. Errors are *InputError naming the key at fault.
func New(cfg *config.Config, push []string, bundled Bundled) (*Plan, error) {
	p := &Plan{QueueSize: cfg.Queue.Size, Workers: cfg.Workers, Verify: cfg.Engine.Verify, TopK: cfg.Attention.TopK,
		IncludeVectors: cfg.Attention.IncludeVectors, StatusInterval: cfg.Status.Interval,
		DrainTimeout: cfg.Shutdown.DrainTimeout, Batch: pipeline.BatchPolicy{MaxSize: cfg.Batch.MaxSize, MaxDelay: cfg.Batch.MaxDelay, WhenIdle: cfg.Batch.WhenIdle}}
	path := cfg.Model.Path
	if path == "" {
		var err error
		if path, err = bundled.Model(); err != nil {
			return nil, &InputError{Key: "model.path", Err: err}
		}
	}
	m, err := model.Load(path)
	if err != nil {
		return nil, &InputError{Key: "model.path", Err: err}
	}
	p.Model, p.Labels = m, m.Meta.Labels
	if cfg.Model.Labels != "" {
		if p.Labels, err = readLabels(cfg.Model.Labels); err != nil {
			return nil, &InputError{Key: "model.labels", Err: err}
		}
		if err := checkLabels(cfg.Model.Labels, p.Labels, m); err != nil {
			return nil, &InputError{Key: "model.labels", Err: err}
		}
	}
	p.Preprocess = Preprocess(cfg.Preprocess, m).WithDefaults()
	if err := p.Preprocess.Validate(); err != nil {
		return nil, &InputError{Key: "preprocess", Err: err}
	}
	e := cfg.Engine
	p.Engine = engine.Options{Backend: engine.Backend(e.Backend), Threads: e.Threads, MaxBatch: cfg.Batch.MaxSize,
		Library: e.Library, OpenCVBackend: e.OpenCVBackend, OpenCVTarget: e.OpenCVTarget}
	if d := cfg.Attention.Drift; d.Enabled && len(m.Blocks) > 0 {
		dc := d.Monitor()
		if err := dc.Validate(); err != nil {
			return nil, &InputError{Key: "attention.drift", Err: err}
		}
		p.Drift = &dc
	}
	p.NATS = natsOptions(cfg.NATS)
	p.queuePolicy = cfg.Queue.Policy

	streams := cfg.Streams
	if f := cfg.Fleet; f.Enabled {
		for i, s := range streams {
			if _, err := p.Stream(s); err != nil {
				return nil, streamError(fmt.Sprintf("streams[%d]", i), err)
			}
		}
		instance := f.Instance
		if instance == "" {
			instance, _ = os.Hostname()
		}
		p.Fleet = &fleet.Config{Name: f.Name, Instance: instance, Bucket: f.BucketName(), LeaseTTL: f.LeaseTTL,
			RenewInterval: f.RenewInterval, MaxMoves: f.MaxMoves, Replicas: f.Replicas, Prefix: cfg.NATS.Prefix, Streams: streams}
		streams = nil
	} else if len(streams) == 0 && len(push) == 0 {
		sample, err := bundled.Sample()
		if err != nil {
			return nil, &InputError{Key: "streams", Err: fmt.Errorf("no streams configured and the demo video is missing: %w", err)}
		}
		streams = []config.Stream{{Name: DemoStream, URL: sample, Loop: true, Realtime: true}}
	}
	seen := map[string]bool{}
	for i, s := range streams {
		st, err := p.Stream(s)
		if err != nil {
			return nil, streamError(fmt.Sprintf("streams[%d]", i), err)
		}
		seen[s.Name] = true
		p.Streams = append(p.Streams, st)
	}
	// Frames pushed by a host program are live.
	if p.PushPolicy, err = queuePolicy(cfg.Queue.Policy, true); err != nil {
		return nil, &InputError{Key: "queue.policy", Err: err}
	}
	for i, name := range push {
		key := fmt.Sprintf("PushStreams[%d]", i)
		if err := message.ValidateToken(name); err != nil {
			return nil, &InputError{Key: key, Err: err}
		}
		if seen[name] {
			return nil, &InputError{Key: key, Err: fmt.Errorf("stream %q is declared twice", name)}
		}
		seen[name] = true
		p.Push = append(p.Push, name)
	}
	return p, nil
}

// Stream resolves one configured stream (already validated by config): its source options with defaults, its
// kind, and its queue policy. New resolves the configured streams with it; a fleet resolves the streams it
// starts at run time with it. Errors are *InputError whose Key is the field at fault relative to the stream
// ("", ".url" or ".policy").
func (p *Plan) Stream(s config.Stream) (Stream, error) {
	so := source.Options{Name: s.Name, URL: s.URL, FPS: s.FPS, Loop: s.Loop, Realtime: s.Realtime, Transport: s.Transport,
		ReconnectInitial: s.Reconnect.Initial, ReconnectMax: s.Reconnect.Max, StallTimeout: s.StallTimeout}.WithDefaults()
	if err := so.Validate(); err != nil {
		return Stream{}, &InputError{Err: err}
	}
	spec, err := source.Parse(so.URL)
	if err != nil {
		return Stream{}, &InputError{Key: ".url", Err: err}
	}
	name := p.queuePolicy
	if s.Policy != "" {
		name = s.Policy
	}
	policy, err := queuePolicy(name, spec.Kind.Live())
	if err != nil {
		return Stream{}, &InputError{Key: ".policy", Err: err}
	}
	return Stream{Source: so, Kind: spec.Kind, Policy: policy}, nil
}

// queuePolicy parses a queue policy, where auto means drop_oldest for live frames and block for files and
// image folders.
func queuePolicy(name string, live bool) (pipeline.Policy, error) {
	if name == "auto" {
		if live {
			return pipeline.DropOldest, nil
		}
		return pipeline.Block, nil
	}
	return pipeline.ParsePolicy(name)
}

// Preprocess resolves preprocessing for a model: each value from the config, else the model's metadata, else
// the model's input (its size and channels); what is still unset gets preprocess's documented defaults when
// the caller applies WithDefaults. `sestream run`, `infer --image` and `inspect --verify` all use it.
func Preprocess(c config.Preprocess, m *model.Model) preprocess.Options {
	o := preprocess.Options{Width: c.Width, Height: c.Height, Resize: c.Resize, Color: c.Color,
		Scale: c.Scale, Mean: c.Mean, Std: c.Std, Pad: c.Pad}
	meta := m.Meta
	h, w := m.InputSize()
	if o.Width == 0 {
		o.Width = w
	}
	if o.Height == 0 {
		o.Height = h
	}
	if shape := m.Input.Shape; len(shape) == 4 && o.Color == "" && meta.Color == "" && shape[1] == 1 {
		o.Color = preprocess.ColorGray
	}
	if o.Resize == "" {
		o.Resize = meta.Resize
	}
	if o.Color == "" {
		o.Color = meta.Color
	}
	if o.Scale == 0 {
		o.Scale = meta.Scale
	}
	if len(o.Mean) == 0 {
		o.Mean = meta.Mean
	}
	if len(o.Std) == 0 {
		o.Std = meta.Std
	}
	return o
}

// natsOptions maps the nats config onto the publisher's options. Logger, BootID and a host connection are the
// caller's to add.
func natsOptions(n config.NATS) natspub.Options {
	return natspub.Options{
		URLs:      n.URLs(),
		Embedded:  natspub.EmbeddedOptions{Listen: n.Embedded.Listen, JetStream: n.Embedded.JetStream, StoreDir: n.Embedded.StoreDir},
		Prefix:    n.Prefix,
		User:      n.User,
		Password:  n.Password,
		Token:     n.Token,
		CredsFile: n.Creds, NKeySeedFile: n.NKey,
		TLS: natspub.TLSOptions{CAFile: n.TLS.CA, CertFile: n.TLS.Cert, KeyFile: n.TLS.Key},
		JetStream: natspub.JetStreamOptions{Enabled: n.JetStream.Enabled, Stream: n.JetStream.Stream, Create: n.JetStream.Create,
			MaxPending: n.JetStream.MaxPending, AckTimeout: n.JetStream.AckTimeout, Replicas: n.JetStream.Replicas},
		BufferSize:        n.Buffer,
		FailIfUnreachable: n.RequireConnect,
	}
}

func readLabels(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			labels = append(labels, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading labels %s: %w", path, err)
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("labels file %s has no labels", path)
	}
	return labels, nil
}

// checkLabels compares the number of labels read from path with the model's number of classes: the width of
// its first output (the one results report classes from), when that width is fixed.
func checkLabels(path string, labels []string, m *model.Model) error {
	if len(m.Outputs) == 0 {
		return nil
	}
	out := m.Outputs[0]
	if len(out.Shape) < 2 {
		return nil
	}
	classes := int64(1)
	for _, d := range out.Shape[1:] {
		if d <= 0 {
			return nil // a symbolic size: known only when the model runs
		}
		classes *= d
	}
	if int64(len(labels)) != classes {
		return fmt.Errorf("labels file %s has %d labels, but model %s has %d classes (output %q, shape %v)",
			path, len(labels), m.Path, classes, out.Name, out.Shape)
	}
	return nil
}
