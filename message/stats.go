package message

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/sestream/sestream/se"
)

// TopGate is one of the largest gates of a block: its channel index and its value. In JSON it is the
// two-element array [channel, value], the value with float32 precision.
type TopGate struct {
	Channel int
	Value   float32
}

// MarshalJSON encodes g as [channel, value]; the value keeps float32 precision.
func (g TopGate) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]any{g.Channel, g.Value})
}

// UnmarshalJSON decodes [channel, value] where channel is a non-negative integer.
func (g *TopGate) UnmarshalJSON(data []byte) error {
	var pair []json.Number
	if err := json.Unmarshal(data, &pair); err != nil {
		return fmt.Errorf("top gate %s: want [channel, value]: %w", data, err)
	}
	if len(pair) != 2 {
		return fmt.Errorf("top gate %s: has %d elements, want [channel, value]", data, len(pair))
	}
	ch, err := pair[0].Int64()
	if err != nil || ch < 0 || ch > math.MaxInt32 {
		return fmt.Errorf("top gate %s: channel %s is not a non-negative integer", data, pair[0])
	}
	v, err := pair[1].Float64()
	if err != nil {
		return fmt.Errorf("top gate %s: value: %w", data, err)
	}
	g.Channel, g.Value = int(ch), float32(v)
	return nil
}

// Stats are the statistics of one SE block's gate vector for one frame, as published: what se.ComputeStats
// computed (see se.Stats for each field's definition and range), with float32 gate values kept as float32.
type Stats struct {
	Mean              float64   `json:"mean"`
	Std               float64   `json:"std"`
	Min               float64   `json:"min"`
	Max               float64   `json:"max"`
	Entropy           float64   `json:"entropy"`
	EffectiveChannels float64   `json:"effective_channels"`
	Top               []TopGate `json:"top"`
	Saturated         float64   `json:"saturated"`
	Suppressed        float64   `json:"suppressed"`
}

// StatsOf encodes s for a message. The message gets its own copy of the top gates.
func StatsOf(s *se.Stats) Stats {
	top := make([]TopGate, len(s.Top))
	for i, g := range s.Top {
		top[i] = TopGate{Channel: g.Channel, Value: g.Value}
	}
	return Stats{Mean: s.Mean, Std: s.Std, Min: s.Min, Max: s.Max, Entropy: s.Entropy,
		EffectiveChannels: s.EffectiveChannels, Top: top, Saturated: s.Saturated, Suppressed: s.Suppressed}
}

// MovedChannel is a channel whose gate moved from the stream's baseline: its index and signed z-score. In
// JSON it is the two-element array [channel, z].
type MovedChannel struct {
	Channel int
	Z       float64
}

// MarshalJSON encodes c as [channel, z].
func (c MovedChannel) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]any{c.Channel, c.Z})
}

// UnmarshalJSON decodes [channel, z] where channel is a non-negative integer.
func (c *MovedChannel) UnmarshalJSON(data []byte) error {
	var pair []json.Number
	if err := json.Unmarshal(data, &pair); err != nil {
		return fmt.Errorf("moved channel %s: want [channel, z]: %w", data, err)
	}
	if len(pair) != 2 {
		return fmt.Errorf("moved channel %s: has %d elements, want [channel, z]", data, len(pair))
	}
	ch, err := pair[0].Int64()
	if err != nil || ch < 0 || ch > math.MaxInt32 {
		return fmt.Errorf("moved channel %s: channel %s is not a non-negative integer", data, pair[0])
	}
	z, err := pair[1].Float64()
	if err != nil {
		return fmt.Errorf("moved channel %s: z: %w", data, err)
	}
	c.Channel, c.Z = int(ch), z
	return nil
}

// MovedOf encodes the moved channels of an se sample for a message (a copy: the sample is reused).
func MovedOf(moved []se.MovedChannel) []MovedChannel {
	if len(moved) == 0 {
		return nil
	}
	out := make([]MovedChannel, len(moved))
	for i, m := range moved {
		out[i] = MovedChannel{Channel: m.Channel, Z: m.Z}
	}
	return out
}
