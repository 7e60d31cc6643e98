// Package ratelog logs repeated warnings at a bounded rate, saying how many it held back.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// Limiter logs a warning at most once per Every; the next line it logs carries "repeated" with the number of
// warnings held back since the last one. The zero value logs at most once per second. It is safe for
// concurrent use.
type Limiter struct {
	// Every is the shortest time between two lines; 0 means one second.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Warn logs msg with args on l at warning level, unless a line was logged less than Every ago.
func (r *Limiter) Warn(l *slog.Logger, msg string, args ...any) {
	if n, ok := r.Allow(); ok {
		if n > 0 {
			args = append(args, "repeated", n)
		}
		l.Warn(msg, args...)
	}
}

// Allow reports whether a line may be logged now, and how many were held back before it. Callers that write
// their own line (not through Warn) use it.
func (r *Limiter) Allow() (heldBack int, ok bool) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	every := r.Every
	if every == 0 {
		every = time.Second
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := now()
	if !r.last.IsZero() && t.Sub(r.last) < every {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = t, 0
	return n, true
}
