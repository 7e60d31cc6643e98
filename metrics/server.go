package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultListen is the default address of the HTTP endpoint: loopback only. Binding to every interface
// (e.g. ":9090" in a container) is an explicit choice in http.listen.
const DefaultListen = "127.0.0.1:9090"

// shutdownTimeout bounds how long Serve waits for requests in progress when ctx is done.
const shutdownTimeout = 2 * time.Second

// Handler serves /metrics (Prometheus text format), /healthz (200 "ok" while the process runs) and /readyz
// (200 "ready", or 503 with one reason per line).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		r := m.Readiness()
		if r.Ready {
			io.WriteString(w, "ready\n")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready:\n"+strings.Join(r.Reasons, "\n")+"\n")
	})
	return mux
}

// Serve listens on listen (host:port) and serves m.Handler until ctx is done. It returns nil after a clean
// shutdown and an error naming the address when it cannot listen.
func Serve(ctx context.Context, listen string, m *Metrics, log *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", listen, err)
	}
	return ServeListener(ctx, ln, m, log)
}

// ServeListener serves m.Handler on ln until ctx is done, then closes ln. log (nil: slog.Default()) gets one
// line when serving starts and one if serving fails.
func ServeListener(ctx context.Context, ln net.Listener, m *Metrics, log *slog.Logger) error {
	return ServeHandler(ctx, ln, m.Handler(), "/metrics /healthz /readyz", log)
}

// ServeHandler serves h on ln until ctx is done, then closes ln, like ServeListener; paths lists what h
// serves, for the log line.
func ServeHandler(ctx context.Context, ln net.Listener, h http.Handler, paths string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan struct{})  // closed when srv.Serve has returned
	stopped := make(chan struct{}) // closed when the shutdown goroutine is done
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-served:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	log.Info("metrics endpoint", "addr", ln.Addr().String(), "paths", paths)
	err := srv.Serve(ln)
	close(served)
	<-stopped
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	log.Error("metrics endpoint stopped", "addr", ln.Addr().String(), "err", err)
	return fmt.Errorf("http %s: %w", ln.Addr(), err)
}
