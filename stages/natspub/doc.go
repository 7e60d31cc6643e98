// Package natspub publishes messages on NATS (core or JetStream), to a server it connects to or to an embedded
// nats-server, through a bounded buffer that survives disconnects and counts what it drops.
package natspub
