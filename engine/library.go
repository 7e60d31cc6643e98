package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LibraryEnv is the environment variable FindLibrary consults after the configured path.
const LibraryEnv = "SESTREAM_ENGINE_LIBRARY"

// setupLibrary is where scripts/setup.sh installs ONNX Runtime, relative to the project root.
const setupLibrary = "third_party/onnxruntime/libonnxruntime.so.1"

// systemDirs and systemNames are searched last, in this order.
var (
	systemDirs  = []string{"/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib"}
	systemNames = []string{"libonnxruntime.so.1", "libonnxruntime.so"}
)

// LibraryError reports that the ONNX Runtime library could not be found or loaded. Open with Backend Auto
// falls back to OpenCV on this error only.
type LibraryError struct {
	// Tried lists every path looked at, in order.
	Tried []string
	// Err is the load error when a library was found but failed to load; nil when none was found.
	Err error
}

func (e *LibraryError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("ONNX Runtime library: %v", e.Err)
	}
	return fmt.Sprintf("ONNX Runtime library not found; tried %s (set engine.library or %s)",
		strings.Join(e.Tried, ", "), LibraryEnv)
}

func (e *LibraryError) Unwrap() error { return e.Err }

// FindLibrary locates the ONNX Runtime shared library. It tries, in order: configured (the engine.library
// setting) when not empty; the SESTREAM_ENGINE_LIBRARY environment variable when set; the setup directory
// third_party/onnxruntime/libonnxruntime.so.1 next to the executable, in the executable's parent directory,
// and in the working directory and each of its ancestors; then libonnxruntime.so.1 and libonnxruntime.so in
// /usr/local/lib, /usr/lib/x86_64-linux-gnu and /usr/lib. A configured or environment path that does not
// exist is an error: it is not silently replaced by another library. The error, a *LibraryError, lists
// every path tried.
func FindLibrary(configured string) (path string, tried []string, err error) {
	exe, _ := os.Executable()
	wd, _ := os.Getwd()
	return findLibrary(configured, os.Getenv(LibraryEnv), exe, wd)
}

func findLibrary(configured, env, exe, wd string) (string, []string, error) {
	var tried []string
	explicit := func(p, what string) (string, []string, error) {
		tried = append(tried, p)
		if isFile(p) {
			return p, tried, nil
		}
		return "", tried, &LibraryError{Tried: tried, Err: fmt.Errorf("%s %s is not a readable file", what, p)}
	}
	if configured != "" {
		return explicit(configured, "engine.library")
	}
	if env != "" {
		return explicit(env, LibraryEnv)
	}
	var candidates []string
	if exe != "" {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		dir := filepath.Dir(exe)
		candidates = append(candidates, filepath.Join(dir, setupLibrary), filepath.Join(filepath.Dir(dir), setupLibrary))
	}
	if wd != "" {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, filepath.Join(dir, setupLibrary))
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	for _, d := range systemDirs {
		for _, n := range systemNames {
			candidates = append(candidates, filepath.Join(d, n))
		}
	}
	seen := map[string]bool{}
	for _, p := range candidates {
		if seen[p] {
			continue
		}
		seen[p] = true
		tried = append(tried, p)
		if isFile(p) {
			return p, tried, nil
		}
	}
	return "", tried, &LibraryError{Tried: tried}
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
