package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// Metadata keys read from the ONNX model's metadata_props (docs/model-metadata.md).
const (
	KeyLabels = "labels"            // JSON array of strings, one per class
	KeyWidth  = "preprocess.width"  // int > 0, input width in pixels
	KeyHeight = "preprocess.height" // int > 0, input height in pixels
	KeyColor  = "preprocess.color"  // rgb | bgr | gray
	KeyResize = "preprocess.resize" // stretch | letterbox | center_crop
	KeyScale  = "preprocess.scale"  // float > 0, multiplies pixel values (0..255) first
	KeyMean   = "preprocess.mean"   // JSON array of numbers, subtracted after scaling, per channel
	KeyStd    = "preprocess.std"    // JSON array of numbers > 0, divides after the mean, per channel
)

// Meta is what a model says about itself in its metadata_props. Absent keys leave zero values;
// the config decides defaults.
type Meta struct {
	// Labels names the classes of the model's output, in output order.
	Labels []string
	// Width and Height are the input size in pixels that preprocessing resizes frames to.
	Width, Height int
	// Color is the channel order the model expects: "rgb", "bgr" or "gray".
	Color string
	// Resize is how frames are fitted to Width x Height: "stretch", "letterbox" or "center_crop".
	Resize string
	// Scale multiplies 8-bit pixel values before Mean and Std are applied (e.g. 1/255).
	Scale float64
	// Mean and Std normalize each channel after scaling: (x*Scale - Mean[c]) / Std[c].
	// Either one value for all channels or one per channel.
	Mean, Std []float64
	// Raw holds every metadata_props entry, including the keys above and any others
	// (e.g. training.commit, training.test_accuracy).
	Raw map[string]string
}

// parseMeta reads and checks the known keys. An error names the key and the bad value.
func parseMeta(props []*onnx.StringStringEntryProto) (Meta, error) {
	var m Meta
	for _, p := range props {
		if p == nil {
			continue
		}
		if m.Raw == nil {
			m.Raw = make(map[string]string, len(props))
		}
		m.Raw[p.Key] = p.Value
	}
	for _, p := range props {
		if p == nil {
			continue
		}
		key, v := p.Key, p.Value
		var err error
		switch key {
		case KeyLabels:
			if err = json.Unmarshal([]byte(v), &m.Labels); err == nil && m.Labels == nil {
				err = fmt.Errorf("want a JSON array of strings")
			}
		case KeyWidth:
			m.Width, err = positiveInt(v)
		case KeyHeight:
			m.Height, err = positiveInt(v)
		case KeyColor:
			m.Color, err = oneOf(v, "rgb", "bgr", "gray")
		case KeyResize:
			m.Resize, err = oneOf(v, "stretch", "letterbox", "center_crop")
		case KeyScale:
			m.Scale, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil && !(m.Scale > 0 && !math.IsInf(m.Scale, 0)) {
				err = fmt.Errorf("want a finite number > 0")
			}
		case KeyMean:
			m.Mean, err = numbers(v, false)
		case KeyStd:
			m.Std, err = numbers(v, true)
		}
		if err != nil {
			return Meta{}, fmt.Errorf("metadata %s = %q: %w", key, v, err)
		}
	}
	return m, nil
}

func positiveInt(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 || n > 1<<16 {
		return 0, fmt.Errorf("want an integer from 1 to 65536")
	}
	return n, nil
}

func oneOf(v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
}

func numbers(v string, positive bool) ([]float64, error) {
	var xs []float64
	if err := json.Unmarshal([]byte(v), &xs); err != nil || len(xs) == 0 {
		return nil, fmt.Errorf("want a non-empty JSON array of numbers")
	}
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) || (positive && x <= 0) {
			if positive {
				return nil, fmt.Errorf("want numbers > 0")
			}
			return nil, fmt.Errorf("want finite numbers")
		}
	}
	return xs, nil
}

// checkMeta checks the metadata against the graph's fixed input and output sizes.
func (m *Model) checkMeta() error {
	in := m.Input
	c, h, w := in.Shape[1], in.Shape[2], in.Shape[3]
	if m.Meta.Width > 0 && w > 0 && int64(m.Meta.Width) != w {
		return fmt.Errorf("metadata %s = %d, but input %q has width %d", KeyWidth, m.Meta.Width, in.Name, w)
	}
	if m.Meta.Height > 0 && h > 0 && int64(m.Meta.Height) != h {
		return fmt.Errorf("metadata %s = %d, but input %q has height %d", KeyHeight, m.Meta.Height, in.Name, h)
	}
	if c > 0 {
		want := map[string]int64{"rgb": 3, "bgr": 3, "gray": 1}[m.Meta.Color]
		if want > 0 && want != c {
			return fmt.Errorf("metadata %s = %q, but input %q has %d channels", KeyColor, m.Meta.Color, in.Name, c)
		}
		if n := len(m.Meta.Mean); n > 1 && int64(n) != c {
			return fmt.Errorf("metadata %s has %d values, but input %q has %d channels", KeyMean, n, in.Name, c)
		}
		if n := len(m.Meta.Std); n > 1 && int64(n) != c {
			return fmt.Errorf("metadata %s has %d values, but input %q has %d channels", KeyStd, n, in.Name, c)
		}
	}
	if len(m.Meta.Labels) > 0 && len(m.Outputs) == 1 {
		out := m.Outputs[0]
		if len(out.Shape) == 2 && out.Shape[1] > 0 && int64(len(m.Meta.Labels)) != out.Shape[1] {
			return fmt.Errorf("metadata %s has %d labels, but output %q has %d classes", KeyLabels, len(m.Meta.Labels), out.Name, out.Shape[1])
		}
	}
	return nil
}
