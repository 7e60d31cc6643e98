package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkYAML reports what decoding the file would lose or change without a word: a second YAML document (only
// the first is read), a mapping where a list belongs (it would become a list of one), and an integer key
// whose value does not fit an int or is not a whole number (it would wrap around or be truncated). Values
// are named as written in the file. Syntax errors are left to the reader, which has already reported them.
func checkYAML(file string, data []byte) []FieldError {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil
	}
	var out []FieldError
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil && !emptyDocument(&next):
		out = append(out, FieldError{Key: "--config", Reason: fmt.Sprintf(
			"%s holds more than one YAML document (the second starts at line %d); sestream reads one: remove the '---' line or split the file", file, next.Line)})
	case err != nil && !errors.Is(err, io.EOF):
		out = append(out, FieldError{Key: "--config", Reason: fmt.Sprintf(
			"%s holds more than one YAML document (the second does not parse: %v); sestream reads one", file, err)})
	}
	if len(doc.Content) == 1 {
		walkYAML(doc.Content[0], "", reflect.TypeOf(Config{}), Bounds(), &out)
	}
	return out
}

// emptyDocument reports a document with no content, as a trailing "---" makes.
func emptyDocument(n *yaml.Node) bool {
	return len(n.Content) == 0 || (len(n.Content) == 1 && n.Content[0].Kind == yaml.ScalarNode && n.Content[0].ShortTag() == "!!null")
}

var durationType = reflect.TypeOf(time.Duration(0))

// walkYAML follows node along the Config type t, appending to out what checkYAML reports. Keys that t does not
// have are left to the decoder, which reports them as unknown.
func walkYAML(node *yaml.Node, path string, t reflect.Type, bounds map[string]Bound, out *[]FieldError) {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	switch {
	case t.Kind() == reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			key := node.Content[i].Value
			for f := range t.NumField() {
				if tag, _, _ := strings.Cut(t.Field(f).Tag.Get("mapstructure"), ","); tag == key {
					walkYAML(node.Content[i+1], joinPath(path, key), t.Field(f).Type, bounds, out)
					break
				}
			}
		}
	case t.Kind() == reflect.Slice:
		switch node.Kind {
		case yaml.MappingNode:
			hint := ""
			if t.Elem().Kind() == reflect.Struct {
				hint = ` (each entry starts with "- ", e.g. "- name: cam1")`
			}
			*out = append(*out, FieldError{Key: path, Reason: fmt.Sprintf("must be a list%s, got a mapping at line %d", hint, node.Line)})
		case yaml.ScalarNode:
			if t.Elem().Kind() == reflect.Struct && node.ShortTag() != "!!null" {
				*out = append(*out, FieldError{Key: path, Reason: fmt.Sprintf(
					`must be a list (each entry starts with "- ", e.g. "- name: cam1"), got %q at line %d`, clipValue(node.Value), node.Line)})
			}
		case yaml.SequenceNode:
			for i, item := range node.Content {
				walkYAML(item, fmt.Sprintf("%s[%d]", path, i), t.Elem(), bounds, out)
			}
		}
	case t.Kind() == reflect.Int && t != durationType:
		if node.Kind != yaml.ScalarNode {
			return
		}
		if why := intProblem(node.Value, node.ShortTag()); why != "" {
			if b, ok := bounds[path]; ok {
				why += "; must be within " + b.String()
			}
			*out = append(*out, FieldError{Key: path, Reason: why})
		}
	}
}

// intProblem says why a YAML scalar given for an integer key cannot be one, or "" when it can (or when it is
// not a number at all: the decoder reports that).
func intProblem(text, tag string) string {
	switch tag {
	case "!!int":
		if _, err := strconv.ParseInt(text, 0, 64); errors.Is(err, strconv.ErrRange) {
			return fmt.Sprintf("%s is out of range", clipValue(text))
		}
	case "!!float":
		f, err := strconv.ParseFloat(strings.ReplaceAll(text, "_", ""), 64)
		if err != nil {
			return "" // .nan, .inf: not a number the decoder takes
		}
		if f < math.MinInt64 || f >= math.MaxInt64 {
			return fmt.Sprintf("%s is out of range", clipValue(text))
		}
		if f != math.Trunc(f) {
			return fmt.Sprintf("%s is not a whole number", clipValue(text))
		}
	}
	return ""
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// wholeNumberHook refuses, for an integer field, a float that is not a whole number or does not fit, and an
// integer string that does not fit, instead of truncating or wrapping it. Values from the file are checked
// first by checkYAML, which names them as written; this catches the environment and flags.
func wholeNumberHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int || to == durationType {
		return data, nil
	}
	switch v := data.(type) {
	case float64:
		if math.IsNaN(v) || v < math.MinInt64 || v >= math.MaxInt64 {
			return nil, fmt.Errorf("%v is out of range", v)
		}
		if v != math.Trunc(v) {
			return nil, fmt.Errorf("%v is not a whole number", v)
		}
	case uint64:
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("%d is out of range", v)
		}
	case string:
		s := strings.TrimSpace(v)
		if _, err := strconv.ParseInt(s, 0, 64); errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%s is out of range", clipValue(s))
		}
	}
	return data, nil
}

// unknownEnv reports every SESTREAM_* variable in environ that sets no key, as a file's unknown key is.
func unknownEnv(environ []string) []FieldError {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[EnvName(k)] = true
	}
	for _, name := range testEnv() {
		known[name] = true
	}
	var out []FieldError
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] {
			continue
		}
		reason := "environment variable names no configuration key (see docs/config.md)"
		if name == EnvPrefix+"_STREAMS" || strings.HasPrefix(name, EnvPrefix+"_STREAMS_") {
			reason = "environment variable names no configuration key: streams are set in the file or with --stream"
		} else if near := nearestEnv(name, known); near != "" {
			reason = fmt.Sprintf("environment variable names no configuration key; did you mean %s?", near)
		}
		out = append(out, FieldError{Key: name, Reason: reason})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// nearestEnv returns the known variable within two edits of name, or "".
func nearestEnv(name string, known map[string]bool) string {
	best, bestD := "", 3
	for k := range known {
		if d := editDistance(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// clipValue shortens a value for an error message.
func clipValue(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
