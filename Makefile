# crhook: `make demo` and `make test` set up a fresh Debian 12 host (as root),
# build, and run the main job or every test.

PREFIX     ?= /usr
DESTDIR    ?=
SYSCONFDIR ?= /etc
BINDIR      = $(PREFIX)/bin
LIBEXECDIR  = $(PREFIX)/libexec/crhook
DATADIR     = $(PREFIX)/share/crhook
MANDIR      = $(PREFIX)/share/man

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS   ?= -trimpath
LDFLAGS   := -s -w -X main.version=$(VERSION)
BIN        = bin/crhook
RUNTIME    = bin/crhook-runtime
SOURCES    = $(shell find hook config engine -name '*.go' -not -name '*_test.go') go.mod
GOTEST     = $(GO) test -count=1

export CGO_ENABLED = 0

.PHONY: all build test unit unit-nonroot e2e fuzz-replay lint bench demo install uninstall clean setup guest-test

all: build

build: $(BIN) $(RUNTIME)

# Two binaries, one per role: the admin CLI, and the OCI runtime podman
# calls on every container operation (it links neither cobra nor doctor;
# hook/crhook-runtime/deps_test.go keeps it so).
$(BIN): $(SOURCES)
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $@ ./hook/crhook

# Trees built before the split hold bin/crhook-runtime as a symlink to
# crhook, which make would take as up to date (and install would copy the
# CLI as the runtime): remove it before make looks at it.
$(if $(shell [ -L $(RUNTIME) ] && echo link),$(shell rm -f $(RUNTIME)))
$(RUNTIME): $(SOURCES)
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $@ ./hook/crhook-runtime

setup:
	bash tests/setup-host.sh

# Everything, on real podman, runc and CRIU; root-only tests run because
# we are root. The setup step is idempotent and cached. The host it has
# just set up is the test host, so the unit tests that assert its facts
# (CRHOOK_TEST_HOST, engine/doctor/real_test.go) run too; then the unit
# tests run again unprivileged, so a test that assumes root shows up.
CRHOOK_TEST_HOST ?= 1
# The host-level suites run one at a time (-p 1): they share the host
# (/etc/criu layers, podman, sysctls), and one writing a broken
# default.conf must not meet another running CRIU.

test: setup build
	$(MAKE) --no-print-directory install
	CRHOOK_TEST_HOST=$(CRHOOK_TEST_HOST) $(GOTEST) ./...
	$(MAKE) --no-print-directory unit-nonroot
	CGO_ENABLED=1 $(GOTEST) -race -run Concurrent ./engine/diagnose/   # the race detector needs cgo (gcc: setup installs build-essential)
	$(GOTEST) -p 1 -tags e2e -timeout 20m ./tests/...
	cd tests/cri && $(GOTEST) -tags e2e -timeout 10m ./...
	$(MAKE) --no-print-directory selinux-check
	$(MAKE) --no-print-directory rpm-check
	$(MAKE) --no-print-directory guest-test

# What this host's kernel cannot test (soft-dirty pre-copy, SELinux
# enforcing), in a QEMU guest: tests/guest/README.md. The image is cached
# in /var/cache/crhook/guest and rebuilt when its inputs change.
guest-test: setup build
	bash tests/guest/build-image.sh >/dev/null
	$(GOTEST) -tags guest -v -timeout 30m ./tests/guest/

unit:
	$(GOTEST) ./...

# The unit tests as the unprivileged system user crhook-ci (created once,
# own HOME and Go caches, a copy of the working tree): as root it needs no
# host lock beyond creating that user.
unit-nonroot:
	bash tests/ci/unit-nonroot.sh

# golangci-lint comes from the Go module proxy, pinned; policy in .golangci.yml.
GOLANGCI_LINT_VERSION = v2.15.0
GOLANGCI_LINT = $(shell $(GO) env GOPATH)/bin/golangci-lint

lint:
	@out=$$(gofmt -l hook config engine tests); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...
	$(GO) vet -tags guest ./tests/guest/
	@$(GOLANGCI_LINT) version 2>/dev/null | grep -q '$(GOLANGCI_LINT_VERSION:v%=%)' || \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	$(GOLANGCI_LINT) run ./...
	$(GOLANGCI_LINT) run --build-tags e2e ./tests/...
	cd tests/cri && $(GO) vet -tags e2e ./... && $(GOLANGCI_LINT) run --build-tags e2e ./...
	$(GOLANGCI_LINT) run --build-tags guest ./tests/guest/...

# One package at a time (-p 1): tests/e2e's table and tests/migrate's
# migration table must not share the machine's two cores while measuring.
# CRHOOK_BENCH_ONLY=passthrough|migration measures one table only.
bench: setup build
	$(GO) test -run '^$$' -bench . -benchmem ./config ./engine
	CRHOOK_BENCH=1 $(GOTEST) -p 1 -tags e2e -run TestBenchmarkTable -v -timeout 60m ./tests/... | grep -v '^=== RUN'


demo: setup build
	$(MAKE) --no-print-directory install
	bash tests/demo.sh

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DATADIR) \
		$(DESTDIR)$(SYSCONFDIR)/containers/containers.conf.d $(DESTDIR)$(SYSCONFDIR)/crhook/crhook.d
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/crhook
	rm -f $(DESTDIR)$(LIBEXECDIR)/crhook-runtime   # may be the multi-call symlink to crhook
	install -m 0755 $(RUNTIME) $(DESTDIR)$(LIBEXECDIR)/crhook-runtime
	install -m 0644 contrib/crhook.toml $(DESTDIR)$(DATADIR)/crhook.toml
	install -m 0644 contrib/containers.conf.d/50-crhook.conf \
		$(DESTDIR)$(SYSCONFDIR)/containers/containers.conf.d/50-crhook.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/crhook $(DESTDIR)$(LIBEXECDIR)/crhook-runtime \
		$(DESTDIR)$(DATADIR)/crhook.toml $(DESTDIR)$(SYSCONFDIR)/containers/containers.conf.d/50-crhook.conf

clean:
	rm -rf bin

-include selinuxpolicy/selinux.mk
-include rpm/rpm.mk
