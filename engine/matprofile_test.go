//go:build matprofile

package engine

import (
	"bytes"
	"context"
	"testing"

	"gocv.io/x/gocv"
)

// TestNoMatLeaks needs the matprofile build tag, which makes gocv count every live Mat:
//
//	go test -tags matprofile -run TestNoMatLeaks ./engine
//
// It runs the OpenCV backend on every golden model at every batch size, with good and bad calls, and
// checks that no Mat is left once the engines are closed.
func TestNoMatLeaks(t *testing.T) {
	before := gocv.MatProfile.Count()
	for _, g := range readGolden(t) {
		m := loadModel(t, g.File)
		input := readNpy(t, g.Input)
		item := 3 * g.Height * g.Width
		e, err := Open(m, Options{Backend: OpenCV, MaxBatch: g.MaxBatch, ExtraOutputs: []string{m.Blocks[0].Input}})
		if err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			for n := 1; n <= g.MaxBatch; n++ {
				if _, err := e.Run(context.Background(), input.Data[:n*item], n); err != nil {
					t.Fatalf("%s round %d batch %d: %v", g.Name, round, n, err)
				}
			}
			if _, err := e.Run(context.Background(), input.Data[:item], 2); err == nil {
				t.Fatal("Run with a short input succeeded")
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats live after closing the engines, %d before:\n%s", after, before, b.String())
	}
}
