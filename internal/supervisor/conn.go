package supervisor

import "github.com/nats-io/nats.go"

// Conn returns the connection the pipeline publishes on, or nil with Options.NoNATS. The caller must not
// close it or change its handlers.
func (s *Supervisor) Conn() *nats.Conn {
	if s.pub == nil {
		return nil
	}
	return s.pub.Conn()
}
