// Package se implements the Squeeze-and-Excitation block, SE block discovery on model graphs, and channel-attention statistics and drift.
package se
