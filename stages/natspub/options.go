package natspub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sestream/sestream/internal/backoff"
	"github.com/sestream/sestream/internal/natsauth"
	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
)

// Options configure the NATS connection and the publisher. The zero value of every field
// means its documented default.
type Options struct {
	// URLs are the servers to connect to (nats://, tls://, ws:// or wss://). Empty starts an
	// embedded server in the process instead.
	URLs []string
	// Embedded configures the in-process server used when URLs is empty.
	Embedded EmbeddedOptions
	// Prefix is the first subject token(s); default "sestream".
	Prefix string

	// Credentials; at most one way is normally used. They never appear in logs or errors.
	User, Password string
	Token          string
	// CredsFile is a NATS .creds file (user JWT and nkey seed).
	CredsFile string
	// NKeySeedFile is a file holding a user nkey seed.
	NKeySeedFile string
	// TLS configures server verification and the client certificate.
	TLS TLSOptions

	// JetStream configures JetStream publishing; when disabled, messages go out on core NATS.
	JetStream JetStreamOptions

	// BufferSize bounds the number of messages waiting to be sent (default DefaultBufferSize, 4096). While the
	// connection is down, a full buffer drops its oldest message (counted and logged); while it is
	// up, a full buffer makes Publish* wait.
	BufferSize int
	// FailIfUnreachable makes New fail when no server answers at start. By default it
	// logs and keeps retrying in the background.
	FailIfUnreachable bool
	// ReconnectWait is the first reconnect delay (default 250ms); it doubles per failed attempt
	// up to MaxReconnectWait (default 5s), with jitter. Reconnecting never gives up.
	ReconnectWait, MaxReconnectWait time.Duration
	// ConnectTimeout bounds one connection attempt (default 2s).
	ConnectTimeout time.Duration

	// Name is the client connection name shown by the server (default "sestream").
	Name string
	// BootID is the process run id used in Nats-Msg-Id headers (default: a new random id).
	BootID string
	// Logger receives connection changes and drop reports (default slog.Default()).
	Logger *slog.Logger
	// Dialer, when set, opens the TCP connections to external servers (tests use it).
	Dialer nats.CustomDialer
	// Conn, when set, is a connection the caller owns and keeps: the Publisher publishes on it, follows its
	// state through a status listener (it installs no handlers), and does not close it. URLs, Embedded,
	// credentials, TLS and reconnect settings are then ignored: they are the connection's own.
	Conn *nats.Conn
}

// EmbeddedOptions configure the in-process NATS server.
type EmbeddedOptions struct {
	// Listen is host:port for clients (default "127.0.0.1:4222"; port 0 picks a free port).
	Listen string
	// JetStream enables JetStream on the embedded server. It is also enabled when
	// JetStreamOptions.Enabled is set.
	JetStream bool
	// StoreDir is where JetStream keeps its files; empty means a temporary directory that
	// Close removes.
	StoreDir string
}

// TLSOptions are PEM files for TLS to an external server.
type TLSOptions struct {
	// CAFile verifies the server's certificate (default: the system roots).
	CAFile string
	// CertFile and KeyFile are the client certificate and key, for servers that verify clients.
	CertFile, KeyFile string
}

// JetStreamOptions configure JetStream publishing.
type JetStreamOptions struct {
	Enabled bool
	// Stream is the JetStream stream name (default "SESTREAM"); it captures <prefix>.>.
	Stream string
	// Create allows creating the stream when it does not exist; otherwise a missing stream is an error.
	Create bool
	// MaxPending bounds acknowledgements awaited at once (default 256).
	MaxPending int
	// AckTimeout is how long to wait for one acknowledgement before publishing again (default 5s).
	AckTimeout time.Duration
	// Replicas is the replica count of the stream when it is created (0 or 1: one replica); 3 on a 3-node
	// cluster keeps the messages through the loss of a node.
	Replicas int
	// Retries is how many times a message whose acknowledgement timed out while connected is
	// published again before it is dropped (default 5). Attempts while disconnected do not count.
	Retries int
}

// Defaults applied by Options.withDefaults.
const (
	DefaultEmbeddedListen = "127.0.0.1:4222"
	DefaultStreamName     = "SESTREAM"
	DefaultBufferSize     = 4096
	DefaultMaxPending     = 256
	DefaultAckTimeout     = 5 * time.Second
	defaultRetries        = 5
)

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = message.DefaultPrefix
	}
	if o.Embedded.Listen == "" {
		o.Embedded.Listen = DefaultEmbeddedListen
	}
	if o.JetStream.Stream == "" {
		o.JetStream.Stream = DefaultStreamName
	}
	if o.JetStream.MaxPending == 0 {
		o.JetStream.MaxPending = DefaultMaxPending
	}
	if o.JetStream.AckTimeout == 0 {
		o.JetStream.AckTimeout = DefaultAckTimeout
	}
	if o.JetStream.Retries == 0 {
		o.JetStream.Retries = defaultRetries
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.ReconnectWait == 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	if o.MaxReconnectWait == 0 {
		o.MaxReconnectWait = 5 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 2 * time.Second
	}
	if o.Name == "" {
		o.Name = "sestream"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// validate reports the first bad option, naming it. It does not touch the network.
func (o Options) validate() error {
	if err := message.ValidatePrefix(o.Prefix); err != nil {
		return fmt.Errorf("nats prefix: %w", err)
	}
	for _, u := range o.URLs {
		if err := message.ValidateServerURL(u); err != nil {
			return err
		}
	}
	if len(o.URLs) == 0 && o.Conn == nil {
		if _, _, err := splitListen(o.Embedded.Listen); err != nil {
			return err
		}
	}
	if o.BufferSize < 0 {
		return fmt.Errorf("nats buffer size %d: must be positive", o.BufferSize)
	}
	if o.JetStream.MaxPending < 0 || o.JetStream.AckTimeout < 0 || o.JetStream.Retries < 0 {
		return fmt.Errorf("nats jetstream: max pending %d, ack timeout %v and retries %d must not be negative",
			o.JetStream.MaxPending, o.JetStream.AckTimeout, o.JetStream.Retries)
	}
	if o.JetStream.Enabled {
		if err := message.ValidateToken(o.JetStream.Stream); err != nil {
			return fmt.Errorf("nats jetstream stream name: %w", err)
		}
	}
	for _, f := range []struct{ what, path string }{
		{"creds file", o.CredsFile}, {"nkey seed file", o.NKeySeedFile},
		{"tls ca file", o.TLS.CAFile}, {"tls cert file", o.TLS.CertFile}, {"tls key file", o.TLS.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("nats %s: %w", f.what, err)
		}
	}
	if (o.TLS.CertFile == "") != (o.TLS.KeyFile == "") {
		return errors.New("nats tls: cert file and key file must be given together")
	}
	return nil
}

func splitListen(listen string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("nats embedded listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("nats embedded listen address %q: bad port", listen)
	}
	return host, port, nil
}

// embedded is an in-process nats-server.
type embedded struct {
	srv      *server.Server
	tmpStore string // removed by close; empty when the store is the user's
}

// startEmbedded starts a nats-server in the process listening on o.Embedded.Listen.
func startEmbedded(o Options) (*embedded, error) {
	host, port, err := splitListen(o.Embedded.Listen)
	if err != nil {
		return nil, err
	}
	// Check the address first: the server itself only logs a listen failure.
	ln, err := net.Listen("tcp", o.Embedded.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: cannot listen on %s (is another server running there?): %w", o.Embedded.Listen, err)
	}
	if port == 0 {
		port = ln.Addr().(*net.TCPAddr).Port
	}
	ln.Close()
	e := &embedded{}
	sopts := &server.Options{
		ServerName: "sestream-embedded",
		Host:       host,
		Port:       port,
		NoLog:      true,
		NoSigs:     true,
	}
	if o.Embedded.JetStream || o.JetStream.Enabled {
		sopts.JetStream = true
		sopts.StoreDir = o.Embedded.StoreDir
		if sopts.StoreDir == "" {
			dir, err := os.MkdirTemp("", "sestream-jetstream-")
			if err != nil {
				return nil, fmt.Errorf("embedded nats server: jetstream store: %w", err)
			}
			e.tmpStore, sopts.StoreDir = dir, dir
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("embedded nats server on %s: %w", o.Embedded.Listen, err)
	}
	e.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.close()
		return nil, fmt.Errorf("embedded nats server on %s: not ready after 10s (port in use or store dir %q unusable?)", o.Embedded.Listen, sopts.StoreDir)
	}
	return e, nil
}

// clientURL is the address clients use, e.g. nats://127.0.0.1:4222.
func (e *embedded) clientURL() string { return e.srv.ClientURL() }

func (e *embedded) close() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	if e.tmpStore != "" {
		os.RemoveAll(e.tmpStore)
	}
}

// reconnectDelay is the wait before reconnect attempt n (1-based): ReconnectWait doubled per attempt up to
// MaxReconnectWait, with jitter (see backoff.Delay).
func (o Options) reconnectDelay(attempt int) time.Duration {
	return backoff.Delay(attempt, o.ReconnectWait, o.MaxReconnectWait, rand.Float64())
}

// connOptions builds the nats.go options. Handlers are attached by the caller.
func (o Options) connOptions() ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // the publisher's own buffer is the only one, so nothing is lost uncounted
		nats.Timeout(o.ConnectTimeout),
		nats.CustomReconnectDelay(o.reconnectDelay),
	}
	auth, err := natsauth.Auth{User: o.User, Password: o.Password, Token: o.Token, CredsFile: o.CredsFile,
		NKeySeedFile: o.NKeySeedFile, CAFile: o.TLS.CAFile, CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile}.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	if o.Dialer != nil {
		opts = append(opts, nats.SetCustomDialer(o.Dialer))
	}
	return opts, nil
}

// isUnreachable reports whether a connect error means no server answered, as opposed to a
// server that refused us (authorization, TLS), which retrying will not fix.
func isUnreachable(err error) bool {
	if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// refusal classifies a connect error that retrying will not fix: the server refused our
// credentials ("auth") or the TLS handshake failed ("tls"). It returns "" otherwise.
func refusal(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(msg, "authorization violation"),
		strings.Contains(msg, "authentication"):
		return "auth"
	case strings.Contains(msg, "tls error"), strings.Contains(msg, "x509"), strings.Contains(msg, "tls:"),
		strings.Contains(msg, "secure connection"), errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted):
		return "tls"
	}
	return ""
}

// describeConnectError adds a hint for the errors users can fix in their config.
func (o Options) describeConnectError(err error) error {
	urls := redact.URLs(o.URLs)
	switch refusal(err) {
	case "auth":
		how := "no credentials"
		switch {
		case o.CredsFile != "":
			how = "creds file " + o.CredsFile
		case o.NKeySeedFile != "":
			how = "nkey seed file " + o.NKeySeedFile
		case o.Token != "":
			how = "a token"
		case o.User != "":
			how = fmt.Sprintf("user %q and its password", o.User)
		}
		return fmt.Errorf("nats server %s refused the connection with %s (check nats credentials): %w", urls, how, err)
	case "tls":
		return fmt.Errorf("nats server %s: TLS handshake failed (check nats tls ca/cert/key files): %w", urls, err)
	}
	return fmt.Errorf("nats server %s: %w", urls, err)
}

// ensureStream makes sure a JetStream stream captures <prefix>.>; it creates the stream when
// allowed. It is idempotent.
func ensureStream(ctx context.Context, js jetstream.JetStream, o Options) error {
	name, subj := o.JetStream.Stream, message.AllSubjects(o.Prefix)
	s, err := js.Stream(ctx, name)
	switch {
	case err == nil:
		for _, have := range s.CachedInfo().Config.Subjects {
			if have == subj || have == ">" {
				return nil
			}
		}
		return fmt.Errorf("jetstream stream %q exists but does not capture %q (its subjects: %v)", name, subj, s.CachedInfo().Config.Subjects)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if !o.JetStream.Create {
			return fmt.Errorf("jetstream stream %q does not exist and creating it is not allowed (create it over %q or allow create): %w", name, subj, err)
		}
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{subj},
			Storage:    jetstream.FileStorage,
			Duplicates: 2 * time.Minute,
			Replicas:   max(1, o.JetStream.Replicas),
		})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("jetstream: create stream %q over %q: %w", name, subj, err)
		}
		return nil
	default:
		return fmt.Errorf("jetstream stream %q: %w", name, err)
	}
}
