#!/usr/bin/env bash
# tests/ci/unit-nonroot.sh [GO TEST ARGS...]: run the unit tests
# (`go test -count=1 ./...`, or the packages given) as an unprivileged user,
# so that a test assuming root fails here instead of passing only because
# CI runs as root. Run by `make unit-nonroot`, part of `make test`.
#
# Run as root, it creates (once) the system user crhook-ci, home
# /var/lib/crhook-ci, copies the working tree there (the files git knows
# of, as they are now; the repository itself may sit under /root, which
# that user cannot read), and runs go test as crhook-ci with its own HOME,
# GOCACHE and GOMODCACHE and none of root's environment but the Go proxy
# settings. Run as any other user, it runs go test in place.
set -euo pipefail

cd "$(dirname "$0")/../.."
repo=$PWD
user=crhook-ci
home=/var/lib/$user
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)

if [ "$(id -u)" -ne 0 ]; then
    echo "unit-nonroot: already uid $(id -u): go test in place"
    exec go test -count=1 "${args[@]}"
fi

# Idempotent: an existing user is kept as it is.
if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$home" --create-home \
        --shell /usr/sbin/nologin --comment "crhook CI unit tests without root" "$user"
fi
install -d -m 0755 -o "$user" -g "$user" "$home"

# A fresh copy each run: what git knows of (tracked, plus untracked files
# that are not ignored), minus build output, with the working tree's edits.
src=$home/src
rm -rf "$src"
install -d -m 0755 -o "$user" -g "$user" "$src"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
    grep -zvE '^(bin|vendor)/' |
    while IFS= read -r -d '' f; do
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null --files-from=- --create --file=- |
    runuser -u "$user" -- tar --extract --no-same-owner --file=- --directory="$src"

gobin=$(dirname "$(command -v go)")
# Only what go needs to find its tools and modules; nothing of root's HOME.
env=(
    HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8
    PATH="$gobin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    GOCACHE="$home/.cache/go-build" GOMODCACHE="$home/go/pkg/mod" GOPATH="$home/go"
    GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 TMPDIR=/tmp
)
for v in GOPROXY GONOPROXY GOPRIVATE GONOSUMDB GOSUMDB GOINSECURE; do
    [ -n "${!v:-}" ] && env+=("$v=${!v}")
done
echo "unit-nonroot: go test -count=1 ${args[*]} as $user (uid $(id -u "$user")) in $src"
cd "$src"
exec runuser -u "$user" -- env -i "${env[@]}" go test -count=1 "${args[@]}"
