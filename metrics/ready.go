package metrics

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sestream/sestream/stages/source"
)

// Readiness is the answer of /readyz.
type Readiness struct {
	Ready bool
	// Reasons say what is missing, one line each; empty when Ready.
	Reasons []string
}

// Readiness checks the conditions of /readyz: the model is loaded (ModelLoaded was called), at least one
// stream captured a frame within the producing window, and NATS is connected. Before Watch is called the
// pipeline counts as not started; a Watch without a NATS function (a host that publishes nothing) drops the
// NATS condition. Each failed condition adds a reason. It is safe for concurrent use.
func (m *Metrics) Readiness() Readiness {
	var reasons []string
	if !m.loaded.Load() {
		reasons = append(reasons, "model: not loaded yet")
	}
	src := m.sources.Load()
	switch {
	case src == nil:
		reasons = append(reasons, "pipeline: not started yet")
	case src.Streams == nil:
		reasons = append(reasons, "sources: no stream counters watched")
	default:
		if why := m.producingReason(src); why != "" {
			reasons = append(reasons, why)
		}
	}
	if src != nil && src.NATS != nil && !src.NATS().Connected {
		reasons = append(reasons, "nats: not connected")
	}
	return Readiness{Ready: len(reasons) == 0, Reasons: reasons}
}

// producingReason returns "" when some stream's captured count moved within the window, else why not.
func (m *Metrics) producingReason(src *Sources) string {
	stats := src.Streams()
	now := m.now()
	m.progressMu.Lock()
	var idle []string
	producing := false
	for _, st := range stats {
		p, seen := m.producing[st.Stream]
		if (!seen && st.Captured > 0) || (seen && st.Captured != p.captured) {
			p.at = now
		}
		p.captured = st.Captured
		m.producing[st.Stream] = p
		if !p.at.IsZero() && now.Sub(p.at) <= m.window {
			producing = true
			continue
		}
		idle = append(idle, st.Stream)
	}
	m.progressMu.Unlock()
	if producing {
		return ""
	}
	if len(stats) == 0 {
		return "sources: no streams"
	}
	sort.Strings(idle)
	for i, name := range idle {
		if state := m.sourceState(name); state != "" {
			idle[i] = name + " " + state
		}
	}
	return fmt.Sprintf("sources: no stream captured a frame in the last %s (%s)", m.window.Round(time.Millisecond), strings.Join(idle, ", "))
}

// sourceState returns the state last set by SetSourceState, or "".
func (m *Metrics) sourceState(stream string) string {
	m.mu.RLock()
	h, ok := m.streams[stream]
	m.mu.RUnlock()
	if !ok {
		return ""
	}
	if i := h.current.Load(); i > 0 {
		return string(source.States[i-1])
	}
	return ""
}
