#!/usr/bin/env bash
# Unpacks Debian sid's containerd 2.1 (CRI CheckpointContainer since 2.0,
# restore from a checkpoint archive since 2.1) into a private prefix for
# the CRI tests (tests/cri). Called by tests/setup-host.sh; idempotent and
# cached. Its binaries need only glibc >= 2.34, so Debian 12 runs them;
# nothing is installed into the system: the tests start their own
# containerd from $CACHE/containerd with its own root, state and socket.
set -euo pipefail

CACHE=${CRHOOK_CACHE:-/var/cache/crhook}
CONTAINERD_DEB=containerd=2.1.9+ds1-5
# SHA256 of sid's containerd_2.1.9+ds1-5_amd64.deb, as sid's Packages index gives it.
CONTAINERD_DEB_SHA256=2dda86ce7033fd612fc50e136679d8174ccad680eb29cd4611e0d2a1b84cf591
PREFIX=$CACHE/containerd

# shellcheck source=tests/sid-apt.sh
. "$(dirname "$0")/sid-apt.sh"

start=${EPOCHREALTIME/./}
say() { printf 'setup: %-14s %s (%d.%01ds)\n' containerd "$1" $(((${EPOCHREALTIME/./} - start) / 1000000)) $(((${EPOCHREALTIME/./} - start) / 100000 % 10)); }

if [ "$(cat "$PREFIX/.deb-sha256" 2>/dev/null)" = "$CONTAINERD_DEB_SHA256" ] && "$PREFIX/usr/bin/containerd" --version >/dev/null 2>&1; then
	say "kept $PREFIX ($("$PREFIX/usr/bin/containerd" --version))"
	exit 0
fi
deb=$(sid_deb "$CONTAINERD_DEB" "$CONTAINERD_DEB_SHA256")
rm -rf "$PREFIX.new"
dpkg-deb -x "$deb" "$PREFIX.new"
echo "$CONTAINERD_DEB_SHA256" >"$PREFIX.new/.deb-sha256"
"$PREFIX.new/usr/bin/containerd" --version >/dev/null ||
	{ echo "setup: sid's containerd does not run here (glibc $(ldd --version | head -n 1))" >&2; exit 1; }
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
say "unpacked $PREFIX ($("$PREFIX/usr/bin/containerd" --version))"
