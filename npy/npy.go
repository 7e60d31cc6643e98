package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// MaxElements bounds the number of values Decode accepts (1 GiB of float32), so a corrupt header cannot make
// it allocate without limit.
const MaxElements = 1 << 28

// magic opens every .npy file.
const magic = "\x93NUMPY"

// ErrFormat is returned (wrapped) for input that is not a .npy file of float32 values in C order.
var ErrFormat = errors.New("not a float32 C-order .npy array")

// Array is an n-dimensional float32 array in C (row-major) order: the value at index (i0, i1, ..., ik) is
// Data[((i0*Shape[1]+i1)*Shape[2]+...)*Shape[k]+ik].
type Array struct {
	Shape []int
	Data  []float32
}

// Len returns the number of values the shape describes (1 for a zero-dimensional array).
func (a Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// ReadFile reads the .npy file at path.
func ReadFile(path string) (Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return Array{}, err
	}
	defer f.Close()
	a, err := Decode(bufio.NewReader(f))
	if err != nil {
		return Array{}, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// WriteFile writes a as a version 1.0 .npy file at path.
func WriteFile(path string, a Array) error {
	var b bytes.Buffer
	if err := Encode(&b, a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// Decode reads one .npy array (format versions 1.0, 2.0 and 3.0) whose dtype is little-endian float32
// ('<f4') and whose fortran_order is False. It reads exactly the header and the data, nothing after them.
func Decode(r io.Reader) (Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Array{}, fmt.Errorf("%w: reading magic: %w", ErrFormat, err)
	}
	if string(pre[:6]) != magic {
		return Array{}, fmt.Errorf("%w: bad magic %q", ErrFormat, pre[:6])
	}
	var headerLen int
	switch major := pre[6]; major {
	case 1:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return Array{}, fmt.Errorf("%w: reading header length: %w", ErrFormat, err)
		}
		headerLen = int(binary.LittleEndian.Uint16(l[:]))
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return Array{}, fmt.Errorf("%w: reading header length: %w", ErrFormat, err)
		}
		n := binary.LittleEndian.Uint32(l[:])
		if n > 1<<20 {
			return Array{}, fmt.Errorf("%w: header length %d is too large", ErrFormat, n)
		}
		headerLen = int(n)
	default:
		return Array{}, fmt.Errorf("%w: unsupported format version %d.%d", ErrFormat, major, pre[7])
	}
	header := make([]byte, headerLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return Array{}, fmt.Errorf("%w: reading %d-byte header: %w", ErrFormat, headerLen, err)
	}
	shape, err := parseHeader(string(header))
	if err != nil {
		return Array{}, err
	}
	n := 1
	for _, d := range shape {
		if d != 0 && n > MaxElements/d {
			return Array{}, fmt.Errorf("%w: shape %v has more than %d values", ErrFormat, shape, MaxElements)
		}
		n *= d
	}
	data, err := readFloats(r, n)
	if err != nil {
		return Array{}, fmt.Errorf("%w: shape %v: %w", ErrFormat, shape, err)
	}
	return Array{Shape: shape, Data: data}, nil
}

// readFloats reads n little-endian float32 values, growing its buffer as data arrives so a truncated input
// with a large declared shape fails without allocating for the whole shape.
func readFloats(r io.Reader, n int) ([]float32, error) {
	const chunk = 1 << 16 // values per read
	data := make([]float32, 0, min(n, chunk))
	buf := make([]byte, 4*min(n, chunk))
	for len(data) < n {
		k := min(n-len(data), chunk)
		if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
			return nil, fmt.Errorf("data has %d of %d values: %w", len(data), n, err)
		}
		for i := range k {
			data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	}
	return data, nil
}

// parseHeader parses the Python dict literal of a .npy header, e.g.
// "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", and returns the shape.
func parseHeader(h string) ([]int, error) {
	s := strings.TrimSpace(h)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, fmt.Errorf("%w: header %q is not a dict", ErrFormat, clip(h))
	}
	p := &headerParser{s: s[1 : len(s)-1]}
	var (
		shape                      []int
		seenDescr, seenOrder, seen bool
	)
	for {
		p.space()
		if p.done() {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, fmt.Errorf("%w: header: want ':' after key %q", ErrFormat, key)
		}
		p.space()
		switch key {
		case "descr":
			d, err := p.str()
			if err != nil {
				return nil, err
			}
			if d != "<f4" && d != "f4" && d != "float32" {
				return nil, fmt.Errorf("%w: dtype %q, want '<f4' (little-endian float32)", ErrFormat, d)
			}
			seenDescr = true
		case "fortran_order":
			v, err := p.word()
			if err != nil {
				return nil, err
			}
			if v != "False" {
				return nil, fmt.Errorf("%w: fortran_order is %s, want False", ErrFormat, v)
			}
			seenOrder = true
		case "shape":
			if shape, err = p.tuple(); err != nil {
				return nil, err
			}
			seen = true
		default:
			return nil, fmt.Errorf("%w: unknown header key %q", ErrFormat, key)
		}
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.done() {
				return nil, fmt.Errorf("%w: header: want ',' after value of %q", ErrFormat, key)
			}
		}
	}
	if !seenDescr || !seenOrder || !seen {
		return nil, fmt.Errorf("%w: header %q lacks descr, fortran_order or shape", ErrFormat, clip(h))
	}
	return shape, nil
}

type headerParser struct {
	s string
	i int
}

func (p *headerParser) done() bool { return p.i >= len(p.s) }

func (p *headerParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *headerParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str parses a quoted string without escapes.
func (p *headerParser) str() (string, error) {
	if p.done() || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", fmt.Errorf("%w: header: want a quoted string at offset %d", ErrFormat, p.i)
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", fmt.Errorf("%w: header: unterminated string at offset %d", ErrFormat, p.i)
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

// word parses a run of letters (True, False).
func (p *headerParser) word() (string, error) {
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z') {
		p.i++
	}
	if start == p.i {
		return "", fmt.Errorf("%w: header: want True or False at offset %d", ErrFormat, start)
	}
	return p.s[start:p.i], nil
}

// tuple parses a tuple of non-negative integers: (), (5,), (4, 3).
func (p *headerParser) tuple() ([]int, error) {
	open := p.i
	if !p.eat('(') {
		return nil, fmt.Errorf("%w: header: shape must be a tuple, got %q", ErrFormat, clip(p.rest(open)))
	}
	shape := []int{}
	for {
		p.space()
		if p.eat(')') {
			return shape, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		d, err := strconv.Atoi(p.s[start:p.i])
		if err != nil || d > MaxElements {
			tok := p.s[start:]
			if end := strings.IndexAny(tok, ",)"); end >= 0 {
				tok = tok[:end]
			}
			return nil, fmt.Errorf("%w: header: shape %s: dimension %d is %q, want an integer 0..%d",
				ErrFormat, clip(p.rest(open)), len(shape)+1, clip(strings.TrimSpace(tok)), MaxElements)
		}
		if len(shape) == 32 {
			return nil, fmt.Errorf("%w: header: shape has more than 32 dimensions", ErrFormat)
		}
		shape = append(shape, d)
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat(')') {
				got := "the end of the header"
				if !p.done() {
					got = fmt.Sprintf("%q", p.s[p.i])
				}
				return nil, fmt.Errorf("%w: header: shape %s: want ',' or ')' after dimension %d, got %s",
					ErrFormat, clip(p.rest(open)), len(shape), got)
			}
			return shape, nil
		}
	}
}

// rest returns the header text from offset i through the first ')' after it (or to the end).
func (p *headerParser) rest(i int) string {
	r := p.s[i:]
	if end := strings.IndexByte(r, ')'); end >= 0 {
		r = r[:end+1]
	}
	return r
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Encode writes a as a version 1.0 .npy array: little-endian float32, C order, header padded so the data
// starts at a multiple of 64 bytes. len(a.Data) must equal the product of a.Shape.
func Encode(w io.Writer, a Array) error {
	for _, d := range a.Shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", a.Shape)
		}
	}
	if a.Len() != len(a.Data) {
		return fmt.Errorf("npy: shape %v holds %d values, data has %d", a.Shape, a.Len(), len(a.Data))
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := strings.Join(dims, ", ")
	if len(a.Shape) == 1 {
		shape += ","
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", shape)
	total := len(magic) + 2 + 2 + len(dict) + 1 // + newline
	pad := (64 - total%64) % 64
	header := dict + strings.Repeat(" ", pad) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("npy: header of %d bytes is too long for format 1.0", len(header))
	}
	out := make([]byte, 0, len(magic)+4+len(header)+4*len(a.Data))
	out = append(out, magic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(header)))
	out = append(out, header...)
	for _, v := range a.Data {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	_, err := w.Write(out)
	return err
}
