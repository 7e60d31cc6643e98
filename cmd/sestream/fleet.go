package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/fleet"
	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
)

// fleetOptions are the flags of `sestream fleet ...`: the connection flags of sub, and which fleet.
type fleetOptions struct {
	sub    subOptions
	name   string
	bucket string
	json   bool
	wait   time.Duration
	set    string
	clear  bool
}

func newFleetCmd() *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Look at and steer a fleet of sestream instances sharing streams (status, streams)",
		Long: `A fleet is several "sestream run" instances with fleet.enabled and the same fleet.name that share the
streams over a NATS cluster: each stream runs on one live instance at a time, held by a lease (see
docs/operations.md).`,
		Args: cobra.NoArgs,
	}
	flags := func(c *cobra.Command) {
		f := c.Flags()
		f.StringVar(&o.sub.url, "nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
		f.StringVar(&o.sub.prefix, "prefix", message.DefaultPrefix, "subject prefix")
		f.StringVar(&o.sub.config, "config", "", "read the NATS settings and the fleet's name and bucket from this configuration")
		f.StringVar(&o.name, "fleet", "default", "fleet name (fleet.name)")
		f.StringVar(&o.bucket, "bucket", "", "lease bucket (fleet.bucket; default sestream_fleet_<fleet>)")
		f.StringVar(&o.sub.auth.User, "user", "", "NATS user (with --password)")
		f.StringVar(&o.sub.auth.Password, "password", "", "NATS password (with --user)")
		f.StringVar(&o.sub.auth.Token, "token", "", "NATS token")
		f.StringVar(&o.sub.auth.Creds, "creds", "", "NATS credentials file (JWT and nkey seed)")
		f.StringVar(&o.sub.auth.NKey, "nkey", "", "file holding an nkey seed")
		f.StringVar(&o.sub.auth.TLS.CA, "tls-ca", "", "CA certificate file to verify the server")
		f.StringVar(&o.sub.auth.TLS.Cert, "tls-cert", "", "client certificate file (with --tls-key)")
		f.StringVar(&o.sub.auth.TLS.Key, "tls-key", "", "client key file (with --tls-cert)")
		f.BoolVar(&o.json, "json", false, "print JSON")
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the fleet: its members, the streams each holds, lease ages and moves",
		Long: `status reads the fleet's lease bucket (members and leases, with the time since each was written) and
listens on <prefix>.status.fleet for up to --wait for each member's report (its moves: leases acquired,
released and lost).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.sub.changed = func(flag string) bool { return cmd.Flags().Changed(flag) }
			return runFleetStatus(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	flags(status)
	status.Flags().DurationVar(&o.wait, "wait", 3*time.Second, "how long to wait for the members' status reports")
	streams := &cobra.Command{
		Use:   "streams",
		Short: "Print, set or clear the fleet's stream list (streams start and stop at run time)",
		Long: `streams prints the fleet's stream list held in the bucket <bucket>_streams. With --set FILE it writes
the list in FILE (a YAML or JSON list of stream entries, as in the streams section of a configuration, or a
configuration file, whose streams section is taken; it is checked first); every instance starts and stops streams to match within a renew interval. With --clear it
deletes the list: the instances go back to the streams of their configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.sub.changed = func(flag string) bool { return cmd.Flags().Changed(flag) }
			return runFleetStreams(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	flags(streams)
	streams.Flags().StringVar(&o.set, "set", "", "write the stream list in this YAML or JSON file (a list of streams, or a configuration)")
	streams.Flags().BoolVar(&o.clear, "clear", false, "delete the stream list (back to each instance's configured streams)")
	cmd.AddCommand(status, streams)
	return cmd
}

// connect resolves the flags (and --config), connects, and binds the fleet's two buckets.
func (o *fleetOptions) connect(ctx context.Context) (*nats.Conn, jetstream.KeyValue, jetstream.KeyValue, error) {
	sub, err := o.sub.resolve()
	if err != nil {
		return nil, nil, nil, badInput(err)
	}
	o.sub = sub
	if o.sub.config != "" {
		cfg, err := config.Load(config.Options{File: o.sub.config})
		if err != nil {
			return nil, nil, nil, badInput(fmt.Errorf("--config %s: %w", o.sub.config, err))
		}
		if !o.sub.changed("fleet") {
			o.name = cfg.Fleet.Name
		}
		if !o.sub.changed("bucket") {
			o.bucket = cfg.Fleet.Bucket
		}
	}
	if err := message.ValidateToken(o.name); err != nil {
		return nil, nil, nil, badInput(fmt.Errorf("--fleet: %w", err))
	}
	if o.bucket == "" {
		o.bucket = config.Fleet{Name: o.name}.BucketName()
	}
	for _, u := range strings.Split(o.sub.url, ",") {
		if err := message.ValidateServerURL(strings.TrimSpace(u)); err != nil {
			return nil, nil, nil, badInput(fmt.Errorf("--nats: %w", err))
		}
	}
	opts, err := o.sub.natsOptions()
	if err != nil {
		return nil, nil, nil, badInput(err)
	}
	nc, err := nats.Connect(o.sub.url, append(opts, nats.Name("sestream fleet"))...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nats server %s: %w", redact.URL(o.sub.url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	leases, err := js.KeyValue(bctx, o.bucket)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil, nil, fmt.Errorf("fleet %s: no lease bucket %s on %s: no instance of this fleet has started there (check --fleet, --bucket, --nats)",
				o.name, o.bucket, redact.URL(o.sub.url))
		}
		return nil, nil, nil, fmt.Errorf("fleet %s: lease bucket %s: %w", o.name, o.bucket, err)
	}
	streams, err := js.KeyValue(bctx, fleet.StreamsBucket(o.bucket))
	if err != nil {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("fleet %s: streams bucket %s: %w", o.name, fleet.StreamsBucket(o.bucket), err)
	}
	return nc, leases, streams, nil
}

// fleetView is what `sestream fleet status --json` prints.
type fleetView struct {
	Fleet   string       `json:"fleet"`
	Bucket  string       `json:"bucket"`
	Members []memberView `json:"members"`
	Leases  []leaseView  `json:"leases"`
	List    string       `json:"stream_list"` // "bucket" or "config"
	Desired []string     `json:"desired"`     // names in the bucket's list; null with "config"
	Free    []string     `json:"free"`        // names in the bucket's list that no instance holds
}

type memberView struct {
	Instance    string              `json:"instance"`
	BootID      string              `json:"boot_id"`
	Joined      time.Time           `json:"joined"`
	RenewedAgoS float64             `json:"renewed_ago_s"`
	Streams     []string            `json:"streams"`
	Moves       *message.FleetMoves `json:"moves"` // null when no status report came within --wait
}

type leaseView struct {
	Stream      string    `json:"stream"`
	Instance    string    `json:"instance"`
	BootID      string    `json:"boot_id"`
	Since       time.Time `json:"since"`
	AgeS        float64   `json:"age_s"`
	RenewedAgoS float64   `json:"renewed_ago_s"`
}

func runFleetStatus(ctx context.Context, o fleetOptions, stdout io.Writer) error {
	nc, leases, streams, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	reports := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(message.FleetSubject(o.sub.prefix), reports)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", message.FleetSubject(o.sub.prefix), err)
	}
	defer sub.Unsubscribe()

	v := fleetView{Fleet: o.name, Bucket: o.bucket, Members: []memberView{}, Leases: []leaseView{}, List: "config"}
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	keys, err := leases.Keys(kctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("fleet %s: listing bucket %s: %w", o.name, o.bucket, err)
	}
	now := time.Now()
	held := map[string]bool{}
	for _, k := range keys {
		e, err := leases.Get(kctx, k)
		if err != nil {
			continue // expired between the listing and now
		}
		switch {
		case strings.HasPrefix(k, fleet.MemberPrefix):
			var m fleet.Member
			if json.Unmarshal(e.Value(), &m) != nil {
				continue
			}
			v.Members = append(v.Members, memberView{Instance: m.Instance, BootID: m.BootID, Joined: m.Joined,
				RenewedAgoS: now.Sub(e.Created()).Seconds(), Streams: m.Streams})
		case strings.HasPrefix(k, fleet.LeasePrefix):
			var l fleet.Lease
			if json.Unmarshal(e.Value(), &l) != nil {
				continue
			}
			name := strings.TrimPrefix(k, fleet.LeasePrefix)
			held[name] = true
			v.Leases = append(v.Leases, leaseView{Stream: name, Instance: l.Instance, BootID: l.BootID, Since: l.Since,
				AgeS: now.Sub(l.Since).Seconds(), RenewedAgoS: now.Sub(e.Created()).Seconds()})
		}
	}
	if e, err := streams.Get(kctx, fleet.StreamsKey); err == nil {
		list, err := config.ParseStreams("fleet stream list", e.Value())
		if err != nil {
			return fmt.Errorf("fleet %s: the stream list in bucket %s is invalid: %w", o.name, fleet.StreamsBucket(o.bucket), err)
		}
		v.List, v.Desired, v.Free = "bucket", []string{}, []string{}
		for _, s := range list {
			v.Desired = append(v.Desired, s.Name)
			if !held[s.Name] {
				v.Free = append(v.Free, s.Name)
			}
		}
	}
	sort.Slice(v.Members, func(i, j int) bool {
		return v.Members[i].Instance+v.Members[i].BootID < v.Members[j].Instance+v.Members[j].BootID
	})
	sort.Slice(v.Leases, func(i, j int) bool { return v.Leases[i].Stream < v.Leases[j].Stream })

	// Moves come only from the members' own reports.
	byBoot := map[string]*memberView{}
	for i := range v.Members {
		byBoot[v.Members[i].BootID] = &v.Members[i]
	}
	deadline := time.NewTimer(o.wait)
	defer deadline.Stop()
	for missing := len(byBoot); missing > 0; {
		select {
		case m := <-reports:
			var st message.FleetStatus
			if json.Unmarshal(m.Data, &st) != nil || st.Fleet != o.name {
				continue
			}
			if mv := byBoot[st.BootID]; mv != nil && mv.Moves == nil {
				moves := st.Moves
				mv.Moves = &moves
				missing--
			}
		case <-deadline.C:
			missing = 0
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if o.json {
		return json.NewEncoder(stdout).Encode(v)
	}
	return printFleet(stdout, v)
}

func printFleet(w io.Writer, v fleetView) error {
	fmt.Fprintf(w, "fleet %s (bucket %s): %d members, %d streams leased", v.Fleet, v.Bucket, len(v.Members), len(v.Leases))
	if v.List == "bucket" {
		fmt.Fprintf(w, ", stream list in the bucket: %d streams, %d free\n", len(v.Desired), len(v.Free))
	} else {
		fmt.Fprintln(w, ", stream list: the instances' configuration")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nINSTANCE\tBOOT ID\tSTREAMS\tJOINED\tRENEWED\tACQUIRED\tRELEASED\tLOST")
	for _, m := range v.Members {
		moves := "?\t?\t?"
		if m.Moves != nil {
			moves = fmt.Sprintf("%d\t%d\t%d", m.Moves.Acquired, m.Moves.Released, m.Moves.Lost)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\t%.1fs ago\t%s\n", m.Instance, m.BootID, len(m.Streams),
			time.Since(m.Joined).Round(time.Second), m.RenewedAgoS, moves)
	}
	fmt.Fprintln(tw, "\nSTREAM\tINSTANCE\tBOOT ID\tLEASE AGE\tRENEWED")
	for _, l := range v.Leases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1fs\t%.1fs ago\n", l.Stream, l.Instance, l.BootID, l.AgeS, l.RenewedAgoS)
	}
	for _, name := range v.Free {
		fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", name)
	}
	return tw.Flush()
}

func runFleetStreams(ctx context.Context, o fleetOptions, stdout io.Writer) error {
	if o.set != "" && o.clear {
		return badInput(errors.New("--set and --clear: give one of them"))
	}
	var data []byte
	if o.set != "" {
		var err error
		if data, err = os.ReadFile(o.set); err != nil {
			return badInput(fmt.Errorf("--set: %w", err))
		}
		list, err := config.ParseStreams(o.set, data)
		var doc map[string]any
		if err != nil && yaml.Unmarshal(data, &doc) == nil && doc["streams"] != nil {
			// A configuration file: its streams section.
			cfg, cerr := config.Load(config.Options{File: o.set, LookupEnv: func(string) (string, bool) { return "", false }})
			if cerr != nil {
				return badInput(cerr)
			}
			list, err = cfg.Streams, nil
		}
		if err != nil {
			return badInput(err)
		}
		// Store it as JSON: what the instances read back is exactly what was checked.
		data, _ = json.Marshal(streamsJSON(list))
	}
	nc, _, streams, err := o.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bucket := fleet.StreamsBucket(o.bucket)
	switch {
	case o.set != "":
		rev, err := streams.Put(kctx, fleet.StreamsKey, data)
		if err != nil {
			return fmt.Errorf("fleet %s: writing the stream list to bucket %s: %w", o.name, bucket, err)
		}
		fmt.Fprintf(stdout, "fleet %s: stream list set from %s (revision %d)\n", o.name, o.set, rev)
	case o.clear:
		if err := streams.Delete(kctx, fleet.StreamsKey); err != nil {
			return fmt.Errorf("fleet %s: deleting the stream list in bucket %s: %w", o.name, bucket, err)
		}
		fmt.Fprintf(stdout, "fleet %s: stream list cleared; the instances run their configured streams\n", o.name)
	default:
		e, err := streams.Get(kctx, fleet.StreamsKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			fmt.Fprintf(stdout, "fleet %s: no stream list in bucket %s; the instances run their configured streams\n", o.name, bucket)
			return nil
		}
		if err != nil {
			return fmt.Errorf("fleet %s: reading the stream list in bucket %s: %w", o.name, bucket, err)
		}
		fmt.Fprintf(stdout, "%s\n", e.Value())
	}
	return nil
}

// streamsJSON writes streams with the keys of the configuration's streams section.
func streamsJSON(list []config.Stream) []map[string]any {
	out := make([]map[string]any, len(list))
	for i, s := range list {
		out[i] = map[string]any{"name": s.Name, "url": s.URL, "fps": s.FPS, "loop": s.Loop, "realtime": s.Realtime,
			"transport": s.Transport, "policy": s.Policy, "stall_timeout": s.StallTimeout.String(),
			"reconnect": map[string]any{"initial": s.Reconnect.Initial.String(), "max": s.Reconnect.Max.String()}}
	}
	return out
}
