package main

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sestream/sestream/config"
)

// runFlags maps the run command's flags onto config keys; a flag given on the command line beats the file and
// the environment.
var runFlagKeys = map[string]string{
	"model":           "model.path",
	"engine":          "engine.backend",
	"threads":         "engine.threads",
	"workers":         "workers",
	"batch-size":      "batch.max_size",
	"batch-delay":     "batch.max_delay",
	"nats":            "nats.url",
	"nats-listen":     "nats.embedded.listen",
	"prefix":          "nats.prefix",
	"http":            "http.listen",
	"log-level":       "log.level",
	"log-format":      "log.format",
	"include-vectors": "attention.include_vectors",
	"verify":          "engine.verify",
}

func addConfigFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (see docs/config.md)")
	fs.String("model", "", "ONNX model file (default: the bundled model)")
	fs.String("engine", "", "inference backend: auto, onnxruntime or opencv")
	fs.Int("threads", 0, "intra-op threads per worker")
	fs.Int("workers", 0, "inference workers")
	fs.Int("batch-size", 0, "largest batch")
	fs.Duration("batch-delay", 0, "longest wait for a batch to fill, e.g. 10ms")
	fs.String("nats", "", "NATS server URL(s), comma-separated (default: embedded server)")
	fs.String("nats-listen", "", "address of the embedded NATS server")
	fs.String("prefix", "", "NATS subject prefix")
	fs.String("http", "", "metrics and health listen address (empty disables)")
	fs.String("log-level", "", "debug, info, warn or error")
	fs.String("log-format", "", "text or json")
	fs.Bool("include-vectors", false, "publish every SE block's whole gate vector")
	fs.Bool("verify", false, "run the SE self-check when the model loads")
}

// loadConfig reads the configuration for a command from --config, SESTREAM_* and the flags that were given.
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	file, _ := cmd.Flags().GetString("config")
	keys := map[string]string{}
	for flag, key := range runFlagKeys {
		if cmd.Flags().Lookup(flag) != nil {
			keys[flag] = key
		}
	}
	cfg, err := config.Load(config.Options{File: file, Flags: cmd.Flags(), FlagKeys: keys})
	if err != nil {
		return nil, badInput(err)
	}
	return cfg, nil
}

func newRunCmd() *cobra.Command {
	var streams []string
	var profile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline: capture, infer, publish (with no config: the built-in demo)",
		Long: `Run captures every configured stream, runs the model on batches of frames and publishes each frame's
result and SE attention on NATS until interrupted. The first SIGINT/SIGTERM drains in-flight frames (bounded by
shutdown.drain_timeout); a second one exits at once.

With no --config and no --stream, it runs the built-in demo: the bundled model on the bundled sample video
(looped), publishing to an embedded NATS server, with a one-line summary every second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			prof, err := startCPUProfile(profile)
			if err != nil {
				return err
			}
			defer prof.stop()
			err = runPipeline(cmd, cfg, streams)
			return errors.Join(err, prof.stop())
		},
	}
	addConfigFlags(cmd.Flags())
	cmd.Flags().StringArrayVar(&streams, "stream", nil, "add a stream NAME=URL (repeatable)")
	cmd.Flags().StringVar(&profile, "cpuprofile", "", "write a Go CPU profile (go tool pprof) of the whole run to this file")
	return cmd
}
