package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sestream/sestream/pipeline"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// Descriptions of the metrics read from the Sources snapshots at scrape time. Counters of one stream come from
// one snapshot, so captured == dropped + failed + processed + in flight holds within every scrape.
var (
	descCaptured   = desc("frames_captured_total", "Frames a source delivered to the stream's queue.", "stream")
	descDropped    = desc("frames_dropped_total", "Frames dropped before inference, by reason (queue_full: the queue's drop policy; drain_deadline: still in flight when shutdown.drain_timeout passed).", "stream", "reason")
	descFailed     = desc("frames_failed_total", "Frames that could not be processed (preprocessing or inference error).", "stream")
	descProcessed  = desc("frames_processed_total", "Frames that came out of inference with a result.", "stream")
	descPublished  = desc("frames_published_total", "Processed frames whose result and attention messages were both confirmed (core NATS: flushed to the server; JetStream: acknowledged).", "stream")
	descPubDropped = desc("frames_publish_dropped_total", "Processed frames whose result or attention message was dropped by the publisher (buffer full while disconnected, refused, retries exhausted, unsent at shutdown).", "stream")
	descInFlight   = desc("frames_in_flight", "Frames captured and not yet dropped, failed or processed: queued, batching or in inference.", "stream")
	descQueueDepth = desc("queue_depth", "Frames waiting in the stream's queue now.", "stream")
	descQueueCap   = desc("queue_capacity", "Capacity of the stream's queue, in frames (queue.size).", "stream")

	descWorkersBusy = desc("workers_busy", "Inference workers running a batch now.")
	descWorkers     = desc("workers", "Inference workers (workers).")

	descNATSConnected   = desc("nats_connected", "1 while the NATS connection is up.")
	descNATSJetStream   = desc("nats_jetstream", "1 when publishing waits for JetStream acknowledgements, 0 for core NATS.")
	descNATSBuffered    = desc("nats_buffered_messages", "Messages waiting in the publisher's buffer to be sent.")
	descNATSAcksPending = desc("nats_jetstream_acks_pending", "JetStream publishes sent and not yet acknowledged.")
	descNATSPublished   = desc("nats_published_messages_total", "Messages the NATS server confirmed (core: flushed; JetStream: acknowledged).")
	descNATSDropped     = desc("nats_dropped_messages_total", "Messages given up: buffer full while disconnected, retries exhausted, rejected, or unsent at shutdown.")
	descNATSReconnects  = desc("nats_reconnects_total", "Successful reconnections to NATS.")

	descFleetMembers = desc("fleet_members", "Live members of the fleet this instance saw at its last renewal, itself included.")
	descFleetDesired = desc("fleet_streams_desired", "Streams in the fleet's stream list.")
	descFleetShare   = desc("fleet_streams_share", "This instance's fair share of the fleet's streams: ceil(desired / members).")
	descFleetHeld    = desc("fleet_streams_held", "Streams this instance holds a lease on (and runs).")
	descFleetRenewal = desc("fleet_lease_renewal_age_seconds", "Seconds since the least recently confirmed renewal of this instance's leases, at its last round; a lease is lost at fleet.lease_ttl.")
	descFleetChanges = desc("fleet_lease_changes_total", "Lease changes since this instance joined its fleet: acquired (stream started), released (handed over on purpose), lost (could not be renewed: stopped without a handover).", "change")

	descReady = desc("ready", "1 when /readyz reports ready: model loaded, a source producing, NATS connected.")
)

// snapshotCollector turns the Sources snapshots into constant metrics at every scrape.
type snapshotCollector struct{ m *Metrics }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCaptured, descDropped, descFailed, descProcessed, descPublished, descPubDropped, descInFlight,
		descQueueDepth, descQueueCap, descWorkersBusy, descWorkers, descNATSConnected, descNATSJetStream, descNATSBuffered,
		descNATSAcksPending, descNATSPublished, descNATSDropped, descNATSReconnects, descFleetMembers, descFleetDesired,
		descFleetShare, descFleetHeld, descFleetRenewal, descFleetChanges, descReady} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.m.sources.Load()
	if src == nil {
		src = &Sources{}
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if src.Streams != nil {
		for _, st := range src.Streams() {
			counter(descCaptured, st.Captured, st.Stream)
			counter(descDropped, st.Dropped-st.Cancelled, st.Stream, DropReasonQueue)
			counter(descDropped, st.Cancelled, st.Stream, DropReasonDrain)
			counter(descFailed, st.Failed, st.Stream)
			counter(descProcessed, st.Processed, st.Stream)
			counter(descPublished, st.Published, st.Stream)
			counter(descPubDropped, st.PublishDropped, st.Stream)
			gauge(descInFlight, float64(inFlight(st)), st.Stream)
			gauge(descQueueDepth, float64(st.QueueDepth), st.Stream)
			gauge(descQueueCap, float64(st.QueueCap), st.Stream)
		}
	}
	if src.Workers != nil {
		busy, total := src.Workers()
		gauge(descWorkersBusy, float64(busy))
		gauge(descWorkers, float64(total))
	}
	if src.NATS != nil {
		n := src.NATS()
		gauge(descNATSConnected, boolFloat(n.Connected))
		gauge(descNATSJetStream, boolFloat(n.JetStream))
		gauge(descNATSBuffered, float64(n.Buffered))
		gauge(descNATSAcksPending, float64(n.AcksPending))
		counter(descNATSPublished, n.Published)
		counter(descNATSDropped, n.Dropped)
		counter(descNATSReconnects, n.Reconnects)
	}
	if src.Fleet != nil {
		if f, ok := src.Fleet(); ok {
			gauge(descFleetMembers, float64(f.Members))
			gauge(descFleetDesired, float64(f.Desired))
			gauge(descFleetShare, float64(f.Share))
			gauge(descFleetHeld, float64(f.Held))
			gauge(descFleetRenewal, f.OldestRenewalS)
			counter(descFleetChanges, f.Acquired, "acquired")
			counter(descFleetChanges, f.Released, "released")
			counter(descFleetChanges, f.Lost, "lost")
		}
	}
	gauge(descReady, boolFloat(c.m.Readiness().Ready))
}

// inFlight is captured minus what has ended (dropped, failed, processed); the counters are read one by one, so
// a frame that ended between two reads is clamped to zero rather than wrapping around.
func inFlight(st pipeline.StreamStats) uint64 {
	ended := st.Dropped + st.Failed + st.Processed
	if ended > st.Captured {
		return 0
	}
	return st.Captured - ended
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
