package se_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/sestream/sestream/se"
)

// One monitor per stream, fed every frame's gates of all SE blocks in model block order. After warm-up
// and calibration on normal frames, a lasting change raises rise and its end fall.
func ExampleAttentionMonitor() {
	cfg := se.DefaultMonitorConfig()
	cfg.WarmupFrames, cfg.CalibrationFrames = 100, 300
	channels := []int{16, 32}
	mon, err := se.NewAttentionMonitor(cfg, channels)
	if err != nil {
		fmt.Println(err)
		return
	}
	sample := mon.NewSample() // reused for every frame
	rng := rand.New(rand.NewPCG(1, 2))
	gates := [][]float32{make([]float32, 16), make([]float32, 32)}
	for frame := uint64(1); frame <= 1000; frame++ {
		common := rng.NormFloat64() // gates move mostly together, as real ones do
		for _, g := range gates {
			for c := range g {
				g[c] = float32(0.5 + 0.03*common + 0.005*rng.NormFloat64())
			}
		}
		if frame > 700 && frame <= 760 { // channel 3 of block 1 moves against the others
			gates[1][3] += 0.05
		}
		ev, err := mon.Update(frame, gates, sample)
		if err != nil {
			fmt.Println(err)
			return
		}
		if ev != nil {
			state := "fall"
			if ev.On {
				state = "rise"
			}
			fmt.Printf("frame %d: %s", ev.Frame, state)
			if ev.On {
				fmt.Printf(", block %d, channel %d moved most", ev.Blocks[0].Order, ev.Blocks[0].Moved[0].Channel)
			}
			fmt.Println()
		}
	}
	// Output:
	// frame 708: rise, block 1, channel 3 moved most
	// frame 794: fall
}
