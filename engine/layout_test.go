package engine

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestAutoThreadCandidates(t *testing.T) {
	cases := []struct {
		cores int
		want  []int
	}{
		{0, []int{1}},
		{1, []int{1}},
		{2, []int{1, 2}},
		{3, []int{1, 2, 3}},
		{8, []int{1, 2, 4, 8}},
		{12, []int{1, 2, 4, 8, 12}},
		{64, []int{4, 8, 16, 32, 64}}, // 1 and 2 threads would need more than MaxAutoWorkers sessions
	}
	for _, c := range cases {
		if got := AutoThreadCandidates(c.cores); !slices.Equal(got, c.want) {
			t.Errorf("AutoThreadCandidates(%d) = %v, want %v", c.cores, got, c.want)
		}
	}
}

// TestChooseLayoutGiven: what is set is kept, what is 0 is cores divided by the other, and nothing is opened
// (the model is nil: measuring would fail).
func TestChooseLayoutGiven(t *testing.T) {
	cases := []struct {
		want  Layout
		cores int
		got   Layout
	}{
		{Layout{Workers: 3, Threads: 5}, 2, Layout{Workers: 3, Threads: 5}},
		{Layout{Workers: 2}, 8, Layout{Workers: 2, Threads: 4}},
		{Layout{Workers: 4}, 2, Layout{Workers: 4, Threads: 1}},
		{Layout{Threads: 2}, 8, Layout{Workers: 4, Threads: 2}},
		{Layout{Threads: 4}, 2, Layout{Workers: 1, Threads: 4}},
	}
	for _, c := range cases {
		got, trials, err := ChooseLayout(context.Background(), nil, Options{}, c.want, c.cores, 8, 0)
		if err != nil || got != c.got || trials != nil {
			t.Errorf("ChooseLayout(%v, %d cores) = %v, %v, %v; want %v, no trials", c.want, c.cores, got, trials, err, c.got)
		}
	}
}

// TestChooseLayoutMeasures runs the trials on the tiny golden model: one per candidate, each with images
// counted, and a layout that fills the cores.
func TestChooseLayoutMeasures(t *testing.T) {
	needORT(t)
	m := loadModel(t, "se_tiny_64x64.onnx")
	got, trials, err := ChooseLayout(context.Background(), m, Options{Backend: ONNXRuntime}, Layout{}, 2, 4, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 2 || trials[0].Threads != 1 || trials[1].Threads != 2 {
		t.Fatalf("trials = %+v, want threads 1 and 2", trials)
	}
	for _, tr := range trials {
		if tr.ImagesPerSec <= 0 || tr.ImagesPerCPUSec <= 0 {
			t.Errorf("trial %+v: want positive rates", tr)
		}
	}
	if got.Workers*got.Threads != 2 {
		t.Errorf("layout %v does not fill 2 cores", got)
	}
}
