package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
)

// subOptions are the flags of `sestream sub`.
type subOptions struct {
	url, prefix, stream, kind, creds string
	json                             bool
	count                            int
}

func newSubCmd() *cobra.Command {
	var o subOptions
	cmd := &cobra.Command{
		Use:   "sub",
		Short: "Print sestream messages from NATS: results, attention, events, status",
		Long: `sub subscribes to the messages a running "sestream run" publishes and prints one line per message:
results (frame, top class and score, latency), attention (SE entropy per block as a bar, one glyph per
block: ▁ = attention on one channel, █ = spread evenly), events and status heartbeats.
With --json it prints each message's JSON as received. The default URL is the embedded server of
"sestream run" on this machine.`,
		Example: `  sestream sub
  sestream sub --stream cam1 --kind result --count 10
  sestream sub --kind attention --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSub(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	f.StringVar(&o.prefix, "prefix", message.DefaultPrefix, "subject prefix")
	f.StringVar(&o.stream, "stream", "all", "stream name, or all")
	f.StringVar(&o.kind, "kind", "all", "message kind: result, attention, event, status or all")
	f.BoolVar(&o.json, "json", false, "print the raw JSON messages, one per line")
	f.IntVar(&o.count, "count", 0, "exit after this many messages (0: run until interrupted)")
	f.StringVar(&o.creds, "creds", "", "NATS credentials file")
	return cmd
}

// subjects returns the subjects to subscribe to for the stream and kind filters.
func (o subOptions) subjects() ([]string, error) {
	if err := message.ValidatePrefix(o.prefix); err != nil {
		return nil, fmt.Errorf("--prefix: %w", err)
	}
	stream := "*"
	if o.stream != "all" {
		if err := message.ValidateToken(o.stream); err != nil {
			return nil, fmt.Errorf("--stream: %w", err)
		}
		stream = o.stream
	}
	if o.kind == "all" {
		subs := []string{o.prefix + "." + stream + ".*"}
		if o.stream == "all" {
			subs = append(subs, message.StatusSubject(o.prefix))
		}
		return subs, nil
	}
	kind, err := message.ParseKind(o.kind)
	if err != nil {
		return nil, fmt.Errorf("--kind: %w (or all)", err)
	}
	if kind == message.KindStatus {
		return []string{message.StatusSubject(o.prefix)}, nil
	}
	return []string{message.Subject(o.prefix, stream, kind)}, nil
}

func runSub(ctx context.Context, o subOptions, stdout, stderr io.Writer) error {
	subjects, err := o.subjects()
	if err != nil {
		return badInput(err)
	}
	if o.count < 0 {
		return badInput(fmt.Errorf("--count %d: must not be negative", o.count))
	}
	if err := message.ValidateServerURL(o.url); err != nil {
		return badInput(fmt.Errorf("--nats: %w", err))
	}
	opts := []nats.Option{nats.Name("sestream sub"), nats.MaxReconnects(-1)}
	if o.creds != "" {
		opts = append(opts, nats.UserCredentials(o.creds))
	}
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		hint := ""
		if errors.Is(err, nats.ErrNoServers) {
			hint = " (is sestream run, or another NATS server, running there?)"
		}
		return fmt.Errorf("nats server %s%s: %w", redact.URL(o.url), hint, err)
	}
	defer nc.Close()

	msgs := make(chan *nats.Msg, 4096)
	for _, s := range subjects {
		sub, err := nc.ChanSubscribe(s, msgs)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe %s: %w", strings.Join(subjects, " "), err)
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	for n := 0; o.count == 0 || n < o.count; {
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return nil
		case m = <-msgs:
		}
		if o.json {
			w.Write(m.Data)
			w.WriteByte('\n')
		} else {
			_, v, err := message.Decode(m.Data)
			if err != nil {
				fmt.Fprintf(stderr, "sestream sub: %s: %v\n", m.Subject, err)
				continue
			}
			w.WriteString(message.Line(v))
			w.WriteByte('\n')
		}
		n++
		if len(msgs) == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
	return nil
}
