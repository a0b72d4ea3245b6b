// Package config is crhook's configuration: its own settings
// (crhook.toml(5): Settings, LoadSettings), the search paths of every file
// it reads (Paths), and the layer resolver that decides which CRIU options
// a container gets and from which file or annotation (Resolve, giving a
// Resolution of Options, each with its Origin).
//
// Words used the same way in every name here: the runtime is the wrapped
// OCI runtime (runc or crun, runtime.path); crhook's own binary that
// podman calls is crhook-runtime. An Option is a CRIU option as resolved
// (criuopt.Option is its description in CRIU's catalog); Settings are
// crhook.toml.
//
// Beside it: config/criuopt is the CRIU option language (pure, no I/O),
// config/edit the editor behind `crhook config set`, and config/safefile
// the file rules all of them, the engine and doctor share.
package config
