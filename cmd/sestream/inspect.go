package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sestream/sestream/engine"
	"github.com/sestream/sestream/model"
	"github.com/sestream/sestream/stages/preprocess"
)

// inspectJSON is the --json output of `sestream inspect`.
type inspectJSON struct {
	Model inspectModel `json:"model"`
	// Verify names the engine that ran the self-check (--verify only).
	Verify   *inspectVerify    `json:"verify,omitempty"`
	Inputs   []inspectTensor   `json:"inputs"`
	Outputs  []inspectTensor   `json:"outputs"`
	Metadata map[string]string `json:"metadata"`
	SEBlocks []inspectBlock    `json:"se_blocks"`
}

type inspectVerify struct {
	Engine    string  `json:"engine"`
	Tolerance float64 `json:"tolerance"`
	OK        bool    `json:"ok"`
}

type inspectModel struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

type inspectTensor struct {
	Name string `json:"name"`
	// Shape has -1 for symbolic dimensions; DimNames names them ("" for fixed sizes).
	Shape    []int64  `json:"shape"`
	DimNames []string `json:"dim_names"`
}

type inspectBlock struct {
	Name       string  `json:"name"`
	Order      int     `json:"order"`
	Channels   int     `json:"channels"`
	Hidden     int     `json:"hidden"`
	Reduction  float64 `json:"reduction"`
	Gate       string  `json:"gate"`
	Activation string  `json:"activation"`
	Input      string  `json:"input"`
	GateTensor string  `json:"gate_tensor"`
	Output     string  `json:"output"`
	// VerifyMaxError is the self-check's largest gate difference (--verify only).
	VerifyMaxError *float64 `json:"verify_max_error,omitempty"`
	VerifyError    string   `json:"verify_error,omitempty"`
}

func newInspectCmd() *cobra.Command {
	var asJSON, verify bool
	var backend string
	var threads int
	cmd := &cobra.Command{
		Use:   "inspect MODEL [--json] [--verify [--engine E]]",
		Short: "Show a model's inputs, outputs, metadata and SE blocks",
		Long: `inspect reads an ONNX model, validates it and prints its input and outputs, its metadata (labels and
preprocessing, see docs/model-metadata.md) and a table of the Squeeze-and-Excitation blocks found in it:
order in the network, name (the gate node, which names the block's gates in results), channels C, hidden
width, reduction r = C/hidden, gate function and activation.

--verify runs the SE self-check on the engine (--engine): the model runs on a batch of pseudo-random inputs
with every block's input U fetched beside its gates, each block's gates are recomputed in Go from U with the
block's own weights, and the largest difference per block is reported. It exits with code 1 when a block
differs by more than 1e-4, which means discovery picked the wrong tensors.

--json prints {"model":{...},"inputs":[{"name","shape"}],"outputs":[...],"metadata":{...},
"se_blocks":[{"name","channels","hidden","gate","activation",...}]}. Symbolic dimensions are -1 in "shape".
With --verify, "verify":{"engine","tolerance","ok"} and each block's "verify_max_error" are added.

A file that is missing or is not a usable model exits with code 2.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := model.Load(args[0])
			if err != nil {
				return badInput(err)
			}
			report := inspectReport(m)
			var verifyErr error
			if verify {
				b, err := engine.ParseBackend(backend)
				if err != nil {
					return badInput(err)
				}
				verifyErr = runVerify(cmd.Context(), m, engine.Options{Backend: b, Threads: threads}, &report)
				if report.Verify == nil {
					return verifyErr // the engine could not run the model
				}
			}
			if asJSON {
				err = writeInspectJSON(cmd.OutOrStdout(), report)
			} else {
				err = writeInspect(cmd.OutOrStdout(), m, report)
			}
			if err != nil {
				return err
			}
			return verifyErr
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	cmd.Flags().BoolVar(&verify, "verify", false, "run the SE self-check on an engine")
	cmd.Flags().StringVar(&backend, "engine", "auto", "engine for --verify: auto, onnxruntime or opencv")
	cmd.Flags().IntVar(&threads, "threads", 2, "intra-op threads for --verify")
	return cmd
}

// runVerify runs the SE self-check and records it in report.
func runVerify(ctx context.Context, m *model.Model, opts engine.Options, report *inspectJSON) error {
	h, w := inputSize(m)
	checks, info, err := engine.VerifyGates(ctx, m, opts, h, w, 2)
	if err != nil {
		return err
	}
	report.Verify = &inspectVerify{Engine: string(info.Backend), Tolerance: engine.VerifyTolerance, OK: true}
	var failed []string
	for i, c := range checks {
		maxErr := c.MaxError
		report.SEBlocks[i].VerifyMaxError = &maxErr
		if c.Err != nil {
			report.SEBlocks[i].VerifyError = c.Err.Error()
		}
		if !c.OK() {
			report.Verify.OK = false
			failed = append(failed, c.Block)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("SE self-check failed on %s for blocks %s", info.Backend, strings.Join(failed, ", "))
	}
	return nil
}

// inputSize is the model's input height and width (model.InputSize), else preprocessing's default size.
func inputSize(m *model.Model) (int, int) {
	if h, w := m.InputSize(); h > 0 && w > 0 {
		return h, w
	}
	return preprocess.DefaultInputSize, preprocess.DefaultInputSize
}

func inspectReport(m *model.Model) inspectJSON {
	r := inspectJSON{
		Model:    inspectModel{Name: m.Name, Path: m.Path, Digest: m.Digest},
		Inputs:   []inspectTensor{tensorReport(m.Input)},
		Outputs:  []inspectTensor{},
		Metadata: map[string]string{},
		SEBlocks: []inspectBlock{},
	}
	for _, o := range m.Outputs {
		r.Outputs = append(r.Outputs, tensorReport(o))
	}
	for k, v := range m.Meta.Raw {
		r.Metadata[k] = v
	}
	for _, b := range m.Blocks {
		r.SEBlocks = append(r.SEBlocks, inspectBlock{
			Name: b.Name, Order: b.Order, Channels: b.Channels, Hidden: b.Hidden,
			Reduction: float64(b.Channels) / float64(b.Hidden), Gate: b.Gate.String(), Activation: b.Activation.String(),
			Input: b.Input, GateTensor: b.GateTensor, Output: b.Output,
		})
	}
	return r
}

func tensorReport(t model.TensorInfo) inspectTensor {
	it := inspectTensor{Name: t.Name, Shape: t.Shape, DimNames: t.DimNames}
	if it.Shape == nil {
		it.Shape, it.DimNames = []int64{}, []string{}
	}
	return it
}

func writeInspectJSON(w io.Writer, report inspectJSON) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

// shapeString renders a shape with symbolic dimensions by name: [batch 3 224 224].
func shapeString(t model.TensorInfo) string {
	if t.Shape == nil {
		return "[unknown shape]"
	}
	parts := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		switch {
		case d >= 0:
			parts[i] = strconv.FormatInt(d, 10)
		case t.DimNames[i] != "":
			parts[i] = t.DimNames[i]
		default:
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func writeInspect(w io.Writer, m *model.Model, report inspectJSON) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", m.Path)
	fmt.Fprintf(tw, "digest\t%s\n", m.Digest)
	fmt.Fprintf(tw, "input\t%s\t%s\n", m.Input.Name, shapeString(m.Input))
	for _, o := range m.Outputs {
		fmt.Fprintf(tw, "output\t%s\t%s\n", o.Name, shapeString(o))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(m.Meta.Raw) == 0 {
		fmt.Fprintln(w, "\nmetadata: none (preprocessing comes from the config and its defaults)")
	} else {
		fmt.Fprintln(w, "\nmetadata:")
		keys := make([]string, 0, len(m.Meta.Raw))
		for k := range m.Meta.Raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m.Meta.Raw[k]
			if k == model.KeyLabels {
				v = fmt.Sprintf("%d labels: %s", len(m.Meta.Labels), strings.Join(m.Meta.Labels, ", "))
			}
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(w, "\nSE blocks: %d\n", len(m.Blocks))
	if len(m.Blocks) == 0 {
		return nil
	}
	header := "ORDER\tNAME\tCHANNELS\tHIDDEN\tR\tGATE\tACTIVATION"
	if report.Verify != nil {
		header += "\tMAX ERROR (" + report.Verify.Engine + ")"
	}
	fmt.Fprintln(tw, header)
	for i, b := range m.Blocks {
		r := strconv.FormatFloat(float64(b.Channels)/float64(b.Hidden), 'g', 4, 64)
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s", b.Order, b.Name, b.Channels, b.Hidden, r, b.Gate, b.Activation)
		if v := report.SEBlocks[i]; v.VerifyMaxError != nil {
			fmt.Fprintf(tw, "\t%.2g", *v.VerifyMaxError)
			if v.VerifyError != "" {
				fmt.Fprintf(tw, " (%s)", v.VerifyError)
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if report.Verify != nil {
		verdict := "every block within"
		if !report.Verify.OK {
			verdict = "FAILED: some blocks beyond"
		}
		fmt.Fprintf(w, "\nSE self-check on %s: %s %g\n", report.Verify.Engine, verdict, report.Verify.Tolerance)
	}
	return nil
}
