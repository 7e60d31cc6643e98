// Package sestream assembles the whole pipeline from a config.Config: capture, inference with SE gates,
// attention statistics and drift, and publishing on NATS. The sestream command is a thin wrapper around it.
package sestream
