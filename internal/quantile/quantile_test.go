package quantile

import "testing"

func TestNearestRank(t *testing.T) {
	xs := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		q    float64
		want int
	}{{0, 1}, {0.1, 1}, {0.11, 2}, {0.5, 5}, {0.99, 10}, {1, 10}} {
		if got := NearestRank(xs, tc.q); got != tc.want {
			t.Errorf("NearestRank(q=%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	got, ok := Sorted([]int{9, 1, 5}, 0.5, 1)
	if !ok || got[0] != 5 || got[1] != 9 {
		t.Errorf("Sorted = %v, %v", got, ok)
	}
	if _, ok := Sorted([]int(nil), 0.5); ok {
		t.Error("Sorted of nothing is ok")
	}
}
