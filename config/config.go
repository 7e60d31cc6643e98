package config

import (
	"time"

	"github.com/sestream/sestream/se"
)

// Config is sestream's whole configuration, after defaults, file, environment and flags are merged.
// Every field has a key path (the mapstructure tags joined by dots, e.g. "batch.max_size") that docs/config.md
// documents and that error messages name.
type Config struct {
	// Streams are the video sources, at most MaxStreams. Empty means the built-in demo stream (the bundled
	// sample video).
	Streams    []Stream   `mapstructure:"streams"`
	Queue      Queue      `mapstructure:"queue"`
	Preprocess Preprocess `mapstructure:"preprocess"`
	Model      Model      `mapstructure:"model"`
	Engine     Engine     `mapstructure:"engine"`
	Batch      Batch      `mapstructure:"batch"`
	// Workers is the number of inference workers; each owns one engine session. 0 = auto: chosen when the
	// pipeline starts, with Engine.Threads, for the cores at hand (engine.ChooseLayout).
	Workers   int       `mapstructure:"workers"`
	Attention Attention `mapstructure:"attention"`
	NATS      NATS      `mapstructure:"nats"`
	HTTP      HTTP      `mapstructure:"http"`
	Log       Log       `mapstructure:"log"`
	Status    Status    `mapstructure:"status"`
	Shutdown  Shutdown  `mapstructure:"shutdown"`
	Fleet     Fleet     `mapstructure:"fleet"`
}

// Stream is one video source.
type Stream struct {
	// Name is the stream's name: one NATS subject token of 1-64 bytes of letters, digits, '-' and '_'
	// (message.ValidateToken).
	Name string `mapstructure:"name"`
	// URL is a file path, a URL of a scheme source.Schemes lists (file, rtsp(s), http(s), udp, rtp, srt,
	// rtmp(s), tcp), a device (/dev/videoN or an index), or an image directory or glob.
	URL string `mapstructure:"url"`
	// FPS takes frames evenly at this rate from the source's timeline; 0 takes every frame.
	FPS float64 `mapstructure:"fps"`
	// Loop restarts a file source at its end instead of ending the stream.
	Loop bool `mapstructure:"loop"`
	// Realtime paces a file at its own frame rate, as a camera would deliver it; otherwise files are read as
	// fast as the pipeline takes them.
	Realtime bool `mapstructure:"realtime"`
	// Transport is the RTSP transport: tcp or udp.
	Transport string `mapstructure:"transport"`
	// Policy overrides queue.policy for this stream: block, drop_oldest or drop_newest.
	Policy    string    `mapstructure:"policy"`
	Reconnect Reconnect `mapstructure:"reconnect"`
	// StallTimeout reopens a live source that delivered no frame for this long.
	StallTimeout time.Duration `mapstructure:"stall_timeout"`
}

// Reconnect is the backoff for live sources: it starts at Initial, doubles with jitter, and stops growing at Max.
type Reconnect struct {
	Initial time.Duration `mapstructure:"initial"`
	Max     time.Duration `mapstructure:"max"`
}

// Queue is the bounded frame queue of each stream.
type Queue struct {
	// Size is the queue's capacity in frames.
	Size int `mapstructure:"size"`
	// Policy is what a full queue does: block, drop_oldest or drop_newest; "auto" means drop_oldest for live
	// sources (the freshest frame wins) and block for files and image folders (nothing is skipped).
	Policy string `mapstructure:"policy"`
}

// Preprocess turns a frame into the model's input tensor. Zero values take the model's metadata, then defaults.
type Preprocess struct {
	// Width and Height are the model input size in pixels.
	Width  int `mapstructure:"width"`
	Height int `mapstructure:"height"`
	// Resize is stretch, letterbox or center_crop.
	Resize string `mapstructure:"resize"`
	// Color is the channel order the model wants: rgb, bgr or gray.
	Color string `mapstructure:"color"`
	// Scale multiplies each 8-bit pixel value before mean and std are applied.
	Scale float64 `mapstructure:"scale"`
	// Mean and Std are per channel: value = (pixel*scale - mean[c]) / std[c].
	Mean []float64 `mapstructure:"mean"`
	Std  []float64 `mapstructure:"std"`
	// Pad is the letterbox border value in 8-bit pixel units.
	Pad float64 `mapstructure:"pad"`
}

// Model is the ONNX model to run.
type Model struct {
	// Path is the ONNX file; empty means the bundled model.
	Path string `mapstructure:"path"`
	// Labels is a text file with one class label per line; it overrides labels in the model's metadata.
	Labels string `mapstructure:"labels"`
}

// Engine selects and tunes the inference backend.
type Engine struct {
	// Backend is auto, onnxruntime or opencv. auto takes ONNX Runtime when its library loads, else OpenCV DNN.
	Backend string `mapstructure:"backend"`
	// Threads is the intra-op thread count of each worker's session. 0 = auto (see Config.Workers).
	Threads int `mapstructure:"threads"`
	// Library is the path of libonnxruntime.so; empty searches SESTREAM_ENGINE_LIBRARY, the setup directory
	// third_party/onnxruntime, and the system library paths.
	Library string `mapstructure:"library"`
	// OpenCVBackend and OpenCVTarget are passed to OpenCV DNN: default, cuda, opencl, openvino, ...
	OpenCVBackend string `mapstructure:"opencv_backend"`
	OpenCVTarget  string `mapstructure:"opencv_target"`
	// Verify runs the SE self-check at load: every SE block's gates recomputed in Go from the block's input.
	Verify bool `mapstructure:"verify"`
}

// Batch bounds the batches the batcher builds across streams.
type Batch struct {
	// MaxSize is the largest batch; a batch is flushed as soon as it is full.
	MaxSize int `mapstructure:"max_size"`
	// MaxDelay flushes a batch this long after its first frame arrived, full or not.
	MaxDelay time.Duration `mapstructure:"max_delay"`
	// WhenIdle sends a batch as soon as an inference worker is free, however few frames it holds; batches
	// then fill only while every worker is busy, and MaxDelay bounds only that wait.
	WhenIdle bool `mapstructure:"when_idle"`
}

// Attention configures the channel-attention statistics published per frame.
type Attention struct {
	// TopK is the number of largest gates listed per SE block.
	TopK int `mapstructure:"top_k"`
	// IncludeVectors adds every SE block's whole gate vector to attention messages.
	IncludeVectors bool  `mapstructure:"include_vectors"`
	Drift          Drift `mapstructure:"drift"`
}

// Drift detects a change in a stream's attention: each SE block's gates against the stream's own baseline,
// with thresholds calibrated on the stream's own frames (see docs/attention.md). The fields are those of
// se.MonitorConfig, which owns their defaults and ranges; docs/config.md lists them.
type Drift struct {
	Enabled           bool    `mapstructure:"enabled"`
	GroupSize         int     `mapstructure:"group_size"`
	Shrinkage         float64 `mapstructure:"shrinkage"`
	MemoryFrames      float64 `mapstructure:"memory_frames"`
	RefreshFrames     int     `mapstructure:"refresh_frames"`
	WarmupFrames      int     `mapstructure:"warmup_frames"`
	CalibrationFrames int     `mapstructure:"calibration_frames"`
	FrameQuantile     float64 `mapstructure:"frame_quantile"`
	WindowFrames      int     `mapstructure:"window_frames"`
	FalseAlarmFrames  float64 `mapstructure:"false_alarm_frames"`
	FallFrames        int     `mapstructure:"fall_frames"`
	OutlierRatio      float64 `mapstructure:"outlier_ratio"`
	OutlierWeight     float64 `mapstructure:"outlier_weight"`
	AbsorbFrames      int     `mapstructure:"absorb_frames"`
	TopChannels       int     `mapstructure:"top_channels"`
	Stillness         bool    `mapstructure:"stillness"`
}

// Monitor returns the drift settings as the se.MonitorConfig they configure.
func (d Drift) Monitor() se.MonitorConfig {
	return se.MonitorConfig{GroupSize: d.GroupSize, Shrinkage: d.Shrinkage, MemoryFrames: d.MemoryFrames,
		RefreshFrames: d.RefreshFrames, WarmupFrames: d.WarmupFrames, CalibrationFrames: d.CalibrationFrames,
		FrameQuantile: d.FrameQuantile, WindowFrames: d.WindowFrames, FalseAlarmFrames: d.FalseAlarmFrames,
		FallFrames: d.FallFrames, OutlierRatio: d.OutlierRatio, OutlierWeight: d.OutlierWeight,
		AbsorbFrames: d.AbsorbFrames, TopChannels: d.TopChannels, Stillness: d.Stillness}
}

// NATS is where messages go.
type NATS struct {
	// URL is a comma-separated list of server URLs; empty starts an embedded server.
	URL      string   `mapstructure:"url"`
	Embedded Embedded `mapstructure:"embedded"`
	// Prefix is the first subject token: <prefix>.<stream>.result and so on.
	Prefix   string `mapstructure:"prefix"`
	User     string `mapstructure:"user"`
	Password string `mapstructure:"password"`
	Token    string `mapstructure:"token"`
	// Creds is a NATS credentials file (JWT and nkey seed).
	Creds string `mapstructure:"creds"`
	// NKey is a file holding an nkey seed.
	NKey      string    `mapstructure:"nkey"`
	TLS       TLS       `mapstructure:"tls"`
	JetStream JetStream `mapstructure:"jetstream"`
	// Buffer is the number of messages held while disconnected; beyond it messages are dropped and counted.
	Buffer int `mapstructure:"buffer"`
	// RequireConnect makes the process exit when no server answers at start, instead of retrying forever.
	RequireConnect bool `mapstructure:"require_connect"`
}

// Embedded is the in-process NATS server started when nats.url is empty.
type Embedded struct {
	Listen    string `mapstructure:"listen"`
	JetStream bool   `mapstructure:"jetstream"`
	// StoreDir is where the embedded server keeps JetStream data; empty uses a temporary directory.
	StoreDir string `mapstructure:"store_dir"`
}

// TLS configures the client side of TLS to NATS.
type TLS struct {
	CA   string `mapstructure:"ca"`
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// JetStream makes publishing durable: every message is acknowledged by a stream.
type JetStream struct {
	Enabled bool `mapstructure:"enabled"`
	// Stream is the JetStream stream that holds "<prefix>.>".
	Stream string `mapstructure:"stream"`
	// Create allows creating the stream when it does not exist.
	Create bool `mapstructure:"create"`
	// MaxPending bounds the publishes awaiting an acknowledgement.
	MaxPending int           `mapstructure:"max_pending"`
	AckTimeout time.Duration `mapstructure:"ack_timeout"`
	// Replicas is the stream's replica count when sestream creates it.
	Replicas int `mapstructure:"replicas"`
}

// HTTP is the metrics and health endpoint.
type HTTP struct {
	// Listen is host:port; empty disables the endpoint.
	Listen string `mapstructure:"listen"`
	// Dashboard serves the live attention dashboard at / on Listen (see docs/dashboard.md); it also turns
	// on attention.include_vectors, which the heatmaps need.
	Dashboard bool `mapstructure:"dashboard"`
	// DashboardFrames says where frame thumbnails for the dashboard go: "off" (none), "local" (only to this
	// process's dashboard) or "nats" (also published on <prefix>.<stream>.frame, for remote dashboards).
	DashboardFrames string `mapstructure:"dashboard_frames"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is text or json.
	Format string `mapstructure:"format"`
}

// Status configures the periodic heartbeat on <prefix>.status and the console summary.
type Status struct {
	Interval time.Duration `mapstructure:"interval"`
	// Summary prints a one-line summary on stderr every second.
	Summary bool `mapstructure:"summary"`
}

// Shutdown bounds the graceful drain.
type Shutdown struct {
	// DrainTimeout is how long in-flight frames may take to finish and be published after a stop is asked.
	DrainTimeout time.Duration `mapstructure:"drain_timeout"`
}

// Fleet makes several instances started with the same configuration share its streams over a NATS cluster:
// each stream runs on exactly one live instance, held by a lease in a JetStream key-value bucket (see
// docs/operations.md).
type Fleet struct {
	Enabled bool `mapstructure:"enabled"`
	// Name names the fleet: instances with the same name (and NATS servers) share its streams.
	Name string `mapstructure:"name"`
	// Instance names this instance in the fleet's status; empty uses the host name. Two live instances may
	// share a name: leases are held by boot id.
	Instance string `mapstructure:"instance"`
	// Bucket is the key-value bucket of leases and members; empty uses "sestream_fleet_<name>". The desired
	// stream list is kept in the bucket "<bucket>_streams".
	Bucket string `mapstructure:"bucket"`
	// LeaseTTL is how long a lease outlives its owner's last renewal: an instance that dies or is cut off
	// loses its streams after it. It is the bucket's TTL.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
	// RenewInterval is the period of lease renewal and of rebalancing; at most a third of LeaseTTL.
	RenewInterval time.Duration `mapstructure:"renew_interval"`
	// MaxMoves bounds the streams an instance over its fair share gives up per renew interval.
	MaxMoves int `mapstructure:"max_moves"`
	// Replicas is the bucket's replica count: 3 on a 3-node cluster, so that leases survive losing a node.
	Replicas int `mapstructure:"replicas"`
}
