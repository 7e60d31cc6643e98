package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0, 50 * ms}, {1, 1, 100 * ms}, {2, 0.5, 150 * ms}, {3, 1, 400 * ms},
		{5, 1, 1000 * ms}, {50, 0, 500 * ms}, {0, 1, 100 * ms}, {1, -3, 50 * ms}, {1, 7, 100 * ms},
	} {
		if got := Delay(tc.attempt, 100*ms, 1000*ms, tc.r); got.Round(ms) != tc.want {
			t.Errorf("Delay(%d, r=%v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}
