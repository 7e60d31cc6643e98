package se

import (
	"math"
	"math/rand/v2"
	"testing"
)

// closeTo reports whether got is within 1e-12 of want, relative to |want| (absolute below 1).
func closeTo(got, want float64) bool {
	return math.Abs(got-want) <= 1e-12*max(1, math.Abs(want))
}

// naiveScore is y = L⁻¹ d summed plainly, row by row, for a packed lower triangle l of size len(d).
func naiveScore(l, d []float64) float64 {
	var total float64
	for i := range d {
		var y float64
		for j := 0; j <= i; j++ {
			y += l[i*(i+1)/2+j] * d[j]
		}
		total += y * y
	}
	return total
}

func randomSlice(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64() * math.Exp(3*rng.NormFloat64())
	}
	return s
}

// The general group loops give what the plain formulas give, on random data with values spread over
// several orders of magnitude.
func TestGroupKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	for _, m := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 16} {
		n := m * (m + 1) / 2
		for trial := range 200 {
			l, d, inv := randomSlice(rng, n), randomSlice(rng, m), randomSlice(rng, m)
			start := rng.NormFloat64()
			z := make([]float64, m)
			got := scoreGroup(start, l, d, z, inv)
			if want := start + naiveScore(l, d); !closeTo(got, want) {
				t.Fatalf("m=%d trial %d: scoreGroup %v, plain sum %v", m, trial, got, want)
			}
			for i := range z {
				if z[i] != d[i]*inv[i] {
					t.Fatalf("m=%d trial %d: z[%d] = %v, want %v", m, trial, i, z[i], d[i]*inv[i])
				}
			}
			a, f := rng.Float64(), rng.Float64()
			mean, cov := randomSlice(rng, m), randomSlice(rng, n)
			wantMean, wantCov := append([]float64(nil), mean...), append([]float64(nil), cov...)
			for i := range m {
				wantMean[i] += a * d[i]
				for j := 0; j <= i; j++ {
					wantCov[i*(i+1)/2+j] += f * d[i] * d[j]
				}
			}
			learnGroup(a, f, mean, cov, d)
			for i := range mean {
				if !closeTo(mean[i], wantMean[i]) {
					t.Fatalf("m=%d trial %d: learnGroup mean[%d] = %v, want %v", m, trial, i, mean[i], wantMean[i])
				}
			}
			for i := range cov {
				if !closeTo(cov[i], wantCov[i]) {
					t.Fatalf("m=%d trial %d: learnGroup cov[%d] = %v, want %v", m, trial, i, cov[i], wantCov[i])
				}
			}

		}
	}
}

// The unrolled kernels for runs of groups of 8 give what the general loops give group by group, on
// random data with values spread over several orders of magnitude.
func TestGroups8Kernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 3))
	for _, groups := range []int{1, 2, 5} {
		for trial := range 200 {
			l, d, inv := randomSlice(rng, 36*groups), randomSlice(rng, 8*groups), randomSlice(rng, 8*groups)
			start := rng.NormFloat64()
			z, z8 := make([]float64, 8*groups), make([]float64, 8*groups)
			want := start
			for g := range groups {
				want = scoreGroup(want, l[36*g:36*g+36], d[8*g:8*g+8], z[8*g:8*g+8], inv[8*g:8*g+8])
			}
			if got := scoreGroups8(start, l, d, z8, inv); !closeTo(got, want) {
				t.Fatalf("%d groups, trial %d: scoreGroups8 %v, scoreGroup %v", groups, trial, got, want)
			}
			for i := range z8 {
				if z8[i] != z[i] {
					t.Fatalf("%d groups, trial %d: scoreGroups8 z[%d] = %v, scoreGroup %v", groups, trial, i, z8[i], z[i])
				}
			}
			a, f := rng.Float64(), rng.Float64()
			mean, cov := randomSlice(rng, 8*groups), randomSlice(rng, 36*groups)
			mean8, cov8 := append([]float64(nil), mean...), append([]float64(nil), cov...)
			for g := range groups {
				learnGroup(a, f, mean[8*g:8*g+8], cov[36*g:36*g+36], d[8*g:8*g+8])
			}
			learnGroups8(a, f, mean8, cov8, d)
			for i := range mean {
				if !closeTo(mean8[i], mean[i]) {
					t.Fatalf("%d groups, trial %d: learnGroups8 mean[%d] = %v, learnGroup %v", groups, trial, i, mean8[i], mean[i])
				}
			}
			for i := range cov {
				if !closeTo(cov8[i], cov[i]) {
					t.Fatalf("%d groups, trial %d: learnGroups8 cov[%d] = %v, learnGroup %v", groups, trial, i, cov8[i], cov[i])
				}
			}
		}
	}
}

// A baseline with groups of 8 (and a smaller last group) scores what the plain formula gives on its own
// factors, and learns what the plain update gives, for group sizes that use the unrolled kernels and
// sizes that do not.
func TestGateBaselineGroupKernels(t *testing.T) {
	for _, tc := range []struct{ c, group int }{{36, 8}, {64, 8}, {30, 4}, {30, 7}, {33, 16}} {
		src := newCorrelatedGates(5, tc.c)
		b, _ := NewGateBaseline(tc.c, tc.group, 0.01, 50, 2)
		s := make([]float32, tc.c)
		for frame := range 400 {
			src.draw(s)
			got, err := b.Score(s)
			if err != nil {
				t.Fatal(err)
			}
			if b.Ready() {
				var want float64
				for g := range b.off {
					m, o, c0 := b.size(g), b.off[g], g*b.group
					want += naiveScore(b.chol[o:o+m*(m+1)/2], b.dev[c0:c0+m])
				}
				if want /= float64(tc.c); !closeTo(got, want) {
					t.Fatalf("%d channels in groups of %d, frame %d: Score %v, plain sum %v", tc.c, tc.group, frame, got, want)
				}
			}
			mean, cov, scale := append([]float64(nil), b.mean...), append([]float64(nil), b.cov...), b.scale
			n := b.n
			b.Learn(1, s)
			if n == 0 {
				continue
			}
			a := max(1/float64(n+1), 1/b.memory)
			for g := range b.off {
				m, o, c0 := b.size(g), b.off[g], g*b.group
				for i := range m {
					di := b.dev[c0+i]
					if want := mean[c0+i] + a*di; !closeTo(b.mean[c0+i], want) {
						t.Fatalf("%d channels in groups of %d, frame %d: mean[%d] = %v, want %v", tc.c, tc.group, frame, c0+i, b.mean[c0+i], want)
					}
					for j := 0; j <= i; j++ {
						k := o + i*(i+1)/2 + j
						if want := cov[k] + a/scale*di*b.dev[c0+j]; !closeTo(b.cov[k], want) {
							t.Fatalf("%d channels in groups of %d, frame %d: cov[%d] = %v, want %v", tc.c, tc.group, frame, k, b.cov[k], want)
						}
					}
				}
			}
		}
	}
}

// The unrolled inverse Cholesky factor for 8 channels gives what the general loop gives, and the general
// loop an inverse: M A Mᵀ = I for the shrunk, ridged A. Covariances are random positive definite ones,
// with values over several orders of magnitude, and degenerate ones (a channel that never moved, all zero)
// where the ridge stands in for non-positive pivots.
func TestInvertCholeskyKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 5))
	randomCov := func(m int, dead int) []float64 {
		cov := make([]float64, m*(m+1)/2)
		scales := make([]float64, m)
		for i := range scales {
			scales[i] = math.Exp(2 * rng.NormFloat64())
		}
		for range m + 4 { // a sum of m+4 outer products: positive definite
			v := randomSlice(rng, m)
			for i := range m {
				for j := 0; j <= i; j++ {
					cov[i*(i+1)/2+j] += v[i] * v[j] * scales[i] * scales[j]
				}
			}
		}
		if dead >= 0 {
			for j := range m {
				cov[max(dead, j)*(max(dead, j)+1)/2+min(dead, j)] = 0
			}
		}
		return cov
	}
	for _, m := range []int{1, 2, 3, 5, 8, 9} {
		for trial := range 300 {
			var cov []float64
			switch trial % 10 {
			case 0:
				cov = make([]float64, m*(m+1)/2)
			case 1:
				cov = randomCov(m, rng.IntN(m))
			default:
				cov = randomCov(m, -1)
			}
			scale, keep := math.Exp(rng.NormFloat64()), 1-rng.Float64()*rng.Float64()
			var tr float64
			for i := range m {
				tr += scale * cov[i*(i+1)/2+i]
			}
			ridge := 1e-6*tr/float64(m) + 1e-12
			l := make([]float64, len(cov))
			invertCholesky(m, cov, l, make([]float64, len(cov)), scale, keep, ridge)
			if trial%10 >= 2 {
				// M A Mᵀ = I: with A = L Lᵀ and M = L⁻¹.
				a := func(i, j int) float64 {
					i, j = max(i, j), min(i, j)
					v := scale * cov[i*(i+1)/2+j]
					if i != j {
						return v * keep
					}
					return v + ridge
				}
				for i := range m {
					for j := 0; j <= i; j++ {
						var s float64
						for p := 0; p <= i; p++ {
							for q := 0; q <= j; q++ {
								s += l[i*(i+1)/2+p] * a(p, q) * l[j*(j+1)/2+q]
							}
						}
						want := 0.0
						if i == j {
							want = 1
						}
						if math.Abs(s-want) > 1e-6 {
							t.Fatalf("m=%d trial %d: (M A Mᵀ)[%d][%d] = %v, want %v", m, trial, i, j, s, want)
						}
					}
				}
			}
			if m != 8 {
				continue
			}
			l8 := make([]float64, len(cov))
			invertCholesky8(cov, l8, scale, keep, ridge)
			for i := range l8 {
				if !closeTo(l8[i], l[i]) {
					t.Fatalf("trial %d: invertCholesky8 l[%d] = %v, invertCholesky %v", trial, i, l8[i], l[i])
				}
			}
		}
	}
}
