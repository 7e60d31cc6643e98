//go:build matprofile

package matcheck

import "gocv.io/x/gocv"

// Count is the number of live gocv Mats; ok is false without the matprofile build tag.
func Count() (n int, ok bool) { return gocv.MatProfile.Count(), true }
