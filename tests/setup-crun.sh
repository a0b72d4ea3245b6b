#!/usr/bin/env bash
# Installs a crun with CRIU support (crun 1.28 +CRIU, Fedora's default
# runtime) beside Debian's crun, for the e2e scenarios that run crhook
# over crun. Called by tests/setup-host.sh; idempotent and cached.
#
# Debian 12's crun 1.8.1 has no +CRIU. The mirror serves sid's crun
# 1.28-1 binary but not its source tarball (crun_1.28.orig.tar.gz is a
# 404 there, and no other crun >= 1.26 source is reachable), so this
# takes sid's binary, pinned by SHA256, and gives it what it needs on
# Debian 12:
#   - glibc >= 2.38: sid's libc6 unpacked into a private prefix, named as
#     the binary's ELF interpreter and first RUNPATH entry (patchelf), so
#     /proc/self/exe stays crun itself and nothing else on the host sees
#     that libc;
#   - libcriu.so.2, which crun dlopen()s for checkpoint/restore: built
#     from the CRIU 4.2.1 source tree tests/setup-host.sh already built,
#     so crun and /usr/local/sbin/criu speak the same RPC version.
#
# Installed under /usr/local/libexec/crhook-test, which is on nobody's
# PATH: `crun` still means Debian's /usr/bin/crun for podman and for
# crhook's default runtime.path. The tests reach this crun through the
# podman runtime "crhook-crun" (a containers.conf drop-in) whose
# crhook-runtime reads a CRHOOK_CONFIG naming it as runtime.path.
set -euo pipefail

CACHE=${CRHOOK_CACHE:-/var/cache/crhook}
CRIU_VERSION=4.2.1
CRUN_DEB=crun=1.28-1
# SHA256 of sid's crun_1.28-1_amd64.deb, as sid's Packages index gives it.
CRUN_DEB_SHA256=20fbc3d0544d5c78e98fda1f02eed07d92529b1b82b6fe657d0c865b4a654cef
DIR=/usr/local/libexec/crhook-test
ROOT=$DIR/crun-root
DROPIN=/etc/containers/containers.conf.d/61-crhook-test-crun.conf

# shellcheck source=tests/sid-apt.sh
. "$(dirname "$0")/sid-apt.sh"

start=${EPOCHREALTIME/./}
say() { printf 'setup: %-14s %s (%d.%01ds)\n' crun "$1" $(((${EPOCHREALTIME/./} - start) / 1000000)) $(((${EPOCHREALTIME/./} - start) / 100000 % 10)); }

if ! command -v patchelf >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null
fi

crun_ok() { "$DIR/crun" --version 2>/dev/null | grep -q '^crun version 1\.28$' && "$DIR/crun" --version | grep -q ' +CRIU '; }

if ! crun_ok; then
	# The tree setup-host.sh builds CRIU in (criu-selinux/ since CRIU links
	# libselinux; criu-VERSION/ on hosts set up before that).
	criu_tree="$CACHE/criu-selinux/criu-$CRIU_VERSION"
	[ -d "$criu_tree" ] || criu_tree="$CACHE/criu-$CRIU_VERSION"
	[ -d "$criu_tree" ] || { echo "setup: $criu_tree missing: run tests/setup-host.sh first" >&2; exit 1; }
	# libcriu: CRIU's `lib` target, seconds on a tree whose criu is built.
	make -C "$criu_tree" -j"$(nproc)" lib >"$CACHE/libcriu-build.log" 2>&1 ||
		{ tail -n 30 "$CACHE/libcriu-build.log" >&2; exit 1; }

	crun_deb=$(sid_deb "$CRUN_DEB" "$CRUN_DEB_SHA256")
	libc_deb=$(sid_deb libc6)
	blake3_deb=$(sid_deb libblake3-0)

	mkdir -p "$(dirname "$DIR")"
	tmp=$(mktemp -d "$DIR.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	for d in "$libc_deb" "$blake3_deb"; do dpkg-deb -x "$d" "$tmp/crun-root"; done
	dpkg-deb -x "$crun_deb" "$tmp/crun-deb"
	mkdir -p "$tmp/crun-root/libcriu"
	install -m 0755 "$criu_tree/lib/c/libcriu.so" "$tmp/crun-root/libcriu/libcriu.so.2"
	install -m 0755 "$tmp/crun-deb/usr/bin/crun" "$tmp/crun"
	rm -rf "$tmp/crun-deb"
	# The final paths, not $tmp's: the directory is renamed into place.
	lib="$ROOT/usr/lib/x86_64-linux-gnu"
	patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" \
		--set-rpath "$ROOT/libcriu:$lib:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu" "$tmp/crun"
	chmod 0755 "$tmp"
	rm -rf "$DIR.old"
	[ ! -d "$DIR" ] || mv "$DIR" "$DIR.old"
	mv "$tmp" "$DIR"
	trap - EXIT
	rm -rf "$DIR.old"
	crun_ok || { echo "setup: $DIR/crun does not report crun 1.28 +CRIU:" >&2; "$DIR/crun" --version >&2; exit 1; }
	say "installed $DIR/crun ($(sed -n '$p' <("$DIR/crun" --version)))"
else
	say "kept $DIR/crun"
fi

# crun refuses a hybrid cgroup layout whose cgroup2 mount holds any
# controller ("cgroups in hybrid mode not supported, drop all controllers
# from cgroupv2"); Debian 12's crun as much as this one. This host's v1
# mounts leave hugetlb out, so the kernel binds it to cgroup2. A
# controller that no cgroup2 subtree enables can move to a v1 hierarchy
# of its own; runc and podman work either way. Not persistent: a reboot
# undoes it and the next setup redoes it.
unified=/sys/fs/cgroup/unified/cgroup.controllers
if [ -f "$unified" ] && [ -n "$(cat "$unified")" ] && [ -z "$(cat /sys/fs/cgroup/unified/cgroup.subtree_control)" ]; then
	for c in $(cat "$unified"); do
		mkdir -p "/sys/fs/cgroup/$c"
		mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
	done
	say "moved cgroup controllers to v1 for crun: $(ls /sys/fs/cgroup | tr '\n' ' ')"
fi

# crhook-runtime over this crun, for podman's runtime "crhook-crun".
want_toml='[runtime]
path = "'$DIR/crun'"'
want_wrapper='#!/bin/bash
# crhook-runtime wrapping crun 1.28 +CRIU (tests/setup-crun.sh).
CRHOOK_CONFIG='$DIR'/crhook-crun.toml exec -a crhook-runtime /usr/libexec/crhook/crhook-runtime "$@"'
want_dropin='# Written by crhook'"'"'s tests/setup-crun.sh: podman runtime "crhook-crun" is
# crhook-runtime wrapping '$DIR'/crun (crun 1.28 +CRIU); "crhook-test-crun"
# is that crun alone, for the tests that compare the two.
[engine.runtimes]
crhook-crun = ["'$DIR'/crhook-crun"]
crhook-test-crun = ["'$DIR'/crun"]'
write() { [ "$(cat "$1" 2>/dev/null)" = "$2" ] || { printf '%s\n' "$2" >"$1.tmp" && chmod "$3" "$1.tmp" && mv "$1.tmp" "$1"; }; }
write "$DIR/crhook-crun.toml" "$want_toml" 0644
write "$DIR/crhook-crun" "$want_wrapper" 0755
mkdir -p "$(dirname "$DROPIN")"
write "$DROPIN" "$want_dropin" 0644
say "podman runtime crhook-crun ready"
