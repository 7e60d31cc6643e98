package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sestream/sestream/internal/backoff"
	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/pipeline"
	"github.com/sestream/sestream/stages/source"
	"gocv.io/x/gocv"
)

// Frame is one captured video frame. Whoever receives a Frame owns Mat and must release it
// with Release (DiscardFrame does), once, and not use the Mat afterwards.
type Frame struct {
	Info pipeline.FrameInfo
	// Mat holds the decoded pixels as read from the source: 8-bit BGR for video and images.
	Mat gocv.Mat
	// Small, when not empty, is Mat scaled by Source.Shrink on the reading thread, while the frame was still
	// in its cache.
	Small gocv.Mat

	pool, smallPool *matPool // where Release returns Mat and Small; nil closes them
}

// Release hands the frame's Mat back to its source for the next frame, or closes it when the frame has no
// source (pushed and test frames) or its source has ended.
func (f Frame) Release() {
	if f.pool != nil {
		f.pool.put(f.Mat)
	} else {
		f.Mat.Close()
	}
	if f.Small.Ptr() == nil {
		return
	}
	if f.smallPool != nil {
		f.smallPool.put(f.Small)
	} else {
		f.Small.Close()
	}
}

// DiscardFrame releases a frame's Mat. It is the discard function of frame queues, so
// frames that a drop policy evicts are released.
func DiscardFrame(f Frame) { f.Release() }

// matPool recycles the Mats of one source's frames: a Mat released by the worker is read into again, so a
// steady stream decodes into memory that is already mapped instead of allocating a new frame buffer (about
// 1 MB) for every frame; such allocations cost a page fault per 4 KiB page each time (about 90-110 minor
// faults per 640x360 frame in sestream bench --pipeline, docs/BENCHMARKS.md). It keeps at most max Mats.
// Safe for concurrent use: the reader takes, whoever finishes with a frame puts.
type matPool struct {
	mu     sync.Mutex // guards free and closed
	free   []gocv.Mat
	closed bool
	max    int
}

// maxPooledMats bounds the Mats a source keeps for reuse.
const maxPooledMats = 16

// get returns a released Mat, or a new one.
func (p *matPool) get() gocv.Mat {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		m := p.free[n-1]
		p.free = p.free[:n-1]
		return m
	}
	return gocv.NewMat()
}

// put keeps m for reuse, or closes it when the pool is full or closed.
func (p *matPool) put(m gocv.Mat) {
	p.mu.Lock()
	keep := !p.closed && len(p.free) < p.max
	if keep {
		p.free = append(p.free, m)
	}
	p.mu.Unlock()
	if !keep {
		m.Close()
	}
}

// close closes the kept Mats; Mats put afterwards are closed at once.
func (p *matPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, m := range free {
		m.Close()
	}
}

// ErrStalled marks a live source that delivered no frame within its StallTimeout.
var ErrStalled = errors.New("source stalled")

// Source captures one stream. Its fields other than Options are for tests; nil means real.
type Source struct {
	Options source.Options
	// Open opens the source; nil means OpenSource.
	Open Opener
	// Now is the wall clock that stamps frames and events; nil means time.Now.
	Now func() time.Time
	// Rand returns the jitter of reconnect delays in [0,1); nil means math/rand/v2.Float64.
	Rand func() float64
	// SeqBase is added to every frame's sequence number: a stream started again in the same process (a fleet
	// moved it away and back) continues its numbering, so its message ids stay unique.
	SeqBase uint64
	// CPU, when not nil, counts the reading thread's CPU time in reads as pipeline.StageDecode.
	CPU *pipeline.StageCPU
	// Shrink, when not nil, scales each frame on the reading thread into Frame.Small (and reports whether it
	// did), counted as pipeline.StagePreprocess.
	Shrink func(dst *gocv.Mat, src gocv.Mat) bool
}

// RunSource captures the source described by opts into out until ctx ends or a
// non-live source ends. See Source.Run.
func RunSource(ctx context.Context, opts source.Options, out *pipeline.Queue[Frame], events func(source.Event)) error {
	s := &Source{Options: opts}
	return s.Run(ctx, out, events)
}

// Run reads frames and pushes them to out under out's policy, numbering them from SeqBase+1.
// It closes out when it returns. events, when not nil, receives every state change; it is
// called from Run's goroutine and must not block.
//
// A file or image source ends with an "ended" event and Run returns nil, or loops when
// Options.Loop is set. A file that cannot be opened gives an "error" event and Run
// returns that error. Live sources (rtsp, http, other URLs, devices) never end: every
// failure is an "error" or "lost" event followed by a new attempt after a backoff delay,
// until ctx ends; then Run returns nil.
//
// Reads run on a separate goroutine because a read blocked in C cannot be cancelled.
// When a live source delivers nothing for StallTimeout, Run abandons that read and opens
// the source anew; the abandoned goroutine closes its capture and Mat when the C call
// returns. On return Run waits up to AbandonWait for such goroutines.
func (s *Source) Run(ctx context.Context, out *pipeline.Queue[Frame], events func(source.Event)) error {
	opts := s.Options.WithDefaults()
	r := &run{opts: opts, out: out, events: events, now: s.Now, rand: s.Rand, open: s.Open, seqBase: s.SeqBase,
		cpu: s.CPU, mats: &matPool{max: maxPooledMats}, shrink: s.Shrink, smalls: &matPool{max: maxPooledMats}}
	defer r.smalls.close()
	defer r.mats.close()    // last: frames still in flight close their Mats when released
	defer r.waitAbandoned() // after out is closed: consumers need not wait for abandoned reads
	defer out.Close()
	if r.now == nil {
		r.now = time.Now
	}
	if r.rand == nil {
		r.rand = rand.Float64
	}
	if r.open == nil {
		r.open = OpenSource
	}
	r.url = redact.URL(opts.URL)
	if err := opts.Validate(); err != nil {
		r.emit(source.Event{Kind: message.EventError, Err: err.Error()})
		return err
	}
	spec, _ := source.Parse(opts.URL)
	return r.loop(ctx, spec)
}

// run is the state of one Run call; it is owned by Run's goroutine.
type run struct {
	opts   source.Options
	url    string
	out    *pipeline.Queue[Frame]
	events func(source.Event)
	now    func() time.Time
	rand   func() float64
	open   Opener
	cpu    *pipeline.StageCPU // counts reads as StageDecode; may be nil
	mats   *matPool           // the Mats frames are read into
	shrink func(dst *gocv.Mat, src gocv.Mat) bool
	smalls *matPool // the Mats frames are shrunk into

	seq       uint64 // frames delivered by this run
	seqBase   uint64 // added to seq in each frame's sequence number
	skipped   int    // image files skipped so far
	delivered bool   // a frame has been delivered since the start
	lostAt    time.Time
	readers   sync.WaitGroup // reader goroutines, including abandoned ones
}

func (r *run) emit(e source.Event) {
	if r.events == nil {
		return
	}
	e.Stream = r.opts.Name
	e.URL = r.url
	e.Time = r.now()
	e.Frames = r.seq
	e.Skipped = r.skipped
	r.events(e)
}

func (r *run) loop(ctx context.Context, spec source.Spec) error {
	live := spec.Kind.Live()
	attempt := 0
	for {
		attempt++
		end := r.session(ctx, spec, attempt, live)
		if ctx.Err() != nil {
			return nil
		}
		if !live {
			if end.frames == 0 {
				err := end.err
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("%s: no frames", r.url)
				}
				r.emit(source.Event{Kind: message.EventError, Attempt: attempt, Err: err.Error()})
				return fmt.Errorf("stream %s: %w", r.opts.Name, err)
			}
			if !errors.Is(end.err, io.EOF) {
				r.emit(source.Event{Kind: message.EventError, Attempt: attempt, Err: end.err.Error()})
			}
			if r.opts.Loop {
				attempt = 0
				continue
			}
			r.emit(source.Event{Kind: message.EventEnded})
			return nil
		}
		if end.frames == 0 {
			delay := backoff.Delay(attempt, r.opts.ReconnectInitial, r.opts.ReconnectMax, r.rand())
			r.emit(source.Event{Kind: message.EventError, Attempt: attempt, Err: end.err.Error(), RetryIn: delay})
			if !sleep(ctx, delay) {
				return nil
			}
			continue
		}
		r.lostAt = r.now()
		r.emit(source.Event{Kind: message.EventLost, Err: end.err.Error()})
		attempt = 0
		if !sleep(ctx, backoff.Delay(1, r.opts.ReconnectInitial, r.opts.ReconnectMax, r.rand())) {
			return nil
		}
	}
}

// sessionEnd says how one open-and-read session ended.
type sessionEnd struct {
	frames uint64 // frames delivered by the session
	err    error  // io.EOF, ErrStalled, an open or read error, or ctx.Err()
}

// readMsg is what a reader goroutine sends to Run: a frame, a skip, or its end.
type readMsg struct {
	mat        gocv.Mat
	small      gocv.Mat      // mat shrunk, when Source.Shrink did
	shrinkTime time.Duration // how long that took
	pts        time.Duration
	hasPTS     bool
	captured   time.Time
	skip       error // a skipped frame: the source goes on
	end        error // the reader has ended and closed its source
}

func (r *run) session(ctx context.Context, spec source.Spec, attempt int, live bool) sessionEnd {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()             // abandons the reader if it is still running
	msgs := make(chan readMsg) // never closed: the reader stops sending when sctx ends
	w := newWatch()
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		r.read(sctx, spec, msgs, w)
	}()

	var tick <-chan time.Time
	if live {
		t := time.NewTicker(watchPeriod(r.opts))
		defer t.Stop()
		tick = t.C
	}
	var n uint64
	for {
		select {
		case m := <-msgs:
			switch {
			case m.end != nil:
				return sessionEnd{frames: n, err: m.end}
			case m.skip != nil:
				var se *skipError
				if errors.As(m.skip, &se) {
					r.skipped += se.n
				}
				r.emit(source.Event{Kind: message.EventError, Err: m.skip.Error()})
				continue
			}
			n++
			r.seq++
			// The events count the frame that announces the (re)connection.
			switch {
			case !r.delivered:
				r.emit(source.Event{Kind: message.EventConnected, Attempt: attempt})
			case n == 1 && live:
				r.emit(source.Event{Kind: message.EventReconnected, Attempt: attempt, Outage: r.now().Sub(r.lostAt)})
			}
			r.delivered = true
			f := Frame{Mat: m.mat, Small: m.small, pool: r.mats, smallPool: r.smalls, Info: pipeline.FrameInfo{
				Stream: r.opts.Name, Seq: r.seqBase + r.seq, Captured: m.captured, PTS: m.pts, HasPTS: m.hasPTS,
				Width: m.mat.Cols(), Height: m.mat.Rows(), Timings: pipeline.Timings{Preprocess: m.shrinkTime},
			}}
			if _, err := r.out.Push(ctx, f); err != nil {
				DiscardFrame(f)
				return sessionEnd{frames: n, err: err}
			}
		case <-tick:
			if err := w.stalled(r.opts); err != nil {
				return sessionEnd{frames: n, err: err}
			}
		case <-ctx.Done():
			return sessionEnd{frames: n, err: ctx.Err()}
		}
	}
}

// read opens the source and sends its frames until the source ends or ctx ends. It owns
// the reader and its Mats: what it could not hand over it closes.
func (r *run) read(ctx context.Context, spec source.Spec, msgs chan<- readMsg, w *watch) {
	send := func(m readMsg) bool {
		select {
		case msgs <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	w.enter(phaseOpen)
	rd, err := r.open(ctx, spec, r.opts)
	w.leave()
	if err != nil {
		send(readMsg{end: err})
		return
	}
	start := time.Now()
	dec := decimator{fps: r.opts.FPS}
	_, images := rd.(*imageReader)
	pace := pacer{on: images && r.opts.FPS > 0 || !images && spec.Kind == source.KindFile && r.opts.Realtime}
	mat := r.mats.get()
	var end error
	for ctx.Err() == nil {
		w.enter(phaseRead)
		span := r.cpu.Start(pipeline.StageDecode)
		pts, hasPTS, err := rd.Read(&mat)
		span.End()
		w.leave()
		if err != nil {
			if errors.Is(err, ErrFrameSkipped) {
				if !send(readMsg{skip: err}) {
					break
				}
				continue
			}
			end = err
			break
		}
		t := pts
		if !hasPTS {
			t = time.Since(start)
		}
		if !dec.keep(t) {
			continue
		}
		if hasPTS && !pace.wait(ctx, pts) {
			break
		}
		m := readMsg{mat: mat, pts: pts, hasPTS: hasPTS, captured: r.now()}
		if r.shrink != nil {
			small := r.smalls.get()
			span := r.cpu.Start(pipeline.StagePreprocess)
			if r.shrink(&small, mat) {
				m.small, m.shrinkTime = small, r.now().Sub(m.captured)
			} else {
				r.smalls.put(small)
			}
			span.End()
		}
		mat = r.mats.get()
		if !send(m) {
			r.mats.put(m.mat)
			if m.small.Ptr() != nil {
				r.smalls.put(m.small)
			}
			break
		}
	}
	r.mats.put(mat)
	rd.Close()
	if end != nil {
		send(readMsg{end: end})
	}
}

// waitAbandoned waits up to AbandonWait for reader goroutines to return.
func (r *run) waitAbandoned() {
	done := make(chan struct{})
	go func() {
		r.readers.Wait()
		close(done)
	}()
	t := time.NewTimer(r.opts.AbandonWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Phases of a reader goroutine, watched for stalls.
const (
	phaseIdle int32 = iota
	phaseOpen
	phaseRead
)

// watch records when a reader entered a call that may block in C.
type watch struct {
	base  time.Time
	phase atomic.Int32
	since atomic.Int64 // nanoseconds after base when the phase began
}

func newWatch() *watch { return &watch{base: time.Now()} }

func (w *watch) enter(phase int32) {
	w.since.Store(int64(time.Since(w.base)))
	w.phase.Store(phase)
}

func (w *watch) leave() { w.phase.Store(phaseIdle) }

// stalled returns an error wrapping ErrStalled when the reader has been in one open or
// read longer than allowed.
func (w *watch) stalled(opts source.Options) error {
	phase := w.phase.Load()
	if phase == phaseIdle {
		return nil
	}
	d := time.Since(w.base) - time.Duration(w.since.Load())
	if w.phase.Load() != phase {
		return nil
	}
	switch {
	case phase == phaseOpen && d > opts.OpenTimeout:
		return fmt.Errorf("open did not finish within %v; abandoned it: %w", opts.OpenTimeout, ErrStalled)
	case phase == phaseRead && d > opts.StallTimeout:
		return fmt.Errorf("no frame for %v; abandoned the read: %w", opts.StallTimeout, ErrStalled)
	}
	return nil
}

func watchPeriod(opts source.Options) time.Duration {
	p := min(opts.StallTimeout, opts.OpenTimeout) / 4
	return min(max(p, 5*time.Millisecond), time.Second)
}

// decimator keeps the first frame of every 1/fps slot of the source's timeline.
type decimator struct {
	fps     float64
	started bool
	t0      time.Duration
	lastT   time.Duration
	slot    int64
}

func (d *decimator) keep(t time.Duration) bool {
	if d.fps <= 0 {
		return true
	}
	if !d.started || t < d.lastT {
		// First frame, or the timeline went back (a loop or a new session): start over.
		d.started, d.t0, d.lastT, d.slot = true, t, t, 0
		return true
	}
	d.lastT = t
	slot := int64(math.Floor(float64(t-d.t0)/float64(time.Second)*d.fps + 1e-6))
	if slot > d.slot {
		d.slot = slot
		return true
	}
	return false
}

// pacer delays frames so that they leave at the pace of their timestamps.
type pacer struct {
	on      bool
	started bool
	wall    time.Time
	pts0    time.Duration
}

func (p *pacer) wait(ctx context.Context, pts time.Duration) bool {
	if !p.on {
		return true
	}
	if !p.started || pts < p.pts0 {
		p.started, p.wall, p.pts0 = true, time.Now(), pts
		return true
	}
	d := time.Until(p.wall.Add(pts - p.pts0))
	if d <= 0 {
		return ctx.Err() == nil
	}
	return sleep(ctx, d)
}
