package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

const tinyModel = "../../model/testdata/tiny_se.onnx"

func TestInspectTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"inspect", tinyModel}, &out, &errOut); code != exitOK {
		t.Fatalf("exit code %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"input   images  [batch 3 8 10]",
		"output  logits  [batch 5]",
		"labels             5 labels: zero, one, two, three, four",
		"preprocess.resize  stretch",
		"training.commit    fixture",
		"SE blocks: 3",
		"ORDER  NAME                   CHANNELS  HIDDEN  R  GATE          ACTIVATION",
		"0      /se1/gate/Sigmoid      8         2       4  sigmoid       relu",
		"1      /se2/gate/HardSigmoid  16        4       4  hard_sigmoid  silu",
		"2      /se3/gate/Sigmoid      16        8       2  sigmoid       relu",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestInspectJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"inspect", "--json", tinyModel}, &out, &errOut); code != exitOK {
		t.Fatalf("exit code %d: %s", code, errOut.String())
	}
	// Decode generically: the contract is the JSON keys, not this package's types.
	var got struct {
		Inputs []struct {
			Name  string  `json:"name"`
			Shape []int64 `json:"shape"`
		} `json:"inputs"`
		Outputs []struct {
			Name  string  `json:"name"`
			Shape []int64 `json:"shape"`
		} `json:"outputs"`
		Metadata map[string]string `json:"metadata"`
		SEBlocks []map[string]any  `json:"se_blocks"`
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Inputs) != 1 || got.Inputs[0].Name != "images" || !reflect.DeepEqual(got.Inputs[0].Shape, []int64{-1, 3, 8, 10}) {
		t.Errorf("inputs %+v", got.Inputs)
	}
	if len(got.Outputs) != 1 || got.Outputs[0].Name != "logits" || !reflect.DeepEqual(got.Outputs[0].Shape, []int64{-1, 5}) {
		t.Errorf("outputs %+v", got.Outputs)
	}
	if got.Metadata["preprocess.width"] != "10" || got.Metadata["labels"] != `["zero", "one", "two", "three", "four"]` {
		t.Errorf("metadata %v", got.Metadata)
	}
	want := []map[string]any{
		{"name": "/se1/gate/Sigmoid", "channels": 8.0, "hidden": 2.0, "gate": "sigmoid", "activation": "relu"},
		{"name": "/se2/gate/HardSigmoid", "channels": 16.0, "hidden": 4.0, "gate": "hard_sigmoid", "activation": "silu"},
		{"name": "/se3/gate/Sigmoid", "channels": 16.0, "hidden": 8.0, "gate": "sigmoid", "activation": "relu"},
	}
	if len(got.SEBlocks) != len(want) {
		t.Fatalf("se_blocks %v", got.SEBlocks)
	}
	for i, w := range want {
		for k, v := range w {
			if got.SEBlocks[i][k] != v {
				t.Errorf("se_blocks[%d].%s = %v, want %v", i, k, got.SEBlocks[i][k], v)
			}
		}
		if got.SEBlocks[i]["order"] != float64(i) || got.SEBlocks[i]["gate_tensor"] == "" {
			t.Errorf("se_blocks[%d] = %v", i, got.SEBlocks[i])
		}
	}
}

func TestInspectJSONWithoutMetadataOrBlocks(t *testing.T) {
	// Empty lists and maps are [] and {}, never null.
	data, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		t.Fatal(err)
	}
	mp.MetadataProps = nil
	for _, n := range mp.Graph.Node {
		if strings.Contains(n.Name, "/gate/") {
			n.OpType, n.Attribute = "Relu", nil // no gate, no SE block
		}
	}
	if data, err = proto.Marshal(mp); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := execute(context.Background(), []string{"inspect", path, "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit code %d: %s", code, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got["metadata"], map[string]any{}) || !reflect.DeepEqual(got["se_blocks"], []any{}) {
		t.Errorf("metadata %#v, se_blocks %#v, want {} and []", got["metadata"], got["se_blocks"])
	}
	out.Reset()
	if code := execute(context.Background(), []string{"inspect", path}, &out, &errOut); code != exitOK {
		t.Fatalf("exit code %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "metadata: none") || !strings.Contains(out.String(), "SE blocks: 0") {
		t.Errorf("table output:\n%s", out.String())
	}
}

func TestInspectBadModels(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tiny, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 2048)
	rand.New(rand.NewSource(7)).Read(random)
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.onnx"), "cannot open"},
		{"empty", write("empty.onnx", nil), "file is empty"},
		{"random bytes", write("random.onnx", random), "not an ONNX model"},
		{"truncated", write("truncated.onnx", tiny[:len(tiny)-100]), "not an ONNX model"},
		{"text renamed", write("notes.onnx", []byte("just some notes\n")), "not an ONNX model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, args := range [][]string{{"inspect", tt.path}, {"inspect", "--json", tt.path}} {
				var out, errOut bytes.Buffer
				code := execute(context.Background(), args, &out, &errOut)
				if code != exitUsage {
					t.Errorf("%v: exit code %d, want %d", args, code, exitUsage)
				}
				if want := "model " + tt.path + ": " + tt.want; !strings.Contains(errOut.String(), want) {
					t.Errorf("%v: stderr %q, want %q", args, errOut.String(), want)
				}
				if out.Len() != 0 {
					t.Errorf("%v: stdout %q, want nothing", args, out.String())
				}
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"inspect"}, &out, &errOut); code != exitUsage {
		t.Errorf("inspect without a model: exit code %d, want %d", code, exitUsage)
	}
}
