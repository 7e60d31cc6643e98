//go:build !matprofile

package stages

// matCount is the number of live gocv Mats; without the matprofile build tag it is unknown.
func matCount() (int, bool) { return 0, false }
