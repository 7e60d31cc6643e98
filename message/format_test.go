package message

import (
	"math"
	"strings"
	"testing"
)

func TestEntropyBar(t *testing.T) {
	blocks := func(es ...float64) []Block {
		out := make([]Block, len(es))
		for i, e := range es {
			out[i].Entropy = e
		}
		return out
	}
	tests := []struct {
		in   []Block
		want string
	}{
		{nil, ""},
		{blocks(0, 1), "▁█"},
		{blocks(0, 0.5, 1), "▁▅█"},
		{blocks(-3, 7, math.NaN()), "▁█?"},
		{blocks(0.07, 0.08, 0.92, 0.93), "▁▂▇█"},
	}
	for _, tc := range tests {
		if got := EntropyBar(tc.in); got != tc.want {
			t.Errorf("EntropyBar(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLine(t *testing.T) {
	raw := sampleResult()
	raw.Top, raw.Outputs = nil, []float32{0.1, 2.5, -1}
	tests := []struct {
		name string
		msg  any
		want []string
	}{
		{"result", sampleResult(), []string{"cam1 #1042", "sneaker 0.913", "latency 16.3ms", "batch 8"}},
		{"result raw", raw, []string{"outputs[3] max #1 2.500"}},
		{"attention", sampleAttention(4), []string{"cam1 #1042 drift 0.43 hits 1/12 evidence 1/18", "gates mean±std 0.48±0.21 0.48±0.21"}},
		{"event", sampleEvent(), []string{"cam1 event attention_drift rise", "frame=1042", "score=3.40 hits=9/12 evidence=18/18", "features.3.se.gate=7.10/2.10 ch11+6.2 ch3-4.8 ch40+4.1"}},
		{"status", sampleStatus(), []string{"up 1h2m6s", "cam1 running 25.0/24.9fps q2 drop50", "nats jetstream connected published 186100"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Line(tc.msg)
			if strings.Contains(got, "\n") {
				t.Fatalf("Line has a newline: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Line = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}
