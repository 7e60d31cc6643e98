package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// badInputCase is a command line that must exit with code 2 and name what is at fault.
type badInputCase struct {
	name string
	// files are written into a temporary directory before the run; "$DIR" in args and files is replaced by it.
	files map[string]string
	env   map[string]string
	args  []string
	want  []string // each must appear on stderr; "$DIR" is replaced too
}

// npyWithShape is a .npy file (format 1.0) whose header holds shape as written.
func npyWithShape(shape string) string {
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(dict)))
	b.WriteString(dict)
	return b.String()
}

func TestBadInputExitCode2(t *testing.T) {
	tiny := filepath.Join(engineTestdata, "se_tiny_64x64.onnx")
	if _, err := os.Stat(tiny); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 20000)
	cases := []badInputCase{
		{name: "queue too large", files: map[string]string{"c.yaml": "queue:\n  size: 2000000000\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"queue.size: must be within 1..1024, got 2000000000"}},
		{name: "threads too many", files: map[string]string{"c.yaml": "engine:\n  threads: 100000\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"engine.threads: must be within 0..256 (0 = auto), got 100000"}},
		{name: "threads flag too many", args: []string{"run", "--threads", "100000"},
			want: []string{"engine.threads: must be within 0..256"}},
		{name: "every bound at once", files: map[string]string{"c.yaml": "batch:\n  max_size: 5000\nworkers: 1000\nnats:\n  buffer: 99999999\n" +
			"  jetstream:\n    enabled: true\n    max_pending: 9999999\nattention:\n  top_k: 100000\npreprocess:\n  width: 100000\n  height: 100000\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"batch.max_size: must be within 1..1024, got 5000",
				"workers: must be within 0..64 (0 = auto), got 1000", "nats.buffer: must be within 1..1048576, got 99999999",
				"nats.jetstream.max_pending: must be within 1..65536, got 9999999", "attention.top_k: must be within 1..4096, got 100000",
				"preprocess.width: must be within 0..8192 (0 = from the model), got 100000", "preprocess.height: must be within 0..8192"}},
		{name: "integer overflow", files: map[string]string{"c.yaml": "queue:\n  size: 99999999999999999999999\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"queue.size: 99999999999999999999999 is out of range; must be within 1..1024"}},
		{name: "integer overflow from env", env: map[string]string{"SESTREAM_QUEUE_SIZE": "99999999999999999999999"},
			args: []string{"run"}, want: []string{"queue.size:", "99999999999999999999999", "out of range"}},
		{name: "streams as a map", files: map[string]string{"c.yaml": "streams:\n  name: cam1\n  url: x.mp4\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"streams: must be a list", "got a mapping at line 2"}},
		{name: "two documents", files: map[string]string{"c.yaml": "workers: 2\n---\nworkers: 3\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"--config: $DIR/c.yaml holds more than one YAML document (the second starts at line 2)"}},
		{name: "env typo", env: map[string]string{"SESTREAM_BATCH_MAX_SZIE": "4"},
			args: []string{"run"}, want: []string{"SESTREAM_BATCH_MAX_SZIE: environment variable names no configuration key; did you mean SESTREAM_BATCH_MAX_SIZE?"}},
		{name: "unknown scheme in file", files: map[string]string{"c.yaml": "streams:\n  - name: cam1\n    url: foo://x\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{`streams[0].url: source url foo://x: unknown scheme "foo"; sestream reads file:// rtsp:// rtsps:// http:// https:// udp:// rtp:// srt:// rtmp:// rtmps:// tcp:// URLs`}},
		{name: "unknown scheme in flag", args: []string{"run", "--stream", "cam1=rstp://cam/live"},
			want: []string{`streams[0].url: source url rstp://cam/live: unknown scheme "rstp"`}},
		{name: "labels count", files: map[string]string{"labels.txt": "a\nb\nc\n", "c.yaml": "model:\n  labels: $DIR/labels.txt\n"},
			args: []string{"run", "--config", "$DIR/c.yaml", "--model", tiny, "--stream", "a=x.mp4"},
			want: []string{"model.labels: labels file $DIR/labels.txt has 3 labels, but model " + tiny + ` has 10 classes (output "logits", shape [-1 10])`}},
		{name: "npy bad dimension", files: map[string]string{"x.npy": npyWithShape("(1, 3, -64, 64)")},
			args: []string{"infer", "--model", tiny, "--tensor", "$DIR/x.npy"},
			want: []string{"--tensor: $DIR/x.npy:", `shape (1, 3, -64, 64): dimension 3 is "-64", want an integer 0..268435456`}},
		{name: "npy empty dimension", files: map[string]string{"x.npy": npyWithShape("(1, , 64)")},
			args: []string{"infer", "--model", tiny, "--tensor", "$DIR/x.npy"},
			want: []string{`shape (1, , 64): dimension 2 is ""`}},
		{name: "stream name too long", args: []string{"run", "--stream", long + "=x.mp4"},
			want: []string{`streams[0].name: stream name "aaaaaaaaaaaaaaaaaaaaaaaa..." is 20000 bytes long, longer than 64`}},
		{name: "stream name too long in file", files: map[string]string{"c.yaml": "streams:\n  - name: " + long + "\n    url: x.mp4\n"},
			args: []string{"run", "--config", "$DIR/c.yaml"}, want: []string{"streams[0].name:", "is 20000 bytes long, longer than 64"}},
		{name: "stream name character", args: []string{"run", "--stream", "cam/1=x.mp4"},
			want: []string{`streams[0].name: stream name "cam/1" contains '/' at byte 3, which is not a letter, digit, '-' or '_'`}},
		{name: "sub token and user", args: []string{"sub", "--token", "t", "--user", "u", "--password", "p"},
			want: []string{"--token: cannot be combined with --user/--password"}},
		{name: "sub user without password", args: []string{"sub", "--user", "u"},
			want: []string{"--user: --user and --password must be given together"}},
		{name: "sub cert without key", files: map[string]string{"cert.pem": "x"}, args: []string{"sub", "--tls-cert", "$DIR/cert.pem"},
			want: []string{"--tls-cert: --tls-cert and --tls-key must be given together"}},
		{name: "sub missing nkey", args: []string{"sub", "--nkey", "$DIR/none.nk"},
			want: []string{"--nkey: stat $DIR/none.nk: no such file or directory"}},
		{name: "sub bad nkey", files: map[string]string{"seed.nk": "not a seed\n"}, args: []string{"sub", "--nkey", "$DIR/seed.nk"},
			want: []string{"nkey seed file $DIR/seed.nk:"}},
		{name: "sub missing tls ca", args: []string{"sub", "--tls-ca", "$DIR/ca.pem"},
			want: []string{"--tls-ca: stat $DIR/ca.pem: no such file or directory"}},
		{name: "sub config combination", files: map[string]string{"c.yaml": "nats:\n  token: t\n  user: u\n  password: p\n"},
			args: []string{"sub", "--config", "$DIR/c.yaml"}, want: []string{"--config $DIR/c.yaml:", "nats.token: cannot be combined with nats.user/nats.password"}},
		{name: "sub config flag beside it", files: map[string]string{"c.yaml": "nats:\n  token: t\n"},
			args: []string{"sub", "--config", "$DIR/c.yaml", "--user", "u", "--password", "p"}, want: []string{"--config $DIR/c.yaml with the flags given: nats.token: cannot be combined with nats.user/nats.password"}},
		{name: "sub config bad file", files: map[string]string{"c.yaml": "nats:\n  usr: u\n"},
			args: []string{"sub", "--config", "$DIR/c.yaml"}, want: []string{"nats.usr: unknown key"}},
		{name: "sub config missing", args: []string{"sub", "--config", "$DIR/none.yaml"}, want: []string{"$DIR/none.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			expand := func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(expand(body)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = expand(a)
			}
			var out, errOut bytes.Buffer
			code := execute(context.Background(), args, &out, &errOut)
			t.Logf("exit %d, stderr: %s", code, clipOutput(errOut.String()))
			if code != exitUsage {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitUsage, clipOutput(errOut.String()))
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut.String(), expand(w)) {
					t.Errorf("stderr does not contain %q:\n%s", expand(w), clipOutput(errOut.String()))
				}
			}
		})
	}
}

func clipOutput(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// noSEModel writes a valid model with no SE block: GlobalAveragePool and Flatten, 3 channels in, 3 classes out.
func noSEModel(t *testing.T) string {
	t.Helper()
	dim := func(v int64) *onnx.TensorShapeProto_Dimension {
		return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	tensor := func(name string, dims ...int64) *onnx.ValueInfoProto {
		shape := &onnx.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, dim(d))
		}
		return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: 1, Shape: shape}}}}
	}
	mp := &onnx.ModelProto{
		IrVersion:   8,
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: "", Version: 17}},
		Graph: &onnx.GraphProto{
			Name: "no_se",
			Node: []*onnx.NodeProto{
				{Name: "pool", OpType: "GlobalAveragePool", Input: []string{"input"}, Output: []string{"pooled"}},
				{Name: "flatten", OpType: "Flatten", Input: []string{"pooled"}, Output: []string{"logits"}},
			},
			Input:  []*onnx.ValueInfoProto{tensor("input", 1, 3, 16, 16)},
			Output: []*onnx.ValueInfoProto{tensor("logits", 1, 3)},
		},
	}
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "no_se.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNoSEBlocksWarned: a model without SE blocks runs (it is not an error), and the start says so once, at
// warning level. The run is stopped before any engine opens by an http.listen address already in use.
func TestNoSEBlocksWarned(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var out, errOut bytes.Buffer
	code := execute(context.Background(), []string{"run", "--model", noSEModel(t), "--stream", "a=x.mp4",
		"--http", busy.Addr().String(), "--nats", "nats://127.0.0.1:1"}, &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "http.listen") {
		t.Fatalf("exit code %d, want %d from the busy http.listen; stderr:\n%s", code, exitUsage, errOut.String())
	}
	const warning = "model has no SE blocks: results are published, but attention messages list no blocks and drift is off"
	if n := strings.Count(errOut.String(), warning); n != 1 || !strings.Contains(errOut.String(), "level=WARN") {
		t.Fatalf("warning %q appears %d times (want once, at level WARN):\n%s", warning, n, errOut.String())
	}
	// A model with SE blocks gets no such warning.
	errOut.Reset()
	execute(context.Background(), []string{"run", "--model", filepath.Join(engineTestdata, "se_tiny_64x64.onnx"), "--stream", "a=x.mp4",
		"--http", busy.Addr().String(), "--nats", "nats://127.0.0.1:1"}, &out, &errOut)
	if strings.Contains(errOut.String(), "no SE blocks") {
		t.Fatalf("warning for a model with SE blocks:\n%s", errOut.String())
	}
}
