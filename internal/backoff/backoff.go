// Package backoff computes retry delays: exponential growth from an initial delay up to a cap, with jitter.
package backoff

import "time"

// Delay is the delay before retry number attempt+1 after attempt failures (attempt >= 1; smaller counts as
// 1): initial doubled once per further failure, capped at maxDelay, then scaled into [d/2, d] by r in [0, 1)
// (r is clamped), so that many clients retrying after one outage do not retry in step.
func Delay(attempt int, initial, maxDelay time.Duration, r float64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	r = min(max(r, 0), 1)
	return d/2 + time.Duration(r*float64(d/2))
}
