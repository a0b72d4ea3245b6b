// Package safefile holds the single copies of the file rules for what
// steers crhook as root: the trust rule (owner and mode), reading a config
// file without hanging on a FIFO or device and without reading without
// bound, listing a drop-in directory, walking directories without
// following links, and replacing a file atomically. config, engine,
// engine/diagnose and engine/doctor all use it, so the rules cannot drift.
//
// It knows nothing of CRIU or crhook.toml; callers word their messages.
package safefile
