// Package npy reads and writes NumPy .npy files holding float32 arrays in C order.
package npy
