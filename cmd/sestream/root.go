package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of the sestream command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (a source died, NATS refused, ...)
	exitUsage   = 2 // bad usage, bad configuration, or bad input (model, tensor, image)
)

// usageError marks an error as the user's input being wrong: the command exits with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badInput wraps err so that the command exits with code 2 and prints err on stderr.
// Use it for usage mistakes, invalid configuration and unusable input files.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// newRootCmd builds the command tree. Every subcommand is listed here.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sestream",
		Short: "Run SE-attention CNNs on live video and stream results and channel attention to NATS",
		Long: `sestream captures frames from cameras, RTSP/HTTP streams, video files and image folders, runs a CNN
that contains Squeeze-and-Excitation blocks on batched tensors, and publishes each frame's result and its
channel-attention statistics (the SE gate values) on NATS subjects.

With no arguments, "sestream run" starts the built-in demo: the bundled model on the bundled sample video,
publishing to an embedded NATS server.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badInput(err) })
	root.AddCommand(
		newRunCmd(),
		newVersionCmd(),
		newInferCmd(),
		newBenchCmd(),
		newInspectCmd(),
		newSubCmd(),
		newDashboardCmd(),
		newFleetCmd(),
	)
	return root
}

// execute runs the command line args and returns the process exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "sestream: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		if cmd != nil && !errors.As(err, &ue) {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	return exitFailure
}

// isCobraUsageError reports errors cobra raises itself for unknown commands, flags and bad arguments.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
