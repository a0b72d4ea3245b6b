#!/usr/bin/env bash
# hostb.sh: a second "host" on this machine for migration tests.
#
# Host B is a network namespace joined to the default one by a veth pair
# whose two addresses (a /30 out of 10.250.13.0/24, nothing else uses it)
# exist only on that pair: B has no route anywhere else. B runs its own
# sshd on its own address, with a host key and an authorized client key
# made for this instance, and has its own mount namespace in which
#   /run                    is a fresh tmpfs (runroot, /run/runc, /run/libpod,
#                           /run/crhook: B's runtime and crhook state dirs)
#   /var/lib/containers     is B's own storage root
#   /etc/containers, /etc/crhook, /etc/criu   are B's own copies
#   /sys/fs/cgroup/*        are B's own cgroup subtrees (crhook-b-NAME in
#                           each hierarchy, bind-mounted over the hierarchy):
#                           a container keeps its ID across a migration, and
#                           without them B's and A's copies would share one
#                           cgroup (a freezer frozen on B would freeze A's,
#                           deleting B's would kill A's)
# so B's podman, runc, CRIU and crhook use their default paths and still
# share nothing with the host's. Everything lives under $STATE and goes
# away with `down`, also after a test was killed (`up --guard PID`).
#
# usage: hostb.sh up [--guard PID] | down | exec CMD... | status
#   env: HOSTB_NAME (crhook-b), HOSTB_INDEX (0..63: the /30 used),
#        HOSTB_STATE (/var/lib/crhook-testhosts/$HOSTB_NAME)
# `up` prints the file of shell variables tests read (HOSTB_ADDR, HOSTA_ADDR,
# HOSTB_SSH_CONFIG, ...). Needs root, iproute2, openssh-server.
set -euo pipefail

NAME=${HOSTB_NAME:-crhook-b}
INDEX=${HOSTB_INDEX:-0}
STATE=${HOSTB_STATE:-/var/lib/crhook-testhosts/$NAME}
if ! [[ $NAME =~ ^[a-z0-9-]{1,12}$ ]] || ! [[ $INDEX =~ ^[0-9]+$ ]] || ((INDEX > 63)); then
	echo "hostb: HOSTB_NAME must be 1-12 of [a-z0-9-] and HOSTB_INDEX 0..63 (got \"$NAME\", \"$INDEX\")" >&2
	exit 2
fi
NET=10.250.13
ADDR_A=$NET.$((INDEX * 4 + 1)) # the default namespace's end of the pair
ADDR_B=$NET.$((INDEX * 4 + 2)) # host B
VETH_A=${NAME:0:11}a           # interface names stay under 15 bytes
VETH_B=${NAME:0:11}b
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "hostb[$NAME]: $*" >&2; }

# b_pid: the pid of B's sshd, which owns B's mount namespace, or nothing.
b_pid() {
	local pid
	pid=$(cat "$STATE/sshd.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(readlink "/proc/$pid/ns/mnt")" = "$(ns_id "$STATE/ns/mnt")" ] && echo "$pid"
	return 0
}

# in_b runs a command in B's mount and network namespaces, through their
# pins, so it works after B's sshd has died too.
in_b() {
	if [ -z "$(ns_id "$STATE/ns/mnt")" ] || [ -z "$(ns_id "/run/netns/$NAME")" ]; then
		log "not up (no namespaces pinned at $STATE/ns/mnt and /run/netns/$NAME): run hostb.sh up"
		return 1
	fi
	# B's processes live in B's cgroups: runc places a container whose
	# cgroupsPath is relative under its caller's own cgroup.
	local d
	for d in $(b_cgroups); do
		[ -d "$d" ] && echo $$ >"$d/cgroup.procs"
	done
	exec nsenter --mount="$STATE/ns/mnt" --net="/run/netns/$NAME" -- "$@"
}

# b_cgroups lists B's cgroup subtrees, one per hierarchy.
b_cgroups() {
	local m
	for m in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do
		echo "$m/crhook-b-$NAME"
	done
}

# b_pids lists every process that belongs to B: in B's network or mount
# namespace, in B's cgroups, or in the cgroup of a container of B's store
# (containers with --network none get a netns of their own and conmon may
# have died).
b_pids() {
	local netid mntid ids p
	netid=$(ns_id "/run/netns/$NAME")
	mntid=$(ns_id "$STATE/ns/mnt")
	ids=$(b_container_ids)
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		if { [ -n "$netid" ] && [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$netid" ]; } ||
			{ [ -n "$mntid" ] && [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$mntid" ]; }; then
			echo "$p"
		elif grep -qF "/crhook-b-$NAME/" "/proc/$p/cgroup" 2>/dev/null ||
			grep -qE ":/crhook-b-$NAME\$" "/proc/$p/cgroup" 2>/dev/null; then
			echo "$p"
		elif [ -n "$ids" ] && grep -qF -f <(echo "$ids") "/proc/$p/cgroup" 2>/dev/null; then
			echo "$p"
		fi
	done
}

# ns_id prints the namespace a pin file holds ("net:[4026532]"), or
# nothing when the pin is gone: a recorded id could by then name another
# namespace, so only a live pin is trusted.
ns_id() {
	local f=$1 kind
	findmnt -n -o FSTYPE --mountpoint "$f" 2>/dev/null | grep -qx nsfs || return 0
	kind=$(basename "$f")
	[ "$kind" = mnt ] || kind=net
	echo "$kind:[$(stat -L -c %i "$f")]"
}

b_container_ids() {
	local f=$STATE/var-lib-containers/storage/overlay-containers/containers.json
	[ -s "$f" ] && jq -r '.[].id' "$f" 2>/dev/null || true
}

down() {
	local pid ids id tries d
	# Kill the guard first (unless we are it) so it cannot race us.
	if [ -f "$STATE/guard.pid" ]; then
		pid=$(cat "$STATE/guard.pid")
		[ "$pid" != "$$" ] && [ "$pid" != "${GUARD_SELF:-}" ] && kill "$pid" 2>/dev/null || true
	fi
	if [ -n "$(ns_id "$STATE/ns/mnt")" ]; then
		# Containers of B's podman, and containers tests ran with B's runc
		# directly (their state is in B's /run/runc).
		timeout 60 "$0" exec podman rm -a -f -t 0 >/dev/null 2>&1 || log "podman rm in B failed; killing its processes"
		timeout 60 "$0" exec sh -c 'for id in $(runc list -q); do runc delete -f "$id"; done' >/dev/null 2>&1 ||
			log "runc delete in B failed"
	fi
	ids=$(b_container_ids)
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		pid=$(b_pids)
		[ -z "$pid" ] && break
		# shellcheck disable=SC2086
		kill -9 $pid 2>/dev/null || true
		sleep 0.2
	done
	[ -z "$(b_pids)" ] || log "processes of B survived SIGKILL: $(b_pids | tr '\n' ' ')"
	# Cgroups runc made for B's containers (cgroup v1: one per controller).
	for id in $ids; do
		for d in /sys/fs/cgroup/*/libpod_parent/libpod-"$id" /sys/fs/cgroup/*/libpod_parent/libpod-conmon-"$id" \
			/sys/fs/cgroup/libpod_parent/libpod-"$id" /sys/fs/cgroup/libpod_parent/libpod-conmon-"$id"; do
			[ -d "$d" ] && rmdir "$d" 2>/dev/null || true
		done
	done
	for d in $(b_cgroups); do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -d "$d" ] && log "cgroup $d left behind"
	done
	ip link del "$VETH_A" 2>/dev/null || true
	ip netns del "$NAME" 2>/dev/null || true
	if [ -d "$STATE/ns" ]; then
		umount "$STATE/ns/mnt" 2>/dev/null || true
		umount "$STATE/ns" 2>/dev/null || true
	fi
	# B's mounts lived in its own mount namespace, which died with its last
	# process; anything still mounted under $STATE here is a bug, but must
	# not make rm cross into it.
	if [ -d "$STATE" ]; then
		findmnt -rn -o TARGET | grep -F "$STATE" | sort -r | while read -r d; do umount -l "$d" || true; done || true
		rm -rf --one-file-system "$STATE"
	fi
	rmdir "$(dirname "$STATE")" 2>/dev/null || true
	return 0
}

# inside_b runs in B's new mount namespace (see up): it makes B's private
# directories and becomes B's sshd.
inside_b() {
	mount -t tmpfs -o mode=0755 "tmpfs-$NAME" /run
	mkdir -p /run/sshd /run/lock
	mount --bind "$STATE/var-lib-containers" /var/lib/containers
	local d
	for d in containers crhook criu; do
		[ -d "$STATE/etc/$d" ] && mount --bind "$STATE/etc/$d" "/etc/$d"
	done
	# Each hierarchy's mount is replaced by B's subtree, and B's sshd (so
	# every session) moves into it: runc and podman in B make their cgroups
	# there. Replaced, not covered: runc takes the first mount of a
	# hierarchy it finds in mountinfo. (No cgroup namespace: CRIU reads the
	# real paths from /proc/PID/cgroup and mountinfo's root, as runc does.)
	local m stage
	for d in $(b_cgroups); do
		m=$(dirname "$d")
		stage=/run/crhook-cgroup/$(basename "$m")
		mkdir -p "$d" "$stage"
		if [ -f "$m/cpuset.cpus" ]; then # an empty cpuset takes no task
			cat "$m/cpuset.cpus" >"$d/cpuset.cpus"
			cat "$m/cpuset.mems" >"$d/cpuset.mems"
		fi
		echo $$ >"$d/cgroup.procs"
		mount --bind "$d" "$stage"
		umount "$m"
		mount --bind "$stage" "$m"
		umount "$stage"
	done
	rm -rf /run/crhook-cgroup
	exec /usr/sbin/sshd -D -f "$STATE/sshd_config" -E "$STATE/sshd.log"
}

up() {
	local guard=
	if [ "${1:-}" = --guard ]; then
		guard=${2:?--guard needs a pid}
		[ -d "/proc/$guard" ] || { log "guard pid $guard does not exist"; exit 2; }
	fi
	if [ -n "$(b_pid)" ] && ssh -F "$STATE/ssh_config" "$NAME" true 2>/dev/null; then
		log "already up at $ADDR_B"
		[ -z "$guard" ] || start_guard "$guard"
		echo "$STATE/env"
		return
	fi
	down # leftovers of an earlier run, killed before it could clean up
	for tool in ip nsenter unshare ssh ssh-keygen /usr/sbin/sshd jq; do
		command -v "$tool" >/dev/null || { log "missing $tool: run tests/setup-host.sh"; exit 1; }
	done
	# Anything that fails from here on takes B down again.
	trap 'rc=$?; log "up failed (line $LINENO); tearing down"; down; exit $rc' ERR
	trap 'down; exit 130' INT TERM

	mkdir -p "$STATE/var-lib-containers" "$STATE/etc"
	chmod 0700 "$STATE"
	for d in containers crhook criu; do
		[ -d "/etc/$d" ] && cp -a "/etc/$d" "$STATE/etc/$d"
	done

	ip netns add "$NAME"
	# B's mount namespace is pinned to a file, like ip pins the netns, so
	# its identity cannot be reused by another namespace before `down`
	# (which kills by namespace) has run. Pinning needs a private mount.
	mkdir -p "$STATE/ns"
	mount --bind "$STATE/ns" "$STATE/ns"
	mount --make-private "$STATE/ns"
	touch "$STATE/ns/mnt"
	ip link add "$VETH_A" type veth peer name "$VETH_B" netns "$NAME"
	ip addr add "$ADDR_A/30" dev "$VETH_A"
	ip link set "$VETH_A" up
	ip -n "$NAME" addr add "$ADDR_B/30" dev "$VETH_B"
	ip -n "$NAME" link set "$VETH_B" up
	ip -n "$NAME" link set lo up

	# Keys made for this instance only: B's host key, pinned in the
	# client's known_hosts, and the one client key B accepts.
	ssh-keygen -q -t ed25519 -N '' -C "$NAME host" -f "$STATE/ssh_host_ed25519_key"
	ssh-keygen -q -t ed25519 -N '' -C "$NAME client" -f "$STATE/id_ed25519"
	cp "$STATE/id_ed25519.pub" "$STATE/authorized_keys"
	echo "$ADDR_B $(cat "$STATE/ssh_host_ed25519_key.pub")" >"$STATE/known_hosts"
	cat >"$STATE/sshd_config" <<-EOF
		ListenAddress $ADDR_B
		Port 22
		HostKey $STATE/ssh_host_ed25519_key
		PidFile $STATE/sshd.pid
		AuthorizedKeysFile $STATE/authorized_keys
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		AllowTcpForwarding no
		X11Forwarding no
		PermitUserEnvironment no
		MaxStartups 100
		Subsystem sftp internal-sftp
	EOF
	cat >"$STATE/ssh_config" <<-EOF
		Host $NAME $ADDR_B
		  HostName $ADDR_B
		  User root
		  Port 22
		  IdentityFile $STATE/id_ed25519
		  IdentitiesOnly yes
		  UserKnownHostsFile $STATE/known_hosts
		  GlobalKnownHostsFile /dev/null
		  StrictHostKeyChecking yes
		  BatchMode yes
		  ConnectTimeout 5
		  ServerAliveInterval 2
		  ServerAliveCountMax 3
	EOF
	# (sshd -t needs /run/sshd, which exists only inside B)

	# B's sshd gets its own mount namespace (a slave of the host's, so
	# B's mounts never show up here) and B's network namespace.
	# nsenter rather than `ip netns exec`, which would remount /sys and
	# with it hide the cgroup hierarchy podman needs.
	setsid nsenter --net="/run/netns/$NAME" -- unshare --mount="$STATE/ns/mnt" --propagation slave -- \
		env HOSTB_NAME="$NAME" HOSTB_INDEX="$INDEX" HOSTB_STATE="$STATE" "$0" _inside </dev/null >>"$STATE/inside.log" 2>&1 &
	local deadline=$((SECONDS + 20))
	until [ -n "$(b_pid)" ] && ssh -F "$STATE/ssh_config" "$NAME" true 2>/dev/null; do
		if ((SECONDS > deadline)); then
			log "sshd in B did not answer within 20 s"
			cat "$STATE/inside.log" "$STATE/sshd.log" >&2 2>/dev/null || true
			false
		fi
		sleep 0.1
	done

	cat >"$STATE/env" <<-EOF
		HOSTB_NAME=$NAME
		HOSTB_ADDR=$ADDR_B
		HOSTA_ADDR=$ADDR_A
		HOSTB_STATE=$STATE
		HOSTB_SSH_CONFIG=$STATE/ssh_config
		HOSTB_SSH_KEY=$STATE/id_ed25519
		HOSTB_KNOWN_HOSTS=$STATE/known_hosts
		HOSTB_SSH_URL=ssh://root@$ADDR_B:22
	EOF
	trap - ERR INT TERM
	[ -z "$guard" ] || start_guard "$guard"
	log "up: $ADDR_B (ssh -F $STATE/ssh_config $NAME)"
	echo "$STATE/env"
}

# start_guard tears B down when process PID ends, however it ends (a test
# killed by SIGKILL or a go test timeout runs no cleanup of its own).
start_guard() {
	local pid=$1
	setsid env HOSTB_NAME="$NAME" HOSTB_INDEX="$INDEX" HOSTB_STATE="$STATE" "$0" _guard "$pid" </dev/null >/dev/null 2>&1 &
	echo $! >"$STATE/guard.pid"
}

guard() {
	local pid=$1
	while [ -d "/proc/$pid" ]; do sleep 1; done
	GUARD_SELF=$$ down
}

case ${1:-} in
up)
	shift
	up "$@"
	;;
down) down ;;
exec)
	shift
	in_b "$@"
	;;
status)
	if [ -n "$(b_pid)" ]; then echo "up $ADDR_B pid $(b_pid)"; else
		echo down
		exit 1
	fi
	;;
_inside) inside_b ;;
_guard) guard "$2" ;;
*)
	echo "usage: $0 up [--guard PID] | down | exec CMD... | status" >&2
	exit 2
	;;
esac
