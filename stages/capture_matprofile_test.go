//go:build matprofile

package stages

import "gocv.io/x/gocv"

// matCount is the number of live gocv Mats; counting needs the matprofile build tag.
func matCount() (int, bool) { return gocv.MatProfile.Count(), true }
