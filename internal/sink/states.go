package sink

import (
	"sync"

	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/stages/source"
)

// States holds each stream's source state for status messages, and mirrors it into metrics. It is safe for
// concurrent use.
type States struct {
	metrics *metrics.Metrics // may be nil

	mu     sync.Mutex
	states map[string]source.State
}

// NewStates makes an empty state table; m may be nil.
func NewStates(m *metrics.Metrics) *States {
	return &States{metrics: m, states: map[string]source.State{}}
}

// Set records a stream's state.
func (s *States) Set(stream string, state source.State) {
	s.mu.Lock()
	s.states[stream] = state
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.SetSourceState(stream, state)
	}
}

// Get returns a stream's state ("" when never set).
func (s *States) Get(stream string) source.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[stream]
}
