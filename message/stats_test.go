package message

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sestream/sestream/se"
)

func TestStatsJSON(t *testing.T) {
	st := Stats{Mean: 0.5, Std: 0.25, Min: 0.125, Max: 0.875, Entropy: 0.9, EffectiveChannels: 3.5,
		Top: []TopGate{{7, 0.875}, {2, 0.1}}, Saturated: 0.25, Suppressed: 0}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mean":0.5,"std":0.25,"min":0.125,"max":0.875,"entropy":0.9,"effective_channels":3.5,` +
		`"top":[[7,0.875],[2,0.1]],"saturated":0.25,"suppressed":0}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	var back Stats
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back) != fmt.Sprint(st) {
		t.Errorf("round trip = %+v, want %+v", back, st)
	}
	empty, _ := json.Marshal(Stats{Top: []TopGate{}})
	if !strings.Contains(string(empty), `"top":[]`) {
		t.Errorf("empty top encodes as %s, want []", empty)
	}

	for _, bad := range []string{`[1]`, `[1,2,3]`, `{"channel":1}`, `[-1,0.5]`, `[1.5,0.5]`, `["a",0.5]`, `[1,"x"]`} {
		var g TopGate
		if err := json.Unmarshal([]byte(bad), &g); err == nil {
			t.Errorf("TopGate from %s: err = nil, want an error", bad)
		}
	}
}

func TestStatsOf(t *testing.T) {
	in := se.Stats{Mean: 0.5, Std: 0.1, Min: 0.2, Max: 0.9, Entropy: 0.99, EffectiveChannels: 15.9,
		Top: []se.TopGate{{Channel: 3, Value: 0.9}}, Saturated: 0.0625, Suppressed: 0}
	got := StatsOf(&in)
	in.Top[0].Channel = 7 // the message keeps its own copy
	want := Stats{Mean: 0.5, Std: 0.1, Min: 0.2, Max: 0.9, Entropy: 0.99, EffectiveChannels: 15.9,
		Top: []TopGate{{Channel: 3, Value: 0.9}}, Saturated: 0.0625, Suppressed: 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("StatsOf = %+v, want %+v", got, want)
	}
}
