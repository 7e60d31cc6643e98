// Package pixelbase is a classic pixel-level camera-tamper detector on downscaled gray frames, the baseline that
// attention drift is measured against.
package pixelbase
