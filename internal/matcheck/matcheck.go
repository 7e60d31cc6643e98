// Package matcheck lets tests fail when they leak gocv Mats. Counting needs the matprofile build tag
// (`go test -tags matprofile`); without it nothing is counted and the checks pass.
package matcheck

import "testing"

// Check fails t when the test leaves more live Mats than it found (matprofile tag only).
func Check(t testing.TB) {
	t.Helper()
	start, ok := Count()
	if !ok {
		return
	}
	t.Cleanup(func() {
		if n, _ := Count(); n != start {
			t.Errorf("gocv Mats: %d live at the start, %d at the end", start, n)
		}
	})
}
