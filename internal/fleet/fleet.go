package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/ratelog"
	"github.com/sestream/sestream/message"
)

// Keys of the buckets. Leases and members live in the lease bucket, whose TTL is the lease TTL; the desired
// stream list lives in the streams bucket, which has no TTL.
const (
	LeasePrefix  = "lease."   // lease.<stream>: a Lease, held by the instance that runs the stream
	MemberPrefix = "members." // members.<boot id>: a Member, one per live instance
	StreamsKey   = "streams"  // in the streams bucket: the fleet's stream list (YAML or JSON)
)

// StreamsBucket is the bucket holding the fleet's desired stream list, beside the lease bucket.
func StreamsBucket(leaseBucket string) string { return leaseBucket + "_streams" }

// Config is one instance's part in a fleet.
type Config struct {
	// Name is the fleet's name; Instance this instance's name in status messages.
	Name, Instance string
	// Bucket is the key-value bucket of leases and members (its TTL is LeaseTTL).
	Bucket string
	// LeaseTTL is how long a lease outlives its last renewal; RenewInterval is the period of renewal and of
	// rebalancing (at most LeaseTTL/3).
	LeaseTTL, RenewInterval time.Duration
	// MaxMoves bounds the streams given up per renew interval by an instance over its fair share.
	MaxMoves int
	// Replicas is the replica count of both buckets when this instance creates them.
	Replicas int
	// Prefix is the subject prefix: status goes to message.FleetSubject(Prefix).
	Prefix string
	// Streams is the fleet's stream list while the streams bucket holds none.
	Streams []config.Stream
}

// Runner starts and stops the streams this instance holds leases on. The supervisor implements it.
type Runner interface {
	// StartStream starts capturing s. An error means it could not be started; the lease is then released.
	StartStream(s config.Stream) error
	// StopStream stops the stream and returns once every frame it captured has been published or dropped,
	// or ctx ends (the error then says so).
	StopStream(ctx context.Context, name string) error
}

// Lease is the value of lease.<stream>: who runs the stream.
type Lease struct {
	Instance string    `json:"instance"`
	BootID   string    `json:"boot_id"`
	Since    time.Time `json:"since"`
}

// Member is the value of members.<boot id>.
type Member struct {
	Instance string    `json:"instance"`
	BootID   string    `json:"boot_id"`
	Joined   time.Time `json:"joined"`
	Streams  []string  `json:"streams"`
}

// held is a lease this instance holds.
type held struct {
	spec    config.Stream
	rev     uint64    // revision of the lease key written last
	since   time.Time // when it was acquired
	renewed time.Time // when the last successful write of it was sent (local clock)
}

// Controller is one instance's side of the lease protocol. Run owns all its state.
type Controller struct {
	cfg    Config
	bootID string
	nc     *nats.Conn
	runner Runner
	log    *slog.Logger
	now    func() time.Time

	leases, streams jetstream.KeyValue
	leaseStream     jetstream.Stream // the lease bucket's stream, to list its keys in one request
	joined          time.Time
	memberRev       uint64
	owned           map[string]*held
	desired         []config.Stream
	desiredRaw      []byte // the streams key as last read; nil while the config's list is used
	members         []string
	overTicks       int // consecutive renewals on which this instance held more than its share
	rounds          int // renewals since joining
	moves           message.FleetMoves
	warn            ratelog.Limiter

	last atomic.Pointer[message.FleetStatus] // the status published last, for readers on other goroutines
}

// New returns the controller of an instance whose pipeline is runner, publishing on nc with boot id bootID.
func New(cfg Config, nc *nats.Conn, bootID string, runner Runner, log *slog.Logger) *Controller {
	return &Controller{cfg: cfg, bootID: bootID, nc: nc, runner: runner, log: log.With("fleet", cfg.Name),
		now: time.Now, owned: map[string]*held{}, desired: cfg.Streams, warn: ratelog.Limiter{Every: 5 * time.Second}}
}

// Run joins the fleet and renews, acquires and releases leases every renew interval until live ends; then it
// stops its streams (bounded by hard), releases their leases so that the others take them over at once, and
// leaves. It returns nil when live ends, or an error that makes the fleet unusable (a bucket whose TTL is not
// the lease TTL).
func (c *Controller) Run(live, hard context.Context) error {
	if err := c.open(live); err != nil {
		if live.Err() != nil {
			return nil
		}
		return err
	}
	c.joined = c.now()
	c.log.Info("joined the fleet", "instance", c.cfg.Instance, "boot_id", c.bootID, "bucket", c.cfg.Bucket,
		"lease_ttl", c.cfg.LeaseTTL, "renew_interval", c.cfg.RenewInterval)
	t := time.NewTicker(c.cfg.RenewInterval)
	defer t.Stop()
	for {
		c.renew(live)
		select {
		case <-live.Done():
			c.leave(hard)
			return nil
		case <-t.C:
		}
	}
}

// open binds (or creates) both buckets, retrying until the servers answer or ctx ends.
func (c *Controller) open(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("fleet %s: %w", c.cfg.Name, err)
	}
	for {
		err := c.bind(ctx, js)
		var bad *BucketError
		if err == nil || errors.As(err, &bad) {
			return err
		}
		c.warn.Warn(c.log, "fleet: cannot open the buckets yet; retrying", "bucket", c.cfg.Bucket, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.cfg.RenewInterval):
		}
	}
}

// BucketError is a lease bucket that exists with a TTL other than the lease TTL: instances that disagree on
// the TTL cannot share leases.
type BucketError struct {
	Bucket    string
	TTL, Want time.Duration
}

func (e *BucketError) Error() string {
	return fmt.Sprintf("fleet bucket %s has TTL %s, but fleet.lease_ttl is %s: every instance of a fleet needs the same lease TTL (or delete the bucket)",
		e.Bucket, e.TTL, e.Want)
}

func (c *Controller) bind(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, max(5*time.Second, c.cfg.RenewInterval))
	defer cancel()
	leases, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: c.cfg.Bucket, TTL: c.cfg.LeaseTTL,
		History: 1, Replicas: c.cfg.Replicas, Storage: jetstream.FileStorage, Description: "sestream fleet " + c.cfg.Name + ": leases and members"})
	if errors.Is(err, jetstream.ErrBucketExists) {
		leases, err = js.KeyValue(ctx, c.cfg.Bucket)
	}
	if err != nil {
		return fmt.Errorf("lease bucket %s: %w", c.cfg.Bucket, err)
	}
	st, err := leases.Status(ctx)
	if err != nil {
		return fmt.Errorf("lease bucket %s: %w", c.cfg.Bucket, err)
	}
	if st.TTL() != c.cfg.LeaseTTL {
		return &BucketError{Bucket: c.cfg.Bucket, TTL: st.TTL(), Want: c.cfg.LeaseTTL}
	}
	name := StreamsBucket(c.cfg.Bucket)
	streams, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, History: 1, Replicas: c.cfg.Replicas,
		Storage: jetstream.FileStorage, Description: "sestream fleet " + c.cfg.Name + ": the stream list"})
	if errors.Is(err, jetstream.ErrBucketExists) {
		streams, err = js.KeyValue(ctx, name)
	}
	if err != nil {
		return fmt.Errorf("streams bucket %s: %w", name, err)
	}
	ls, err := js.Stream(ctx, "KV_"+c.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("lease bucket %s: %w", c.cfg.Bucket, err)
	}
	c.leases, c.streams, c.leaseStream = leases, streams, ls
	return nil
}

// op bounds one key-value call: by a renew interval, and by the earliest moment a held lease must be given
// up (so that servers that do not answer cannot hold the round past it: the next renewal then stops the
// stream in time).
func (c *Controller) op(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.cfg.RenewInterval
	for _, h := range c.owned {
		d = min(d, c.deadline(h).Sub(c.now()))
	}
	return context.WithTimeout(ctx, max(d, time.Millisecond))
}

// deadline is when a lease not renewed since must be given up: a renew interval before the servers may let
// it expire, which leaves that interval to drain the stream.
func (c *Controller) deadline(h *held) time.Time {
	return h.renewed.Add(c.cfg.LeaseTTL - c.cfg.RenewInterval)
}

// renew is one round: renew the leases, read the stream list and the members, give up what this instance
// must not run, take what is free up to its share, renew membership, and report.
func (c *Controller) renew(ctx context.Context) {
	c.renewLeases(ctx)
	c.readDesired(ctx)
	if err := c.readMembers(ctx); err != nil {
		c.warn.Warn(c.log, "fleet: cannot list the members; not rebalancing this round", "err", err)
	} else {
		c.rebalance(ctx)
	}
	c.renewMember(ctx) // last: the member key lists the streams held after this round
	c.publish()
}

func (c *Controller) renewMember(ctx context.Context) {
	m := Member{Instance: c.cfg.Instance, BootID: c.bootID, Joined: c.joined, Streams: c.ownedNames()}
	data, _ := json.Marshal(m)
	key := MemberPrefix + c.bootID
	octx, cancel := c.op(ctx)
	defer cancel()
	var rev uint64
	var err error
	if c.memberRev != 0 {
		rev, err = c.leases.Update(octx, key, data, c.memberRev)
	}
	if c.memberRev == 0 || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// First round, or the key expired (this instance was cut off for longer than the TTL): join again.
		rev, err = c.leases.Create(octx, key, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			// A renewal of ours was written but its answer lost: take the key over at its revision.
			var e jetstream.KeyValueEntry
			if e, err = c.leases.Get(octx, key); err == nil {
				rev, err = c.leases.Update(octx, key, data, e.Revision())
			}
		}
	}
	if err != nil {
		c.warn.Warn(c.log, "fleet: cannot renew membership", "key", key, "err", err)
		c.memberRev = 0
		return
	}
	c.memberRev = rev
}

// renewLeases renews every lease held. A lease whose key moved on (another revision: it expired and another
// instance took it) is lost at once; one that cannot be written is lost at its deadline (LeaseTTL -
// RenewInterval after the last renewal was sent), early enough that the stream has stopped before the
// servers let another instance take it.
func (c *Controller) renewLeases(ctx context.Context) {
	for _, name := range c.ownedNames() {
		h := c.owned[name]
		sent := c.now()
		octx, cancel := c.op(ctx)
		rev, err := c.leases.Update(octx, LeasePrefix+name, c.leaseValue(h.since), h.rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			rev, err = c.renewOwn(octx, name, h)
		}
		cancel()
		switch {
		case err == nil:
			h.rev, h.renewed = rev, sent
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			c.log.Warn("fleet: lease lost (it expired and may be held by another instance); stopping the stream", "stream", name, "err", err)
			c.lose(ctx, name)
		case !c.now().Before(c.deadline(h)):
			c.log.Warn("fleet: lease not renewed in time; stopping the stream before it expires", "stream", name,
				"renewed_ago", c.now().Sub(h.renewed).Round(time.Millisecond), "err", err)
			c.lose(ctx, name)
		default:
			c.warn.Warn(c.log, "fleet: cannot renew a lease yet; retrying", "stream", name, "err", err)
		}
	}
}

// renewOwn renews a lease whose revision is not the one this instance wrote last, if the lease is still this
// instance's (a renewal was written but its answer lost); otherwise it returns ErrKeyRevisionMismatch.
func (c *Controller) renewOwn(ctx context.Context, name string, h *held) (uint64, error) {
	e, err := c.leases.Get(ctx, LeasePrefix+name)
	if err != nil {
		return 0, err
	}
	var l Lease
	if json.Unmarshal(e.Value(), &l) != nil || l.BootID != c.bootID {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	return c.leases.Update(ctx, LeasePrefix+name, c.leaseValue(h.since), e.Revision())
}

// lose stops a stream whose lease is gone, without touching the lease.
func (c *Controller) lose(ctx context.Context, name string) {
	c.stop(ctx, name)
	delete(c.owned, name)
	c.moves.Lost++
}

// stop stops a stream, waiting for its frames in flight for at most a renew interval.
func (c *Controller) stop(ctx context.Context, name string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.RenewInterval)
	defer cancel()
	if err := c.runner.StopStream(sctx, name); err != nil {
		c.log.Warn("fleet: stopping a stream", "stream", name, "err", err)
	}
}

// release stops a stream, then deletes its lease (at the revision this instance wrote, so that a lease
// another instance holds by now is never deleted), so that another instance can take it at once.
func (c *Controller) release(ctx context.Context, name, why string) {
	h := c.owned[name]
	c.stop(ctx, name)
	delete(c.owned, name)
	c.moves.Released++
	dctx, cancel := c.op(context.WithoutCancel(ctx))
	defer cancel()
	if err := c.leases.Delete(dctx, LeasePrefix+name, jetstream.LastRevision(h.rev)); err != nil {
		c.log.Warn("fleet: releasing a lease (it expires by itself)", "stream", name, "err", err)
	}
	c.log.Info("fleet: released a stream", "stream", name, "why", why)
}

// readDesired reads the stream list from the streams bucket; without one it is the configuration's. A list
// that does not parse is reported and the previous one kept.
func (c *Controller) readDesired(ctx context.Context) {
	octx, cancel := c.op(ctx)
	defer cancel()
	e, err := c.streams.Get(octx, StreamsKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		if c.desiredRaw != nil {
			c.log.Info("fleet: the stream list was deleted; back to the configuration's streams", "streams", len(c.cfg.Streams))
		}
		c.desired, c.desiredRaw = c.cfg.Streams, nil
	case err != nil:
		c.warn.Warn(c.log, "fleet: cannot read the stream list; keeping the last one", "err", err)
	case !slices.Equal(e.Value(), c.desiredRaw):
		list, err := config.ParseStreams("fleet stream list", e.Value())
		if err != nil {
			c.warn.Warn(c.log, "fleet: the stream list in the bucket is invalid; keeping the last one", "bucket",
				StreamsBucket(c.cfg.Bucket), "key", StreamsKey, "revision", e.Revision(), "err", err)
			return
		}
		c.desired, c.desiredRaw = list, slices.Clone(e.Value())
		c.log.Info("fleet: stream list changed", "revision", e.Revision(), "streams", len(list))
	}
}

// readMembers lists the live members: those whose key has not expired and was not deleted. The keys come
// from one stream info request (a key lister would create a consumer every round); each is then read, since
// a member that left leaves a delete marker until it expires.
func (c *Controller) readMembers(ctx context.Context) error {
	octx, cancel := c.op(ctx)
	defer cancel()
	subject := "$KV." + c.cfg.Bucket + "." + MemberPrefix + "*"
	info, err := c.leaseStream.Info(octx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return err
	}
	members := []string{c.bootID}
	for subj := range info.State.Subjects {
		id := strings.TrimPrefix(subj, "$KV."+c.cfg.Bucket+"."+MemberPrefix)
		if id == c.bootID {
			continue
		}
		if _, err := c.leases.Get(octx, MemberPrefix+id); err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue
			}
			return err
		}
		members = append(members, id)
	}
	sort.Strings(members)
	c.members = members
	return nil
}

// Share is the fair share of streams streams among members members: ceil(streams/members).
func Share(streams, members int) int {
	if members <= 0 {
		return streams
	}
	return int(math.Ceil(float64(streams) / float64(members)))
}

// rebalance stops what is no longer wanted or changed, gives up streams above the fair share (at most
// MaxMoves a round, and only after two rounds over it, so that a member that flickers moves nothing), and
// takes free streams up to the share.
func (c *Controller) rebalance(ctx context.Context) {
	want := map[string]config.Stream{}
	for _, s := range c.desired {
		want[s.Name] = s
	}
	for _, name := range c.ownedNames() {
		s, ok := want[name]
		switch {
		case !ok:
			c.release(ctx, name, "removed from the stream list")
		case s != c.owned[name].spec:
			c.log.Info("fleet: stream changed; starting it again", "stream", name)
			c.stop(ctx, name)
			if err := c.runner.StartStream(s); err != nil {
				c.log.Error("fleet: cannot start a changed stream", "stream", name, "err", err)
				c.release(ctx, name, "could not start it")
				continue
			}
			c.owned[name].spec = s
		}
	}
	c.rounds++
	share := Share(len(c.desired), len(c.members))
	if c.rounds < 2 {
		// The first round only announces this instance: instances started together see each other from the
		// second, instead of the first one taking every stream and then giving most of them back.
		return
	}
	if over := len(c.owned) - share; over > 0 {
		c.overTicks++
		if c.overTicks >= 2 {
			for _, name := range c.youngest(min(over, c.cfg.MaxMoves)) {
				c.release(ctx, name, fmt.Sprintf("over the fair share (%d streams, %d members, share %d)", len(c.desired), len(c.members), share))
			}
			c.overTicks = 0
		}
		return
	}
	c.overTicks = 0
	if len(c.owned) >= share {
		return
	}
	for _, s := range c.candidates() {
		if len(c.owned) >= share || ctx.Err() != nil {
			return
		}
		c.acquire(ctx, s)
	}
}

// candidates are the wanted streams this instance does not hold, in an order of its own (a hash of its boot
// id and the name), so that instances trying at the same moment try different streams first.
func (c *Controller) candidates() []config.Stream {
	var out []config.Stream
	for _, s := range c.desired {
		if _, ok := c.owned[s.Name]; !ok {
			out = append(out, s)
		}
	}
	rank := func(name string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(c.bootID + "/" + name))
		return h.Sum64()
	}
	sort.Slice(out, func(i, j int) bool { return rank(out[i].Name) < rank(out[j].Name) })
	return out
}

// acquire takes the lease on s if it is free (or is a lease of this instance's own that it stopped using),
// then starts the stream.
func (c *Controller) acquire(ctx context.Context, s config.Stream) {
	key := LeasePrefix + s.Name
	octx, cancel := c.op(ctx)
	defer cancel()
	now := c.now()
	e, err := c.leases.Get(octx, key)
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		rev, err = c.leases.Create(octx, key, c.leaseValue(now))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return // another instance was quicker
		}
	case err != nil:
	default:
		var l Lease
		if json.Unmarshal(e.Value(), &l) != nil || l.BootID != c.bootID {
			return // held by another instance
		}
		rev, err = c.leases.Update(octx, key, c.leaseValue(now), e.Revision())
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			c.warn.Warn(c.log, "fleet: cannot take a lease", "stream", s.Name, "err", err)
		}
		return
	}
	c.owned[s.Name] = &held{spec: s, rev: rev, since: now, renewed: now}
	c.moves.Acquired++
	if err := c.runner.StartStream(s); err != nil {
		c.log.Error("fleet: cannot start a stream", "stream", s.Name, "err", err)
		c.release(ctx, s.Name, "could not start it")
		return
	}
	c.log.Info("fleet: took a stream", "stream", s.Name, "members", len(c.members), "held", len(c.owned))
}

// youngest returns the n most recently acquired streams held: the ones that have run here the shortest.
func (c *Controller) youngest(n int) []string {
	names := c.ownedNames()
	sort.SliceStable(names, func(i, j int) bool { return c.owned[names[i]].since.After(c.owned[names[j]].since) })
	return names[:min(n, len(names))]
}

func (c *Controller) ownedNames() []string {
	names := make([]string, 0, len(c.owned))
	for name := range c.owned {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (c *Controller) leaseValue(since time.Time) []byte {
	data, _ := json.Marshal(Lease{Instance: c.cfg.Instance, BootID: c.bootID, Since: since.UTC()})
	return data
}

// leave stops every stream, releases its lease, and deletes the member key, bounded by ctx.
func (c *Controller) leave(ctx context.Context) {
	for _, name := range c.ownedNames() {
		c.release(ctx, name, "shutting down")
	}
	if c.memberRev != 0 {
		dctx, cancel := c.op(ctx)
		defer cancel()
		_ = c.leases.Delete(dctx, MemberPrefix+c.bootID, jetstream.LastRevision(c.memberRev))
	}
	c.publish()
	c.log.Info("left the fleet", "moves", fmt.Sprintf("%+v", c.moves))
}

// Status is this instance's report, as published.
func (c *Controller) Status() message.FleetStatus {
	now := c.now()
	st := message.FleetStatus{Schema: message.SchemaFleet, Fleet: c.cfg.Name, Instance: c.cfg.Instance, BootID: c.bootID,
		Time: now.UTC(), Joined: c.joined.UTC(), Members: c.members, Desired: len(c.desired),
		Share: Share(len(c.desired), len(c.members)), Moves: c.moves, Streams: []message.FleetStream{}}
	for _, name := range c.ownedNames() {
		h := c.owned[name]
		st.Streams = append(st.Streams, message.FleetStream{Name: name, Since: h.since.UTC(), RenewedAgoS: max(0, now.Sub(h.renewed).Seconds())})
	}
	return st
}

// Last is the status this instance published last, or nil before its first renewal round. Unlike Status it is
// safe to call from any goroutine (the metrics endpoint reads it).
func (c *Controller) Last() *message.FleetStatus { return c.last.Load() }

func (c *Controller) publish() {
	st := c.Status()
	c.last.Store(&st)
	data, err := json.Marshal(st)
	if err != nil {
		return
	}
	if err := c.nc.Publish(message.FleetSubject(c.cfg.Prefix), data); err != nil {
		c.warn.Warn(c.log, "fleet: publishing status", "err", err)
	}
}
