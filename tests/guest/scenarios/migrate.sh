#!/bin/sh
# Cross-kernel migration between two guests on their private link
# (run.sh --link): `crhook migrate --mode stream` of one podman container
# running memtouch, then `crhook migrate --mode lazy` of another, from
# guest "a" to guest "b", over ssh on the link.
#
#   migrate.sh a|b MY_ADDR PEER_ADDR
#
# The share holds ssh/ (made per run by guest_test.go): id, id.pub (a's
# client key, authorized on b), host_key, host_key.pub (b's sshd key,
# known to a). b runs sshd and waits; a drives the migration and checks
# both ends over ssh; b checks every page of the container it received
# and that it keeps running. b stays up until a says it is done.
#
# Asserted, for each: the migration succeeds (JSON summary phase done,
# source stopped, its mode); on b the container runs and memtouch verifies
# every page (streamed into b's page server, or faulted in from a's) and
# keeps writing (heartbeat); on a the container is stopped and its
# memtouch gone: exactly one running copy.
. ./lib.sh

role=$1 me=$2 peer=$3
IMAGE=localhost/crhook-test/busybox
NAME=mig
SNAME=mig-stream # the container moved with --mode stream
# Small: under TCG each lazily faulted page costs ~65 ms (8 MiB took
# 130 s to fault in on b), so the test's time is this size.
MIB=${MIGRATE_MIB:-4}
SSHD_PORT=22

step "setup ($role: $me -> $peer)"
must "eth0 has $me" sh -c "ip -4 addr show eth0 | grep -q 'inet $me/'"
must "ssh keys in the share" test -f ssh/id -a -f ssh/host_key
must "test image imported" sh -c "podman image exists $IMAGE || podman import -q --change 'CMD [\"/bin/sh\"]' --change 'ENV PATH=/bin' /var/lib/crhook-test/busybox-rootfs.tar $IMAGE"
# Both ends: the bind mount's source must exist where the container
# lands, as it would for any bind-mounted volume.
mkdir -p /var/lib/crhook-test/bin
cp memtouch /var/lib/crhook-test/bin/memtouch
must "peer $peer answers ping" poll 120 busybox ping -c 1 -W 1 "$peer"
pass "ping: $(busybox ping -c 3 -q "$peer" | tail -n 1)"

# verify [CONTAINER]: make memtouch check every page; prints its verify
# line. Counts the lines first: podman's log may hold older ones.
verify() {
	_c=${1:-$NAME}
	_before=$(podman logs $_c 2>/dev/null | grep -c '^verify')
	podman kill -s USR1 $_c >/dev/null || return 1
	poll 180 sh -c "[ \$(podman logs $_c 2>/dev/null | grep -c '^verify') -gt $_before ]" || return 1
	podman logs $_c | grep '^verify' | tail -n 1
}

if [ "$role" = b ]; then
	# ------------------------------------------------------------ b
	step "sshd on $me"
	mkdir -p /root/.ssh /run/sshd /etc/crhook-test-ssh
	cp ssh/host_key ssh/host_key.pub /etc/crhook-test-ssh/
	chmod 600 /etc/crhook-test-ssh/host_key
	cp ssh/id.pub /root/.ssh/authorized_keys
	chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys
	cat >/etc/crhook-test-ssh/sshd_config <<EOF
ListenAddress $me:$SSHD_PORT
HostKey /etc/crhook-test-ssh/host_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
EOF
	must "sshd starts" /usr/sbin/sshd -f /etc/crhook-test-ssh/sshd_config -E /tmp/sshd.log
	touch /tmp/b-ready

	# receive CONTAINER HOW: wait for CONTAINER to run here, then check it.
	receive() {
		_c=$1 _how=$2
		step "wait for container $_c"
		# a touches /tmp/migrate-done when it ends, early on a failure too.
		poll 600 sh -c "podman inspect -f '{{.State.Status}}' $_c 2>/dev/null | grep -qx running || test -e /tmp/migrate-done"
		if podman inspect -f '{{.State.Status}}' $_c 2>/dev/null | grep -qx running; then
			pass "container $_c runs here after the migration"
		else
			fail "container $_c never ran here (sshd log below)"
			tail -n 20 /tmp/sshd.log | indent
			return
		fi
		check "$_c runs under the crhook runtime" sh -c "podman inspect -f '{{.OCIRuntime}}' $_c | grep -qx crhook"
		if line=$(verify $_c); then
			case $line in
			"verify ok"*) pass "every page of $_c verified here ($_how): $line" ;;
			*) fail "page check of $_c here: $line" ;;
			esac
			w1=$(echo "$line" | sed -n 's/.*writes=\([0-9]*\).*/\1/p')
			if line2=$(verify $_c); then
				w2=$(echo "$line2" | sed -n 's/.*writes=\([0-9]*\).*/\1/p')
				[ "${w2:-0}" -gt "${w1:-0}" ] && case $line2 in "verify ok"*) true ;; *) false ;; esac &&
					pass "heartbeat: memtouch in $_c keeps writing (writes $w1 -> $w2), pages still intact" ||
					fail "heartbeat of $_c: writes $w1 -> ${w2:-?}: $line2"
			else
				fail "memtouch in $_c did not answer a second SIGUSR1"
			fi
		else
			fail "memtouch in $_c did not answer SIGUSR1 here"
			ps -eo pid,stat,time,args | grep -v ' \[' | tail -n 15 | indent
			tail -n 15 /run/crhook/migrations/*/lazy-pages.log /run/crhook/migrations/*/page-server.log 2>&1 | indent
		fi
	}
	receive $SNAME "streamed into this host's page server from $peer"
	echo ok >/tmp/b-stream-verified
	receive $NAME "faulted in from $peer"
	echo ok >/tmp/b-verified
	step "wait for $peer to finish"
	check "$peer says it is done" poll 600 test -e /tmp/migrate-done
	podman rm -f -t 0 $NAME $SNAME >/dev/null 2>&1
	summary
	exit
fi

# ---------------------------------------------------------------- a
step "ssh to $peer"
mkdir -p /root/.ssh && chmod 700 /root/.ssh
cp ssh/id /root/.ssh/crhook-test-id && chmod 600 /root/.ssh/crhook-test-id
echo "$peer $(cat ssh/host_key.pub)" >/root/.ssh/crhook-test-known_hosts
cat >/root/.ssh/crhook-test-config <<EOF
Host guestb
  HostName $peer
  Port $SSHD_PORT
  User root
  IdentityFile /root/.ssh/crhook-test-id
  IdentitiesOnly yes
  UserKnownHostsFile /root/.ssh/crhook-test-known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 20
EOF
CFG=/root/.ssh/crhook-test-config
onb() { ssh -F $CFG guestb "$@"; }
must "ssh to $peer (key auth, known host key)" poll 300 onb test -e /tmp/b-ready
# However this ends, b stops waiting.
trap 'onb touch /tmp/migrate-done 2>/dev/null' EXIT

for c in $SNAME $NAME; do
	step "container $c on $me"
	must "podman --runtime crhook run $c" podman --runtime crhook run -d --name $c --network none \
		-v /var/lib/crhook-test/bin:/t:ro "$IMAGE" /t/memtouch -mib "$MIB" -dirty 32 -interval 50ms
	must "memtouch in $c filled $MIB MiB" poll 120 sh -c "podman logs $c | grep -q ^ready"
	line=$(verify $c) && case $line in "verify ok"*) pass "pages of $c verified before the migration: $line" ;;
	*) fail "page check of $c before the migration: $line" ;; esac
done

step "crhook migrate --mode stream $SNAME ssh://guestb"
t1=$(cut -d' ' -f1 /proc/uptime)
if crhook migrate $SNAME ssh://guestb --mode stream --ssh-config $CFG --format json \
	--connect-timeout 60s --no-progress-timeout 60s --timeout 5m >/tmp/summary-stream.json 2>/tmp/migrate-stream.err; then
	pass "crhook migrate --mode stream exited 0 after $(awk -v a="$t1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s"
else
	fail "crhook migrate --mode stream failed"
	tail -n 30 /tmp/migrate-stream.err | indent
	tail -n 15 /run/crhook/migrations/*/dump.out 2>&1 | indent
fi
indent </tmp/summary-stream.json
check "stream summary: phase done" grep -q '"phase": *"done"' /tmp/summary-stream.json
check "stream summary: source stopped" grep -q '"source_state": *"stopped"' /tmp/summary-stream.json
check "stream summary: mode stream" grep -q '"mode": *"stream"' /tmp/summary-stream.json
st=$(podman inspect -f '{{.State.Status}}' $SNAME 2>&1)
case $st in
running) fail "the source container $SNAME still runs here" ;;
*) pass "source container $SNAME here: $st" ;;
esac
check "no frozen copy of $SNAME here (runc list)" sh -c "! runc list -q | grep -q \$(podman inspect -f '{{.ID}}' $SNAME)"
check "$peer finished checking the streamed copy" poll 400 onb test -e /tmp/b-stream-verified

step "crhook migrate --mode lazy $NAME ssh://guestb"
t1=$(cut -d' ' -f1 /proc/uptime)
if crhook migrate $NAME ssh://guestb --mode lazy --ssh-config $CFG --format json \
	--connect-timeout 60s --no-progress-timeout 60s --timeout 5m >/tmp/summary.json 2>/tmp/migrate.err; then
	pass "crhook migrate exited 0 after $(awk -v a="$t1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s"
else
	fail "crhook migrate failed"
	tail -n 30 /tmp/migrate.err | indent
	tail -n 15 /run/crhook/migrations/*/page-server.out 2>&1 | indent
fi
indent </tmp/summary.json
check "summary: phase done" grep -q '"phase": *"done"' /tmp/summary.json
check "summary: source stopped" grep -q '"source_state": *"stopped"' /tmp/summary.json
check "summary: mode lazy" grep -q '"mode": *"lazy"' /tmp/summary.json

step "exactly one running copy"
st=$(podman inspect -f '{{.State.Status}}' $NAME 2>&1)
case $st in
running) fail "the source container still runs here" ;;
*) pass "source container here: $st" ;;
esac
check "no memtouch process here" sh -c '! pgrep -x memtouch'
if onb podman inspect -f '{{.State.Status}}' $NAME 2>&1 | grep -qx running; then
	pass "the container runs on $peer"
	# b asserts its copy's pages itself (its own PASS/FAIL lines).
	check "$peer finished checking its copy" poll 400 onb test -e /tmp/b-verified
	n=$(onb pgrep -c -x memtouch)
	check "both memtouch processes run on $peer ($n)" test "$n" = 2
else
	# Not waiting for b's page check: it waits for a running container.
	fail "the container does not run on $peer"
fi
podman rm -f -t 0 $NAME $SNAME >/dev/null 2>&1
summary
