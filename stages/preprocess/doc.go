// Package preprocess turns a frame into a model input tensor with gocv: resize (stretch, letterbox, center
// crop), colour order, scale, mean and std.
package preprocess
