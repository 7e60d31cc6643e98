package engine

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/sestream/sestream/model"
)

// Layout is how inference uses the cores: Workers engine sessions side by side, each with Threads intra-op
// threads.
type Layout struct {
	Workers, Threads int
}

func (l Layout) String() string {
	return fmt.Sprintf("%d worker(s) x %d thread(s)", l.Workers, l.Threads)
}

// LayoutTrial is one candidate ChooseLayout measured: a session with Threads threads run alone on full batches.
type LayoutTrial struct {
	Threads int
	// ImagesPerSec is the session's rate over wall time; ImagesPerCPUSec over the process's CPU time (user +
	// sys), which counts only the CPU its threads used, however many other processes ran.
	ImagesPerSec, ImagesPerCPUSec float64
}

// MaxAutoWorkers bounds the sessions ChooseLayout opens side by side (each holds the model and its tensors).
const MaxAutoWorkers = 16

// AutoThreadCandidates lists the thread counts ChooseLayout measures for cores: 1, 2, 4, ... up to cores, and
// cores itself, leaving out counts that would need more than MaxAutoWorkers sessions.
func AutoThreadCandidates(cores int) []int {
	cores = max(cores, 1)
	var ts []int
	for t := 1; t <= cores; t *= 2 {
		if cores/t <= MaxAutoWorkers {
			ts = append(ts, t)
		}
	}
	if ts[len(ts)-1] != cores {
		ts = append(ts, cores)
	}
	return ts
}

// ChooseLayout fills in the zero fields of want for cores, measuring when it has to:
//   - both set: want as it is, nothing measured;
//   - Workers set, Threads 0: Threads = cores / Workers (at least 1);
//   - Threads set, Workers 0: Workers = cores / Threads (at least 1);
//   - both 0: for each of AutoThreadCandidates(cores) it opens one session with that many threads (opts with
//     Threads replaced) and runs full batches of batch items for about budget / candidates, after one untimed
//     batch; the thread count with the most images per CPU second wins, a larger count within 5% of the best
//     being preferred (fewer sessions, a shorter single-frame latency); Workers = cores / Threads.
//
// Images per CPU second is the figure that matters when inference shares the cores with decoding: on the
// project machine one ONNX Runtime thread does about 40% more work per core than two (docs/BENCHMARKS.md),
// so two one-thread workers keep both cores busy with less CPU per frame. The trials are returned in
// candidate order (nil when nothing was measured). The process's CPU time is what is measured, so nothing
// else in the process should be busy meanwhile.
func ChooseLayout(ctx context.Context, m *model.Model, opts Options, want Layout, cores, batch int, budget time.Duration) (Layout, []LayoutTrial, error) {
	cores, batch = max(cores, 1), max(batch, 1)
	switch {
	case want.Workers > 0 && want.Threads > 0:
		return want, nil, nil
	case want.Workers > 0:
		return Layout{Workers: want.Workers, Threads: max(1, cores/want.Workers)}, nil, nil
	case want.Threads > 0:
		return Layout{Workers: max(1, cores/want.Threads), Threads: want.Threads}, nil, nil
	}
	cands := AutoThreadCandidates(cores)
	trials := make([]LayoutTrial, 0, len(cands))
	for _, t := range cands {
		tr, err := trialLayout(ctx, m, opts, t, batch, budget/time.Duration(len(cands)))
		if err != nil {
			return Layout{}, nil, err
		}
		trials = append(trials, tr)
	}
	best := 0
	for i, tr := range trials {
		if tr.ImagesPerCPUSec > trials[best].ImagesPerCPUSec {
			best = i
		}
	}
	pick := best
	for i := len(trials) - 1; i > best; i-- {
		if trials[i].ImagesPerCPUSec >= 0.95*trials[best].ImagesPerCPUSec {
			pick = i
			break
		}
	}
	t := trials[pick].Threads
	return Layout{Workers: max(1, cores/t), Threads: t}, trials, nil
}

// trialLayout opens a session with threads threads and measures it on full batches of random input for
// about d (at least three batches) after one untimed batch.
func trialLayout(ctx context.Context, m *model.Model, opts Options, threads, batch int, d time.Duration) (LayoutTrial, error) {
	opts.Threads, opts.MaxBatch, opts.ExtraOutputs = threads, batch, nil
	sh, err := newShape(m, opts)
	if err != nil {
		return LayoutTrial{}, err
	}
	e, err := Open(m, opts)
	if err != nil {
		return LayoutTrial{}, err
	}
	defer e.Close()
	x := make([]float32, batch*sh.item)
	state := uint32(2463534242)
	for i := range x { // xorshift: roughly N(0, 1)-sized values, so no layer sees only zeros
		state ^= state << 13
		state ^= state >> 17
		state ^= state << 5
		x[i] = float32(state)/float32(1<<31) - 1
	}
	if _, err := e.Run(ctx, x, batch); err != nil {
		return LayoutTrial{}, err
	}
	c0, t0 := processCPU(), time.Now()
	n := 0
	for n < 3*batch || time.Since(t0) < d {
		if _, err := e.Run(ctx, x, batch); err != nil {
			return LayoutTrial{}, err
		}
		n += batch
	}
	wall, cpu := time.Since(t0), processCPU()-c0
	tr := LayoutTrial{Threads: threads, ImagesPerSec: float64(n) / wall.Seconds()}
	if cpu > 0 {
		tr.ImagesPerCPUSec = float64(n) / cpu.Seconds()
	}
	return tr, nil
}

// processCPU returns the process's user + sys CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// AutoLayoutBudget is the time ChooseLayout spends running batches when a pipeline starts with workers and
// threads on auto (opening the trial sessions comes on top).
const AutoLayoutBudget = 600 * time.Millisecond
