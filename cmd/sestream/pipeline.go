package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sestream/sestream"
	"github.com/sestream/sestream/config"
	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/version"
)

// newLogger builds the process logger from log.level and log.format.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runPipeline runs the configured pipeline (or the demo) until it ends or a signal asks it to stop.
func runPipeline(cmd *cobra.Command, cfg *config.Config, streamFlags []string) error {
	for i, s := range streamFlags {
		name, url, ok := strings.Cut(s, "=")
		if !ok {
			return badInput(fmt.Errorf("--stream %q: want NAME=URL", s))
		}
		cfg.AddStream(name, url)
		if err := cfg.Validate(); err != nil {
			return badInput(fmt.Errorf("--stream %d: %w", i+1, err))
		}
	}
	demo := len(cfg.Streams) == 0 && !cfg.Fleet.Enabled
	log := newLogger(cfg.Log, cmd.ErrOrStderr())
	if cmd.Context().Err() != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "sestream: stopped by a signal before the pipeline started; nothing to drain")
		return nil
	}
	m := metrics.New(metrics.Options{Version: version.Version(), MaxBatch: cfg.Batch.MaxSize})
	opts := sestream.Options{Logger: log, Metrics: m}
	if demo || cfg.Status.Summary {
		opts.Summary = cmd.ErrOrStderr()
	}
	dash := newLocalDashboard(cfg, &opts, log)
	defer dash.Close()
	p, err := sestream.New(cfg, opts)
	if err != nil {
		var ie *sestream.InputError
		if errors.As(err, &ie) {
			return badInput(err)
		}
		return err
	}
	if mdl := p.Model(); len(mdl.Blocks) == 0 {
		log.Warn("model has no SE blocks: results are published, but attention messages list no blocks and drift is off; check the model with sestream inspect",
			"model", mdl.Path)
	}
	if demo {
		fmt.Fprintf(cmd.ErrOrStderr(), "sestream demo: model %s (%d SE blocks) on %s, looped.\n", p.Model().Path, len(p.Model().Blocks), p.Streams()[0].URL)
		if cfg.NATS.URL == "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "Subscribe in another terminal:  %s sub --nats nats://%s\n", os.Args[0], cfg.NATS.Embedded.Listen)
		}
		dash.printBanner(cmd.ErrOrStderr())
		if d := cfg.Attention.Drift; d.Enabled && len(p.Model().Blocks) > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "Attention drift: the first %d frames build the stream's baseline and the next %d calibrate its thresholds; then the summary shows the drift score (over 1 is an unusual frame, ON while an alarm is up).\n",
				d.WarmupFrames, d.CalibrationFrames)
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "Press Ctrl-C to stop (twice to stop at once).")
	}
	ctx := cmd.Context()
	if cfg.HTTP.Listen != "" {
		// Bind before starting the pipeline, so a port in use is an error at once.
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return badInput(fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err))
		}
		serveCtx, stopServe := context.WithCancel(context.Background())
		defer stopServe()
		go func() {
			if err := serveHTTP(serveCtx, ln, m, dash, log); err != nil {
				log.Error("metrics endpoint stopped", "listen", cfg.HTTP.Listen, "err", err)
			}
		}()
	}
	// A second signal exits at once; the first one (ctx from main) starts the drain.
	go func() {
		<-ctx.Done()
		first := time.Now()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		for range again {
			// A signal sent to the whole process group can arrive twice at once; a second request to stop
			// is one that comes later.
			if time.Since(first) > 500*time.Millisecond {
				fmt.Fprintln(os.Stderr, "sestream: second signal, exiting without draining")
				os.Exit(exitFailure)
			}
		}
	}()
	err = p.Run(ctx)
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		log.Info("stopped: a signal came while the pipeline was starting", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return nil
}
