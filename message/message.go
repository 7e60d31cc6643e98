package message

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Schema names carried in every message's "schema" field. A consumer switches on this field;
// a new major version gets a new name.
const (
	SchemaResult    = "sestream.result/v1"
	SchemaAttention = "sestream.attention/v1"
	SchemaEvent     = "sestream.event/v1"
	SchemaStatus    = "sestream.status/v1"
)

// Kind is one of the four message kinds. Its string form is the last subject token.
type Kind int

// The message kinds, published on <prefix>.<stream>.result, .attention, .event, and <prefix>.status.
const (
	KindResult Kind = iota
	KindAttention
	KindEvent
	KindStatus
)

// Kinds lists every message kind in a fixed order, for counters and loops.
var Kinds = [...]Kind{KindResult, KindAttention, KindEvent, KindStatus}

// String returns the kind's subject token: "result", "attention", "event" or "status".
func (k Kind) String() string {
	switch k {
	case KindResult:
		return "result"
	case KindAttention:
		return "attention"
	case KindEvent:
		return "event"
	case KindStatus:
		return "status"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Schema returns the schema name of the kind, e.g. "sestream.result/v1".
func (k Kind) Schema() string {
	switch k {
	case KindResult:
		return SchemaResult
	case KindAttention:
		return SchemaAttention
	case KindEvent:
		return SchemaEvent
	case KindStatus:
		return SchemaStatus
	}
	return ""
}

// ParseKind parses a kind's subject token.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown message kind %q (want result, attention, event or status)", s)
}

// NewBootID returns a random identifier for one run of the process: 16 lowercase hex digits.
// It tells consumers that frame sequence numbers restarted.
func NewBootID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Millis converts a duration to fractional milliseconds, the unit of every *_ms field.
func Millis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}

// Model identifies the model that produced a message.
type Model struct {
	// Name is the model's configured name or file base name.
	Name string `json:"name"`
	// Digest is "sha256:" followed by the hex SHA-256 of the model file.
	Digest string `json:"digest"`
}

// Batch identifies the inference batch a frame was part of.
type Batch struct {
	// ID numbers batches within one run, starting at 1.
	ID uint64 `json:"id"`
	// Size is the number of frames in the batch.
	Size int `json:"size"`
}

// Class is one entry of a result's top-k list.
type Class struct {
	// Index is the class index in the model's output vector.
	Index int `json:"index"`
	// Label is the class name, empty when the model has no labels.
	Label string `json:"label,omitempty"`
	// Score is the model's score for the class (a probability when the model ends in softmax).
	Score float32 `json:"score"`
}

// Timings are a frame's per-stage durations in milliseconds.
type Timings struct {
	// Preprocess is resize and normalization.
	Preprocess float64 `json:"preprocess"`
	// Queue is the wait between preprocessing and the start of inference (queues and batcher).
	Queue float64 `json:"queue"`
	// Inference is the wall time of the frame's batch.
	Inference float64 `json:"inference"`
	// Publish is the time from the end of inference to the message being encoded.
	Publish float64 `json:"publish"`
	// Total is the time from capture to the message being encoded.
	Total float64 `json:"total"`
}

// Result is published on <prefix>.<stream>.result, once per processed frame.
type Result struct {
	// Schema is always SchemaResult.
	Schema string `json:"schema"`
	// Stream is the stream name (the subject's middle token).
	Stream string `json:"stream"`
	// Seq is the frame's sequence number within the stream, starting at 1 at each boot.
	Seq uint64 `json:"seq"`
	// BootID identifies the process run; Seq restarts when it changes.
	BootID string `json:"boot_id"`
	// Captured is the wall time the frame was read, encoded RFC 3339 with nanoseconds.
	Captured time.Time `json:"captured"`
	// PTSMillis is the frame's position on the source timeline, when the source has one.
	PTSMillis *float64 `json:"pts_ms,omitempty"`
	// Width and Height are the frame's size in pixels before preprocessing.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Batch is the inference batch the frame was part of.
	Batch Batch `json:"batch"`
	// Model is the model that classified the frame.
	Model Model `json:"model"`
	// Engine is the inference backend: "onnxruntime" or "opencv".
	Engine string `json:"engine"`
	// Top is the k best classes, best first. Empty when Outputs is set.
	Top []Class `json:"top,omitempty"`
	// Outputs is the raw output vector, sent instead of Top when the model has no labels.
	Outputs []float32 `json:"outputs,omitempty"`
	// Timings are the frame's per-stage durations.
	Timings Timings `json:"timings_ms"`
}

// Block is the attention of one SE block for one frame.
type Block struct {
	// Name is the SE block's name (its gate node in the model graph).
	Name string `json:"name"`
	// Order is the block's position in the network, 0 nearest the input.
	Order int `json:"order"`
	// Channels is the number of gates, C.
	Channels int `json:"channels"`
	// Stats are the gate statistics (mean, std, min, max, entropy, effective_channels, top,
	// saturated, suppressed); their fields appear inline in the JSON object.
	Stats
	// DriftScore is how far this frame's gates are from the stream's own baseline for this block, in units
	// of the stream's variability (a shrunk Mahalanobis distance divided by the channel count: about 1 or
	// less on typical frames); DriftThreshold is the block's calibrated per-frame threshold. Both are left
	// out while the baseline warms up (and the threshold until calibration ends), and when drift is off.
	DriftScore     *float64 `json:"drift_score,omitempty"`
	DriftThreshold *float64 `json:"drift_threshold,omitempty"`
	// Moved are the channels whose gates moved most from the stream's baseline, as [channel, z] with z the
	// signed z-score (gate - baseline mean) / baseline std, largest |z| first.
	Moved []MovedChannel `json:"moved,omitempty"`
	// Vector is the full gate vector, C values in channel order, when vectors are included.
	Vector []float32 `json:"vector,omitempty"`
}

// Attention is published on <prefix>.<stream>.attention, once per processed frame.
type Attention struct {
	// Schema is always SchemaAttention.
	Schema string `json:"schema"`
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	BootID string `json:"boot_id"`
	// Captured is the wall time the frame was read.
	Captured time.Time `json:"captured"`
	Model    Model     `json:"model"`
	// Blocks are the SE blocks in network order.
	Blocks []Block `json:"blocks"`
	// Drift is the stream's attention drift state after this frame; left out when drift is off.
	Drift *Drift `json:"drift,omitempty"`
}

// Drift is a stream's attention drift state, as of one frame.
type Drift struct {
	// Phase is "warming" (the baselines learn), "calibrating" (thresholds are being set from the stream's
	// own frames) or "detecting".
	Phase string `json:"phase"`
	// Score is the largest block score relative to its threshold (DriftScore / DriftThreshold): a frame
	// over 1 is a hit. 0 before detection starts.
	Score float64 `json:"score"`
	// Hits counts the hit frames in the last window; RiseCount is the count that raises the alarm.
	Hits      int `json:"hits"`
	RiseCount int `json:"rise_count"`
	// Evidence counts the inputs (SE blocks, stillness) over their threshold, summed over the frames of the
	// same window; EvidenceRise is the evidence that raises the alarm (either count can raise it).
	Evidence     int `json:"evidence"`
	EvidenceRise int `json:"evidence_rise"`
	// On is true while the stream's attention drift alarm is on (between an attention_drift rise and fall).
	On bool `json:"on"`
	// Still is true when the gates stopped changing from frame to frame (a frozen picture, a covered lens).
	Still bool `json:"still,omitempty"`
}

// EventKind says what an event reports.
type EventKind string

// Event kinds. Source events come from capture; drift events from attention statistics.
const (
	EventConnected   EventKind = "connected"
	EventLost        EventKind = "lost"
	EventReconnected EventKind = "reconnected"
	EventEnded       EventKind = "ended"
	EventError       EventKind = "error"
	// EventAttentionDrift: the stream's attention drift alarm rose or fell (EventDetails.State).
	EventAttentionDrift EventKind = "attention_drift"
)

// EventKinds lists every event kind.
var EventKinds = [...]EventKind{EventConnected, EventLost, EventReconnected, EventEnded, EventError, EventAttentionDrift}

// Valid reports whether k is one of EventKinds.
func (k EventKind) Valid() bool {
	for _, v := range EventKinds {
		if k == v {
			return true
		}
	}
	return false
}

// EventDetails carry what is known about an event; fields that do not apply are omitted.
type EventDetails struct {
	// Attempt is the reconnect attempt number (lost, reconnected).
	Attempt int `json:"attempt,omitempty"`
	// OutageMillis is how long the source was gone (reconnected).
	OutageMillis float64 `json:"outage_ms,omitempty"`
	// Error is the error text (lost, error). It never contains credentials.
	Error string `json:"error,omitempty"`
	// URL is the source URL with any password removed (source events).
	URL string `json:"url,omitempty"`
	// Frames is the number of frames the stream had delivered when the event happened (source events).
	Frames uint64 `json:"frames,omitempty"`
	// RetryInMillis is, for an error of a live source, the delay before the next attempt.
	RetryInMillis float64 `json:"retry_in_ms,omitempty"`
	// Skipped counts, for image folders, the files skipped so far (not images, or not decodable).
	Skipped int `json:"skipped,omitempty"`
	// State is "rise" or "fall" (attention_drift).
	State string `json:"state,omitempty"`
	// Frame is the sequence number of the frame that triggered the event (attention_drift).
	Frame uint64 `json:"frame,omitempty"`
	// Score, Hits and RiseCount are the stream's drift score and windowed hit count on that frame, and the
	// count that raises the alarm (attention_drift; see Drift).
	Score     *float64 `json:"score,omitempty"`
	Hits      int      `json:"hits,omitempty"`
	RiseCount int      `json:"rise_count,omitempty"`
	// Evidence and EvidenceRise: the windowed evidence on that frame and the level that raises the alarm
	// (attention_drift; see Drift).
	Evidence     int `json:"evidence,omitempty"`
	EvidenceRise int `json:"evidence_rise,omitempty"`
	// Still: the gates had stopped changing on that frame (attention_drift).
	Still bool `json:"still,omitempty"`
	// Blocks are the SE blocks involved (attention_drift): on a rise those over their threshold on that
	// frame, on a fall every block; each with its score, threshold and most moved channels.
	Blocks []DriftBlock `json:"blocks,omitempty"`
}

// DriftBlock is one SE block in an attention_drift event.
type DriftBlock struct {
	Name      string         `json:"name"`
	Order     int            `json:"order"`
	Score     float64        `json:"score"`
	Threshold float64        `json:"threshold"`
	Moved     []MovedChannel `json:"moved,omitempty"`
}

// Event is published on <prefix>.<stream>.event when a stream changes state.
type Event struct {
	// Schema is always SchemaEvent.
	Schema string    `json:"schema"`
	Stream string    `json:"stream"`
	BootID string    `json:"boot_id"`
	Kind   EventKind `json:"kind"`
	// Time is when the event happened.
	Time    time.Time     `json:"time"`
	Details *EventDetails `json:"details,omitempty"`
}

// StreamStatus is one stream's line in a status heartbeat.
type StreamStatus struct {
	Name string `json:"name"`
	// FPSIn is frames per second read from the source, FPSOut frames per second published,
	// both over the last heartbeat interval.
	FPSIn  float64 `json:"fps_in"`
	FPSOut float64 `json:"fps_out"`
	// Captured, Processed and Dropped count frames since boot. Published counts processed frames whose
	// messages were confirmed, PublishDropped those whose messages the publisher dropped (see
	// docs/operations.md for how the counters add up).
	Captured       uint64 `json:"captured"`
	Processed      uint64 `json:"processed"`
	Dropped        uint64 `json:"dropped"`
	Published      uint64 `json:"published"`
	PublishDropped uint64 `json:"publish_dropped"`
	// QueueDepth is the number of frames waiting in the stream's queue.
	QueueDepth int `json:"queue_depth"`
	// State is the source state: "starting", "running", "reconnecting", "ended" or "failed".
	State string `json:"state"`
}

// NATSStatus is the publisher's part of a status heartbeat. Counts are messages since boot.
type NATSStatus struct {
	Connected bool `json:"connected"`
	// Mode is "core" or "jetstream".
	Mode string `json:"mode"`
	// Server is the connected server's address (never with credentials), or "embedded <addr>".
	Server     string `json:"server,omitempty"`
	Reconnects uint64 `json:"reconnects"`
	// Published counts messages the server confirmed (core: flushed; JetStream: acknowledged).
	Published uint64 `json:"published"`
	// Buffered is the number of messages waiting to be sent now.
	Buffered int `json:"buffered"`
	// Dropped counts messages lost to a full buffer or exhausted retries.
	Dropped uint64 `json:"dropped"`
}

// Status is published on <prefix>.status every few seconds.
type Status struct {
	// Schema is always SchemaStatus.
	Schema  string    `json:"schema"`
	Version string    `json:"version"`
	BootID  string    `json:"boot_id"`
	Time    time.Time `json:"time"`
	// UptimeSeconds is the time since the process started.
	UptimeSeconds float64        `json:"uptime_s"`
	Streams       []StreamStatus `json:"streams"`
	NATS          NATSStatus     `json:"nats"`
}
