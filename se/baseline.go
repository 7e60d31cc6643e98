package se

import (
	"fmt"
	"math"
)

// GateBaseline is one stream's running model of one SE block's gate vectors: what each of the block's C
// gates usually is and how the gates usually vary together. Keep one per stream per block.
//
// The model is a mean vector m and a block-diagonal covariance: the channels are cut into groups of
// GroupSize consecutive channels (the last group may be smaller) and each group keeps its full covariance
// S_g. The gates of a block move mostly together (on the bundled model one direction holds 97-99.8 % of
// the variance in the first two blocks), so a per-channel z-score mostly measures that common movement,
// which normal video has plenty of; covered lenses, defocus and camera moves show up in directions the gates
// do not usually take, which the covariance exposes. See docs/attention.md for the measurements.
//
// For a frame with gates s and d = s - m, Score returns
//
//	D = (1/C) Σ_g d_gᵀ A_g⁻¹ d_g,   A_g = (1-λ) S_g + λ diag(S_g)
//
// a Mahalanobis distance with the covariance shrunk by λ (Shrinkage) toward its diagonal, divided by C:
// for Gaussian gates that match the baseline, C·D is chi-square with C degrees of freedom (mean 1,
// variance 2/C for D). It also keeps each channel's signed z-score z_c = d_c / σ_c against the channel's
// own variance, which names the channels that moved most.
//
// Learning: m and S are exponentially weighted with rate a = w · max(1/n, 1/Memory) for the n-th learned
// frame with weight w (a running mean at first, forgetting after about Memory frames):
// m += a d, S = (1-a)(S + a d dᵀ). The Cholesky factor of A_g that Score uses is recomputed for a few groups
// per learned frame, round robin, so that every factor is at most Refresh learned frames old. Per frame
// this costs O(C · GroupSize) and allocates nothing after NewGateBaseline.
//
// Use: Score the frame, decide how much it should count, then Learn it. Not safe for concurrent use.
type GateBaseline struct {
	c, group  int
	shrink    float64
	memory    float64
	refresh   int
	n         int     // frames learned, counting the seed
	scale     float64 // the covariances are scale * cov
	next      int     // next group to refactor
	perUpdate int     // groups refactored per learned frame

	mean     []float64 // C
	cov      []float64 // per group g of size m_g: lower triangle of S_g, packed by rows at off[g] (i(i+1)/2 + j)
	chol     []float64 // same layout: L⁻¹ for the Cholesky factor L of A_g = L Lᵀ; valid when ready[g]
	tri      []float64 // GroupSize(GroupSize+1)/2 scratch for factor
	off      []int     // per group, offset into cov and chol
	inv      []float64 // C, 1/σ_c as of the last factor of c's group (0 for σ_c = 0)
	ready    []bool
	factored int // groups with ready set

	dev    []float64 // C, s - m of the last Score
	z      []float64 // C
	scored bool
}

// NewGateBaseline returns an empty baseline for channels gates, with covariance groups of groupSize
// channels (1 = diagonal only), shrinkage in [0, 1], a memory of about memory frames and Cholesky factors
// at most refresh learned frames old.
func NewGateBaseline(channels, groupSize int, shrinkage, memory float64, refresh int) (*GateBaseline, error) {
	switch {
	case channels < 1:
		return nil, fmt.Errorf("%w: gate baseline for %d channels, want >= 1", ErrShape, channels)
	case groupSize < 1:
		return nil, fmt.Errorf("gate baseline: group size %d, want >= 1", groupSize)
	case !(shrinkage >= 0 && shrinkage <= 1):
		return nil, fmt.Errorf("gate baseline: shrinkage %v, want in [0, 1]", shrinkage)
	case !(memory >= 1) || math.IsInf(memory, 0):
		return nil, fmt.Errorf("gate baseline: memory %v frames, want a finite value >= 1", memory)
	case refresh < 1:
		return nil, fmt.Errorf("gate baseline: refresh %d frames, want >= 1", refresh)
	}
	g := min(groupSize, channels)
	groups := (channels + g - 1) / g
	b := &GateBaseline{c: channels, group: g, shrink: shrinkage, memory: memory, refresh: refresh, scale: 1,
		perUpdate: (groups + refresh - 1) / refresh,
		mean:      make([]float64, channels), off: make([]int, groups), ready: make([]bool, groups),
		dev: make([]float64, channels), z: make([]float64, channels), inv: make([]float64, channels),
		tri: make([]float64, g*(g+1)/2)}
	total := 0
	for i := range groups {
		b.off[i] = total
		m := b.size(i)
		total += m * (m + 1) / 2
	}
	b.cov = make([]float64, total)
	b.chol = make([]float64, total)
	return b, nil
}

// size returns the number of channels of group i.
func (b *GateBaseline) size(i int) int { return min(b.group, b.c-i*b.group) }

// Channels returns C.
func (b *GateBaseline) Channels() int { return b.c }

// Ready reports whether every group's covariance has been factored, so that Score returns D rather
// than 0.
func (b *GateBaseline) Ready() bool {
	return b.factored == len(b.ready)
}

// Frames returns how many frames the baseline has learned (weights aside).
func (b *GateBaseline) Frames() int { return b.n }

// Mean returns the baseline's mean gate of channel c.
func (b *GateBaseline) Mean(c int) float64 { return b.mean[c] }

// Std returns the baseline's standard deviation of channel c's gate.
func (b *GateBaseline) Std(c int) float64 {
	g, i := c/b.group, c%b.group
	return math.Sqrt(b.scale * b.cov[b.off[g]+i*(i+1)/2+i])
}

// Z returns channel c's signed z-score (gate - mean) / std in the last scored frame, with the std as
// of the last refresh of c's group (at most Refresh learned frames old); 0 before the first refresh.
func (b *GateBaseline) Z(c int) float64 { return b.z[c] }

// ChangeSq returns Σ_c ((s_c - prev_c) / σ_c)²: how far the gates moved between two frames in units of
// each channel's own variability (σ as of its group's last refresh; channels with no variance yet count
// 0). Both slices must have C values.
func (b *GateBaseline) ChangeSq(prev, s []float32) float64 {
	inv := b.inv[:len(s)]
	prev = prev[:len(s)]
	var sum float64
	for c, v := range s {
		d := float64(v-prev[c]) * inv[c]
		sum += d * d
	}
	return sum
}

// Reset forgets everything, as for a new stream.
func (b *GateBaseline) Reset() {
	b.n, b.next, b.scored, b.scale = 0, 0, false, 1
	clear(b.mean)
	clear(b.cov)
	clear(b.chol)
	clear(b.ready)
	b.factored = 0
	clear(b.z)
	clear(b.inv)
}

// Score returns D for the gates s (C finite values) against the baseline as it is; 0 until every
// group's covariance has been factored (the first Refresh-or-so learned frames). It checks s (ErrShape,
// ErrInvalidGates) and changes only the workspace that Learn and Z read.
func (b *GateBaseline) Score(s []float32) (float64, error) {
	if len(s) != b.c {
		return 0, fmt.Errorf("%w: %d gates, the baseline has %d channels", ErrShape, len(s), b.c)
	}
	b.scored = false
	dev := b.dev[:len(s)]
	for c, v := range s {
		x := float64(v)
		if x-x != 0 { // NaN or ±Inf
			return 0, fmt.Errorf("%w: gate %d of %d is %v", ErrInvalidGates, c, len(s), v)
		}
		dev[c] = x - b.mean[c]
	}
	b.scored = true
	if b.n == 0 {
		clear(b.z)
		return 0, nil
	}
	var total float64
	// With groups of 8 and every group factored, the unrolled kernel scores all full groups (all but a
	// smaller last one); the loop does the groups from g0 on.
	g0 := 0
	if b.group == 8 && b.Ready() {
		g0 = b.c / 8
		total = scoreGroups8(total, b.chol[:36*g0], b.dev[:8*g0], b.z[:8*g0], b.inv[:8*g0])
	}
	complete := true
	for g := g0; g < len(b.off); g++ {
		m, o, c0 := b.size(g), b.off[g], g*b.group
		d := b.dev[c0 : c0+m]
		z, inv := b.z[c0:c0+m], b.inv[c0:c0+m]
		if !b.ready[g] {
			for i, x := range d {
				z[i] = x * inv[i]
			}
			complete = false
			continue
		}
		total = scoreGroup(total, b.chol[o:o+m*(m+1)/2], d, z, inv)
	}
	if !complete {
		return 0, nil
	}
	return total / float64(b.c), nil
}

// Learn adds the last scored frame s to the baseline with weight w in [0, 1] (0 learns nothing, values
// outside are clamped). It must follow a successful Score of the same s; otherwise it does nothing.
func (b *GateBaseline) Learn(w float64, s []float32) {
	if !b.scored || len(s) != b.c {
		return
	}
	b.scored = false
	w = clamp(w, 0, 1)
	if w == 0 {
		return
	}
	if b.n == 0 {
		for c, v := range s {
			b.mean[c] = float64(v)
		}
		b.n = 1
		return
	}
	b.n++
	a := w * max(1/float64(b.n), 1/b.memory)
	// S = scale * cov: S' = (1-a) S + (1-a) a d dᵀ is scale' = (1-a) scale, cov' = cov + (a/scale) d dᵀ,
	// one multiply-add per element instead of rescaling every element every frame.
	f := a / b.scale
	b.scale *= 1 - a
	// With groups of 8 the unrolled kernel updates all full groups; the loop does the groups from g0 on.
	g0 := 0
	if b.group == 8 {
		g0 = b.c / 8
		learnGroups8(a, f, b.mean[:8*g0], b.cov[:36*g0], b.dev[:8*g0])
	}
	for g := g0; g < len(b.off); g++ {
		m, o, c0 := b.size(g), b.off[g], g*b.group
		learnGroup(a, f, b.mean[c0:c0+m], b.cov[o:o+m*(m+1)/2], b.dev[c0:c0+m])
	}
	if b.scale < 1e-150 { // renormalize, about every 200000 frames at Memory 600
		for i := range b.cov {
			b.cov[i] *= b.scale
		}
		b.scale = 1
	}
	for range b.perUpdate {
		b.factor(b.next)
		b.next = (b.next + 1) % len(b.off)
	}
}

// scoreGroup sets one group's z-scores z_i = d_i inv_i and returns total + Σ_i y_i² for y = L⁻¹ d, with
// l the group's packed inverse factor (m(m+1)/2 values for m = len(d)), adding the y_i² in row order:
// with the stored inverse factor every y_i is an independent dot product (a forward substitution would
// chain them), and dᵀ A⁻¹ d = |y|². Each y_i sums its even and its odd terms separately, then adds the two. scoreGroups8 is the same for
// groups of 8, unrolled, and must give the same result.
func scoreGroup(total float64, l, d, z, inv []float64) float64 {
	z, inv = z[:len(d)], inv[:len(d)]
	for i, x := range d {
		z[i] = x * inv[i]
	}
	for i := range d {
		r0 := i * (i + 1) / 2
		row := l[r0 : r0+i+1]
		di := d[:len(row)]
		var a0, a1 float64
		j := 0
		for ; j+2 <= len(row); j += 2 {
			a0 += row[j] * di[j]
			a1 += row[j+1] * di[j+1]
		}
		if j < len(row) {
			a0 += row[j] * di[j]
		}
		y := a0 + a1
		total += y * y
	}
	return total
}

// learnGroup adds a d to one group's mean and f d dᵀ to its packed covariance cov (m(m+1)/2 values for
// m = len(d)). learnGroups8 is the same for groups of 8, unrolled.
func learnGroup(a, f float64, mean, cov, d []float64) {
	mean = mean[:len(d)]
	for i, di := range d {
		mean[i] += a * di
		r0 := i * (i + 1) / 2
		row := cov[r0 : r0+i+1]
		dj := d[:len(row)]
		add := f * di
		for j, x := range dj {
			row[j] += add * x
		}
	}
}

// factor recomputes the inverse Cholesky factor of group g's shrunk covariance. A covariance that is not
// positive definite (too few frames, a channel that never moved) gets a small ridge: 1e-6 of its mean
// variance plus 1e-12, so that the factor always exists.
//
// Element (i, j), j <= i, of each packed triangle is at i(i+1)/2 + j; the loops carry the row offsets
// ri = i(i+1)/2 (and rj, rk) instead of recomputing them.
func (b *GateBaseline) factor(g int) {
	m, o, c0 := b.size(g), b.off[g], g*b.group
	n := m * (m + 1) / 2
	cov, l, t := b.cov[o:o+n], b.chol[o:o+n], b.tri[:n]
	inv := b.inv[c0 : c0+m]
	scale, keep := b.scale, 1-b.shrink
	var tr float64
	for i, ri := 0, 0; i < m; ri, i = ri+i+1, i+1 {
		tr += scale * cov[ri+i]
	}
	ridge := 1e-6*tr/float64(m) + 1e-12
	for i, ri := 0, 0; i < m; ri, i = ri+i+1, i+1 {
		if v := scale * cov[ri+i]; v > 0 {
			inv[i] = 1 / math.Sqrt(v)
		} else {
			inv[i] = 0
		}
	}
	if m == 8 {
		invertCholesky8(cov, l, scale, keep, ridge)
	} else {
		invertCholesky(m, cov, l, t, scale, keep, ridge)
	}
	if !b.ready[g] {
		b.ready[g] = true
		b.factored++
	}
}

// invertCholesky factors A = L Lᵀ into the scratch t, A_ij = scale cov_ij times keep off the diagonal,
// plus ridge on it (a pivot that is not positive becomes ridge), and writes M = L⁻¹ (lower triangular) into
// l. cov, l and t are packed triangles of m(m+1)/2 values. invertCholesky8 is the same for m = 8, unrolled,
// and must give the same result.
func invertCholesky(m int, cov, l, t []float64, scale, keep, ridge float64) {
	for i, ri := 0, 0; i < m; ri, i = ri+i+1, i+1 {
		ti, ci := t[ri:ri+i+1], cov[ri:ri+i+1]
		for j, rj := 0, 0; j < i; rj, j = rj+j+1, j+1 {
			a := scale * ci[j] * keep
			tj := t[rj : rj+j+1]
			for k, x := range tj[:j] {
				a -= ti[k] * x
			}
			ti[j] = a / tj[j]
		}
		a := scale*ci[i] + ridge
		for _, x := range ti[:i] {
			a -= x * x
		}
		if a <= 0 {
			a = ridge
		}
		ti[i] = math.Sqrt(a)
	}
	for j, rj := 0, 0; j < m; rj, j = rj+j+1, j+1 {
		l[rj+j] = 1 / t[rj+j]
		for i, ri := j+1, rj+j+1; i < m; ri, i = ri+i+1, i+1 {
			ti := t[ri : ri+i+1]
			var a float64
			for k, rk := j, rj; k < i; rk, k = rk+k+1, k+1 {
				a += ti[k] * l[rk+j]
			}
			l[ri+j] = -a / ti[i]
		}
	}
}
