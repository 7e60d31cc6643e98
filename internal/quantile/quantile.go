// Package quantile picks order statistics from samples, as the summary line and the benchmarks report them.
package quantile

import (
	"cmp"
	"math"
	"slices"
)

// NearestRank returns the q-quantile (q in [0, 1]) of sorted by the nearest-rank method: the smallest value
// with at least q of the samples at or below it. sorted must be in ascending order and not empty.
func NearestRank[T cmp.Ordered](sorted []T, q float64) T {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Sorted sorts xs in place and returns the q-quantile of each of qs by nearest rank; ok is false when xs is
// empty.
func Sorted[T cmp.Ordered](xs []T, qs ...float64) (out []T, ok bool) {
	if len(xs) == 0 {
		return nil, false
	}
	slices.Sort(xs)
	out = make([]T, len(qs))
	for i, q := range qs {
		out[i] = NearestRank(xs, q)
	}
	return out, true
}
