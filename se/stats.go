package se

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidGates reports a gate vector that has no meaningful statistics: empty, containing
// NaN, ±Inf or a negative value, or summing to zero. Statistics and drift return it (wrapped with
// the offending channel) instead of publishing NaN or Inf as numbers.
var ErrInvalidGates = errors.New("invalid gate vector")

// Thresholds of Stats.Saturated and Stats.Suppressed.
const (
	// SaturatedAbove: a gate strictly greater than this passes its channel almost unchanged.
	SaturatedAbove = 0.9
	// SuppressedBelow: a gate strictly less than this almost silences its channel.
	SuppressedBelow = 0.1
)

// TopGate is one of the largest gates of a vector: its channel index and its value.
type TopGate struct {
	Channel int
	Value   float32
}

// Stats summarizes one gate vector s of C values (one SE block, one frame). Every field is
// finite: ComputeStats refuses vectors that would make any of them NaN or Inf.
type Stats struct {
	// Mean, Std (population standard deviation), Min and Max of the gates.
	Mean float64
	Std  float64
	Min  float64
	Max  float64
	// Entropy is H(p)/ln C with p = s/sum(s) and H the Shannon entropy in nats: 1 when attention
	// is spread evenly over all channels, near 0 when one channel holds it all. In [0, 1].
	// For C = 1 it is 1: a single channel is the (trivially even) uniform distribution.
	Entropy float64
	// EffectiveChannels is exp(H(p)), the number of equally weighted channels with the same
	// entropy. In [1, C].
	EffectiveChannels float64
	// Top holds the k largest gates, largest first; equal values are ordered by lower channel.
	Top []TopGate
	// Saturated is the fraction of gates > SaturatedAbove (0.9); Suppressed the fraction
	// < SuppressedBelow (0.1). Both in [0, 1]; the comparison is done in float64, so a gate of
	// float32(0.9) = 0.899999976 is not saturated.
	Saturated  float64
	Suppressed float64
}

// ComputeStats computes the statistics of the gate vector s into dst, with the k largest gates
// in dst.Top (all C when k > C, none when k = 0; dst.Top is then empty, not nil). It reuses
// dst.Top's backing array, so with a dst reused across frames it allocates nothing once that
// array holds k gates; a caller that still needs the previous Top (a message not yet encoded)
// must copy it or pass another dst.
//
// s must be non-empty, finite, non-negative and not all zero; otherwise the error wraps
// ErrInvalidGates and names the first offending channel. Values above 1 are accepted (they are
// not gates of a sigmoid, but the statistics stay defined). A negative k is an error. On error
// dst is left unchanged.
func ComputeStats(s []float32, k int, dst *Stats) error {
	if dst == nil {
		return errors.New("se: ComputeStats needs a non-nil *Stats")
	}
	if k < 0 {
		return fmt.Errorf("se: top-k %d is negative", k)
	}
	if len(s) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidGates)
	}
	// Pass 1: validate, sum, extremes, threshold counts.
	var sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	saturated, suppressed := 0, 0
	for i, v32 := range s {
		if !(v32 >= 0 && v32 <= math.MaxFloat32) { // false for NaN, ±Inf and negatives
			return fmt.Errorf("%w: gate %d of %d is %v", ErrInvalidGates, i, len(s), v32)
		}
		v := float64(v32)
		sum += v
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
		if v > SaturatedAbove {
			saturated++
		} else if v < SuppressedBelow {
			suppressed++
		}
	}
	if lo == 0 {
		lo = 0 // -0 reads as 0
	}
	if sum == 0 {
		return fmt.Errorf("%w: all %d gates are 0", ErrInvalidGates, len(s))
	}
	c := float64(len(s))
	mean := sum / c

	// Pass 2: variance around the mean and top-k. Pass 3: the entropy, from
	// H(p) = -sum p ln p with p = s/S, which equals ln S - (sum s ln s)/S.
	var sq float64
	k = min(k, len(s))
	top := dst.Top[:0]
	if cap(top) < k || top == nil {
		top = make([]TopGate, 0, k)
	}
	for i, v32 := range s {
		d := float64(v32) - mean
		sq += d * d
		if v32 == 0 {
			v32 = 0 // -0 reads as 0
		}
		if k > 0 && (len(top) < k || v32 > top[len(top)-1].Value) {
			top = insertTop(top, k, i, v32)
		}
	}
	h := math.Log(sum) - sumXLogX(s)/sum
	entropy := 1.0
	if len(s) > 1 {
		entropy = clamp(h/math.Log(c), 0, 1)
	}
	*dst = Stats{
		Mean:              mean,
		Std:               math.Sqrt(sq / c),
		Min:               lo,
		Max:               hi,
		Entropy:           entropy,
		EffectiveChannels: clamp(math.Exp(h), 1, c),
		Top:               top,
		Saturated:         float64(saturated) / c,
		Suppressed:        float64(suppressed) / c,
	}
	return nil
}

// insertTop offers channel i with value v to top, which holds at most k gates sorted by value
// descending and, for equal values, by channel ascending. Channels must be offered in
// ascending order, so an equal value never displaces an earlier channel.
func insertTop(top []TopGate, k, i int, v float32) []TopGate {
	if k == 0 {
		return top
	}
	if len(top) == k {
		if v <= top[k-1].Value {
			return top
		}
		top = top[:k-1]
	}
	j := len(top)
	for j > 0 && top[j-1].Value < v {
		j--
	}
	top = append(top, TopGate{})
	copy(top[j+1:], top[j:])
	top[j] = TopGate{Channel: i, Value: v}
	return top
}

// sumXLogX returns the sum of v*ln(v) over the finite, non-negative values of s, with 0*ln(0)
// taken as 0, to an absolute error below 1e-11 per value times v. It does math.Log's job about
// three times as fast and without a division: each v is split as m * 2^e with m in [1, 2); the
// top 4 bits of m pick an interval of width 1/16 with centre c, and
// ln(m) = ln(c) + ln(1+r), r = m/c - 1, |r| <= 1/32, whose series is summed up to r^6 (the first
// term left out, r^7/7, is below 5e-12). Working on float64 bits makes float32 subnormals
// ordinary numbers, and a zero gives a finite logarithm (-1023 ln 2 + ln c) times 0, so zeros
// need no branch.
func sumXLogX(s []float32) float64 {
	// inv[i] = 1/c for c = (33+2i)/32, the centre of [1+i/16, 1+(i+1)/16);
	// lnC[i] = -ln(inv[i]) for the float64 value of inv[i].
	inv := [16]float64{
		32.0 / 33, 32.0 / 35, 32.0 / 37, 32.0 / 39, 32.0 / 41, 32.0 / 43, 32.0 / 45, 32.0 / 47,
		32.0 / 49, 32.0 / 51, 32.0 / 53, 32.0 / 55, 32.0 / 57, 32.0 / 59, 32.0 / 61, 32.0 / 63,
	}
	lnC := [16]float64{
		0.03077165866675366, 0.08961215868968717, 0.14518200984449783, 0.19782574332991992,
		0.2478361639045812, 0.2954642128938359, 0.3409265869705932, 0.38441169891033206,
		0.42608439531090014, 0.46608972992459924, 0.5045560107523953, 0.5415972824327444,
		0.5773153650348236, 0.6118015411059929, 0.6451379613735847, 0.6773988235918061,
	}
	var acc0, acc1 float64
	for i, v32 := range s {
		v := float64(v32)
		bits := math.Float64bits(v)
		mant := bits & (1<<52 - 1)
		j := mant >> 48 // top 4 bits of the mantissa
		exp := float64(int(bits>>52&0x7ff) - 1023)
		r := math.Float64frombits(mant|1023<<52)*inv[j] - 1
		r2 := r * r
		ln1p := r + r2*(-1.0/2+r*(1.0/3)) + r2*r2*((-1.0/4+r*(1.0/5))-r2*(1.0/6))
		x := v * (exp*math.Ln2 + lnC[j] + ln1p)
		if i&1 == 0 {
			acc0 += x
		} else {
			acc1 += x
		}
	}
	return acc0 + acc1
}

func clamp(v, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, v))
}
