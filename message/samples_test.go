package message

import (
	"math"
	"time"
)

// Sample messages shared by the tests: one of each kind, with every optional field set.

func ptr[T any](v T) *T { return &v }

var sampleTime = time.Date(2026, 11, 26, 19, 4, 5, 123456789, time.UTC)

func sampleResult() *Result {
	return &Result{
		Schema: SchemaResult, Stream: "cam1", Seq: 1042, BootID: "4f1c2a9e0b7d3e55",
		Captured: sampleTime, PTSMillis: ptr(41680.0), Width: 1280, Height: 720,
		Batch:   Batch{ID: 131, Size: 8},
		Model:   Model{Name: "se-mobilenet-fashion", Digest: "sha256:" + "9b1d5c0e2f7a4b3c8d6e1f0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"},
		Engine:  "onnxruntime",
		Top:     []Class{{Index: 7, Label: "sneaker", Score: 0.913}, {Index: 5, Label: "sandal", Score: 0.052}},
		Timings: Timings{Preprocess: 1.9, Queue: 4.2, Inference: 9.8, Publish: 0.04, Total: 16.3},
	}
}

func sampleAttention(blocks int) *Attention {
	a := &Attention{
		Schema: SchemaAttention, Stream: "cam1", Seq: 1042, BootID: "4f1c2a9e0b7d3e55",
		Captured: sampleTime,
		Model:    Model{Name: "se-mobilenet-fashion", Digest: ""},
	}
	for i := range blocks {
		c := 16 << (i % 4)
		entropy := 0.99 - 0.001*float64(i)
		b := Block{
			Name: "features." + string(rune('a'+i%26)) + ".se.gate", Order: i, Channels: c,
			Stats: Stats{
				Mean: 0.48, Std: 0.21, Min: 0.03, Max: 0.97, Entropy: entropy,
				// exp(H) with H = entropy * ln C: the two are one statistic in two units.
				EffectiveChannels: math.Round(math.Pow(float64(c), entropy)*100) / 100,
				Top:               []TopGate{{Channel: 3, Value: 0.97}, {Channel: 11, Value: 0.94}, {Channel: 0, Value: 0.9}, {Channel: 7, Value: 0.88}, {Channel: 5, Value: 0.85}},
				Saturated:         0.125, Suppressed: 0.0625,
			},
			DriftScore: ptr(0.8 + 0.1*float64(i)), DriftThreshold: ptr(2.1),
			Moved: []MovedChannel{{Channel: 11, Z: 2.4}, {Channel: 3, Z: -1.9}},
		}
		if i == 0 {
			b.Vector = []float32{0.5, 0.97, 0.03, 0.44}
		}
		a.Blocks = append(a.Blocks, b)
	}
	a.Drift = &Drift{Phase: "detecting", Score: 0.43, Hits: 1, RiseCount: 12, Evidence: 1, EvidenceRise: 18}
	return a
}

func sampleEvent() *Event {
	return &Event{
		Schema: SchemaEvent, Stream: "cam1", BootID: "4f1c2a9e0b7d3e55", Kind: EventAttentionDrift, Time: sampleTime,
		Details: &EventDetails{State: "rise", Frame: 1042, Score: ptr(3.4), Hits: 9, RiseCount: 12, Evidence: 18, EvidenceRise: 18,
			Blocks: []DriftBlock{{Name: "features.3.se.gate", Order: 1, Score: 7.1, Threshold: 2.1,
				Moved: []MovedChannel{{Channel: 11, Z: 6.2}, {Channel: 3, Z: -4.8}, {Channel: 40, Z: 4.1}}}}},
	}
}

func sampleStatus() *Status {
	return &Status{
		Schema: SchemaStatus, Version: "v0.1.0", BootID: "4f1c2a9e0b7d3e55", Time: sampleTime, UptimeSeconds: 3725.5,
		Streams: []StreamStatus{{Name: "cam1", FPSIn: 25, FPSOut: 24.9, Captured: 93100, Processed: 93050, Dropped: 50, Published: 93048, QueueDepth: 2, State: "running"}},
		NATS:    NATSStatus{Connected: true, Mode: "jetstream", Server: "nats://127.0.0.1:4222", Reconnects: 1, Published: 186100, Buffered: 0, Dropped: 0},
	}
}
