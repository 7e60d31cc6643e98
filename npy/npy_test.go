package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// file builds a .npy byte stream with the given version, header dict and float32 values.
func file(major byte, dict string, values ...float32) []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	b.WriteByte(major)
	b.WriteByte(0)
	header := dict + "\n"
	if major == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(header)))
	}
	b.WriteString(header)
	for _, v := range values {
		binary.Write(&b, binary.LittleEndian, math.Float32bits(v))
	}
	return b.Bytes()
}

var decodeCases = []struct {
	name    string
	in      []byte
	shape   []int
	data    []float32
	wantErr string // substring; "" = success
}{
	{"v1 2x3", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1, 2, 3, 4, 5, 6),
		[]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}, ""},
	{"v2 vector", file(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", -1.5, 7),
		[]int{2}, []float32{-1.5, 7}, ""},
	{"v3 scalar", file(3, "{'descr':'<f4','fortran_order':False,'shape':()}", 42), []int{}, []float32{42}, ""},
	{"double quotes, other key order", file(1, `{"shape": (1, 1), "fortran_order": False, "descr": "<f4"}`, 3),
		[]int{1, 1}, []float32{3}, ""},
	{"zero-size", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }"), []int{0, 4}, []float32{}, ""},
	{"empty", nil, nil, nil, "reading magic"},
	{"bad magic", []byte("PK\x03\x04 this is a zip"), nil, nil, "bad magic"},
	{"version 9", file(9, "{}"), nil, nil, "unsupported format version 9"},
	{"float64", file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 0, 0), nil, nil, `dtype "<f8"`},
	{"big endian", file(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 0), nil, nil, `dtype ">f4"`},
	{"fortran", file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", 0), nil, nil, "fortran_order is True"},
	{"missing shape", file(1, "{'descr': '<f4', 'fortran_order': False}"), nil, nil, "lacks"},
	{"unknown key", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 0), nil, nil, `unknown header key "x"`},
	{"not a dict", file(1, "descr"), nil, nil, "not a dict"},
	{"negative dim", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), nil, nil, `shape (-1,): dimension 1 is "-1", want an integer 0..268435456`},
	{"None dim", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, None), }"), nil, nil, `shape (3, None): dimension 2 is "None"`},
	{"empty dim", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,,), }"), nil, nil, `shape (3,,): dimension 2 is ""`},
	{"float dim", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }"), nil, nil, `shape (2.5,): want ',' or ')' after dimension 1, got '.'`},
	{"dim too large", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"), nil, nil, `dimension 1 is "99999999999999999999"`},
	{"shape not a tuple", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }"), nil, nil, `shape must be a tuple, got "[2, 3], "`},
	{"truncated data", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 1, 2), nil, nil, "data has 0 of 4 values"},
	{"huge shape", file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }"), nil, nil, "more than"},
	{"truncated header", []byte(magic + "\x01\x00\x40\x00{'descr'"), nil, nil, "reading 64-byte header"},
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Decode(bytes.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode error = %v, want one containing %q", err, tc.wantErr)
				}
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("Decode error %v does not wrap ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(a.Shape, tc.shape) || !reflect.DeepEqual(a.Data, tc.data) {
				t.Fatalf("Decode = %v %v, want %v %v", a.Shape, a.Data, tc.shape, tc.data)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, a := range []Array{
		{Shape: []int{}, Data: []float32{1}},
		{Shape: []int{3}, Data: []float32{1, float32(math.Inf(-1)), 3}},
		{Shape: []int{2, 1, 2}, Data: []float32{0.5, -0.25, 1e-30, 3e30}},
		{Shape: []int{0}, Data: []float32{}},
	} {
		var b bytes.Buffer
		if err := Encode(&b, a); err != nil {
			t.Fatalf("Encode(%v): %v", a.Shape, err)
		}
		if off := 10 + int(binary.LittleEndian.Uint16(b.Bytes()[8:])); off%64 != 0 {
			t.Errorf("Encode(%v): data starts at %d, want a multiple of 64", a.Shape, off)
		}
		got, err := Decode(&b)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", a.Shape, err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("round trip = %+v, want %+v", got, a)
		}
	}
}

func TestEncodeRejectsMismatch(t *testing.T) {
	for _, a := range []Array{
		{Shape: []int{2, 2}, Data: []float32{1, 2, 3}},
		{Shape: []int{-1}, Data: nil},
	} {
		if err := Encode(&bytes.Buffer{}, a); err == nil {
			t.Errorf("Encode(%v with %d values) succeeded, want an error", a.Shape, len(a.Data))
		}
	}
}

// TestNumPyInterop checks the format against NumPy itself: NumPy reads what Encode writes, and Decode reads
// what NumPy writes (including a header NumPy pads to 128 bytes).
func TestNumPyInterop(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s with numpy is not available: %v", py, err)
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.npy")
	theirs := filepath.Join(dir, "theirs.npy")
	a := Array{Shape: []int{2, 3, 1}, Data: []float32{1, 2.5, -3, 4e-7, 5, 6}}
	if err := WriteFile(ours, a); err != nil {
		t.Fatal(err)
	}
	script := `import sys, numpy as np
a = np.load(sys.argv[1])
assert a.dtype == np.float32 and a.shape == (2, 3, 1), (a.dtype, a.shape)
assert a.ravel().tolist() == [1, 2.5, -3, np.float32(4e-7), 5, 6], a.ravel().tolist()
np.save(sys.argv[2], (np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) / 7))
`
	if out, err := exec.Command(py, "-c", script, ours, theirs).CombinedOutput(); err != nil {
		t.Fatalf("numpy rejected our file: %v\n%s", err, out)
	}
	got, err := ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Shape, []int{2, 3, 4, 5}) {
		t.Fatalf("shape = %v, want [2 3 4 5]", got.Shape)
	}
	for i, v := range got.Data {
		if want := float32(i) / 7; v != want {
			t.Fatalf("value %d = %v, want %v", i, v, want)
		}
	}
}

func TestReadFileErrorsNamePath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "text.npy")
	if err := os.WriteFile(p, []byte("hello, world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p)
	if err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, ErrFormat) {
		t.Fatalf("ReadFile(%s) error = %v, want one naming the path and wrapping ErrFormat", p, err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.npy")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadFile(missing) error = %v, want os.ErrNotExist", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := Decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		if a.Len() != len(a.Data) {
			t.Fatalf("shape %v holds %d values, data has %d", a.Shape, a.Len(), len(a.Data))
		}
		var b bytes.Buffer
		if err := Encode(&b, a); err != nil {
			t.Fatalf("Encode of a decoded array: %v", err)
		}
		again, err := Decode(&b)
		if err != nil {
			t.Fatalf("Decode(Encode(a)): %v", err)
		}
		if !reflect.DeepEqual(again.Shape, a.Shape) || len(again.Data) != len(a.Data) {
			t.Fatalf("round trip changed %v to %v", a.Shape, again.Shape)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	var buf bytes.Buffer
	a := Array{Shape: []int{8, 3, 224, 224}, Data: make([]float32, 8*3*224*224)}
	if err := Encode(&buf, a); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}
