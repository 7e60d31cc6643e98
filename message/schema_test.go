package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sestream/sestream/se"
)

// compileSchemas compiles docs/schemas/<kind>.json for every kind.
func compileSchemas(t testing.TB) map[Kind]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := make(map[Kind]*jsonschema.Schema)
	for _, k := range Kinds {
		path, err := filepath.Abs(filepath.Join("..", "docs", "schemas", k.String()+".json"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(path)
		if err != nil {
			t.Fatalf("compile schema of %s: %v", k, err)
		}
		out[k] = s
	}
	return out
}

func validate(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("unmarshal %s: %v", data, err)
	}
	return s.Validate(v)
}

func TestMessagesValidateAgainstSchemas(t *testing.T) {
	schemas := compileSchemas(t)
	noLabels := sampleResult()
	noLabels.Top, noLabels.Outputs, noLabels.PTSMillis = nil, []float32{-1.5, 2.25, 0.125}, nil
	minimalEvent := &Event{Schema: SchemaEvent, Stream: "door", BootID: "b", Kind: EventConnected, Time: sampleTime}
	emptyStatus := &Status{Schema: SchemaStatus, Version: "dev", BootID: "b", Time: sampleTime, NATS: NATSStatus{Mode: "core"}}
	tests := []struct {
		name string
		kind Kind
		msg  any
	}{
		{"result with labels", KindResult, sampleResult()},
		{"result with raw outputs", KindResult, noLabels},
		{"attention 16 blocks", KindAttention, sampleAttention(16)},
		{"attention no blocks", KindAttention, sampleAttention(0)},
		{"event attention_drift", KindEvent, sampleEvent()},
		{"event without details", KindEvent, minimalEvent},
		{"status", KindStatus, sampleStatus()},
		{"status no streams", KindStatus, emptyStatus},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(t, schemas[tc.kind], data); err != nil {
				t.Fatalf("%s does not validate: %v\n%s", tc.kind, err, data)
			}
		})
	}
}

// TestSchemasRejectBadMessages shows the schemas are strict enough to catch mistakes.
func TestSchemasRejectBadMessages(t *testing.T) {
	schemas := compileSchemas(t)
	mutate := func(kind Kind, msg any, f func(m map[string]any)) []byte {
		data, _ := json.Marshal(msg)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	tests := []struct {
		name string
		kind Kind
		data []byte
	}{
		{"result wrong schema", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { m["schema"] = "sestream.result/v2" })},
		{"result dotted stream", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { m["stream"] = "a.b" })},
		{"result seq zero", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { m["seq"] = 0 })},
		{"result bad time", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { m["captured"] = "yesterday" })},
		{"result no top nor outputs", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { delete(m, "top") })},
		{"result unknown field", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { m["extra"] = 1 })},
		{"result missing timings", KindResult, mutate(KindResult, sampleResult(), func(m map[string]any) { delete(m, "timings_ms") })},
		{"attention entropy above 1", KindAttention, mutate(KindAttention, sampleAttention(2), func(m map[string]any) {
			m["blocks"].([]any)[0].(map[string]any)["entropy"] = 1.5
		})},
		{"attention top pair of 3", KindAttention, mutate(KindAttention, sampleAttention(2), func(m map[string]any) {
			m["blocks"].([]any)[1].(map[string]any)["top"] = []any{[]any{1, 0.5, 2}}
		})},
		{"event unknown kind", KindEvent, mutate(KindEvent, sampleEvent(), func(m map[string]any) { m["kind"] = "exploded" })},
		{"status missing nats", KindStatus, mutate(KindStatus, sampleStatus(), func(m map[string]any) { delete(m, "nats") })},
		{"status bad mode", KindStatus, mutate(KindStatus, sampleStatus(), func(m map[string]any) { m["nats"].(map[string]any)["mode"] = "udp" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := validate(t, schemas[tc.kind], tc.data); err == nil {
				t.Fatalf("schema of %s accepted %s", tc.kind, tc.data)
			}
		})
	}
}

// TestDocsExamples checks that every example message in docs/messages.md validates against its
// schema and decodes, so the documentation stays true to the code.
func TestDocsExamples(t *testing.T) {
	schemas := compileSchemas(t)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "messages.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	seen := make(map[Kind]bool)
	for i, b := range blocks {
		kind, msg, err := Decode(b[1])
		if err != nil {
			t.Errorf("docs/messages.md example %d: %v", i+1, err)
			continue
		}
		seen[kind] = true
		if err := validate(t, schemas[kind], b[1]); err != nil {
			t.Errorf("docs/messages.md example %d (%s) does not validate: %v", i+1, kind, err)
		}
		if a, ok := msg.(*Attention); ok {
			for _, bl := range a.Blocks {
				if err := statsConsistent(bl); err != nil {
					t.Errorf("docs/messages.md example %d, block %q: %v", i+1, bl.Name, err)
				}
			}
		}
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("docs/messages.md has no example of a %s message", k)
		}
	}
}

// statsConsistent checks that a block's statistics could come from one gate vector: effective channels
// are C^entropy, saturated and suppressed are whole numbers of channels, the top gates are in order within
// [min, max] with max first, and the saturated fraction counts the top gates above se.SaturatedAbove.
func statsConsistent(b Block) error {
	c := float64(b.Channels)
	if want := math.Pow(c, b.Entropy); math.Abs(b.EffectiveChannels-want) > 0.01*want {
		return fmt.Errorf("effective_channels %v, but channels^entropy = %.2f", b.EffectiveChannels, want)
	}
	for name, f := range map[string]float64{"saturated": b.Saturated, "suppressed": b.Suppressed} {
		if n := f * c; math.Abs(n-math.Round(n)) > 1e-6 {
			return fmt.Errorf("%s %v is %.2f of %d channels, not a whole number", name, f, n, b.Channels)
		}
	}
	above := 0
	for i, g := range b.Top {
		v := float64(g.Value)
		if v < b.Min || v > b.Max+1e-6 || i > 0 && v > float64(b.Top[i-1].Value) {
			return fmt.Errorf("top gate %d (%v) out of order or outside [min %v, max %v]", i, v, b.Min, b.Max)
		}
		if v > se.SaturatedAbove {
			above++
		}
	}
	if len(b.Top) > 0 && math.Abs(float64(b.Top[0].Value)-b.Max) > 1e-6 {
		return fmt.Errorf("largest top gate %v, max %v", b.Top[0].Value, b.Max)
	}
	n := int(math.Round(b.Saturated * c))
	if n < above || above < len(b.Top) && n != above {
		return fmt.Errorf("saturated is %d channels, but %d of the top %d gates are above %v", n, above, len(b.Top), se.SaturatedAbove)
	}
	return nil
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		kind Kind
		msg  any
	}{
		{KindResult, sampleResult()},
		{KindAttention, sampleAttention(3)},
		{KindEvent, sampleEvent()},
		{KindStatus, sampleStatus()},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			data, err := json.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			kind, v, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if kind != tc.kind {
				t.Fatalf("kind %s, want %s", kind, tc.kind)
			}
			again, _ := json.Marshal(v)
			if !bytes.Equal(again, data) {
				t.Fatalf("round trip changed the message:\n got %s\nwant %s", again, data)
			}
		})
	}
}

func TestCapturedKeepsNanoseconds(t *testing.T) {
	data, _ := json.Marshal(sampleResult())
	if !strings.Contains(string(data), `"captured":"2026-11-26T19:04:05.123456789Z"`) {
		t.Fatalf("captured not RFC 3339 with ns: %s", data)
	}
	_, v, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(*Result).Captured; !got.Equal(sampleTime) || got.Nanosecond() != 123456789 {
		t.Fatalf("captured %v, want %v", got, sampleTime.Format(time.RFC3339Nano))
	}
}

// BenchmarkEncodeFrame encodes one frame's result and attention (16 SE blocks): the CPU the
// publisher spends on the pipeline's goroutine per frame.
func BenchmarkEncodeFrame(b *testing.B) {
	r, a := sampleResult(), sampleAttention(16)
	for i := range a.Blocks {
		a.Blocks[i].Vector = nil
	}
	b.ReportAllocs()
	var n int
	for range b.N {
		rb, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		ab, err := json.Marshal(a)
		if err != nil {
			b.Fatal(err)
		}
		n = len(rb) + len(ab)
	}
	b.ReportMetric(float64(n), "bytes/frame")
}
