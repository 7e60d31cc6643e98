package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/internal/dashboard"
	"github.com/sestream/sestream/internal/redact"
	"github.com/sestream/sestream/message"
	"github.com/sestream/sestream/metrics"
)

// DefaultDashboardListen is where `sestream dashboard` serves the page: loopback, beside a local
// `sestream run` on 9090 and the docker-compose stack's Prometheus on 9091.
const DefaultDashboardListen = "127.0.0.1:9092"

// localDashboard is the dashboard of the pipeline `sestream run` runs: a hub fed from the pipeline's own
// NATS messages (subscribed on the connection it publishes on, so the same code serves a remote pipeline)
// and from its frame thumbnails.
type localDashboard struct {
	hub    *dashboard.Hub
	url    string
	prefix string
	frames string                    // http.dashboard_frames
	conn   atomic.Pointer[nats.Conn] // the pipeline's connection, once it started
	mu     sync.Mutex                // guards sub
	sub    *nats.Subscription
	log    *slog.Logger
}

// newLocalDashboard prepares the dashboard of a pipeline about to be built from cfg: it turns on gate
// vectors in attention messages (the heatmaps need them) and hooks thumbnails and the subscription into
// opts. It returns nil when http.dashboard is off or http.listen is empty.
func newLocalDashboard(cfg *config.Config, opts *sestream.Options, log *slog.Logger) *localDashboard {
	if !cfg.HTTP.Dashboard || cfg.HTTP.Listen == "" {
		return nil
	}
	if !cfg.Attention.IncludeVectors {
		cfg.Attention.IncludeVectors = true
		log.Info("http.dashboard: attention messages include the gate vectors (attention.include_vectors)")
	}
	d := &localDashboard{
		hub:    dashboard.New(dashboard.Options{Prefix: cfg.NATS.Prefix, Source: "this process", Log: log}),
		url:    dashboardURL(cfg.HTTP.Listen),
		prefix: cfg.NATS.Prefix,
		frames: cfg.HTTP.DashboardFrames,
		log:    log,
	}
	if d.frames != "off" {
		opts.Thumbnails.Sink = d.thumbnail
	}
	opts.OnConnect = d.connected
	return d
}

// connected subscribes the hub on the pipeline's connection.
func (d *localDashboard) connected(nc *nats.Conn) {
	d.conn.Store(nc)
	sub, err := dashboard.Subscribe(nc, d.hub)
	if err != nil {
		d.log.Warn("dashboard: cannot subscribe", "subject", message.AllSubjects(d.prefix), "err", err)
		return
	}
	d.mu.Lock()
	d.sub = sub
	d.mu.Unlock()
}

// thumbnail takes a frame thumbnail from an inference worker: it publishes it (http.dashboard_frames: nats;
// the hub gets it back through its subscription) or hands it to the hub. It never blocks.
func (d *localDashboard) thumbnail(t sestream.Thumbnail) {
	if nc := d.conn.Load(); d.frames == "nats" && nc != nil {
		m := nats.NewMsg(message.FrameSubject(d.prefix, t.Stream))
		m.Header.Set(message.HeaderContentType, "image/jpeg")
		m.Header.Set(message.HeaderStream, t.Stream)
		m.Header.Set(message.HeaderSeq, strconv.FormatUint(t.Seq, 10))
		m.Header.Set(message.HeaderCaptured, t.Captured.UTC().Format(time.RFC3339Nano))
		m.Data = t.JPEG
		if nc.PublishMsg(m) == nil {
			return
		}
	}
	d.hub.Frame(t.Stream, t.Seq, t.JPEG)
}

// Close unsubscribes and disconnects every browser.
func (d *localDashboard) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	if d.sub != nil {
		d.sub.Unsubscribe()
	}
	d.mu.Unlock()
	d.hub.Close()
}

// printBanner prints the dashboard's address in the demo banner.
func (d *localDashboard) printBanner(w io.Writer) {
	if d != nil {
		fmt.Fprintf(w, "Live attention dashboard:  %s\n", d.url)
	}
}

// serveHTTP serves the metrics endpoint on ln, and the dashboard at / when d is not nil.
func serveHTTP(ctx context.Context, ln net.Listener, m *metrics.Metrics, d *localDashboard, log *slog.Logger) error {
	if d == nil {
		return metrics.ServeListener(ctx, ln, m, log)
	}
	return metrics.ServeHandler(ctx, ln, withDashboard(m.Handler(), d.hub), "/ /metrics /healthz /readyz", log)
}

// withDashboard serves /metrics, /healthz and /readyz from mh and everything else from the dashboard.
func withDashboard(mh http.Handler, dash http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		mux.Handle(p, mh)
	}
	mux.Handle("/", dash)
	return mux
}

// dashboardURL is the address a browser on this machine opens for listen (host:port).
func dashboardURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + "/"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func newDashboardCmd() *cobra.Command {
	var o struct {
		url, creds, prefix, listen string
	}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the live attention dashboard of a sestream that publishes on NATS",
		Long: `Dashboard subscribes to <prefix>.> on a NATS server and serves the same live attention page as
"sestream run" does at /. Heatmaps need the publishing sestream to include gate vectors (its http.dashboard,
or attention.include_vectors); frame thumbnails need its http.dashboard_frames: nats.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDashboard(cmd.Context(), o.url, o.creds, o.prefix, o.listen, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.url, "nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	cmd.Flags().StringVar(&o.creds, "creds", "", "NATS credentials file")
	cmd.Flags().StringVar(&o.prefix, "prefix", message.DefaultPrefix, "NATS subject prefix")
	cmd.Flags().StringVar(&o.listen, "listen", DefaultDashboardListen, "address to serve the page on")
	return cmd
}

// runDashboard serves the dashboard of the sestream publishing under prefix on the NATS server at url until
// ctx is done.
func runDashboard(ctx context.Context, url, creds, prefix, listen string, stderr io.Writer) error {
	if err := message.ValidatePrefix(prefix); err != nil {
		return badInput(fmt.Errorf("--prefix: %w", err))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return badInput(fmt.Errorf("--listen %s: %w", listen, err))
	}
	opts := []nats.Option{nats.Name("sestream dashboard"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second)}
	if creds != "" {
		if _, err := os.Stat(creds); err != nil {
			ln.Close()
			return badInput(fmt.Errorf("--creds: %w", err))
		}
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		ln.Close()
		return fmt.Errorf("nats %s: %w", redact.URL(url), err)
	}
	defer nc.Close()
	hub := dashboard.New(dashboard.Options{Prefix: prefix, Source: redact.URL(url), Log: log})
	defer hub.Close()
	sub, err := dashboard.Subscribe(nc, hub)
	if err != nil {
		ln.Close()
		return fmt.Errorf("nats %s: subscribe %s: %w", redact.URL(url), message.AllSubjects(prefix), err)
	}
	defer sub.Unsubscribe()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/", hub)
	fmt.Fprintf(stderr, "Dashboard of %s (prefix %s):  %s\n", redact.URL(url), prefix, dashboardURL(ln.Addr().String()))
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { // the hub's browsers hold hijacked connections the server does not close: end them first
		<-serveCtx.Done()
		hub.Close()
	}()
	return metrics.ServeHandler(serveCtx, ln, mux, "/ /healthz", log)
}
