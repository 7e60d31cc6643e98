// Package version reports the sestream version.
package version

import "runtime/debug"

// override is set at link time: -ldflags "-X github.com/sestream/sestream/version.override=v1.2.3".
var override string

// Version returns the release version set at link time, else the VCS revision the binary was built from,
// else "dev".
func Version() string {
	if override != "" {
		return override
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "dev-" + rev + dirty
}
