#!/usr/bin/env bash
# Brings a fresh Debian 12 machine (as root) to what crhook's tests and demo
# need. Idempotent: every step checks before it acts, and downloads and the
# CRIU build are cached under $CRHOOK_CACHE so reruns take seconds.
set -euo pipefail

CACHE=${CRHOOK_CACHE:-/var/cache/crhook}
CRIU_VERSION=4.2.1
CRIU_DEB_VERSION=4.2.1-1
# SHA256 of Debian's criu_4.2.1.orig.tar.xz, as apt's Sources index gives it.
CRIU_ORIG_SHA256=29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9
IMAGE=localhost/crhook-test/busybox

PACKAGES=(
	podman runc crun conmon uidmap slirp4netns fuse-overlayfs iptables
	containernetworking-plugins busybox-static jq xz-utils dpkg-dev curl ca-certificates openssh-server openssh-client
	# CRIU build dependencies (DESIGN.md)
	build-essential pkg-config libprotobuf-dev libprotobuf-c-dev
	protobuf-c-compiler protobuf-compiler python3-protobuf libnl-3-dev
	libnet1-dev libcap-dev libbsd-dev libgnutls28-dev libnftables-dev
	uuid-dev libaio-dev
	# CRIU restores SELinux process labels only when linked with libselinux
	libselinux1-dev
	# SELinux policy checks and RPM packaging (later issues)
	selinux-policy-dev selinux-policy-default checkpolicy semodule-utils setools policycoreutils
	rpm rpmlint go-md2man
	# the QEMU guest of tests/guest (soft-dirty, SELinux enforcing)
	qemu-system-x86 qemu-utils mmdebstrap cpio
	# runtime libraries of bookworm's criu 3.17, which doctor's tests unpack
	libbsd0 libgnutls30 libnet1 libnftables1 libnl-3-200 libprotobuf-c1
)

step_name=""
step_start=0
step() {
	step_name=$1
	step_start=${EPOCHREALTIME/./}
	printf 'setup: %-14s ...\n' "$step_name"
}
done_step() {
	local us=$((${EPOCHREALTIME/./} - step_start))
	printf 'setup: %-14s %s (%d.%01ds)\n' "$step_name" "$1" $((us / 1000000)) $((us / 100000 % 10))
}
trap 'echo "setup: FAILED in step \"$step_name\" (line $LINENO); see the output above" >&2' ERR

if [ "$(id -u)" != 0 ]; then
	echo "setup: must run as root (it installs packages and builds CRIU)" >&2
	exit 1
fi
mkdir -p "$CACHE"

step packages
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$CACHE/apt-install.log" 2>&1 ||
		{ tail -n 30 "$CACHE/apt-install.log" >&2; false; }
	done_step "installed ${#missing[@]}: ${missing[*]}"
else
	done_step "all present"
fi

# criu_works CRIU: `criu check` passes and a process holding a TCP socket can
# be dumped. CRIU 3.17 fails the first on kernel 6.18 (vDSO bounds), 4.1.1
# the second on kernel >= 6.16 ("Can't get 1:16 opt").
criu_works() {
	local criu=$1 dir pid port rc=0
	"$criu" check >/dev/null 2>&1 || return 1
	dir=$(mktemp -d)
	port=$((20000 + RANDOM % 20000))
	# The listener holds its socket and nothing else: an inherited locked fd
	# (`flock /tmp/crhook-host.lock make test`, a CI runner's) makes CRIU
	# refuse the dump ("Some file locks are hold by dumping tasks").
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
		done
		exec setsid busybox nc -l -p "$port" </dev/null >/dev/null 2>&1
	) &
	pid=$!
	for _ in $(seq 50); do
		grep -q ":$(printf '%04X' "$port") " /proc/net/tcp 2>/dev/null && break
		sleep 0.1
	done
	"$criu" dump -t "$pid" -D "$dir" -o dump.log --leave-running >/dev/null 2>&1 || rc=1
	[ $rc = 0 ] || sed -n '/Error/p' "$dir/dump.log" | head -n 3 >&2
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
	return $rc
}

# criu_has_selinux CRIU: linked with libselinux, without which restored
# containers lose their SELinux label (crhook doctor's criu.selinux).
# Not `ldd | grep -q`: grep quits at the first match, ldd dies of SIGPIPE,
# and pipefail turns the match into a failure.
criu_has_selinux() { [[ "$(ldd "$1" 2>/dev/null)" == *libselinux.so* ]]; }

step criu
have=$(command -v criu || true)
if [ -n "$have" ] && criu_works "$have" && criu_has_selinux "$have"; then
	done_step "kept $have ($("$have" --version | head -n 1))"
else
	# criu-selinux/: a build from before libselinux1-dev was a build
	# dependency (in $CACHE/criu-$CRIU_VERSION) must not be reused.
	build="$CACHE/criu-selinux/criu-$CRIU_VERSION"
	if [ ! -x "$build/criu/criu" ]; then
		tarball="$CACHE/criu_$CRIU_VERSION.orig.tar.xz"
		if ! echo "$CRIU_ORIG_SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
			# A private apt state with a deb-src entry for sid, built from
			# the host's own mirror, so the host's apt lists stay untouched.
			uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
			apt_dir="$CACHE/apt-sid-src"
			mkdir -p "$apt_dir/lists/partial"
			cat >"$apt_dir/sid-src.sources" <<-EOF
				Types: deb-src
				URIs: $uri
				Suites: sid
				Components: main
				Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
			EOF
			aptopts=(-o "Dir::Etc::SourceList=$apt_dir/sid-src.sources" -o "Dir::Etc::SourceParts=$apt_dir/none"
				-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
			apt-get "${aptopts[@]}" update -qq
			url=$(apt-get "${aptopts[@]}" source --print-uris "criu=$CRIU_DEB_VERSION" 2>/dev/null |
				awk -v f="criu_$CRIU_VERSION.orig.tar.xz" '$2 == f {gsub("\x27", "", $1); print $1}')
			[ -n "$url" ] || { echo "setup: apt knows no criu=$CRIU_DEB_VERSION source in sid" >&2; false; }
			curl -fsSL -o "$tarball.part" "$url"
			echo "$CRIU_ORIG_SHA256  $tarball.part" | sha256sum -c --status ||
				{ echo "setup: SHA256 mismatch for $url" >&2; rm -f "$tarball.part"; false; }
			mv "$tarball.part" "$tarball"
		fi
		rm -rf "$build"
		mkdir -p "$CACHE/criu-selinux"
		tar -C "$CACHE/criu-selinux" -xf "$tarball"
		make -C "$build" -j"$(nproc)" criu >"$CACHE/criu-build.log" 2>&1 ||
			{ tail -n 30 "$CACHE/criu-build.log" >&2; false; }
	fi
	install -m 0755 "$build/criu/criu" /usr/local/sbin/criu
	hash -r
	criu_works /usr/local/sbin/criu ||
		{ echo "setup: CRIU $CRIU_VERSION built but fails check or a TCP dump on $(uname -r)" >&2; false; }
	criu_has_selinux /usr/local/sbin/criu ||
		{ echo "setup: CRIU $CRIU_VERSION built without libselinux (see $CACHE/criu-build.log)" >&2; false; }
	done_step "installed /usr/local/sbin/criu ($(/usr/local/sbin/criu --version | head -n 1))"
fi

step limits
# Without CAP_SYS_RESOURCE runc cannot raise rlimits, and podman's default
# nofile=1048576 then fails every container ("error setting rlimit type 7").
# Test hosts get default ulimits this host can grant; real hosts have the
# capability and are left alone (crhook doctor reports the same check).
dropin=/etc/containers/containers.conf.d/60-crhook-test-ulimits.conf
capeff=$(awk '/^CapEff:/{print $2}' /proc/self/status)
if (( (16#$capeff >> 24) & 1 )); then
	done_step "CAP_SYS_RESOURCE present: podman defaults kept"
elif [ -f "$dropin" ]; then
	done_step "kept $dropin"
else
	mkdir -p "$(dirname "$dropin")"
	cat >"$dropin" <<-EOF
		# Written by crhook's tests/setup-host.sh: this host lacks CAP_SYS_RESOURCE,
		# so podman's default nofile=1048576 would make runc fail.
		[containers]
		default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
	EOF
	done_step "wrote $dropin"
fi

step image
if podman image exists "$IMAGE"; then
	done_step "kept $IMAGE"
else
	root=$(mktemp -d)
	mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/var/lock"
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	tar -C "$root" -cf "$CACHE/busybox-rootfs.tar" .
	rm -rf "$root"
	podman import -q --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
		"$CACHE/busybox-rootfs.tar" "$IMAGE" >/dev/null
	done_step "built $IMAGE from busybox-static"
fi

bash "$(dirname "$0")/setup-crun.sh"
bash "$(dirname "$0")/setup-containerd.sh"

echo "setup: host ready"
