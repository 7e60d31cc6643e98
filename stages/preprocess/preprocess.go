package preprocess

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/sestream/sestream/model"
	"gocv.io/x/gocv"
)

// Resize modes of Options.
const (
	// ResizeStretch scales width and height independently to the tensor size.
	ResizeStretch = "stretch"
	// ResizeLetterbox scales by one factor so the whole frame fits, centred, and fills the
	// rest with Pad.
	ResizeLetterbox = "letterbox"
	// ResizeCenterCrop scales by one factor so the frame covers the tensor, then keeps the
	// centre (torchvision's Resize(size) followed by CenterCrop(size)).
	ResizeCenterCrop = "center_crop"
)

// Color modes of Options.
const (
	ColorRGB  = "rgb"
	ColorBGR  = "bgr"
	ColorGray = "gray"
)

// Options say how a frame becomes a model input. Zero fields take the defaults
// of WithDefaults: 224x224, stretch, rgb, scale 1/255, ImageNet mean and std, pad 0.
type Options struct {
	// Width and Height are the tensor's spatial size in pixels.
	Width, Height int
	// Resize is stretch, letterbox or center_crop. Interpolation is bilinear.
	Resize string
	// Pad is the pixel value (0-255, before Scale, Mean and Std) of letterbox borders.
	Pad float64
	// Color is the channel order of the tensor: rgb, bgr (3 channels) or gray (1 channel).
	Color string
	// Scale multiplies 8-bit pixel values first, e.g. 1/255 to map them to [0,1].
	Scale float64
	// Mean and Std normalize each channel: value = (pixel*Scale - Mean[c]) / Std[c].
	// They have one value for every channel, or one value for all channels.
	Mean, Std []float64
}

// Defaults of Options.
const (
	DefaultInputSize = 224
	DefaultScale     = 1.0 / 255
)

// ImageNet statistics, the defaults of Mean and Std for three channels (RGB order).
var (
	imageNetMean = [3]float64{0.485, 0.456, 0.406}
	imageNetStd  = [3]float64{0.229, 0.224, 0.225}
)

// WithDefaults returns o with every zero field set to its default. A gray tensor's
// default mean and std are the averages of the ImageNet values; for bgr they are reversed.
func (o Options) WithDefaults() Options {
	if o.Width == 0 {
		o.Width = DefaultInputSize
	}
	if o.Height == 0 {
		o.Height = DefaultInputSize
	}
	if o.Resize == "" {
		o.Resize = ResizeStretch
	}
	if o.Color == "" {
		o.Color = ColorRGB
	}
	if o.Scale == 0 {
		o.Scale = DefaultScale
	}
	mean, std := imageNetMean, imageNetStd
	switch o.Color {
	case ColorBGR:
		mean, std = [3]float64{mean[2], mean[1], mean[0]}, [3]float64{std[2], std[1], std[0]}
	case ColorGray:
		m := (mean[0] + mean[1] + mean[2]) / 3
		s := (std[0] + std[1] + std[2]) / 3
		mean, std = [3]float64{m}, [3]float64{s}
	}
	if len(o.Mean) == 0 {
		o.Mean = append([]float64(nil), mean[:o.Channels()]...)
	}
	if len(o.Std) == 0 {
		o.Std = append([]float64(nil), std[:o.Channels()]...)
	}
	return o
}

// Channels is the tensor's channel count: 1 for gray, else 3.
func (o Options) Channels() int {
	if o.Color == ColorGray {
		return 1
	}
	return 3
}

// maxInputSide bounds Width and Height.
const maxInputSide = model.MaxInputSide

// Validate reports every invalid field of o (after defaults), each named by its field.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("preprocess: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if o.Width < 1 || o.Width > maxInputSide {
		bad("width", "%d is not in 1-%d", o.Width, maxInputSide)
	}
	if o.Height < 1 || o.Height > maxInputSide {
		bad("height", "%d is not in 1-%d", o.Height, maxInputSide)
	}
	switch o.Resize {
	case ResizeStretch, ResizeLetterbox, ResizeCenterCrop:
	default:
		bad("resize", "%q is not stretch, letterbox or center_crop", o.Resize)
	}
	colorOK := true
	switch o.Color {
	case ColorRGB, ColorBGR, ColorGray:
	default:
		colorOK = false
		bad("color", "%q is not rgb, bgr or gray", o.Color)
	}
	if !(o.Pad >= 0 && o.Pad <= 255) {
		bad("pad", "%v is not a pixel value in 0-255", o.Pad)
	}
	if !finite(o.Scale) || o.Scale <= 0 {
		bad("scale", "%v is not a positive number", o.Scale)
	}
	c := o.Channels()
	for _, f := range []struct {
		name string
		v    []float64
	}{{"mean", o.Mean}, {"std", o.Std}} {
		if colorOK && len(f.v) != 1 && len(f.v) != c {
			bad(f.name, "has %d values, want 1 or %d for color %s", len(f.v), c, o.Color)
		}
		for i, v := range f.v {
			if !finite(v) || f.name == "std" && v <= 0 {
				bad(fmt.Sprintf("%s[%d]", f.name, i), "%v is not a valid %s", v, map[bool]string{true: "positive number", false: "number"}[f.name == "std"])
			}
		}
	}
	return errors.Join(errs...)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Transform maps tensor coordinates back to the source frame:
// tensor_x = source_x*ScaleX + OffsetX, tensor_y = source_y*ScaleY + OffsetY (pixels).
// Letterbox borders give positive offsets; a centre crop gives negative ones.
type Transform struct {
	ScaleX, ScaleY   float64
	OffsetX, OffsetY float64
	// SourceWidth and SourceHeight are the frame's size in pixels.
	SourceWidth, SourceHeight int
}

// ToSource maps a point of the tensor to the source frame.
func (t Transform) ToSource(x, y float64) (float64, float64) {
	return (x - t.OffsetX) / t.ScaleX, (y - t.OffsetY) / t.ScaleY
}

// ToTensor maps a point of the source frame to the tensor.
func (t Transform) ToTensor(x, y float64) (float64, float64) {
	return x*t.ScaleX + t.OffsetX, y*t.ScaleY + t.OffsetY
}

// Preprocessor turns frames into normalized CHW float32 tensors. It keeps its scratch
// Mats between calls, so after the first frame of a size it allocates nothing. It is used
// by one goroutine at a time; Close releases its Mats.
type Preprocessor struct {
	opts    Options
	c       int
	lut     [3][256]float32 // lut[c][v] = (v*Scale - Mean[c]) / Std[c]
	padVal  [3]float32      // normalized Pad per channel
	resized gocv.Mat
	gray    gocv.Mat
}

// New validates opts (after defaults) and returns a Preprocessor for them.
func New(opts Options) (*Preprocessor, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	p := &Preprocessor{opts: opts, c: opts.Channels(), resized: gocv.NewMat(), gray: gocv.NewMat()}
	for c := 0; c < p.c; c++ {
		mean, std := pick(opts.Mean, c), pick(opts.Std, c)
		for v := 0; v < 256; v++ {
			p.lut[c][v] = float32((float64(v)*opts.Scale - mean) / std)
		}
		p.padVal[c] = float32((opts.Pad*opts.Scale - mean) / std)
	}
	return p, nil
}

func pick(v []float64, c int) float64 {
	if len(v) == 1 {
		return v[0]
	}
	return v[c]
}

// Options returns the options in effect, defaults applied.
func (p *Preprocessor) Options() Options { return p.opts }

// TensorLen is the number of float32 values Into writes: Channels*Height*Width.
func (p *Preprocessor) TensorLen() int { return p.c * p.opts.Height * p.opts.Width }

// Close releases the Preprocessor's Mats.
func (p *Preprocessor) Close() error {
	p.resized.Close()
	p.gray.Close()
	return nil
}

// Into writes src, preprocessed, into dst as CHW float32: dst[(c*Height+y)*Width+x].
// dst is typically one item's slot of a batch tensor and must have exactly TensorLen
// values. src is 8-bit with 1 (gray), 3 (BGR) or 4 (BGRA) channels; it is not changed.
// The returned Transform maps tensor coordinates back to src.
func (p *Preprocessor) Into(dst []float32, src gocv.Mat) (Transform, error) {
	if src.Empty() {
		return Transform{}, errors.New("preprocess: frame is empty")
	}
	if len(dst) != p.TensorLen() {
		return Transform{}, fmt.Errorf("preprocess: destination has %d values, want %d (%dx%dx%d)",
			len(dst), p.TensorLen(), p.c, p.opts.Height, p.opts.Width)
	}
	srcCh := src.Channels()
	if src.Type()&0x7 != gocv.MatTypeCV8U || srcCh != 1 && srcCh != 3 && srcCh != 4 {
		return Transform{}, fmt.Errorf("preprocess: frame type %v is not 8-bit with 1, 3 or 4 channels", src.Type())
	}
	W, H := p.opts.Width, p.opts.Height
	sw, sh := src.Cols(), src.Rows()
	t := Transform{SourceWidth: sw, SourceHeight: sh}
	// nw x nh is the resized frame; (left, top) is where it lands in the tensor
	// (negative: where the crop starts inside it).
	nw, nh := p.opts.ResizedSize(sw, sh)
	var left, top int
	switch p.opts.Resize {
	case ResizeLetterbox:
		left, top = (W-nw)/2, (H-nh)/2
	case ResizeCenterCrop:
		left, top = -((nw - W) / 2), -((nh - H) / 2)
	}
	t.ScaleX, t.ScaleY = float64(nw)/float64(sw), float64(nh)/float64(sh)
	t.OffsetX, t.OffsetY = float64(left), float64(top)

	img := src
	if nw != sw || nh != sh {
		gocv.Resize(src, &p.resized, image.Point{X: nw, Y: nh}, 0, 0, gocv.InterpolationLinear)
		img = p.resized
	} else if !src.IsContinuous() {
		src.CopyTo(&p.resized)
		img = p.resized
	}
	// chans[c] is the byte offset within a pixel of tensor channel c.
	var chans [3]int
	switch {
	case p.opts.Color == ColorGray && srcCh != 1:
		code := gocv.ColorBGRToGray
		if srcCh == 4 {
			code = gocv.ColorBGRAToGray
		}
		gocv.CvtColor(img, &p.gray, code)
		img, srcCh = p.gray, 1
	case p.opts.Color == ColorRGB && srcCh != 1:
		chans = [3]int{2, 1, 0}
	case p.opts.Color == ColorBGR && srcCh != 1:
		chans = [3]int{0, 1, 2}
	}
	data, err := img.DataPtrUint8()
	if err != nil {
		return Transform{}, fmt.Errorf("preprocess: %w", err)
	}
	step := img.Step()

	// The tensor window [x0,x1) x [y0,y1) receives pixels; the rest is letterbox padding.
	x0, y0 := max(left, 0), max(top, 0)
	x1, y1 := min(left+nw, W), min(top+nh, H)
	plane := W * H
	for c := 0; c < p.c; c++ {
		out := dst[c*plane : (c+1)*plane]
		if x0 > 0 || y0 > 0 || x1 < W || y1 < H {
			pad := p.padVal[c]
			for i := range out {
				out[i] = pad
			}
		}
		lut := &p.lut[c]
		off := chans[c]
		for y := y0; y < y1; y++ {
			row := data[(y-top)*step:]
			o := out[y*W+x0 : y*W+x1]
			sx := (x0-left)*srcCh + off
			for i := range o {
				o[i] = lut[row[sx]]
				sx += srcCh
			}
		}
	}
	return t, nil
}

// ResizedSize is the size a sw x sh frame is scaled to before it is cropped or padded to the tensor
// (o with defaults applied). A frame of that size is not scaled again: Shrink gives one.
func (o Options) ResizedSize(sw, sh int) (nw, nh int) {
	W, H := o.Width, o.Height
	switch o.Resize {
	case ResizeLetterbox:
		r := math.Min(float64(W)/float64(sw), float64(H)/float64(sh))
		nw, nh = min(roundHalfUp(float64(sw)*r), W), min(roundHalfUp(float64(sh)*r), H)
		return max(nw, 1), max(nh, 1)
	case ResizeCenterCrop:
		r := math.Max(float64(W)/float64(sw), float64(H)/float64(sh))
		return max(roundHalfUp(float64(sw)*r), W), max(roundHalfUp(float64(sh)*r), H)
	default:
		return W, H
	}
}

// Shrink scales src into dst as Into would before cropping or padding, and reports whether it did: false
// when src already has that size (dst is then unchanged). Into on dst then gives the same tensor as Into on
// src, with a Transform relative to dst (see Rescale). o must have its defaults applied. It is safe for
// concurrent use with distinct dst.
func (o Options) Shrink(dst *gocv.Mat, src gocv.Mat) bool {
	nw, nh := o.ResizedSize(src.Cols(), src.Rows())
	if nw == src.Cols() && nh == src.Rows() {
		return false
	}
	gocv.Resize(src, dst, image.Point{X: nw, Y: nh}, 0, 0, gocv.InterpolationLinear)
	return true
}

// Rescale maps a Transform computed on a shrunk copy of a sw x sh frame to the frame itself.
func (t Transform) Rescale(sw, sh int) Transform {
	t.ScaleX *= float64(t.SourceWidth) / float64(sw)
	t.ScaleY *= float64(t.SourceHeight) / float64(sh)
	t.SourceWidth, t.SourceHeight = sw, sh
	return t
}

// roundHalfUp rounds x to the nearest integer, halves up (the golden data's rule).
func roundHalfUp(x float64) int { return int(math.Floor(x + 0.5)) }
