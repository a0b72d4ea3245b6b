module github.com/crhook/crhook

go 1.26

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/opencontainers/selinux v1.15.1
	github.com/rogpeppe/go-internal v1.16.0
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9
	golang.org/x/sys v0.26.0
)

require (
	github.com/cyphar/filepath-securejoin v0.5.1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	golang.org/x/tools v0.26.0 // indirect
)
