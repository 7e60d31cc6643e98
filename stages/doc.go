// Package stages holds the concrete pipeline stages: capture, preprocess, inference and publish.
package stages
