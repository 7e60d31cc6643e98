// Package model reads, validates and rewrites ONNX models and their metadata.
package model
