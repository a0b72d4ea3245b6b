#!/usr/bin/env bash
# rpm/dist.sh OUTDIR VERSION RELEASE: write OUTDIR/crhook-VERSION.tar.gz, a
# reproducible source tarball with the Go modules vendored, so an RPM build
# needs no network. Called by `make dist` (rpm/rpm.mk).
#
# Contents: the files git knows of (tracked, plus untracked ones that are not
# ignored, as they are in the working tree), minus build output, copied to a
# staging directory where `go mod vendor` runs (never in the repository;
# modules missing from the module cache are downloaded first, see below). The staged rpm/crhook.spec gets VERSION and
# RELEASE. Reproducible: fixed mtime (SOURCE_DATE_EPOCH, default the last
# commit's time), owner 0:0, modes normalised, names sorted, gzip without
# name or time stamp.
set -euo pipefail

out=${1:?usage: dist.sh OUTDIR VERSION RELEASE}
version=${2:?version}
release=${3:?release}
cd "$(git rev-parse --show-toplevel)"

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
name=crhook-$version
stage=$(mktemp -d "${TMPDIR:-/tmp}/crhook-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out" "$stage/$name"

# Build output and generated files never go in: binaries, vendor/ (made
# below), compiled SELinux modules and their tmp/, rendered man pages, RPMs.
git ls-files -z --cached --others --exclude-standard |
    grep -zvE '^(bin|vendor)/|^selinuxpolicy/tmp/|\.(pp|pp\.bz2|rpm|tar\.gz)$|^docs/[^/]+\.[1-8]$' |
    while IFS= read -r -d '' f; do
        # tracked but deleted in the working tree: skip
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null --files-from=- --create --file=- | tar --extract --file=- --directory="$stage/$name"

spec=$stage/$name/rpm/crhook.spec
sed -i -e "s/^Version:\([[:space:]]*\).*/Version:\1$version/" \
       -e "s/^Release:\([[:space:]]*\).*/Release:\1$release%{?dist}/" "$spec"
# A snapshot gets its own changelog entry, dated by the commit, so the
# changelog names the version-release being built.
if ! grep -q -- "- $version-$release\$" "$spec"; then
    entry="* $(LC_ALL=C date -u -d "@$epoch" '+%a %b %d %Y') crhook maintainers <crhook@example.org> - $version-$release"
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    sed -i "/^%changelog\$/a $entry\\n- Snapshot of git commit $commit.\\n" "$spec"
fi

# Vendoring takes every module of every platform (cobra's Windows-only
# github.com/inconshreveable/mousetrap too), which a Linux `go build` never
# fetched: download them first, through the environment's GOPROXY and
# checked against go.sum, then vendor offline so nothing but go.sum decides
# what goes in. `go mod download` with no argument fetches every module
# go.mod requires (go >= 1.17 lists them all) plus the go.mod files of the
# module graph.
(cd "$stage/$name" && GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local go mod download)
(cd "$stage/$name" && GOFLAGS=-mod=mod GOPROXY=off GOWORK=off GOTOOLCHAIN=local go mod vendor)

tarball=$out/$name.tar.gz
tar --create --sort=name --format=gnu \
    --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    --mode='u+rw,go=rX' --directory="$stage" "$name" |
    gzip -n -9 >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
sha256sum "$tarball"
