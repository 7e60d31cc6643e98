package message

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// barGlyphs are the eight heights of an entropy bar, lowest first.
var barGlyphs = [...]rune{'▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'}

// EntropyBar renders one glyph per SE block, its height the block's normalized entropy
// (▁ = attention on one channel, █ = spread evenly). Values outside [0, 1] are clamped; NaN is '?'.
func EntropyBar(blocks []Block) string {
	var b strings.Builder
	b.Grow(3 * len(blocks))
	for i := range blocks {
		e := blocks[i].Entropy
		if math.IsNaN(e) {
			b.WriteByte('?')
			continue
		}
		e = min(max(e, 0), 1)
		b.WriteRune(barGlyphs[int(math.Round(e*float64(len(barGlyphs)-1)))])
	}
	return b.String()
}

// Line formats a decoded message (as returned by Decode) as one human-readable line without a newline.
func Line(v any) string {
	switch m := v.(type) {
	case *Result:
		return resultLine(m)
	case *Attention:
		return attentionLine(m)
	case *Event:
		return eventLine(m)
	case *Status:
		return statusLine(m)
	}
	return fmt.Sprintf("unknown message %T", v)
}

func resultLine(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d", r.Stream, r.Seq)
	switch {
	case len(r.Top) > 0:
		top := r.Top[0]
		name := top.Label
		if name == "" {
			name = "class " + strconv.Itoa(top.Index)
		}
		fmt.Fprintf(&b, " %s %.3f", name, top.Score)
	case len(r.Outputs) > 0:
		best := 0
		for i, x := range r.Outputs {
			if x > r.Outputs[best] {
				best = i
			}
		}
		fmt.Fprintf(&b, " outputs[%d] max #%d %.3f", len(r.Outputs), best, r.Outputs[best])
	default:
		b.WriteString(" (no outputs)")
	}
	fmt.Fprintf(&b, " latency %.1fms (infer %.1fms, batch %d)", r.Timings.Total, r.Timings.Inference, r.Batch.Size)
	return b.String()
}

func attentionLine(a *Attention) string {
	if len(a.Blocks) == 0 {
		return fmt.Sprintf("%s #%d attention (no SE blocks)", a.Stream, a.Seq)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d", a.Stream, a.Seq)
	if d := a.Drift; d != nil {
		if d.Phase == "detecting" {
			fmt.Fprintf(&b, " drift %.2f hits %d/%d", d.Score, d.Hits, d.RiseCount)
			if d.EvidenceRise > 0 { // producers before the evidence count send none
				fmt.Fprintf(&b, " evidence %d/%d", d.Evidence, d.EvidenceRise)
			}
		} else {
			fmt.Fprintf(&b, " drift %s", d.Phase)
		}
		if d.On {
			b.WriteString(" ON")
		}
		if d.Still {
			b.WriteString(" still")
		}
	}
	b.WriteString(" | gates mean±std")
	for i := range a.Blocks {
		fmt.Fprintf(&b, " %.2f±%.2f", a.Blocks[i].Mean, a.Blocks[i].Std)
	}
	return b.String()
}

func eventLine(e *Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s event %s", e.Stream, e.Kind)
	if d := e.Details; d != nil {
		if d.Attempt != 0 {
			fmt.Fprintf(&b, " attempt=%d", d.Attempt)
		}
		if d.OutageMillis != 0 {
			fmt.Fprintf(&b, " outage=%.0fms", d.OutageMillis)
		}
		if d.State != "" {
			fmt.Fprintf(&b, " %s", d.State)
		}
		if d.Frame != 0 {
			fmt.Fprintf(&b, " frame=%d", d.Frame)
		}
		if d.Score != nil {
			fmt.Fprintf(&b, " score=%.2f hits=%d/%d", *d.Score, d.Hits, d.RiseCount)
			if d.EvidenceRise > 0 {
				fmt.Fprintf(&b, " evidence=%d/%d", d.Evidence, d.EvidenceRise)
			}
		}
		if d.Still {
			b.WriteString(" still")
		}
		for _, blk := range d.Blocks {
			fmt.Fprintf(&b, " %s=%.2f/%.2f", blk.Name, blk.Score, blk.Threshold)
			for _, m := range blk.Moved {
				fmt.Fprintf(&b, " ch%d%+.1f", m.Channel, m.Z)
			}
		}
		if d.Error != "" {
			fmt.Fprintf(&b, " error=%q", d.Error)
		}
	}
	return b.String()
}

func statusLine(s *Status) string {
	var b strings.Builder
	up := time.Duration(s.UptimeSeconds * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(&b, "status %s up %s", s.Version, up)
	for _, st := range s.Streams {
		fmt.Fprintf(&b, " | %s %s %.1f/%.1ffps q%d drop%d", st.Name, st.State, st.FPSIn, st.FPSOut, st.QueueDepth, st.Dropped)
	}
	n := s.NATS
	conn := "disconnected"
	if n.Connected {
		conn = "connected"
	}
	fmt.Fprintf(&b, " | nats %s %s published %d buffered %d dropped %d", n.Mode, conn, n.Published, n.Buffered, n.Dropped)
	return b.String()
}
