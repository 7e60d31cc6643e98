package se

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidBlock reports SE block weights that cannot be run: wrong lengths, non-finite values,
// an unknown activation or gate, or HardSigmoid parameters that make no gate.
var ErrInvalidBlock = errors.New("invalid SE block")

// ErrShape reports arguments to Forward or Gates whose lengths do not match the block and the
// given batch size and map size.
var ErrShape = errors.New("SE block shape mismatch")

// Validate checks that the block can be run: positive Channels and Hidden, weight and bias
// lengths that match them, finite weights, a known activation and gate, and for HardSigmoid a
// finite Alpha > 0 and a finite Beta. The error wraps ErrInvalidBlock and names the bad field.
func (b *Block) Validate() error {
	if err := b.checkLayout(); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		v    []float32
	}{{"W1", b.W1}, {"B1", b.B1}, {"W2", b.W2}, {"B2", b.B2}} {
		for i, v := range p.v {
			if !finite32(v) {
				return fmt.Errorf("%w: %s[%d] is %v", ErrInvalidBlock, p.name, i, v)
			}
		}
	}
	if b.Gate == HardSigmoid {
		if !finite32(b.Alpha) || b.Alpha <= 0 {
			return fmt.Errorf("%w: hard_sigmoid Alpha is %v, want a finite value > 0", ErrInvalidBlock, b.Alpha)
		}
		if !finite32(b.Beta) {
			return fmt.Errorf("%w: hard_sigmoid Beta is %v, want a finite value", ErrInvalidBlock, b.Beta)
		}
	}
	return nil
}

// checkLayout is the constant-time part of Validate that Forward and Gates repeat on every call,
// so that a malformed block is an error and never an index panic.
func (b *Block) checkLayout() error {
	if b.Channels <= 0 {
		return fmt.Errorf("%w: Channels is %d, want > 0", ErrInvalidBlock, b.Channels)
	}
	if b.Hidden <= 0 {
		return fmt.Errorf("%w: Hidden is %d, want > 0", ErrInvalidBlock, b.Hidden)
	}
	if b.Hidden > math.MaxInt/b.Channels {
		return fmt.Errorf("%w: Hidden x Channels (%d x %d) overflows int", ErrInvalidBlock, b.Hidden, b.Channels)
	}
	hc := b.Hidden * b.Channels
	if len(b.W1) != hc {
		return fmt.Errorf("%w: W1 has %d values, want Hidden x Channels = %d x %d = %d",
			ErrInvalidBlock, len(b.W1), b.Hidden, b.Channels, hc)
	}
	if len(b.B1) != b.Hidden {
		return fmt.Errorf("%w: B1 has %d values, want Hidden = %d", ErrInvalidBlock, len(b.B1), b.Hidden)
	}
	if len(b.W2) != hc {
		return fmt.Errorf("%w: W2 has %d values, want Channels x Hidden = %d x %d = %d",
			ErrInvalidBlock, len(b.W2), b.Channels, b.Hidden, hc)
	}
	if len(b.B2) != b.Channels {
		return fmt.Errorf("%w: B2 has %d values, want Channels = %d", ErrInvalidBlock, len(b.B2), b.Channels)
	}
	if b.Act != ReLU && b.Act != SiLU {
		return fmt.Errorf("%w: unknown activation %d", ErrInvalidBlock, int(b.Act))
	}
	if b.Gate != Sigmoid && b.Gate != HardSigmoid {
		return fmt.Errorf("%w: unknown gate %d", ErrInvalidBlock, int(b.Gate))
	}
	return nil
}

// Workspace is the scratch memory of Forward and Gates. Reusing one Workspace across calls makes
// them allocation-free after the first call; it grows to the largest block it has served and may
// be shared by blocks of different sizes. The zero value is ready to use. A Workspace must not be
// used by two calls at the same time.
type Workspace struct {
	squeeze []float64 // C: the pooled input of one batch item
	hidden  []float64 // Hidden: the activated bottleneck of one batch item
}

func (ws *Workspace) grow(c, hidden int) {
	if cap(ws.squeeze) < c {
		ws.squeeze = make([]float64, c)
	}
	ws.squeeze = ws.squeeze[:c]
	if cap(ws.hidden) < hidden {
		ws.hidden = make([]float64, hidden)
	}
	ws.hidden = ws.hidden[:hidden]
}

// Forward runs the SE block on u, a batch of n feature maps in NCHW float32 layout with
// C = b.Channels channels of h x w values each (offset ((n*C+c)*h+y)*w+x). It writes the scaled
// maps out[i] = u[i] * gates[n*C+c] into out (same layout and length as u) and the gates, n rows
// of C values (offset n*C+c), into gates.
//
// out may be u itself, which scales in place; any other overlap between out, u and gates gives
// undefined results. Squeeze, excitation and the gate are computed in float64 and rounded to
// float32 once; the scale is a float32 multiply. ws may be nil, at the cost of allocating; pass a
// reused Workspace to allocate nothing. Lengths that do not match are an error wrapping ErrShape,
// and a malformed block an error wrapping ErrInvalidBlock; Forward never panics on either.
func (b *Block) Forward(ws *Workspace, u []float32, n, h, w int, out, gates []float32) error {
	if len(out) != len(u) {
		return fmt.Errorf("%w: out has %d values, want %d (same as the input)", ErrShape, len(out), len(u))
	}
	if err := b.Gates(ws, u, n, h, w, gates); err != nil {
		return err
	}
	hw := h * w
	for p, g := range gates[:n*b.Channels] {
		src := u[p*hw : (p+1)*hw]
		dst := out[p*hw : (p+1)*hw]
		dst = dst[:len(src)]
		for i, v := range src {
			dst[i] = v * g
		}
	}
	return nil
}

// Gates computes only the gates of Forward: n rows of C values (offset n*C+c) for the batch u
// in NCHW float32 layout, without scaling u. It is what a self-check compares with an engine's
// gate tensors. The argument rules are those of Forward.
func (b *Block) Gates(ws *Workspace, u []float32, n, h, w int, gates []float32) error {
	if err := b.checkLayout(); err != nil {
		return err
	}
	c := b.Channels
	size, err := inputSize(n, c, h, w)
	if err != nil {
		return err
	}
	if len(u) != size {
		return fmt.Errorf("%w: input has %d values, want N x C x H x W = %d x %d x %d x %d = %d",
			ErrShape, len(u), n, c, h, w, size)
	}
	if len(gates) != n*c {
		return fmt.Errorf("%w: gates has %d values, want N x C = %d x %d = %d", ErrShape, len(gates), n, c, n*c)
	}
	if ws == nil {
		ws = new(Workspace)
	}
	ws.grow(c, b.Hidden)
	hw := h * w
	inv := 1 / float64(hw)
	for i := 0; i < n; i++ {
		item := u[i*c*hw : (i+1)*c*hw]
		for ch := range ws.squeeze {
			ws.squeeze[ch] = planeSum(item[ch*hw:(ch+1)*hw]) * inv
		}
		b.excite(ws, gates[i*c:(i+1)*c])
	}
	return nil
}

// inputSize returns n*c*h*w after checking that every factor is positive and that the product
// fits in an int.
func inputSize(n, c, h, w int) (int, error) {
	if n <= 0 || h <= 0 || w <= 0 {
		return 0, fmt.Errorf("%w: batch %d, height %d, width %d: each must be > 0", ErrShape, n, h, w)
	}
	size := 1
	for _, f := range [...]int{n, c, h, w} {
		if size > math.MaxInt/f {
			return 0, fmt.Errorf("%w: N x C x H x W = %d x %d x %d x %d overflows int", ErrShape, n, c, h, w)
		}
		size *= f
	}
	return size, nil
}

// planeSum adds one channel's h*w values in float64 with four independent accumulators.
func planeSum(p []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(p); i += 4 {
		q := p[i : i+4 : i+4]
		s0 += float64(q[0])
		s1 += float64(q[1])
		s2 += float64(q[2])
		s3 += float64(q[3])
	}
	for ; i < len(p); i++ {
		s0 += float64(p[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// excite turns ws.squeeze (one batch item's pooled channels) into that item's gates.
func (b *Block) excite(ws *Workspace, gates []float32) {
	c, hid := b.Channels, b.Hidden
	z := ws.squeeze
	for j := range ws.hidden {
		row := b.W1[j*c : (j+1)*c]
		row = row[:len(z)]
		acc := float64(b.B1[j])
		for k, wv := range row {
			acc += float64(wv) * z[k]
		}
		if b.Act == SiLU {
			acc = acc / (1 + math.Exp(-acc))
		} else if acc < 0 {
			acc = 0
		}
		ws.hidden[j] = acc
	}
	alpha, beta := float64(b.Alpha), float64(b.Beta)
	for ch := range gates[:c] {
		row := b.W2[ch*hid : (ch+1)*hid]
		row = row[:len(ws.hidden)]
		acc := float64(b.B2[ch])
		for k, wv := range row {
			acc += float64(wv) * ws.hidden[k]
		}
		if b.Gate == HardSigmoid {
			acc = math.Max(0, math.Min(1, alpha*acc+beta))
		} else {
			acc = 1 / (1 + math.Exp(-acc))
		}
		gates[ch] = float32(acc)
	}
}

func finite32(v float32) bool {
	return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
}
