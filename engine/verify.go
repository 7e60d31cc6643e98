package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/se"
)

// VerifyTolerance is the largest gate difference the self-check accepts between the engine and the Go SE
// block. Both compute in float32; differences come from summation order only.
const VerifyTolerance = 1e-4

// BlockCheck is the self-check of one SE block.
type BlockCheck struct {
	// Block is the block's name, Order its place in the network, Channels its gate count.
	Block    string
	Order    int
	Channels int
	// MaxError is the largest |engine gate - Go gate| over the batch.
	MaxError float64
	// Err is set when the block could not be checked (weights unreadable, shapes that do not fit).
	Err error
}

// OK reports whether the block was checked and agreed within VerifyTolerance.
func (c BlockCheck) OK() bool { return c.Err == nil && c.MaxError <= VerifyTolerance }

// ErrVerify is returned (wrapped) by CheckGates when a block disagrees or cannot be checked.
var ErrVerify = errors.New("SE self-check failed")

// VerifyGates checks SE block discovery against the engine. It runs the model on a batch of n deterministic
// pseudo-random inputs, fetching every block's input U beside its gates, recomputes each block's gates in Go
// from U with the block's own weights (se.Block), and reports the largest difference per block. A discovery
// that picked the wrong tensors, or weights read in the wrong layout, shows as a large error.
func VerifyGates(ctx context.Context, m *model.Model, opts Options, height, width, n int) ([]BlockCheck, Info, error) {
	if len(m.Blocks) == 0 {
		return nil, Info{}, nil
	}
	opts.ExtraOutputs = make([]string, len(m.Blocks))
	for i, b := range m.Blocks {
		opts.ExtraOutputs[i] = b.Input
	}
	if opts.MaxBatch < n {
		opts.MaxBatch = n
	}
	eng, err := Open(m, opts)
	if err != nil {
		return nil, Info{}, err
	}
	defer eng.Close()
	channels := 3
	if len(m.Input.Shape) == 4 && m.Input.Shape[1] > 0 {
		channels = int(m.Input.Shape[1])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	input := make([]float32, n*channels*height*width)
	for i := range input {
		input[i] = float32(rng.NormFloat64())
	}
	res, err := eng.Run(ctx, input, n)
	if err != nil {
		return nil, eng.Info(), fmt.Errorf("running %s for the self-check: %w", m.Name, err)
	}
	checks := make([]BlockCheck, len(m.Blocks))
	var ws se.Workspace
	for i, info := range m.Blocks {
		c := BlockCheck{Block: info.Name, Order: info.Order, Channels: info.Channels}
		c.MaxError, c.Err = checkBlock(m, info, res.Extra[i], res.Gates[i], n, &ws)
		checks[i] = c
	}
	return checks, eng.Info(), nil
}

func checkBlock(m *model.Model, info se.BlockInfo, u, gates Tensor, n int, ws *se.Workspace) (float64, error) {
	block, err := m.BlockWeights(info)
	if err != nil {
		return 0, err
	}
	if len(u.Shape) != 4 {
		return 0, fmt.Errorf("block input %s has shape %v, want N x C x H x W", info.Input, u.Shape)
	}
	h, w := int(u.Shape[2]), int(u.Shape[3])
	got := make([]float32, n*block.Channels)
	if err := block.Gates(ws, u.Data[:n*block.Channels*h*w], n, h, w, got); err != nil {
		return 0, err
	}
	if len(gates.Data) < len(got) {
		return 0, fmt.Errorf("engine returned %d gate values, want %d", len(gates.Data), len(got))
	}
	maxErr := 0.0
	for i, g := range got {
		d := math.Abs(float64(g) - float64(gates.Data[i]))
		if math.IsNaN(d) {
			return math.Inf(1), fmt.Errorf("gate %d is NaN", i)
		}
		maxErr = max(maxErr, d)
	}
	return maxErr, nil
}

// CheckGates runs VerifyGates and turns any failed block into an error wrapping ErrVerify.
func CheckGates(ctx context.Context, m *model.Model, opts Options, height, width int) ([]BlockCheck, error) {
	checks, _, err := VerifyGates(ctx, m, opts, height, width, 2)
	if err != nil {
		return nil, err
	}
	var bad []error
	for _, c := range checks {
		switch {
		case c.Err != nil:
			bad = append(bad, fmt.Errorf("block %s: %w", c.Block, c.Err))
		case !c.OK():
			bad = append(bad, fmt.Errorf("block %s: gates differ by %.3g (tolerance %g)", c.Block, c.MaxError, VerifyTolerance))
		}
	}
	if len(bad) > 0 {
		return checks, fmt.Errorf("model %s: %w: %w", m.Name, ErrVerify, errors.Join(bad...))
	}
	return checks, nil
}
