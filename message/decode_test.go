package message

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		unknown bool
	}{
		{"not json", `hello`, false},
		{"no schema", `{"stream":"cam1"}`, true},
		{"unknown schema", `{"schema":"sestream.result/v9"}`, true},
		{"schema not a string", `{"schema":3}`, false},
		{"seq negative", `{"schema":"sestream.result/v1","stream":"cam1","seq":-1}`, false},
		{"dotted stream", `{"schema":"sestream.result/v1","stream":"a.b","seq":1}`, false},
		{"empty stream", `{"schema":"sestream.attention/v1","stream":"","seq":1}`, false},
		{"bad captured", `{"schema":"sestream.result/v1","stream":"cam1","captured":"noon"}`, false},
		{"unknown event kind", `{"schema":"sestream.event/v1","stream":"cam1","kind":"boom"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decode([]byte(tc.data))
			if err == nil {
				t.Fatalf("Decode(%s) succeeded", tc.data)
			}
			if got := errors.Is(err, ErrUnknownSchema); got != tc.unknown {
				t.Fatalf("errors.Is(ErrUnknownSchema) = %v for %v", got, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range []any{sampleResult(), sampleAttention(2), sampleEvent(), sampleStatus()} {
		data, _ := json.Marshal(m)
		f.Add(data)
	}
	f.Add([]byte(`{"schema":"sestream.event/v1","stream":"a b","kind":"lost"}`))
	f.Add([]byte(`{"schema":"sestream.attention/v1","stream":"x","blocks":[{"entropy":"NaN"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, v, err := Decode(data)
		if err != nil {
			return
		}
		_ = Line(v) // must not panic on anything Decode accepts
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode of a decoded %s: %v", kind, err)
		}
		kind2, _, err := Decode(out)
		if err != nil || kind2 != kind {
			t.Fatalf("re-decoded %s as %s, %v: %s", kind, kind2, err, out)
		}
	})
}
