package engine

import (
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ortRuntime is the process-wide ONNX Runtime environment. onnxruntime_go keeps one global environment
// (SetSharedLibraryPath, then InitializeEnvironment once), so every ONNX Runtime engine shares it: the first
// engine to open loads the library, each open engine holds one reference, and the last Close destroys the
// environment and unloads the library. This is the package's only mutable package-level state.
var ortRuntime struct {
	mu      sync.Mutex
	refs    int
	library string
	version string
}

// acquireORT loads the library at path if no engine has it loaded yet, and takes a reference to the
// environment. Loading a different library while one is loaded is an error.
func acquireORT(path string) (version string, err error) {
	ortRuntime.mu.Lock()
	defer ortRuntime.mu.Unlock()
	if ortRuntime.refs > 0 {
		if path != ortRuntime.library {
			return "", &LibraryError{Tried: []string{path},
				Err: fmt.Errorf("%s is already loaded in this process; cannot also load %s", ortRuntime.library, path)}
		}
		ortRuntime.refs++
		return ortRuntime.version, nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", &LibraryError{Tried: []string{path}, Err: fmt.Errorf("loading %s: %w", path, err)}
	}
	ortRuntime.refs = 1
	ortRuntime.library = path
	ortRuntime.version = ort.GetVersion()
	return ortRuntime.version, nil
}

// releaseORT drops one reference; the last one destroys the environment.
func releaseORT() error {
	ortRuntime.mu.Lock()
	defer ortRuntime.mu.Unlock()
	if ortRuntime.refs == 0 {
		return nil
	}
	ortRuntime.refs--
	if ortRuntime.refs > 0 {
		return nil
	}
	ortRuntime.library, ortRuntime.version = "", ""
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("engine: destroying the ONNX Runtime environment: %w", err)
	}
	return nil
}

// ortRefs returns the number of engines holding the environment (for tests).
func ortRefs() int {
	ortRuntime.mu.Lock()
	defer ortRuntime.mu.Unlock()
	return ortRuntime.refs
}
