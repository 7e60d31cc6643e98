package sestream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Bundled files, relative to the project root (and to the install directory of a packaged build).
const (
	BundledModel  = "models/fashion-se.onnx"
	BundledSample = "samples/fashion.mp4"
)

// FindBundled looks for a bundled file (BundledModel, BundledSample) next to the executable, in its parent
// directory, and in the working directory and its ancestors, so that both `go run` in a checkout and an
// installed binary find it. The error lists every place tried.
func FindBundled(rel string) (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	var tried []string
	for _, d := range dirs {
		p := filepath.Join(d, rel)
		tried = append(tried, p)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("bundled file %s not found; tried %v: %w", rel, tried, errNotBundled)
}

var errNotBundled = errors.New("not found")
