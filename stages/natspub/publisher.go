package natspub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
)

// ErrPublisherClosed is returned by Publish* after Close.
var ErrPublisherClosed = errors.New("nats publisher is closed")

// dropReportEvery is the shortest interval between two log lines about dropped messages.
const dropReportEvery = 5 * time.Second

// coreBatch is how many core NATS messages are sent before one round trip confirms them.
const coreBatch = 256

// Publisher sends sestream messages to NATS: core NATS or JetStream, to an external server or
// to an embedded one it owns. Publish* encode a message and queue it in a bounded buffer; one
// goroutine sends from the buffer, retries what a broken connection or a missing acknowledgement
// left unconfirmed, and reports what it had to drop. Its methods are safe for concurrent use.
type Publisher struct {
	opts   Options
	log    *slog.Logger
	bootID string
	emb    *embedded // nil when connected to external servers
	nc     *nats.Conn
	// hostStatus is the status listener on a host-owned connection (Options.Conn); nil when the
	// Publisher owns its connection.
	hostStatus chan nats.Status
	js         jetstream.JetStream // nil in core mode

	out        *outbox
	subjectsMu sync.RWMutex
	subjects   map[string]*[message.KindStatus]string // stream -> subject per per-stream kind
	counts     [len(message.Kinds)]kindCounters
	reconn     atomic.Uint64
	retried    atomic.Uint64
	eventN     atomic.Uint64
	statusN    atomic.Uint64
	drops      dropReporter

	streamReady atomic.Bool   // JetStream: the stream is known to exist on this connection
	connChanged chan struct{} // capacity 1; signaled by the connection handlers, drained by the sender
	stop        chan struct{} // closed by Close: the sender drains the buffer, then exits
	abort       chan struct{} // closed by Close when its context ends: the sender exits now
	done        chan struct{} // closed by the sender when it exits
	leftover    []*outMsg     // written by the sender before it closes done
	closeOnce   sync.Once
	closeErr    error
}

type kindCounters struct {
	enqueued, published, acked, dropped atomic.Uint64
}

// outMsg is one encoded message waiting to be sent.
type outMsg struct {
	kind     message.Kind
	msg      nats.Msg
	attempts int           // JetStream publishes whose acknowledgement timed out while connected
	frame    *frameOutcome // the frame the message belongs to (PublishFrame); nil otherwise
}

// frameOutcome joins the outcomes of one frame's result and attention messages: done learns, once, whether
// both were confirmed.
type frameOutcome struct {
	left    atomic.Int32 // messages neither confirmed nor dropped yet
	dropped atomic.Bool
	done    func(published bool)
}

// settle records the outcome of one of the frame's messages; the last one calls done. It does nothing on nil.
func (f *frameOutcome) settle(published bool) {
	if f == nil {
		return
	}
	if !published {
		f.dropped.Store(true)
	}
	if f.left.Add(-1) == 0 {
		f.done(!f.dropped.Load())
	}
}

// confirmed counts m as published.
func (p *Publisher) confirmed(m *outMsg) {
	p.counts[m.kind].published.Add(1)
	m.frame.settle(true)
}

// New connects to NATS as opts describe (starting the embedded server when opts.URLs
// is empty) and starts sending. When no external server answers it logs and keeps retrying in
// the background, unless opts.FailIfUnreachable is set. Bad options, refused credentials, TLS
// failures and a missing JetStream stream that may not be created are errors. The caller must
// Close the Publisher.
func New(ctx context.Context, opts Options) (*Publisher, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	p := &Publisher{
		opts:        o,
		log:         o.Logger,
		bootID:      o.BootID,
		out:         newOutbox(o.BufferSize),
		subjects:    make(map[string]*[message.KindStatus]string),
		connChanged: make(chan struct{}, 1),
		stop:        make(chan struct{}),
		abort:       make(chan struct{}),
		done:        make(chan struct{}),
	}
	p.drops.log, p.drops.capacity = p.log, o.BufferSize
	if p.bootID == "" {
		id, err := message.NewBootID()
		if err != nil {
			return nil, err
		}
		p.bootID = id
	}
	if err := p.connect(ctx); err != nil {
		p.shutdown()
		return nil, err
	}
	go p.run()
	return p, nil
}

func (p *Publisher) connect(ctx context.Context) error {
	o := p.opts
	if o.Conn != nil {
		p.nc = o.Conn
		p.hostStatus = o.Conn.StatusChanged()
		go p.followHostConn(p.hostStatus)
		p.log.Info("nats: publishing on the host's connection", "server", o.Conn.ConnectedUrlRedacted())
		return p.setupJetStream(ctx)
	}
	copts, err := o.connOptions()
	if err != nil {
		return err
	}
	urls := o.URLs
	if len(urls) == 0 {
		emb, err := startEmbedded(o)
		if err != nil {
			return err
		}
		p.emb = emb
		urls = []string{emb.clientURL()}
		p.log.Info("nats: embedded server started", "url", emb.clientURL(), "jetstream", o.Embedded.JetStream || o.JetStream.Enabled)
	}
	joined := strings.Join(urls, ",")
	copts = append(copts,
		nats.DisconnectErrHandler(p.onDisconnect),
		nats.ReconnectHandler(p.onReconnect),
		nats.ConnectHandler(p.onConnect),
		nats.ReconnectErrHandler(p.onReconnectErr),
		nats.ClosedHandler(func(*nats.Conn) { p.signal() }),
		nats.ErrorHandler(p.onAsyncError),
	)
	nc, err := nats.Connect(joined, copts...)
	if err != nil {
		if o.FailIfUnreachable || !isUnreachable(err) || refusal(err) != "" {
			return o.describeConnectError(err)
		}
		p.log.Warn("nats: cannot reach server, retrying in the background; messages are buffered meanwhile",
			"servers", redact.URLs(urls), "error", err, "buffer", o.BufferSize)
		nc, err = nats.Connect(joined, append(copts, nats.RetryOnFailedConnect(true))...)
		if err != nil {
			return o.describeConnectError(err)
		}
	}
	p.nc = nc
	return p.setupJetStream(ctx)
}

// setupJetStream makes the JetStream context and, when connected, ensures the stream exists.
func (p *Publisher) setupJetStream(ctx context.Context) error {
	o, nc := p.opts, p.nc
	if !o.JetStream.Enabled {
		return nil
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(o.JetStream.MaxPending),
		jetstream.WithPublishAsyncTimeout(o.JetStream.AckTimeout))
	if err != nil {
		return fmt.Errorf("nats jetstream: %w", err)
	}
	p.js = js
	if nc.IsConnected() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := ensureStream(sctx, js, o); err != nil {
			return err
		}
		p.streamReady.Store(true)
	}
	return nil
}

func (p *Publisher) signal() {
	select {
	case p.connChanged <- struct{}{}:
	default:
	}
}

// followHostConn turns the status changes of a host-owned connection into what the handlers of an own
// connection do. It returns when shutdown removes the listener (which closes ch).
func (p *Publisher) followHostConn(ch chan nats.Status) {
	lost := false
	for st := range ch {
		switch st {
		case nats.CONNECTED:
			if lost {
				p.onReconnect(p.nc)
			}
			lost = false
		case nats.DISCONNECTED, nats.RECONNECTING:
			if !lost {
				p.onDisconnect(p.nc, nats.ErrDisconnected)
			}
			lost = true
		default:
			p.signal()
		}
	}
}

func (p *Publisher) onDisconnect(nc *nats.Conn, err error) {
	if err != nil {
		p.log.Warn("nats: disconnected, buffering messages", "error", err, "buffer", p.opts.BufferSize)
	}
	p.signal()
}

func (p *Publisher) onReconnect(nc *nats.Conn) {
	p.reconn.Add(1)
	p.streamReady.Store(false)
	p.log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted(), "buffered", p.out.len())
	p.signal()
}

func (p *Publisher) onConnect(nc *nats.Conn) {
	p.log.Info("nats: connected", "server", nc.ConnectedUrlRedacted())
	p.signal()
}

func (p *Publisher) onReconnectErr(nc *nats.Conn, err error) {
	p.drops.warnLimited("nats: still not connected, retrying", err)
}

func (p *Publisher) onAsyncError(nc *nats.Conn, sub *nats.Subscription, err error) {
	p.log.Warn("nats: asynchronous error", "error", err)
}

// BootID returns the process run id used in messages and Nats-Msg-Id headers.
func (p *Publisher) BootID() string { return p.bootID }

// Prefix returns the subject prefix.
func (p *Publisher) Prefix() string { return p.opts.Prefix }

// ClientURL returns a URL other clients can use to reach the server the Publisher talks to:
// the embedded server's address, or the connected external server without credentials.
func (p *Publisher) ClientURL() string {
	if p.emb != nil {
		return p.emb.clientURL()
	}
	return p.nc.ConnectedUrlRedacted()
}

// PublishResult queues a result message. It fills Schema and BootID when they are empty.
// It returns when the message is buffered, not when it is sent; it waits only when the buffer
// is full while connected, and then returns ctx's error if ctx ends first.
func (p *Publisher) PublishResult(ctx context.Context, r *message.Result) error {
	if r.Schema == "" {
		r.Schema = message.SchemaResult
	}
	if r.BootID == "" {
		r.BootID = p.bootID
	}
	return p.publishFrame(ctx, message.KindResult, r.Stream, r.Seq, r, nil)
}

// PublishAttention queues an attention message, like PublishResult.
func (p *Publisher) PublishAttention(ctx context.Context, a *message.Attention) error {
	if a.Schema == "" {
		a.Schema = message.SchemaAttention
	}
	if a.BootID == "" {
		a.BootID = p.bootID
	}
	return p.publishFrame(ctx, message.KindAttention, a.Stream, a.Seq, a, nil)
}

// PublishFrame queues one frame's result and attention messages, like PublishResult and PublishAttention.
// done, when not nil, is called exactly once, also when PublishFrame returns an error: with true once the
// server confirmed both messages (core: a round trip after them completed; JetStream: both acknowledged),
// with false once either was dropped (see KindStats.Dropped). It may be called before PublishFrame returns
// and from the Publisher's own goroutine or from Close; it must return quickly and not call the Publisher.
func (p *Publisher) PublishFrame(ctx context.Context, r *message.Result, a *message.Attention, done func(published bool)) error {
	var f *frameOutcome
	if done != nil {
		f = &frameOutcome{done: done}
		f.left.Store(2)
	}
	if r.Schema == "" {
		r.Schema = message.SchemaResult
	}
	if r.BootID == "" {
		r.BootID = p.bootID
	}
	if a.Schema == "" {
		a.Schema = message.SchemaAttention
	}
	if a.BootID == "" {
		a.BootID = p.bootID
	}
	return errors.Join(p.publishFrame(ctx, message.KindResult, r.Stream, r.Seq, r, f),
		p.publishFrame(ctx, message.KindAttention, a.Stream, a.Seq, a, f))
}

// PublishEvent queues an event message. It fills Schema, BootID and Time when they are empty.
func (p *Publisher) PublishEvent(ctx context.Context, e *message.Event) error {
	if e.Schema == "" {
		e.Schema = message.SchemaEvent
	}
	if e.BootID == "" {
		e.BootID = p.bootID
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if err := message.ValidateToken(e.Stream); err != nil {
		return fmt.Errorf("publish event: stream: %w", err)
	}
	if !e.Kind.Valid() {
		return fmt.Errorf("publish event for stream %s: unknown event kind %q", e.Stream, e.Kind)
	}
	id := e.Stream + ":" + p.bootID + ":event:" + strconv.FormatUint(p.eventN.Add(1), 10)
	return p.publish(ctx, message.KindEvent, p.subject(e.Stream, message.KindEvent), id, e, nil)
}

// PublishStatus queues a status heartbeat. It fills Schema, BootID, Time and NATS (from Stats)
// when they are empty.
func (p *Publisher) PublishStatus(ctx context.Context, s *message.Status) error {
	if s.Schema == "" {
		s.Schema = message.SchemaStatus
	}
	if s.BootID == "" {
		s.BootID = p.bootID
	}
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	if s.NATS.Mode == "" {
		s.NATS = p.Stats().NATSStatus()
	}
	id := "status:" + p.bootID + ":" + strconv.FormatUint(p.statusN.Add(1), 10)
	return p.publish(ctx, message.KindStatus, message.StatusSubject(p.opts.Prefix), id, s, nil)
}

func (p *Publisher) publishFrame(ctx context.Context, kind message.Kind, stream string, seq uint64, v any, f *frameOutcome) error {
	if err := message.ValidateToken(stream); err != nil {
		f.settle(false)
		return fmt.Errorf("publish %s: stream: %w", kind, err)
	}
	return p.publish(ctx, kind, p.subject(stream, kind), message.MsgID(stream, p.bootID, seq, kind), v, f)
}

// subject returns <prefix>.<stream>.<kind> for a per-stream kind, built once per stream.
func (p *Publisher) subject(stream string, kind message.Kind) string {
	p.subjectsMu.RLock()
	s, ok := p.subjects[stream]
	p.subjectsMu.RUnlock()
	if !ok {
		s = new([message.KindStatus]string)
		for k := range message.KindStatus {
			s[k] = message.Subject(p.opts.Prefix, stream, k)
		}
		p.subjectsMu.Lock()
		p.subjects[stream] = s
		p.subjectsMu.Unlock()
	}
	return s[kind]
}

// publish encodes v and queues it; f (may be nil) learns the message's outcome exactly once.
func (p *Publisher) publish(ctx context.Context, kind message.Kind, subject, id string, v any, f *frameOutcome) error {
	select {
	case <-p.stop:
		f.settle(false)
		return ErrPublisherClosed
	default:
	}
	data, err := json.Marshal(v)
	if err != nil {
		f.settle(false)
		return fmt.Errorf("encode %s message %s: %w", kind, id, err)
	}
	m := &outMsg{kind: kind, frame: f, msg: nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}}
	p.counts[kind].enqueued.Add(1)
	for {
		victim, full, closed := p.out.push(m, !p.nc.IsConnected())
		if closed {
			p.drop(m, "publisher closed")
			return ErrPublisherClosed
		}
		if victim != nil {
			p.drop(victim, "buffer full while disconnected")
		}
		if !full {
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond) // re-check the connection: a full buffer drops once it is down
		select {
		case <-p.out.space:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			p.drop(m, "publish canceled while the buffer was full")
			return fmt.Errorf("publish %s %s: %w", kind, id, ctx.Err())
		case <-p.stop:
			t.Stop()
			p.drop(m, "publisher closed")
			return ErrPublisherClosed
		}
		t.Stop()
	}
}

func (p *Publisher) drop(m *outMsg, reason string) {
	p.counts[m.kind].dropped.Add(1)
	p.drops.add(m.kind, reason)
	m.frame.settle(false)
}

// run is the sender goroutine: it owns the in-flight batch.
func (p *Publisher) run() {
	defer close(p.done)
	limit := coreBatch
	if p.js != nil {
		limit = p.opts.JetStream.MaxPending
	}
	var batch []*outMsg
	for {
		if len(batch) == 0 {
			batch = p.out.take(batch[:0], limit)
		}
		if len(batch) == 0 {
			select {
			case <-p.out.ready:
				continue
			case <-p.stop:
				if p.out.len() == 0 {
					return
				}
				continue
			case <-p.abort:
				return
			}
		}
		if p.nc.IsConnected() {
			if p.js != nil {
				batch = p.sendJetStream(batch)
			} else {
				batch = p.sendCore(batch)
			}
			if len(batch) == 0 {
				continue
			}
		}
		// Not connected, or the batch was not confirmed: wait for a connection change or a while.
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-p.connChanged:
		case <-t.C:
		case <-p.abort:
			t.Stop()
			p.leftover = batch
			return
		}
		t.Stop()
	}
}

// permanent reports whether a publish error will not go away by retrying.
func permanent(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrHeadersNotSupported)
}

// sendCore publishes the batch and confirms it with one round trip. It returns what is still
// unconfirmed: all of it when the connection broke or was replaced on the way, since the
// client may have discarded what it had not yet written (consumers de-duplicate by Nats-Msg-Id).
func (p *Publisher) sendCore(batch []*outMsg) []*outMsg {
	generation := p.nc.Stats().Reconnects
	keep := batch[:0]
	for i, m := range batch {
		if err := p.nc.PublishMsg(&m.msg); err != nil {
			if !permanent(err) {
				return append(keep, batch[i:]...)
			}
			p.log.Error("nats: message cannot be published", "subject", m.msg.Subject, "bytes", len(m.msg.Data), "error", err)
			p.drop(m, "rejected by the client")
			continue
		}
		keep = append(keep, m)
	}
	if len(keep) == 0 {
		return keep
	}
	if err := p.nc.FlushTimeout(p.opts.JetStream.AckTimeout); err != nil || p.nc.Stats().Reconnects != generation {
		return keep
	}
	for _, m := range keep {
		p.confirmed(m)
	}
	return keep[:0]
}

// sendJetStream publishes the batch asynchronously and waits for every acknowledgement. It
// returns the messages to publish again.
func (p *Publisher) sendJetStream(batch []*outMsg) []*outMsg {
	if !p.streamReady.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.JetStream.AckTimeout)
		err := ensureStream(ctx, p.js, p.opts)
		cancel()
		if err != nil {
			p.drops.warnLimited("nats: jetstream stream not ready, holding messages", err)
			if !p.nc.IsConnected() {
				return batch
			}
			keep := batch[:0] // connected but the stream cannot be had: each message's retries run out
			for _, m := range batch {
				if m.attempts++; m.attempts > p.opts.JetStream.Retries {
					p.drop(m, "jetstream stream not available")
					continue
				}
				keep = append(keep, m)
			}
			return keep
		}
		p.streamReady.Store(true)
	}
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, m := range batch {
		f, err := p.js.PublishMsgAsync(&m.msg)
		if err != nil && permanent(err) {
			p.log.Error("nats: message cannot be published", "subject", m.msg.Subject, "bytes", len(m.msg.Data), "error", err)
			p.drop(m, "rejected by the client")
			batch[i] = nil
			continue
		}
		futures[i] = f
	}
	keep := batch[:0]
	for i, f := range futures {
		m := batch[i]
		if m == nil {
			continue
		}
		if f == nil {
			keep = append(keep, m)
			continue
		}
		select {
		case <-f.Ok():
			p.counts[m.kind].acked.Add(1)
			p.confirmed(m)
			continue
		case err := <-f.Err():
			p.retried.Add(1)
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				p.streamReady.Store(false) // the stream went away: ensure it again before the next batch
			}
			if !errors.Is(err, nats.ErrDisconnected) && p.nc.IsConnected() {
				m.attempts++
				if m.attempts > p.opts.JetStream.Retries {
					p.log.Error("nats: jetstream did not acknowledge a message", "subject", m.msg.Subject,
						"attempts", m.attempts, "error", err)
					p.drop(m, "not acknowledged after retries")
					continue
				}
			}
		case <-p.abort:
		}
		keep = append(keep, m)
	}
	return keep
}

// Close stops accepting messages, sends what is buffered (waiting for acknowledgements in
// JetStream mode) until ctx ends, then closes the connection and the embedded server. Messages
// still unsent when ctx ends are counted as dropped and reported in the error.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		close(p.stop)
		select {
		case p.out.ready <- struct{}{}:
		default:
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			close(p.abort)
			<-p.done
		}
		left := append(p.leftover, p.out.closeAndTake()...)
		for _, m := range left {
			p.drop(m, "unsent at close")
		}
		p.drops.flush()
		if len(left) > 0 {
			p.closeErr = fmt.Errorf("nats publisher closed with %d messages unsent: %w", len(left), ctx.Err())
		}
		p.shutdown()
	})
	return p.closeErr
}

func (p *Publisher) shutdown() {
	if p.hostStatus != nil {
		p.nc.RemoveStatusListener(p.hostStatus) // the host's connection stays open
	} else if p.nc != nil {
		p.nc.Close()
	}
	if p.emb != nil {
		p.emb.close()
	}
}

// KindStats count one message kind since the Publisher started.
type KindStats struct {
	// Enqueued counts Publish* calls that encoded a message.
	Enqueued uint64
	// Published counts messages the server confirmed: a round trip after them completed (core)
	// or JetStream acknowledged them.
	Published uint64
	// Acked counts JetStream acknowledgements (zero in core mode).
	Acked uint64
	// Dropped counts messages given up: buffer full while disconnected, retries exhausted,
	// rejected, or unsent at Close.
	Dropped uint64
}

// PublishStats are a snapshot of the Publisher's counters.
type PublishStats struct {
	// Mode is "core" or "jetstream".
	Mode      string
	Server    string
	Connected bool
	// Reconnects counts successful reconnections.
	Reconnects uint64
	// Buffered is the number of messages waiting in the buffer now (not counting the batch in flight).
	Buffered int
	// Retried counts JetStream messages published again because their acknowledgement failed
	// (timed out, or the connection broke while it was awaited).
	Retried uint64
	// Kinds is indexed by message.Kind.
	Kinds [len(message.Kinds)]KindStats
}

// Total sums the per-kind counters.
func (s PublishStats) Total() KindStats {
	var t KindStats
	for _, k := range s.Kinds {
		t.Enqueued += k.Enqueued
		t.Published += k.Published
		t.Acked += k.Acked
		t.Dropped += k.Dropped
	}
	return t
}

// NATSStatus converts the snapshot to the "nats" part of a status message.
func (s PublishStats) NATSStatus() message.NATSStatus {
	t := s.Total()
	return message.NATSStatus{
		Connected: s.Connected, Mode: s.Mode, Server: s.Server, Reconnects: s.Reconnects,
		Published: t.Published, Buffered: s.Buffered, Dropped: t.Dropped,
	}
}

// Stats returns a snapshot of the counters, for metrics and status messages.
func (p *Publisher) Stats() PublishStats {
	s := PublishStats{
		Mode:       "core",
		Connected:  p.nc.IsConnected(),
		Reconnects: p.reconn.Load(),
		Buffered:   p.out.len(),
		Retried:    p.retried.Load(),
	}
	if p.js != nil {
		s.Mode = "jetstream"
	}
	if p.emb != nil {
		s.Server = "embedded " + p.emb.clientURL()
	} else {
		s.Server = p.nc.ConnectedUrlRedacted()
	}
	for i := range p.counts {
		c := &p.counts[i]
		s.Kinds[i] = KindStats{Enqueued: c.enqueued.Load(), Published: c.published.Load(), Acked: c.acked.Load(), Dropped: c.dropped.Load()}
	}
	return s
}

// outbox is the bounded FIFO between Publish* and the sender.
type outbox struct {
	mu     sync.Mutex
	ring   []*outMsg
	head   int
	n      int
	closed bool
	ready  chan struct{} // capacity 1: signaled when a message is pushed
	space  chan struct{} // capacity 1: signaled when messages are taken
}

func newOutbox(capacity int) *outbox {
	return &outbox{ring: make([]*outMsg, capacity), ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push appends m. When the box is full it evicts and returns the oldest message if evict is
// set; otherwise it leaves m out and reports full. After closeAndTake it leaves m out and
// reports closed.
func (o *outbox) push(m *outMsg, evict bool) (victim *outMsg, full, closed bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, false, true
	}
	if o.n == len(o.ring) {
		if !evict {
			o.mu.Unlock()
			return nil, true, false
		}
		victim = o.ring[o.head]
		o.ring[o.head] = nil
		o.head = (o.head + 1) % len(o.ring)
		o.n--
	}
	o.ring[(o.head+o.n)%len(o.ring)] = m
	o.n++
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
	return victim, false, false
}

// closeAndTake refuses further pushes and returns what the box holds.
func (o *outbox) closeAndTake() []*outMsg {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	return o.take(nil, len(o.ring))
}

// take appends up to limit messages, oldest first, to dst.
func (o *outbox) take(dst []*outMsg, limit int) []*outMsg {
	o.mu.Lock()
	n := min(limit, o.n)
	for range n {
		dst = append(dst, o.ring[o.head])
		o.ring[o.head] = nil
		o.head = (o.head + 1) % len(o.ring)
	}
	o.n -= n
	o.mu.Unlock()
	if n > 0 {
		select {
		case o.space <- struct{}{}:
		default:
		}
	}
	return dst
}

func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// dropReporter logs dropped messages and failed reconnects at most once per dropReportEvery.
type dropReporter struct {
	log      *slog.Logger
	capacity int

	mu       sync.Mutex
	last     time.Time
	counts   [len(message.Kinds)]uint64
	reasons  map[string]uint64
	lastWarn time.Time
	warnings int
}

func (d *dropReporter) add(kind message.Kind, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[kind]++
	if d.reasons == nil {
		d.reasons = make(map[string]uint64)
	}
	d.reasons[reason]++
	if time.Since(d.last) >= dropReportEvery {
		d.reportLocked()
	}
}

func (d *dropReporter) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reportLocked()
}

func (d *dropReporter) reportLocked() {
	var total uint64
	parts := make([]string, 0, len(d.counts))
	for k, n := range d.counts {
		if n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%d %s", n, message.Kind(k)))
		}
	}
	if total == 0 {
		return
	}
	reasons := make([]string, 0, len(d.reasons))
	for r, n := range d.reasons {
		reasons = append(reasons, fmt.Sprintf("%s: %d", r, n))
	}
	d.log.Warn(fmt.Sprintf("nats: dropped %d messages (%s)", total, strings.Join(parts, ", ")),
		"reasons", strings.Join(reasons, "; "), "buffer", d.capacity)
	d.counts = [len(message.Kinds)]uint64{}
	clear(d.reasons)
	d.last = time.Now()
}

// warnLimited logs msg with err unless a warning was logged less than dropReportEvery ago;
// the line says how many were held back.
func (d *dropReporter) warnLimited(msg string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.warnings++
	if time.Since(d.lastWarn) < dropReportEvery {
		return
	}
	d.log.Warn(msg, "error", err, "occurrences", d.warnings)
	d.lastWarn = time.Now()
	d.warnings = 0
}

// NATSStatus is the "nats" part of a status message, from a snapshot of the counters.
func (p *Publisher) NATSStatus() message.NATSStatus { return p.Stats().NATSStatus() }
