package engine

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func touch(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("lib"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindLibraryOrder(t *testing.T) {
	root := t.TempDir()
	exe := filepath.Join(root, "opt", "bin", "sestream")
	touch(t, exe)
	wd := filepath.Join(root, "home", "proj", "sub", "dir")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	configured := touch(t, filepath.Join(root, "cfg", "libonnxruntime.so.1"))
	env := touch(t, filepath.Join(root, "env", "libonnxruntime.so.1"))
	nextToExe := filepath.Join(root, "opt", "bin", setupLibrary)
	exeParent := filepath.Join(root, "opt", setupLibrary)
	wdAncestor := filepath.Join(root, "home", "proj", setupLibrary)

	cases := []struct {
		name              string
		configured, env   string
		present           []string // setup-directory libraries that exist for this case
		want              string
		wantTriedPrefix   []string
		wantErrContaining string
	}{
		{name: "configured first", configured: configured, env: env, present: []string{nextToExe}, want: configured,
			wantTriedPrefix: []string{configured}},
		{name: "missing configured is an error", configured: filepath.Join(root, "nope.so"), env: env, present: []string{nextToExe},
			wantErrContaining: "engine.library " + filepath.Join(root, "nope.so")},
		{name: "env second", env: env, present: []string{nextToExe}, want: env, wantTriedPrefix: []string{env}},
		{name: "missing env is an error", env: filepath.Join(root, "nope.so"), present: []string{nextToExe},
			wantErrContaining: LibraryEnv + " " + filepath.Join(root, "nope.so")},
		{name: "next to the executable", present: []string{nextToExe, exeParent, wdAncestor}, want: nextToExe,
			wantTriedPrefix: []string{nextToExe}},
		{name: "executable's parent", present: []string{exeParent, wdAncestor}, want: exeParent,
			wantTriedPrefix: []string{nextToExe, exeParent}},
		{name: "working directory ancestors", present: []string{wdAncestor}, want: wdAncestor,
			wantTriedPrefix: []string{nextToExe, exeParent,
				filepath.Join(wd, setupLibrary),
				filepath.Join(root, "home", "proj", "sub", setupLibrary),
				wdAncestor}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []string{nextToExe, exeParent, wdAncestor} {
				os.Remove(p)
			}
			for _, p := range tc.present {
				touch(t, p)
			}
			got, tried, err := findLibrary(tc.configured, tc.env, exe, wd)
			if tc.wantErrContaining != "" {
				var le *LibraryError
				if err == nil || !strings.Contains(err.Error(), tc.wantErrContaining) || !errors.As(err, &le) {
					t.Fatalf("findLibrary = %q, %v; want a *LibraryError containing %q", got, err, tc.wantErrContaining)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("findLibrary = %q, %v; want %q", got, err, tc.want)
			}
			if !slices.Equal(tried, tc.wantTriedPrefix) {
				t.Errorf("tried %q, want %q", tried, tc.wantTriedPrefix)
			}
		})
	}
}

func TestFindLibraryNotFoundListsEveryPath(t *testing.T) {
	for _, d := range systemDirs {
		for _, n := range systemNames {
			if isFile(filepath.Join(d, n)) {
				t.Skipf("a system ONNX Runtime is installed at %s", filepath.Join(d, n))
			}
		}
	}
	root := t.TempDir()
	exe := filepath.Join(root, "bin", "sestream")
	_, tried, err := findLibrary("", "", exe, root)
	var le *LibraryError
	if !errors.As(err, &le) {
		t.Fatalf("findLibrary error = %v, want a *LibraryError", err)
	}
	for _, want := range []string{
		filepath.Join(root, "bin", setupLibrary), filepath.Join(root, setupLibrary), filepath.Join("/", setupLibrary),
		"/usr/local/lib/libonnxruntime.so.1", "/usr/lib/x86_64-linux-gnu/libonnxruntime.so", "/usr/lib/libonnxruntime.so",
	} {
		if !slices.Contains(tried, want) || !strings.Contains(err.Error(), want) {
			t.Errorf("tried list and error do not name %s:\n%v", want, err)
		}
	}
	if !slices.Equal(le.Tried, tried) {
		t.Errorf("LibraryError.Tried = %v, want %v", le.Tried, tried)
	}
}

func TestFindLibraryUsesEnvironment(t *testing.T) {
	lib := touch(t, filepath.Join(t.TempDir(), "libonnxruntime.so.1"))
	t.Setenv(LibraryEnv, lib)
	if got, _, err := FindLibrary(""); err != nil || got != lib {
		t.Fatalf("FindLibrary with %s=%s = %q, %v", LibraryEnv, lib, got, err)
	}
}
