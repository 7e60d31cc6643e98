package natspub

import "github.com/nats-io/nats.go"

// Conn returns the publisher's NATS connection, so that the process can also subscribe on it (messages the
// publisher sends come back to the connection's own subscriptions). The caller must not close it or change
// its handlers.
func (p *Publisher) Conn() *nats.Conn { return p.nc }
