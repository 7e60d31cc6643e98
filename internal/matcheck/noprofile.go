//go:build !matprofile

package matcheck

// Count is the number of live gocv Mats; ok is false without the matprofile build tag.
func Count() (n int, ok bool) { return 0, false }
