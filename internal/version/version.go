// Package version carries the build's version, set by the linker (-X .../internal/version.Version).
package version

import "runtime/debug"

// Version of this build; "dev" for a plain go build.
var Version = "dev"

// String returns the version and, when known, the VCS revision the binary was built from.
func String() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return Version + " (" + s.Value[:12] + ")"
			}
		}
	}
	return Version
}
