#!/usr/bin/env bash
# Boots crhook's test guest once and runs one scenario script in it.
#
#   run.sh [options] SCENARIO [ARG...]
#     --selinux          boot with SELinux enforcing (security=selinux
#                        selinux=1 enforcing=1; init.sh loads the policy)
#     --timeout SEC      kill the guest after SEC seconds (default 900)
#     --link MODE:PORT   a second NIC on a point-to-point link to another
#                        guest: listen:PORT or connect:PORT (QEMU
#                        -netdev socket over 127.0.0.1)
#     --ip ADDR/PREFIX   the guest's address on that link
#     --mac MAC          the NIC's MAC (two guests on a link need two)
#     --share DIR        more files for the guest: copied into the share,
#                        which the scenario sees as its working directory
#
# The scenario's output streams to stdout as the guest writes it (second
# serial port); the exit status is the scenario's. When the guest reports
# no exit code (crash, hang, timeout) run.sh exits 125 after printing the
# tail of the guest's console. Each boot runs on a throw-away qcow2
# overlay of the cached disk, so nothing a scenario does outlives it.
#
# Environment: CRHOOK_GUEST_DISK (a disk directory from build-image.sh; by
# default build-image.sh is run, a no-op when cached), CRHOOK_GUEST_SMP
# (vCPUs, default 1: two TCG vCPUs on a loaded 2-core host stalled RCU
# for tens of seconds), CRHOOK_GUEST_MEM (MiB, default 2048),
# CRHOOK_GUEST_KEEP (keep the run directory and print its path).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

selinux=0 timeout=900 link="" ip="" mac=52:54:00:12:34:56 extra=()
while [ $# -gt 0 ]; do
	case $1 in
	--selinux) selinux=1 ;;
	--timeout) timeout=$2; shift ;;
	--link) link=$2; shift ;;
	--ip) ip=$2; shift ;;
	--mac) mac=$2; shift ;;
	--share) extra+=("$2"); shift ;;
	--) shift; break ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 1 ] || { sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p' >&2; exit 2; }
scenario=$1
shift
[ -f "$scenario" ] || { echo "run.sh: no scenario file $scenario" >&2; exit 2; }

qemu=$(command -v qemu-system-x86_64) || { echo "run.sh: qemu-system-x86_64 not installed (package qemu-system-x86)" >&2; exit 2; }
qboot=/usr/share/qemu/qboot.rom
[ -f "$qboot" ] || { echo "run.sh: $qboot missing (package qemu-system-data)" >&2; exit 2; }

disk=${CRHOOK_GUEST_DISK:-}
[ -n "$disk" ] || disk=$(bash "$here/build-image.sh")
[ -f "$disk/disk.img" ] || { echo "run.sh: no guest disk in $disk" >&2; exit 2; }

run=$(mktemp -d "${TMPDIR:-/tmp}/crhook-guest.XXXXXX")
qpid=""
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	if [ -n "${CRHOOK_GUEST_KEEP:-}" ]; then
		echo "run.sh: kept $run" >&2
	else
		rm -rf "$run"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

share=$run/share
mkdir -p "$share"
for d in "${extra[@]}"; do cp -a "$d/." "$share/"; done
cp "$scenario" "$share/scenario.sh"
cp "$here/scenarios/lib.sh" "$share/lib.sh"
basename "$scenario" >"$share/name"
: >"$share/args"
for a in "$@"; do printf '%s\n' "$a" >>"$share/args"; done
# crhook as `make install` lays it out (static: CGO_ENABLED=0 in the Makefile).
make -s -C "$repo" install DESTDIR="$share/install" >"$run/install.log" 2>&1 ||
	{ cat "$run/install.log" >&2; echo "run.sh: make install DESTDIR=$share/install failed" >&2; exit 2; }
# The scenarios' workload, static like crhook.
# converge: crhook's pre-copy stop rule on the rounds a scenario measured.
for helper in memtouch converge; do
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$share/$helper" "./tests/guest/$helper") ||
		{ echo "run.sh: building tests/guest/$helper failed" >&2; exit 2; }
done
# The policy modules the image was built with, for scenarios that reload
# or remove them.
cp -a "$disk/selinux" "$share/selinux" 2>/dev/null || true

qemu-img create -q -f qcow2 -F raw -b "$disk/disk.img" "$run/overlay.qcow2"

cmdline="console=ttyS0 panic=-1 loglevel=4 mitigations=off apparmor=0"
if [ "$selinux" = 1 ]; then
	cmdline+=" security=selinux selinux=1 enforcing=1"
else
	cmdline+=" selinux=0"
fi
net=(-nic none)
if [ -n "$link" ]; then
	mode=${link%%:*} port=${link#*:}
	case $mode in
	listen) net=(-netdev "socket,id=l0,listen=127.0.0.1:$port") ;;
	connect) net=(-netdev "socket,id=l0,connect=127.0.0.1:$port") ;;
	*) echo "run.sh: --link wants listen:PORT or connect:PORT, not $link" >&2; exit 2 ;;
	esac
	net+=(-device "virtio-net-pci,netdev=l0,mac=$mac")
	[ -n "$ip" ] && cmdline+=" crhook.ip=$ip"
fi

: >"$run/console.log" >"$run/output.log"
start=$SECONDS
"$qemu" -nodefaults -no-user-config -machine pc,accel=tcg -cpu max \
	-smp "${CRHOOK_GUEST_SMP:-1}" -m "${CRHOOK_GUEST_MEM:-2048}" \
	-bios "$qboot" -kernel "$disk/vmlinux" -initrd "$disk/initrd.cpio" -append "$cmdline" \
	-drive "file=$run/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
	-virtfs "local,path=$share,mount_tag=host,security_model=none" \
	"${net[@]}" -display none -no-reboot \
	-serial "file:$run/console.log" -serial "file:$run/output.log" \
	</dev/null >"$run/qemu.log" 2>&1 &
qpid=$!

# Stream the scenario's output while the guest runs.
tail -n +1 -f --pid="$qpid" "$run/output.log" &
tpid=$!
deadline=$((SECONDS + timeout))
while kill -0 "$qpid" 2>/dev/null; do
	if [ $SECONDS -ge $deadline ]; then
		echo "run.sh: guest still running after ${timeout}s: killing it" >&2
		kill "$qpid" 2>/dev/null
		break
	fi
	sleep 1
done
wait "$qpid" 2>/dev/null || true
qpid=""
wait "$tpid" 2>/dev/null || true

if [ -f "$share/rc" ]; then
	rc=$(cat "$share/rc")
	echo "run.sh: $(basename "$scenario") exited $rc after $((SECONDS - start)) s" >&2
	[ "$rc" = 0 ] || { echo "run.sh: guest console (last 40 lines):" >&2; tail -n 40 "$run/console.log" | sed 's/^/  | /' >&2; }
	exit "$rc"
fi
echo "run.sh: the guest reported no exit code after $((SECONDS - start)) s; QEMU said:" >&2
sed 's/^/  | /' "$run/qemu.log" >&2
echo "run.sh: guest console (last 60 lines):" >&2
tail -n 60 "$run/console.log" | sed 's/^/  | /' >&2
exit 125
