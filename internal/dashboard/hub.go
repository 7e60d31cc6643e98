package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sestream/sestream/message"
)

// Defaults of Options.
const (
	DefaultHistory        = 120
	DefaultColumnInterval = 100 * time.Millisecond
	DefaultResultInterval = 250 * time.Millisecond
	DefaultTick           = 250 * time.Millisecond
	DefaultClientQueue    = 8
	DefaultClientTimeout  = 10 * time.Second
	DefaultMaxClients     = 32
	DefaultSendBuffer     = 64 << 10
	// maxEvents is the number of events kept per stream.
	maxEvents = 50
	// inputQueue bounds the messages waiting for the hub goroutine; more are dropped and counted.
	inputQueue = 512
)

// Options configure a Hub. Zero values take the defaults above.
type Options struct {
	// Prefix is the NATS subject prefix the messages are published under (default message.DefaultPrefix).
	Prefix string
	// Source describes where the messages come from, for the page ("this process", a NATS URL).
	Source string
	// History is the number of heatmap columns kept per SE block (frames, at most one per ColumnInterval).
	History int
	// ColumnInterval is the shortest time between two attention messages of one stream that the hub keeps:
	// the others are skipped before they are decoded.
	ColumnInterval time.Duration
	// ResultInterval is the same for result messages.
	ResultInterval time.Duration
	// Tick is how often updates are pushed to the browsers.
	Tick time.Duration
	// ClientQueue is the number of updates buffered per browser; when it is full the oldest is dropped.
	ClientQueue int
	// ClientTimeout disconnects a browser whose queue stayed full, or whose connection accepted nothing, for
	// that long.
	ClientTimeout time.Duration
	// MaxClients bounds the browsers served at once; more get 503.
	MaxClients int
	// SendBuffer is the kernel send buffer of each event-stream connection, in bytes.
	SendBuffer int
	// Log receives client connects and disconnects; nil means slog.Default().
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = message.DefaultPrefix
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.ColumnInterval <= 0 {
		o.ColumnInterval = DefaultColumnInterval
	}
	if o.ResultInterval <= 0 {
		o.ResultInterval = DefaultResultInterval
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	if o.ClientQueue <= 0 {
		o.ClientQueue = DefaultClientQueue
	}
	if o.ClientTimeout <= 0 {
		o.ClientTimeout = DefaultClientTimeout
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = DefaultSendBuffer
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Hub keeps the recent state of every stream it hears of and pushes it to connected browsers. Messages
// enter through Message (or Subscribe) and Frame, which never block; one goroutine owns the state and
// fans each update out to the clients, each through its own bounded queue, so a slow browser loses updates
// and is eventually disconnected, and never slows what feeds the hub.
type Hub struct {
	opts Options

	in    chan input       // messages for the hub goroutine; closed never (done ends it)
	join  chan *client     // clients to add; the hub goroutine sends them the snapshot
	leave chan *client     // clients to remove
	done  chan struct{}    // closed by Close
	ended chan struct{}    // closed when the hub goroutine returned
	stop  sync.Once        // closes done
	n     atomic.Int64     // clients connected
	lost  atomic.Uint64    // messages dropped because the hub goroutine was behind
	kick  atomic.Uint64    // clients disconnected for not draining
	smp   sampler          // decides which messages to keep before decoding
	frm   frames           // latest thumbnail per stream
	now   func() time.Time // injectable clock

	handler http.Handler // the routes of ServeHTTP
}

// input is one message for the hub goroutine.
type input struct {
	kind   string // "result", "attention", "event", "status", "frame"
	stream string
	data   []byte
	seq    uint64 // frames
}

// New starts a hub; Close stops it.
func New(o Options) *Hub {
	o = o.withDefaults()
	h := &Hub{
		opts:  o,
		in:    make(chan input, inputQueue),
		join:  make(chan *client),
		leave: make(chan *client),
		done:  make(chan struct{}),
		ended: make(chan struct{}),
		smp:   sampler{last: map[sampleKey]time.Time{}},
		frm:   frames{latest: map[string]frame{}},
		now:   time.Now,
	}
	h.handler = h.mux()
	go h.run()
	return h
}

// Close disconnects every browser and stops the hub goroutine.
func (h *Hub) Close() {
	h.stop.Do(func() { close(h.done) })
	<-h.ended
}

// Clients returns the number of browsers connected.
func (h *Hub) Clients() int { return int(h.n.Load()) }

// Stats counts what the hub had to drop.
type Stats struct {
	// Lost counts messages skipped because the hub goroutine was behind (not the sampled-out ones).
	Lost uint64
	// Disconnected counts browsers disconnected because they did not drain their updates (their queue stayed
	// full, or a write to them timed out).
	Disconnected uint64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats { return Stats{Lost: h.lost.Load(), Disconnected: h.kick.Load()} }

// Subscribe feeds the hub with everything published under its prefix on nc: <prefix>.>. The caller
// unsubscribes.
func Subscribe(nc *nats.Conn, h *Hub) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(message.AllSubjects(h.opts.Prefix), func(m *nats.Msg) { h.Message(m.Subject, m.Header, m.Data) })
	if err != nil {
		return nil, err
	}
	// The handler only samples and queues; a bound keeps a stalled hub from holding the connection's memory.
	_ = sub.SetPendingLimits(4096, 32<<20)
	return sub, nil
}

// Message takes one NATS message published under the hub's prefix. Per stream, only one attention message
// per ColumnInterval and one result per ResultInterval are kept (the others are not decoded); events,
// status and frame thumbnails are all kept. It never blocks and does not retain data beyond the call
// unless it keeps the message.
func (h *Hub) Message(subject string, header nats.Header, data []byte) {
	p := h.opts.Prefix
	if subject == message.StatusSubject(p) {
		h.put(input{kind: "status", data: data})
		return
	}
	rest, ok := strings.CutPrefix(subject, p+".")
	if !ok {
		return
	}
	stream, kind, ok := strings.Cut(rest, ".")
	if !ok || stream == "" || strings.Contains(kind, ".") {
		return
	}
	now := h.now()
	switch kind {
	case "attention":
		if h.smp.due(sampleKey{stream, 'a'}, now, h.opts.ColumnInterval) {
			h.put(input{kind: kind, stream: stream, data: data})
		}
	case "result":
		if h.smp.due(sampleKey{stream, 'r'}, now, h.opts.ResultInterval) {
			h.put(input{kind: kind, stream: stream, data: data})
		}
	case "event":
		h.put(input{kind: kind, stream: stream, data: data})
	case message.FrameToken:
		seq, _ := strconv.ParseUint(header.Get(message.HeaderSeq), 10, 64)
		h.Frame(stream, seq, data)
	}
}

// Frame takes the latest thumbnail of a stream (a JPEG image; the hub keeps jpeg, the caller must not change
// it). It never blocks.
func (h *Hub) Frame(stream string, seq uint64, jpeg []byte) {
	h.frm.set(stream, frame{seq: seq, jpeg: jpeg})
	h.put(input{kind: "frame", stream: stream, seq: seq})
}

func (h *Hub) put(in input) {
	select {
	case h.in <- in:
	default:
		h.lost.Add(1)
	}
}

// sampler remembers when a message of each kind and stream was last kept. Mutex-guarded leaf type: NATS
// may call Message from more than one goroutine.
type sampler struct {
	mu   sync.Mutex
	last map[sampleKey]time.Time
}

// sampleKey is a stream and a message kind ('a' attention, 'r' result).
type sampleKey struct {
	stream string
	kind   byte
}

func (s *sampler) due(key sampleKey, now time.Time, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.last[key]
	if ok && now.Sub(t) < every {
		return false
	}
	if !ok {
		key.stream = strings.Clone(key.stream) // do not keep the subject's memory
	}
	s.last[key] = now
	return true
}

// frame is one JPEG thumbnail.
type frame struct {
	seq  uint64
	jpeg []byte
}

// frames holds the latest thumbnail of each stream, for GET /frame/{stream}. Mutex-guarded leaf type.
type frames struct {
	mu     sync.Mutex
	latest map[string]frame
}

func (f *frames) set(stream string, fr frame) {
	f.mu.Lock()
	f.latest[stream] = fr
	f.mu.Unlock()
}

func (f *frames) get(stream string) (frame, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fr, ok := f.latest[stream]
	return fr, ok
}

// stream is the hub goroutine's state of one stream. Message parts are kept as the JSON they arrived in,
// so fields that messages gain later (per-block drift scores, per-channel z-scores) reach the page without
// a change here.
type stream struct {
	name    string
	result  json.RawMessage   // latest kept result message
	status  json.RawMessage   // this stream's entry of the latest status message
	columns []column          // heatmap columns, oldest first, at most History
	events  []json.RawMessage // latest events, oldest first, at most maxEvents
	frame   uint64            // seq of the latest thumbnail (0: none)

	// what changed since the last update was sent
	newColumns    int
	newEvents     int
	resultChanged bool
	statusChanged bool
	frameChanged  bool
}

// column is one attention message as the page draws it: a frame and its SE blocks (each block the JSON
// object of the attention message, with its vector when the publisher includes vectors).
type column struct {
	Seq      uint64            `json:"seq"`
	Captured string            `json:"captured,omitempty"`
	Blocks   []json.RawMessage `json:"blocks"`
	// Drift is the stream's attention drift state after this frame (message.Drift), when the message has it.
	Drift json.RawMessage `json:"drift,omitempty"`
}

// streamUpdate is what the page receives about one stream: everything in a snapshot, what changed in an
// update.
type streamUpdate struct {
	Name    string            `json:"name"`
	Result  json.RawMessage   `json:"result,omitempty"`
	Status  json.RawMessage   `json:"status,omitempty"`
	Columns []column          `json:"columns,omitempty"`
	Events  []json.RawMessage `json:"events,omitempty"`
	Frame   uint64            `json:"frame,omitempty"`
}

// update is one event-stream message: a snapshot (Snapshot true: the page starts over) or the changes
// since the previous update.
type update struct {
	Snapshot bool            `json:"snapshot,omitempty"`
	Source   string          `json:"source,omitempty"`
	History  int             `json:"history,omitempty"`
	Time     time.Time       `json:"time"`
	Streams  []streamUpdate  `json:"streams"`
	Process  json.RawMessage `json:"process,omitempty"` // the status message without its streams
	Lost     uint64          `json:"lost"`
}

// state is owned by the hub goroutine.
type state struct {
	streams        map[string]*stream
	process        json.RawMessage
	processChanged bool
}

func (st *state) stream(name string) *stream {
	s, ok := st.streams[name]
	if !ok {
		s = &stream{name: name}
		st.streams[name] = s
	}
	return s
}

func (h *Hub) run() {
	defer close(h.ended)
	st := &state{streams: map[string]*stream{}}
	clients := map[*client]struct{}{}
	tick := time.NewTicker(h.opts.Tick)
	defer tick.Stop()
	for {
		select {
		case <-h.done:
			for c := range clients {
				close(c.gone)
			}
			return
		case in := <-h.in:
			h.apply(st, in)
		case c := <-h.join:
			// Send the changes so far to the others first: the snapshot includes them, and the next
			// update must not repeat them to the new client.
			h.broadcast(st, clients)
			clients[c] = struct{}{}
			b, err := json.Marshal(h.snapshot(st))
			if err == nil {
				c.ch <- b // the queue is empty and has room
			}
		case c := <-h.leave:
			if _, ok := clients[c]; ok {
				delete(clients, c)
				close(c.gone)
			}
		case <-tick.C:
			h.broadcast(st, clients)
		}
	}
}

// broadcast sends what changed since the last broadcast to every client, and disconnects those whose queue
// has stayed full for ClientTimeout.
func (h *Hub) broadcast(st *state, clients map[*client]struct{}) {
	u, changed := h.changes(st)
	if !changed || len(clients) == 0 {
		return
	}
	b, err := json.Marshal(u)
	if err != nil {
		return
	}
	now := h.now()
	for c := range clients {
		if !c.offer(b, now) && now.Sub(c.fullSince) > h.opts.ClientTimeout {
			delete(clients, c)
			close(c.gone)
			h.kick.Add(1)
			h.opts.Log.Info("dashboard: disconnected a client that stopped reading", "timeout", h.opts.ClientTimeout, "dropped", c.dropped)
		}
	}
}

// apply decodes one kept message into the state. Messages that do not decode are ignored.
func (h *Hub) apply(st *state, in input) {
	switch in.kind {
	case "attention":
		var a struct {
			Seq      uint64            `json:"seq"`
			Captured string            `json:"captured"`
			Blocks   []json.RawMessage `json:"blocks"`
			Drift    json.RawMessage   `json:"drift"`
		}
		if json.Unmarshal(in.data, &a) != nil {
			return
		}
		s := st.stream(in.stream)
		s.columns = append(s.columns, column{Seq: a.Seq, Captured: a.Captured, Blocks: a.Blocks, Drift: a.Drift})
		if over := len(s.columns) - h.opts.History; over > 0 {
			s.columns = append(s.columns[:0], s.columns[over:]...)
		}
		s.newColumns = min(s.newColumns+1, h.opts.History)
	case "result":
		if !json.Valid(in.data) {
			return
		}
		s := st.stream(in.stream)
		s.result, s.resultChanged = json.RawMessage(in.data), true
	case "event":
		if !json.Valid(in.data) {
			return
		}
		s := st.stream(in.stream)
		s.events = append(s.events, json.RawMessage(in.data))
		if over := len(s.events) - maxEvents; over > 0 {
			s.events = append(s.events[:0], s.events[over:]...)
		}
		s.newEvents = min(s.newEvents+1, maxEvents)
	case "frame":
		s := st.stream(in.stream)
		s.frame, s.frameChanged = max(in.seq, 1), true
	case "status":
		var m map[string]json.RawMessage
		if json.Unmarshal(in.data, &m) != nil {
			return
		}
		var streams []json.RawMessage
		_ = json.Unmarshal(m["streams"], &streams)
		for _, raw := range streams {
			var n struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(raw, &n) != nil || n.Name == "" {
				continue
			}
			s := st.stream(n.Name)
			s.status, s.statusChanged = raw, true
		}
		delete(m, "streams")
		if b, err := json.Marshal(m); err == nil {
			st.process, st.processChanged = b, true
		}
	}
}

func sortedStreams(st *state) []*stream {
	out := make([]*stream, 0, len(st.streams))
	for _, s := range st.streams {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// snapshot is everything the hub knows, for a browser that just connected.
func (h *Hub) snapshot(st *state) update {
	u := update{Snapshot: true, Source: h.opts.Source, History: h.opts.History, Time: h.now(), Process: st.process, Lost: h.lost.Load()}
	for _, s := range sortedStreams(st) {
		u.Streams = append(u.Streams, streamUpdate{Name: s.name, Result: s.result, Status: s.status,
			Columns: s.columns, Events: s.events, Frame: s.frame})
	}
	return u
}

// changes is what changed since the last call, and resets the change marks. The update shares the state's
// slices: the hub goroutine encodes it before it applies the next message.
func (h *Hub) changes(st *state) (update, bool) {
	u := update{Time: h.now(), Lost: h.lost.Load()}
	changed := false
	if st.processChanged {
		u.Process, st.processChanged, changed = st.process, false, true
	}
	for _, s := range sortedStreams(st) {
		su := streamUpdate{Name: s.name}
		any := false
		if s.resultChanged {
			su.Result, s.resultChanged, any = s.result, false, true
		}
		if s.statusChanged {
			su.Status, s.statusChanged, any = s.status, false, true
		}
		if s.newColumns > 0 {
			su.Columns, s.newColumns, any = s.columns[len(s.columns)-s.newColumns:], 0, true
		}
		if s.newEvents > 0 {
			su.Events, s.newEvents, any = s.events[len(s.events)-s.newEvents:], 0, true
		}
		if s.frameChanged {
			su.Frame, s.frameChanged, any = s.frame, false, true
		}
		if any {
			u.Streams = append(u.Streams, su)
			changed = true
		}
	}
	return u, changed
}

// client is one connected browser. The hub goroutine sends on ch and closes gone; the client's handler
// receives from ch.
type client struct {
	ch        chan []byte   // encoded updates, bounded; the hub drops the oldest when it is full
	gone      chan struct{} // closed by the hub goroutine: stop serving this client
	fullSince time.Time     // hub goroutine only: when ch was first found full (zero: it was not)
	dropped   uint64        // hub goroutine only
}

// offer queues b for the client, dropping the oldest queued update when the queue is full. It reports
// false when it had to drop.
func (c *client) offer(b []byte, now time.Time) bool {
	select {
	case c.ch <- b:
		c.fullSince = time.Time{}
		return true
	default:
	}
	if c.fullSince.IsZero() {
		c.fullSince = now
	}
	select {
	case <-c.ch:
	default:
	}
	select {
	case c.ch <- b:
	default:
	}
	c.dropped++
	return false
}

// connect registers a new client; it returns nil when the hub is full or closed.
func (h *Hub) connect(ctx context.Context) *client {
	if h.n.Add(1) > int64(h.opts.MaxClients) {
		h.n.Add(-1)
		return nil
	}
	c := &client{ch: make(chan []byte, h.opts.ClientQueue), gone: make(chan struct{})}
	select {
	case h.join <- c:
		return c
	case <-h.done:
	case <-ctx.Done():
	}
	h.n.Add(-1)
	return nil
}

// disconnect unregisters c (a no-op when the hub already dropped it).
func (h *Hub) disconnect(c *client) {
	select {
	case h.leave <- c:
	case <-c.gone:
	case <-h.ended:
	}
	h.n.Add(-1)
}
