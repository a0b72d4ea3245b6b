package config

import (
	"errors"

	"github.com/crhook/crhook/config/safefile"
)

// Sentinel errors of the settings and the layers; those of the option
// language (ErrSyntax, ErrUnknownOption, ErrInvalidValue) are criuopt's.
var (
	// ErrSettings: a crhook.toml that does not decode.
	ErrSettings = errors.New("invalid crhook settings")
	// ErrDenied: an option a layer may not set (annotation allow-list).
	ErrDenied = errors.New("option not allowed")
	// ErrUnsafeFile: a config file with an owner or mode root must not trust.
	ErrUnsafeFile = safefile.ErrUnsafe
)
