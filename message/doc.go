// Package message defines the JSON messages sestream publishes on NATS.
package message
