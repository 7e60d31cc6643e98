package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/natsauth"
	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
)

// subOptions are the flags of `sestream sub`.
type subOptions struct {
	url, prefix, stream, kind string
	json                      bool
	count                     int
	// config is a configuration file whose nats section gives the URL, prefix, credentials and TLS files;
	// flags given on the command line override it.
	config string
	// auth holds the credentials and TLS files, as the nats section of a configuration does.
	auth config.NATS
	// changed reports whether a flag was given on the command line.
	changed func(flag string) bool
}

// subAuthFlags maps the flags of sub that set credentials and TLS onto their configuration keys.
var subAuthFlags = []struct{ flag, key string }{
	{"user", "nats.user"}, {"password", "nats.password"}, {"token", "nats.token"}, {"creds", "nats.creds"},
	{"nkey", "nats.nkey"}, {"tls-ca", "nats.tls.ca"}, {"tls-cert", "nats.tls.cert"}, {"tls-key", "nats.tls.key"},
}

func newSubCmd() *cobra.Command {
	var o subOptions
	cmd := &cobra.Command{
		Use:   "sub",
		Short: "Print sestream messages from NATS: results, attention, events, status",
		Long: `sub subscribes to the messages a running "sestream run" publishes and prints one line per message:
results (frame, top class and score, latency), attention (the stream's attention drift score and hit count,
ON while its drift alarm is on, and each SE block's gate mean and std), events and status heartbeats.
With --json it prints each message's JSON as received. The default URL is the embedded server of
"sestream run" on this machine.

Credentials and TLS are given as for "sestream run": --user and --password, --token, --creds or --nkey, and
--tls-ca, --tls-cert and --tls-key; or --config FILE reads them, with the URL and the prefix, from the nats
section of the same configuration (flags given beside it override it).`,
		Example: `  sestream sub
  sestream sub --stream cam1 --kind result --count 10
  sestream sub --kind attention --json
  sestream sub --nats tls://nats.example:4222 --tls-ca ca.pem --user viewer --password "$PW"
  sestream sub --config sestream.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changed = func(flag string) bool { return cmd.Flags().Changed(flag) }
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
	f.StringVar(&o.config, "config", "", "read the URL, prefix, credentials and TLS files from this configuration's nats section")
	f.StringVar(&o.auth.User, "user", "", "NATS user (with --password)")
	f.StringVar(&o.auth.Password, "password", "", "NATS password (with --user)")
	f.StringVar(&o.auth.Token, "token", "", "NATS token")
	f.StringVar(&o.auth.Creds, "creds", "", "NATS credentials file (JWT and nkey seed)")
	f.StringVar(&o.auth.NKey, "nkey", "", "file holding an nkey seed")
	f.StringVar(&o.auth.TLS.CA, "tls-ca", "", "CA certificate file to verify the server")
	f.StringVar(&o.auth.TLS.Cert, "tls-cert", "", "client certificate file (with --tls-key)")
	f.StringVar(&o.auth.TLS.Key, "tls-key", "", "client key file (with --tls-cert)")
	return cmd
}

// authField returns the flag's field of n.
func authField(n *config.NATS, flag string) *string {
	return map[string]*string{"user": &n.User, "password": &n.Password, "token": &n.Token, "creds": &n.Creds,
		"nkey": &n.NKey, "tls-ca": &n.TLS.CA, "tls-cert": &n.TLS.Cert, "tls-key": &n.TLS.Key}[flag]
}

// resolve merges --config's nats section under the flags that were given, and checks the credentials as
// config does. Errors name the flag, or the key when --config is given.
func (o subOptions) resolve() (subOptions, error) {
	changed := o.changed
	if changed == nil {
		changed = func(string) bool { return false }
	}
	if o.config != "" {
		cfg, err := config.Load(config.Options{File: o.config})
		if err != nil {
			return o, fmt.Errorf("--config %s: %w", o.config, err)
		}
		n := cfg.NATS
		if !changed("nats") {
			o.url = cfg.NATS.URL
			if o.url == "" {
				o.url = "nats://" + n.Embedded.Listen // the embedded server of `sestream run`
			}
		}
		if !changed("prefix") {
			o.prefix = n.Prefix
		}
		for _, a := range subAuthFlags {
			if changed(a.flag) {
				*authField(&n, a.flag) = *authField(&o.auth, a.flag)
			}
		}
		o.auth = n
	}
	var problems []string
	name := strings.NewReplacer()
	if o.config == "" {
		pairs := make([]string, 0, 2*len(subAuthFlags))
		for _, a := range subAuthFlags {
			pairs = append(pairs, a.key, "--"+a.flag)
		}
		name = strings.NewReplacer(pairs...)
	}
	for _, f := range o.auth.AuthErrors() {
		problems = append(problems, name.Replace(f.Error()))
	}
	for _, a := range subAuthFlags {
		path := *authField(&o.auth, a.flag)
		if path == "" || a.flag == "user" || a.flag == "password" || a.flag == "token" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name.Replace(a.key), err))
		}
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		if o.config != "" {
			msg = fmt.Sprintf("--config %s with the flags given: %s", o.config, msg)
		}
		return o, errors.New(msg)
	}
	return o, nil
}

// natsOptions are the connection options for the credentials and TLS files.
func (o subOptions) natsOptions() ([]nats.Option, error) {
	a := o.auth
	auth, err := natsauth.Auth{User: a.User, Password: a.Password, Token: a.Token, CredsFile: a.Creds, NKeySeedFile: a.NKey,
		CAFile: a.TLS.CA, CertFile: a.TLS.Cert, KeyFile: a.TLS.Key}.Options()
	if err != nil {
		return nil, err
	}
	return append([]nats.Option{nats.Name("sestream sub"), nats.MaxReconnects(-1)}, auth...), nil
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
	o, err := o.resolve()
	if err != nil {
		return badInput(err)
	}
	subjects, err := o.subjects()
	if err != nil {
		return badInput(err)
	}
	if o.count < 0 {
		return badInput(fmt.Errorf("--count %d: must not be negative", o.count))
	}
	for _, u := range strings.Split(o.url, ",") {
		if err := message.ValidateServerURL(strings.TrimSpace(u)); err != nil {
			return badInput(fmt.Errorf("--nats: %w", err))
		}
	}
	opts, err := o.natsOptions()
	if err != nil {
		return badInput(err)
	}
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		hint := ""
		switch {
		case errors.Is(err, nats.ErrNoServers):
			hint = " (is sestream run, or another NATS server, running there?)"
		case errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
			hint = " refused the credentials (check --user/--password, --token, --creds, --nkey or --config)"
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
		if strings.HasSuffix(m.Subject, "."+message.FrameToken) {
			continue // a dashboard thumbnail (JPEG, not a message): <prefix>.<stream>.frame
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
