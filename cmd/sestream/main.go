// Command sestream runs CNNs with Squeeze-and-Excitation blocks on live video and publishes each frame's
// result and channel attention on NATS.
package main

/*
#include <signal.h>
#include <string.h>

// earlySignal is the first SIGINT or SIGTERM that arrived before the Go runtime installed its own handlers
// (0: none). Loading the shared libraries of OpenCV and ONNX Runtime and running their constructors takes a
// few hundred milliseconds, during which the default action would kill the process (exit 143).
static volatile sig_atomic_t earlySignal;

static void recordEarlySignal(int sig) {
	if (earlySignal == 0) {
		earlySignal = sig;
	}
}

// catchEarlySignals runs from the executable's preinit array, before any shared library's initializer.
static void catchEarlySignals(int argc, char **argv, char **envp) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = recordEarlySignal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

__attribute__((section(".preinit_array"), used))
static void (*const catchEarlySignalsEntry)(int, char **, char **) = catchEarlySignals;

static int takeEarlySignal(void) { return earlySignal; }
*/
import "C"

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// First thing: from here on SIGINT and SIGTERM start an orderly stop.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(sigCtx)
	if C.takeEarlySignal() != 0 {
		cancel() // a signal came while the process was loading: stop as if it came now
	}
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	stop()
	os.Exit(code)
}
