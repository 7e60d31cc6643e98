package message

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestFleetStatusSchema: a fleet status message validates against docs/schemas/fleet.json, and the schema
// catches a missing field and a stream name that is not a subject token.
func TestFleetStatusSchema(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("..", "docs", "schemas", "fleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The example in docs/messages.md, fenced as "json fleet" (it is not one of the per-stream kinds that
	// TestDocsExamples decodes).
	doc, err := os.ReadFile(filepath.Join("..", "docs", "messages.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples := regexp.MustCompile("(?s)```json fleet\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(examples) == 0 {
		t.Error("docs/messages.md has no fleet status example")
	}
	for _, ex := range examples {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(ex[1]))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("the fleet example of docs/messages.md does not validate: %v", err)
		}
		var st FleetStatus
		dec := json.NewDecoder(bytes.NewReader(ex[1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil || st.Schema != SchemaFleet {
			t.Errorf("the fleet example of docs/messages.md does not decode into FleetStatus: %v", err)
		}
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	good := FleetStatus{Schema: SchemaFleet, Fleet: "site1", Instance: "host-a", BootID: "9f2c4e1a7b3d5c60", Time: now,
		Joined: now.Add(-time.Minute), Members: []string{"9f2c4e1a7b3d5c60", "0a1b2c3d4e5f6071"}, Desired: 3, Share: 2,
		Streams: []FleetStream{{Name: "cam1", Since: now.Add(-30 * time.Second), RenewedAgoS: 0.4}},
		Moves:   FleetMoves{Acquired: 2, Released: 1}}
	empty := FleetStatus{Schema: SchemaFleet, Fleet: "site1", BootID: "b", Time: now, Joined: now}
	badName := good
	badName.Streams = []FleetStream{{Name: "cam.1", Since: now}}
	for _, tc := range []struct {
		name  string
		msg   any
		valid bool
	}{
		{"member with a lease", good, true},
		{"member with nothing", empty, true},
		{"stream name with a dot", badName, false},
		{"no boot id", map[string]any{"schema": SchemaFleet, "fleet": "f"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(v); (err == nil) != tc.valid {
				t.Fatalf("valid=%v, want %v: %v\n%s", err == nil, tc.valid, err, data)
			}
		})
	}
}
