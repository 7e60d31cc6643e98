// Command attneval replays recorded SE gate vectors and gray thumbnails of a video through the attention
// drift monitor (se.AttentionMonitor) and the pixel baseline (internal/pixelbase), and prints, per labelled
// event window, whether each raised an alarm and how late, and the false alarms outside the windows.
//
//	attneval -gates tamper.gates -gray tamper.gray -labels tamper.labels.csv [-gates normal.gates -gray normal.gray ...]
//
// -gates and -gray are given once per video, in the same order; -labels applies to the video given just
// before it (give "-" for none). Gate files come from internal/tools/gatedump; gray files are raw 8-bit gray
// frames (ffmpeg -vf scale=64:36:flags=area,format=gray -f rawvideo). See docs/attention.md.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/sestream/sestream/internal/pixelbase"
	"github.com/sestream/sestream/se"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// window is one labelled event.
type window struct {
	kind        string
	first, last int // frames, inclusive
}

// gates holds one video's gate vectors: frames x blocks.
type gates struct {
	channels []int
	frames   [][][]float32
}

func readGates(path string) (*gates, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%s: too short", path)
	}
	nb := int(int32(binary.LittleEndian.Uint32(b)))
	if nb < 1 || nb > 1000 || len(b) < 4+4*nb {
		return nil, fmt.Errorf("%s: bad header (%d blocks)", path, nb)
	}
	g := &gates{channels: make([]int, nb)}
	total := 0
	for i := range nb {
		g.channels[i] = int(int32(binary.LittleEndian.Uint32(b[4+4*i:])))
		total += g.channels[i]
	}
	off, rec := 4+4*nb, 8+4*total
	for p := off; p+rec <= len(b); p += rec {
		fr := make([][]float32, nb)
		q := p + 8
		for i, c := range g.channels {
			fr[i] = make([]float32, c)
			for j := range fr[i] {
				fr[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(b[q:]))
				q += 4
			}
		}
		g.frames = append(g.frames, fr)
	}
	return g, nil
}

func readLabels(path string) ([]window, error) {
	if path == "-" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ws []window
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), ",")
		if n == 0 {
			continue // header kind,start_s,end_s,first_frame,last_frame
		}
		if len(fields) != 5 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 5", path, n+1, len(fields))
		}
		a, err1 := strconv.Atoi(fields[3])
		b, err2 := strconv.Atoi(fields[4])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
		}
		ws = append(ws, window{fields[0], a, b})
	}
	return ws, sc.Err()
}

// result is what one detector did on one video.
type result struct {
	rises      []int    // frames (0-based) of rise events
	why        []string // per rise: what was over its threshold
	detectFrom int      // first frame in the detecting phase
	riseCount  int      // calibrated rise count
	eRise      int      // calibrated evidence rise (attention only)
}

func main() {
	var gatePaths, grayPaths, labelPaths list
	flag.Var(&gatePaths, "gates", "gate dump of a video (repeat per video)")
	flag.Var(&grayPaths, "gray", "raw gray thumbnails of the same video (repeat per video)")
	flag.Var(&labelPaths, "labels", "labels CSV of the same video, - for none (repeat per video)")
	size := flag.String("size", "64x36", "thumbnail size")
	fps := flag.Float64("fps", 12, "frames per second of the videos")
	scores := flag.String("scores", "", "write per-frame scores of the first video to this CSV")
	cfg := se.DefaultMonitorConfig()
	flag.IntVar(&cfg.GroupSize, "group", cfg.GroupSize, "covariance group size")
	flag.Float64Var(&cfg.Shrinkage, "shrinkage", cfg.Shrinkage, "covariance shrinkage")
	flag.Float64Var(&cfg.MemoryFrames, "memory", cfg.MemoryFrames, "baseline memory, frames")
	flag.IntVar(&cfg.WarmupFrames, "warmup", cfg.WarmupFrames, "warm-up frames")
	flag.IntVar(&cfg.CalibrationFrames, "calibration", cfg.CalibrationFrames, "calibration frames")
	flag.Float64Var(&cfg.FrameQuantile, "quantile", cfg.FrameQuantile, "per-frame quantile")
	flag.IntVar(&cfg.WindowFrames, "window", cfg.WindowFrames, "hit window, frames")
	flag.Float64Var(&cfg.FalseAlarmFrames, "false-alarm-frames", cfg.FalseAlarmFrames, "target frames between false alarms")
	flag.IntVar(&cfg.FallFrames, "fall", cfg.FallFrames, "frames without a hit before an alarm falls")
	flag.BoolVar(&cfg.Stillness, "stillness", cfg.Stillness, "stillness input")
	pixelQuantile := flag.Float64("pixel-quantile", pixelbase.DefaultConfig().Detector.Quantile, "per-frame quantile of the pixel baseline")
	flag.Parse()
	if len(gatePaths) == 0 || len(gatePaths) != len(grayPaths) || len(gatePaths) != len(labelPaths) {
		fmt.Fprintln(os.Stderr, "attneval: give -gates, -gray and -labels once per video")
		os.Exit(2)
	}
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
		fmt.Fprintln(os.Stderr, "attneval: -size:", err)
		os.Exit(2)
	}
	pcfg := pixelbase.DefaultConfig()
	pcfg.MemoryFrames, pcfg.AbsorbFrames = cfg.MemoryFrames, cfg.AbsorbFrames
	pcfg.Detector = se.DetectorConfig{Warmup: cfg.WarmupFrames, Calibration: cfg.CalibrationFrames, Quantile: *pixelQuantile,
		Window: cfg.WindowFrames, FalseAlarmFrames: cfg.FalseAlarmFrames, FallFrames: cfg.FallFrames}
	if err := run(gatePaths, grayPaths, labelPaths, w, h, *fps, cfg, pcfg, *scores); err != nil {
		fmt.Fprintln(os.Stderr, "attneval:", err)
		os.Exit(1)
	}
}

func run(gatePaths, grayPaths, labelPaths []string, w, h int, fps float64, cfg se.MonitorConfig, pcfg pixelbase.Config, scoresPath string) error {
	fmt.Printf("attention: %+v\npixel: %+v\n", cfg, pcfg)
	type row struct{ kind, video, att, pix string }
	var rows []row
	var normalSec [2]float64
	var falseAlarms [2]int
	for v := range gatePaths {
		g, err := readGates(gatePaths[v])
		if err != nil {
			return err
		}
		gray, err := os.ReadFile(grayPaths[v])
		if err != nil {
			return err
		}
		ws, err := readLabels(labelPaths[v])
		if err != nil {
			return err
		}
		n := min(len(g.frames), len(gray)/(w*h))
		var csv *bufio.Writer
		if v == 0 && scoresPath != "" {
			f, err := os.Create(scoresPath)
			if err != nil {
				return err
			}
			defer f.Close()
			csv = bufio.NewWriter(f)
			defer csv.Flush()
		}
		att, err := runAttention(g, n, cfg, csv)
		if err != nil {
			return fmt.Errorf("%s: %w", gatePaths[v], err)
		}
		pix, err := runPixel(gray, n, w, h, pcfg)
		if err != nil {
			return fmt.Errorf("%s: %w", grayPaths[v], err)
		}
		var videoSec [2]float64
		var videoFA [2]int
		for d, r := range []result{att, pix} {
			// A rise is a detection when it falls within a window; any other rise is a false alarm.
			// Normal time: detecting-phase frames not in a window nor in the FallFrames+Window after it.
			inWindow := func(f int) (int, bool) {
				for i, wd := range ws {
					if f >= wd.first && f <= wd.last {
						return i, true
					}
				}
				return -1, false
			}
			excluded := make([]bool, n)
			for _, wd := range ws {
				for f := wd.first; f <= min(n-1, wd.last+cfg.FallFrames+cfg.WindowFrames); f++ {
					excluded[f] = true
				}
			}
			for f := r.detectFrom; f < n; f++ {
				if !excluded[f] {
					normalSec[d] += 1 / fps
					videoSec[d] += 1 / fps
				}
			}
			for i, f := range r.rises {
				if _, ok := inWindow(f); !ok && !excluded[f] {
					falseAlarms[d]++
					videoFA[d]++
					fmt.Printf("  %s: false alarm in %s at frame %d (%.2f s): %s\n", []string{"attention", "pixel"}[d], gatePaths[v], f, float64(f)/fps, r.why[i])
				}
			}
		}
		fmt.Printf("%s: %.1f s of normal video judged; false alarms: attention %d, pixel %d; rise count: attention %d, pixel %d of %d; attention evidence rise %d\n",
			gatePaths[v], videoSec[0], videoFA[0], videoFA[1], att.riseCount, pix.riseCount, cfg.WindowFrames, att.eRise)
		for _, wd := range ws {
			cell := func(r result) string {
				for _, f := range r.rises {
					if f >= wd.first && f <= wd.last {
						return fmt.Sprintf("yes, %.2f s", float64(f-wd.first)/fps)
					}
				}
				return "no"
			}
			rows = append(rows, row{wd.kind, gatePaths[v], cell(att), cell(pix)})
		}
	}
	fmt.Println()
	fmt.Println("| event | attention drift | pixel baseline |")
	fmt.Println("|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s |\n", r.kind, r.att, r.pix)
	}
	for d, name := range []string{"attention drift", "pixel baseline"} {
		fmt.Printf("%s: %d false alarms in %.1f s of normal video (%.2f per hour)\n", name, falseAlarms[d], normalSec[d],
			float64(falseAlarms[d])/normalSec[d]*3600)
	}
	return nil
}

func runAttention(g *gates, n int, cfg se.MonitorConfig, csv *bufio.Writer) (result, error) {
	m, err := se.NewAttentionMonitor(cfg, g.channels)
	if err != nil {
		return result{}, err
	}
	out := m.NewSample()
	r := result{detectFrom: cfg.WarmupFrames + cfg.CalibrationFrames}
	for f := range n {
		ev, err := m.Update(uint64(f), g.frames[f], out)
		if err != nil {
			return r, err
		}
		if ev != nil && ev.On {
			r.rises = append(r.rises, f)
			var why []string
			if ev.Still {
				why = append(why, "stillness")
			}
			for _, b := range ev.Blocks {
				why = append(why, fmt.Sprintf("block %d %.3g/%.3g", b.Order, b.Score, b.Threshold))
			}
			r.why = append(r.why, strings.Join(why, ", "))
		}
		r.riseCount, r.eRise = out.RiseCount, out.EvidenceRise
		if csv != nil {
			fmt.Fprintf(csv, "%d,%.4g,%d,%t,%.4g,%.4g", f, out.Score, out.Hits, out.On, out.Stillness, out.StillnessThreshold)
			for _, b := range out.Blocks {
				fmt.Fprintf(csv, ",%.4g,%.4g", b.Score, b.Threshold)
			}
			fmt.Fprintln(csv)
		}
	}
	return r, nil
}

func runPixel(gray []byte, n, w, h int, cfg pixelbase.Config) (result, error) {
	m, err := pixelbase.New(cfg, w, h)
	if err != nil {
		return result{}, err
	}
	var out pixelbase.Sample
	r := result{detectFrom: cfg.Detector.Warmup + cfg.Detector.Calibration}
	for f := range n {
		ev, err := m.Update(uint64(f), gray[f*w*h:(f+1)*w*h], &out)
		if err != nil {
			return r, err
		}
		r.riseCount = out.RiseCount
		if ev != nil && ev.On {
			r.rises = append(r.rises, f)
			r.why = append(r.why, strings.Join(ev.Inputs, ", "))
		}
	}
	return r, nil
}
