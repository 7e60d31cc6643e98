package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sestream/sestream/internal/matcheck"
	"gocv.io/x/gocv"
)

type goldenCase struct {
	Name          string    `json:"name"`
	File          string    `json:"file"`
	Width         int       `json:"width"`
	Height        int       `json:"height"`
	Resize        string    `json:"resize"`
	Color         string    `json:"color"`
	Scale         float64   `json:"scale"`
	Pad           float64   `json:"pad"`
	Mean          []float64 `json:"mean"`
	Std           []float64 `json:"std"`
	WantTransform struct {
		ScaleX  float64 `json:"scale_x"`
		ScaleY  float64 `json:"scale_y"`
		OffsetX float64 `json:"offset_x"`
		OffsetY float64 `json:"offset_y"`
	} `json:"transform"`
}

func loadGolden(t *testing.T, dir string) (string, []goldenCase) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Source string       `json:"source"`
		Cases  []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) != 18 {
		t.Fatalf("golden data has %d cases, want 18", len(g.Cases))
	}
	return filepath.Join(dir, g.Source), g.Cases
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// TestPreprocessGolden compares every resize and color mode on a non-square frame with
// values computed by Debian's python3-opencv and numpy (scripts/gen_preprocess_golden.py).
func TestPreprocessGolden(t *testing.T) {
	matcheck.Check(t)
	src, cases := loadGolden(t, "testdata/preprocess")
	img := gocv.IMRead(src, gocv.IMReadColor)
	defer img.Close()
	if img.Empty() || img.Cols() != 101 || img.Rows() != 67 {
		t.Fatalf("golden source %s: got %dx%d", src, img.Cols(), img.Rows())
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			p, err := New(Options{Width: tc.Width, Height: tc.Height, Resize: tc.Resize,
				Color: tc.Color, Scale: tc.Scale, Pad: tc.Pad, Mean: tc.Mean, Std: tc.Std})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			want := readF32(t, filepath.Join("testdata/preprocess", tc.File))
			got := make([]float32, p.TensorLen())
			if len(want) != len(got) {
				t.Fatalf("golden has %d values, preprocessor writes %d", len(want), len(got))
			}
			// Twice: the second call reuses the scratch Mats and must give the same result.
			for round := 0; round < 2; round++ {
				for i := range got {
					got[i] = float32(math.NaN())
				}
				tr, err := p.Into(got, img)
				if err != nil {
					t.Fatal(err)
				}
				worst, at := 0.0, 0
				for i := range want {
					d := math.Abs(float64(got[i]) - float64(want[i]))
					if !(d <= worst) {
						worst, at = d, i
					}
				}
				if worst > 1e-5 || math.IsNaN(worst) {
					t.Fatalf("round %d: max |got-want| = %g at %d (got %v, want %v)", round, worst, at, got[at], want[at])
				}
				wt := tc.WantTransform
				if tr.ScaleX != wt.ScaleX || tr.ScaleY != wt.ScaleY || tr.OffsetX != wt.OffsetX || tr.OffsetY != wt.OffsetY {
					t.Fatalf("transform %+v, want %+v", tr, wt)
				}
				if tr.SourceWidth != 101 || tr.SourceHeight != 67 {
					t.Fatalf("transform source size %dx%d", tr.SourceWidth, tr.SourceHeight)
				}
			}
			checkShrunk(t, p, img, got)
		})
	}
}

// checkShrunk checks that a frame shrunk first (Options.Shrink, as the capture thread does) gives the same
// tensor, value for value, and after Rescale the same Transform as the frame itself.
func checkShrunk(t *testing.T, p *Preprocessor, img gocv.Mat, want []float32) {
	t.Helper()
	wantTr, err := p.Into(want, img)
	if err != nil {
		t.Fatal(err)
	}
	small := gocv.NewMat()
	defer small.Close()
	o := p.Options()
	nw, nh := o.ResizedSize(img.Cols(), img.Rows())
	shrunk := o.Shrink(&small, img)
	if shrunk != (nw != img.Cols() || nh != img.Rows()) {
		t.Fatalf("Shrink reported %v for a %dx%d frame resized to %dx%d", shrunk, img.Cols(), img.Rows(), nw, nh)
	}
	if !shrunk {
		return
	}
	if small.Cols() != nw || small.Rows() != nh {
		t.Fatalf("shrunk to %dx%d, want %dx%d", small.Cols(), small.Rows(), nw, nh)
	}
	got := make([]float32, len(want))
	tr, err := p.Into(got, small)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("shrunk first: value %d is %v, from the frame itself %v", i, got[i], want[i])
		}
	}
	if tr = tr.Rescale(img.Cols(), img.Rows()); tr != wantTr {
		t.Fatalf("shrunk first: transform %+v, from the frame itself %+v", tr, wantTr)
	}
}

// TestGoldenScriptReproduces reruns the golden script and checks it writes the committed data.
func TestGoldenScriptReproduces(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import cv2, numpy").Run(); err != nil {
		t.Skipf("%s with cv2 and numpy is not available: %v", py, err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(py, "../../scripts/gen_preprocess_golden.py", dir).CombinedOutput(); err != nil {
		t.Fatalf("gen_preprocess_golden.py: %v\n%s", err, out)
	}
	ents, err := os.ReadDir("testdata/preprocess")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		want, _ := os.ReadFile(filepath.Join("testdata/preprocess", e.Name()))
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the committed golden file; rerun the script", e.Name())
		}
	}
}

func TestTransformRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resize string
		sw, sh int
		// A source point and where it must land in a 200x100 tensor.
		sx, sy, tx, ty float64
	}{
		{"stretch", ResizeStretch, 400, 400, 200, 200, 100, 50},
		{"letterbox tall source", ResizeLetterbox, 100, 200, 0, 0, 75, 0},
		{"letterbox tall source far corner", ResizeLetterbox, 100, 200, 100, 200, 125, 100},
		{"center crop square source", ResizeCenterCrop, 100, 100, 50, 0, 100, -50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			matcheck.Check(t)
			p, err := New(Options{Width: 200, Height: 100, Resize: tc.resize})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			src := gocv.NewMatWithSize(tc.sh, tc.sw, gocv.MatTypeCV8UC3)
			defer src.Close()
			tr, err := p.Into(make([]float32, p.TensorLen()), src)
			if err != nil {
				t.Fatal(err)
			}
			x, y := tr.ToTensor(tc.sx, tc.sy)
			if math.Abs(x-tc.tx) > 1e-9 || math.Abs(y-tc.ty) > 1e-9 {
				t.Fatalf("source (%v,%v) -> tensor (%v,%v), want (%v,%v); %+v", tc.sx, tc.sy, x, y, tc.tx, tc.ty, tr)
			}
			bx, by := tr.ToSource(x, y)
			if math.Abs(bx-tc.sx) > 1e-9 || math.Abs(by-tc.sy) > 1e-9 {
				t.Fatalf("round trip gave (%v,%v)", bx, by)
			}
		})
	}
}

// TestPreprocessChannels checks the channel order and the handling of gray and BGRA frames
// on a frame of one color, where every output value is known exactly.
func TestPreprocessChannels(t *testing.T) {
	matcheck.Check(t)
	const b, g, r = 10, 100, 200
	gray := math.Round(0.114*b + 0.587*g + 0.299*r)
	for _, tc := range []struct {
		name  string
		color string
		srcCh int
		want  []float64 // pixel value of each tensor channel
	}{
		{"bgr frame to rgb", ColorRGB, 3, []float64{r, g, b}},
		{"bgr frame to bgr", ColorBGR, 3, []float64{b, g, r}},
		{"bgr frame to gray", ColorGray, 3, []float64{gray}},
		{"bgra frame to rgb", ColorRGB, 4, []float64{r, g, b}},
		{"bgra frame to gray", ColorGray, 4, []float64{gray}},
		{"gray frame to rgb", ColorRGB, 1, []float64{b, b, b}},
		{"gray frame to gray", ColorGray, 1, []float64{b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{Width: 8, Height: 6, Color: tc.color, Scale: 1, Mean: []float64{0}, Std: []float64{1}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			typ := map[int]gocv.MatType{1: gocv.MatTypeCV8UC1, 3: gocv.MatTypeCV8UC3, 4: gocv.MatTypeCV8UC4}[tc.srcCh]
			src := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(b, g, r, 255), 12, 20, typ)
			defer src.Close()
			dst := make([]float32, p.TensorLen())
			if _, err := p.Into(dst, src); err != nil {
				t.Fatal(err)
			}
			for i, v := range dst {
				if want := tc.want[i/(8*6)]; math.Abs(float64(v)-want) > 1 {
					t.Fatalf("value %d (channel %d) = %v, want %v", i, i/(8*6), v, want)
				}
			}
		})
	}
}

func TestPreprocessOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want []string // substrings of the error; none means valid
	}{
		{"defaults", Options{}, nil},
		{"gray defaults", Options{Color: ColorGray}, nil},
		{"one mean for all", Options{Mean: []float64{0.5}, Std: []float64{0.5}}, nil},
		{"bad resize and color", Options{Resize: "fit", Color: "hsv"}, []string{"resize: \"fit\"", "color: \"hsv\""}},
		{"negative size", Options{Width: -1, Height: 99999}, []string{"width: -1", "height: 99999"}},
		{"zero std", Options{Std: []float64{1, 0, 1}}, []string{"std[1]"}},
		{"nan mean", Options{Mean: []float64{math.NaN()}}, []string{"mean[0]"}},
		{"wrong mean length", Options{Mean: []float64{1, 2}}, []string{"mean: has 2 values, want 1 or 3"}},
		{"gray with 3 std", Options{Color: ColorGray, Std: []float64{1, 1, 1}}, []string{"std: has 3 values, want 1 or 1"}},
		{"pad out of range", Options{Pad: 300}, []string{"pad: 300"}},
		{"negative scale", Options{Scale: -1}, []string{"scale: -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.WithDefaults().Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, perr := New(tc.opts); perr == nil {
				t.Errorf("New accepted options that Validate rejects")
			}
		})
	}
}

func TestPreprocessBadFrames(t *testing.T) {
	matcheck.Check(t)
	p, err := New(Options{Width: 8, Height: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	empty := gocv.NewMat()
	defer empty.Close()
	float := gocv.NewMatWithSize(4, 4, gocv.MatTypeCV32FC3)
	defer float.Close()
	ok := gocv.NewMatWithSize(4, 4, gocv.MatTypeCV8UC3)
	defer ok.Close()
	for _, tc := range []struct {
		name string
		dst  []float32
		src  gocv.Mat
		want string
	}{
		{"empty frame", make([]float32, 192), empty, "frame is empty"},
		{"float frame", make([]float32, 192), float, "not 8-bit"},
		{"short destination", make([]float32, 191), ok, "destination has 191 values, want 192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Into(tc.dst, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzPreprocess feeds frames of arbitrary size to every mode: no panic, every value finite.
func FuzzPreprocess(f *testing.F) {
	f.Add(uint16(67), uint16(101), uint8(40), uint8(32), uint8(0), uint8(0), uint8(3))
	f.Add(uint16(1), uint16(1), uint8(1), uint8(1), uint8(1), uint8(2), uint8(1))
	f.Add(uint16(3), uint16(500), uint8(7), uint8(200), uint8(2), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, rows, cols uint16, w, h, mode, color, ch uint8) {
		rows, cols = rows%600+1, cols%600+1
		opts := Options{
			Width: int(w%64) + 1, Height: int(h%64) + 1,
			Resize: []string{ResizeStretch, ResizeLetterbox, ResizeCenterCrop}[mode%3],
			Color:  []string{ColorRGB, ColorBGR, ColorGray}[color%3],
		}
		p, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		typ := []gocv.MatType{gocv.MatTypeCV8UC1, gocv.MatTypeCV8UC3, gocv.MatTypeCV8UC4}[ch%3]
		src := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(1, 2, 3, 4), int(rows), int(cols), typ)
		defer src.Close()
		dst := make([]float32, p.TensorLen())
		for i := range dst {
			dst[i] = float32(math.NaN())
		}
		if _, err := p.Into(dst, src); err != nil {
			t.Fatal(err)
		}
		for i, v := range dst {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("value %d is %v (%dx%d -> %+v)", i, v, cols, rows, opts)
			}
		}
	})
}

// BenchmarkPreprocess measures one 640x480 BGR frame to a 224x224 tensor in each mode.
func BenchmarkPreprocess(b *testing.B) {
	src := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	defer src.Close()
	gocv.RandU(&src, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	for _, resize := range []string{ResizeStretch, ResizeLetterbox, ResizeCenterCrop} {
		for _, color := range []string{ColorRGB, ColorGray} {
			b.Run(resize+"/"+color, func(b *testing.B) {
				p, err := New(Options{Width: 224, Height: 224, Resize: resize, Color: color})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				dst := make([]float32, p.TensorLen())
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := p.Into(dst, src); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
