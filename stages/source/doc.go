// Package source describes capture sources without opening them: URL kinds, options with their defaults and
// ranges, state-change events and stream states. It is pure Go, so config and commands can use it without cgo.
package source
