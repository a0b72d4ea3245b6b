#!/bin/sh
# Cross-kernel migration between two guests on their private link
# (run.sh --link): `crhook migrate` of podman containers running
# memtouch, from guest "a" to guest "b", over ssh on the link, once per
# mode in $MODES (one container each, named mig-MODE).
#
#   migrate.sh a|b MY_ADDR PEER_ADDR
#
# The share holds ssh/ (made per run by guest_test.go): id, id.pub (a's
# client key, authorized on b), host_key, host_key.pub (b's sshd key,
# known to a). b runs sshd and waits; a drives each migration and checks
# both ends over ssh; b checks every page of each container it received
# and that it keeps running. b stays up until a says it is done.
#
# Asserted for each mode: the migration succeeds (JSON summary phase
# done, the mode asked for, source stopped); on b the container runs and
# memtouch verifies every page (lazy: each faulted in from a's page
# server; stream: all received by b's page server before the restore)
# and keeps writing (heartbeat); on a the container is stopped and its
# memtouch gone: exactly one running copy. precopy (pre-dump rounds into
# b's page servers, then a streamed final dump on top of the last round):
# at least two rounds, the stop rule's verdict and reason after each
# logged, "continue" until the last, which stops. precopy-lazy is
# precopy with --final lazy (pre-copy and post-copy combined): the same,
# and the summary says the final dump was lazy.
#
# Then fault injection into pre-copy (FAULTS), one container each, the
# fault injected on b by inject.sh (below) while a migrates: (a) a round's
# page server killed mid-round, (b) the final page server killed mid-dump
# (stream final), (c) the destination's restore failing (a namesake
# container there), (d) with --final lazy, the lazy-pages daemon killed
# after the destination ran. After each the promises are checked: the
# migration fails and says so; exactly one copy: the source runs here
# with every page ((a)-(c)), or, after (d), the destination was killed
# and nothing runs (never a page read as zeros); nothing of the
# migration is left on b.
. ./lib.sh

role=$1 me=$2 peer=$3
IMAGE=localhost/crhook-test/busybox
# The modes, in order; b receives in the same order.
MODES=${MIGRATE_MODES:-stream lazy precopy precopy-lazy}
# The pre-copy faults, after the modes (a only: b just serves).
FAULTS=${MIGRATE_FAULTS:-round-killed final-killed restore-fails lazy-daemon-killed}
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

# verify NAME: make memtouch check every page; prints its verify line.
# Counts the lines first: podman's log may hold older ones.
verify() {
	_before=$(podman logs "$1" 2>/dev/null | grep -c '^verify')
	podman kill -s USR1 "$1" >/dev/null || return 1
	poll 180 sh -c "[ \$(podman logs $1 2>/dev/null | grep -c '^verify') -gt $_before ]" || return 1
	podman logs "$1" | grep '^verify' | tail -n 1
}

# receive MODE (b): wait for container mig-MODE to run here (a touches
# /tmp/sent-MODE when its migrate returned, /tmp/migrate-done when it
# ends), check every page and the heartbeat, then tell a.
receive() {
	_n=mig-$1
	step "receive $_n ($1)"
	poll 600 sh -c "podman container inspect -f '{{.State.Status}}' $_n 2>/dev/null | grep -qx running || test -e /tmp/sent-$1 || test -e /tmp/migrate-done"
	if podman container inspect -f '{{.State.Status}}' $_n 2>/dev/null | grep -qx running; then
		pass "$1: container $_n runs here after the migration"
	else
		fail "$1: container $_n never ran here (sshd log below)"
		tail -n 20 /tmp/sshd.log | indent
		echo ok >/tmp/b-verified-$1
		return
	fi
	check "$1: it runs under the crhook runtime" sh -c "podman container inspect -f '{{.OCIRuntime}}' $_n | grep -qx crhook"
	if line=$(verify $_n); then
		case $line in
		"verify ok"*) pass "$1: every page verified here: $line" ;;
		*) fail "$1: page check here: $line" ;;
		esac
		w1=$(echo "$line" | sed -n 's/.*writes=\([0-9]*\).*/\1/p')
		if line2=$(verify $_n); then
			w2=$(echo "$line2" | sed -n 's/.*writes=\([0-9]*\).*/\1/p')
			[ "${w2:-0}" -gt "${w1:-0}" ] && case $line2 in "verify ok"*) true ;; *) false ;; esac &&
				pass "$1: heartbeat: memtouch keeps writing (writes $w1 -> $w2), pages still intact" ||
				fail "$1: heartbeat: writes $w1 -> ${w2:-?}: $line2"
		else
			fail "$1: memtouch did not answer a second SIGUSR1"
		fi
	else
		fail "$1: memtouch did not answer SIGUSR1 here"
		ps -eo pid,stat,time,args | grep -v ' \[' | tail -n 15 | indent
		tail -n 15 /run/crhook/migrations/*/*.log 2>&1 | indent
	fi
	echo ok >/tmp/b-verified-$1
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
	for mode in $MODES; do
		receive "$mode"
	done
	step "wait for $peer to finish"
	check "$peer says it is done" poll 900 test -e /tmp/migrate-done
	for mode in $MODES; do podman rm -f -t 0 mig-$mode >/dev/null 2>&1; done
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

# send MODE: start mig-MODE here, migrate it to b with --mode MODE, check
# the summary and that exactly one copy runs; b checks the pages.
send() {
	_n=mig-$1 _mode=$1 _final=""
	[ "$1" = precopy-lazy ] && _mode=precopy _final="--final lazy"
	# precopy: a write rate its rounds can outrun (4 pages per 100 ms,
	# 160 KiB/s; 32 per 50 ms would dirty all 4 MiB within one TCG round),
	# and a budget no round under TCG meets at first (each takes seconds),
	# so the stop rule says continue before it stops.
	_dirty="-dirty 32 -interval 50ms" _extra=""
	[ "$_mode" = precopy ] && _dirty="-dirty 4 -interval 100ms" _extra="--max-downtime 300ms $_final"
	step "container $_n on $me"
	# shellcheck disable=SC2086 # _dirty is two flags
	if ! check "$1: podman --runtime crhook run" podman --runtime crhook run -d --name $_n --network none \
		-v /var/lib/crhook-test/bin:/t:ro "$IMAGE" /t/memtouch -mib "$MIB" $_dirty ||
		! check "$1: memtouch filled $MIB MiB" poll 120 sh -c "podman logs $_n | grep -q ^ready"; then
		onb touch /tmp/sent-$1
		return
	fi
	line=$(verify $_n) && case $line in "verify ok"*) pass "$1: pages verified before the migration: $line" ;;
	*) fail "$1: page check before the migration: $line" ;; esac

	step "crhook migrate --mode $_mode $_final $_n ssh://guestb"
	t1=$(cut -d' ' -f1 /proc/uptime)
	# shellcheck disable=SC2086 # _extra is flags
	if crhook migrate $_n ssh://guestb --mode "$_mode" $_extra --ssh-config $CFG --format json \
		--connect-timeout 60s --no-progress-timeout 60s --timeout 5m >/tmp/summary-$1.json 2>/tmp/migrate-$1.err; then
		pass "$1: crhook migrate exited 0 after $(awk -v a="$t1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s"
	else
		fail "$1: crhook migrate failed"
		tail -n 30 /tmp/migrate-$1.err | indent
		tail -n 15 /run/crhook/migrations/*/*.out 2>&1 | indent
		podman logs $_n 2>&1 | tail -n 5 | indent
	fi
	onb touch /tmp/sent-$1
	indent </tmp/summary-$1.json
	check "$1: summary: phase done" grep -q '"phase": *"done"' /tmp/summary-$1.json
	check "$1: summary: source stopped" grep -q '"source_state": *"stopped"' /tmp/summary-$1.json
	check "$1: summary: mode $_mode" grep -q "\"mode\": *\"$_mode\"" /tmp/summary-$1.json
	if [ "$_mode" = precopy ]; then
		precopy_rounds /tmp/summary-$1.json
		_want=stream
		[ -n "$_final" ] && _want=lazy
		check "$1: summary: final dump $_want" grep -q "\"final_dump\": *\"$_want\"" /tmp/summary-$1.json
	fi

	step "$1: exactly one running copy"
	st=$(podman container inspect -f '{{.State.Status}}' $_n 2>&1)
	case $st in
	running) fail "$1: the source container still runs here" ;;
	*) pass "$1: source container here: $st" ;;
	esac
	check "$1: no memtouch process here" sh -c '! pgrep -x memtouch'
	# Polled: b's podman is busy with its own checks of the container.
	if poll 60 sh -c "ssh -F $CFG guestb podman container inspect -f '{{.State.Status}}' $_n 2>/dev/null | grep -qx running"; then
		pass "$1: the container runs on $peer"
		# b asserts its copy's pages itself (its own PASS/FAIL lines).
		check "$1: $peer finished checking its copy" poll 400 onb test -e /tmp/b-verified-$1
	else
		# Not waiting for b's page check: it waits for a running container.
		fail "$1: the container does not run on $peer: $(onb podman container inspect -f '{{.State.Status}}' $_n 2>&1 | tail -n 3)"
		onb podman ps -a --format "'{{.ID}} {{.Names}} {{.Status}}'" 2>&1 | indent
	fi
	podman rm -f -t 0 $_n >/dev/null 2>&1
}

# precopy_rounds SUMMARY: the rounds and the stop rule's verdicts: at
# least two rounds, every one but the last "continue", the last a stop.
precopy_rounds() {
	_v=$(grep -o '"decision": *"[a-z-]*"' "$1" | sed 's/.*"\([a-z-]*\)"$/\1/' | tr '\n' ' ')
	echo "      stop rule verdicts, round by round: $_v"
	grep -o '"reason": *"[^"]*"' "$1" | indent
	# _rounds, not _n: sh has no locals, and send's _n names the container.
	_rounds=$(echo $_v | wc -w)
	check "precopy: at least 2 pre-dump rounds ($_rounds)" test "$_rounds" -ge 2
	_last=$(echo $_v | awk '{ print $NF }')
	case $_last in
	converged | not-converging | round-cap) pass "precopy: the stop rule stopped after round $_rounds: $_last" ;;
	*) fail "precopy: last verdict ${_last:-none}, not a stop" ;;
	esac
	_early=$(echo $_v | awk '{ $NF = ""; print }' | tr ' ' '\n' | grep -v '^$' | grep -vx continue)
	check "precopy: every verdict before the last is continue" test -z "$_early"
}

# inject.sh WHAT (run on b): kill -9 the CRIU process of the migration
# under way that WHAT names, once it is at work: round: a round's page
# server once pages arrive (its pagemap exists); final: the final dump's
# page server, likewise; lazy: criu lazy-pages once the container runs on
# b (its plan says restored). It says what it killed, and when (the KiB
# of pages already there), or that it missed; /tmp/inject-stop ends it.
cat >/tmp/inject.sh <<'EOF'
what=$1
rm -f /tmp/inject-stop
end=$(($(cut -d. -f1 /proc/uptime) + 240))
while [ ! -e /tmp/inject-stop ] && [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
	for p in $(pgrep -x criu); do
		args=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
		dir=
		case $what:$args in
		round:*page-server*/rounds/*) dir=${args#*--images-dir } dir=${dir%% *} ;;
		final:*page-server*/pages\ *) dir=${args#*--images-dir } dir=${dir%% *} ;;
		lazy:*lazy-pages*) ;;
		*) continue ;;
		esac
		if [ -n "$dir" ]; then
			ls "$dir"/pagemap-*.img >/dev/null 2>&1 || continue
		else
			grep -qs '"status": "restored"' /run/crhook/containers/*/migration.json || continue
		fi
		if [ -n "$dir" ]; then
			at="with $(($(cat "$dir"/pages-*.img 2>/dev/null | wc -c) / 1024)) KiB of pages there"
		else
			at="after the container ran here"
		fi
		kill -9 "$p" 2>/dev/null && { echo "killed criu $p (${args%% --tls*}) $at"; exit 0; }
	done
done
echo "missed: no $what CRIU process to kill"
exit 1
EOF

# fault CASE: migrate mig-CASE with --mode precopy while b breaks one
# phase (inject.sh, or a namesake container for restore-fails), then check
# the promises (see the top of this file).
fault() {
	_n=mig-$1 _final="" _what=""
	case $1 in
	round-killed) _what=round ;;
	final-killed) _what=final ;;
	lazy-daemon-killed) _what=lazy _final="--final lazy" ;;
	esac
	step "fault $1: container $_n on $me"
	# Every page dirty within a round under TCG: the rounds stop at once
	# (not converging), the final dump moves all 4 MiB (a window for the
	# kill), a lazy final faults them all in from a.
	if ! check "$1: podman --runtime crhook run" podman --runtime crhook run -d --name $_n --network none \
		-v /var/lib/crhook-test/bin:/t:ro "$IMAGE" /t/memtouch -mib "$MIB" -dirty 32 -interval 50ms ||
		! check "$1: memtouch filled $MIB MiB" poll 120 sh -c "podman logs $_n | grep -q ^ready"; then
		return
	fi
	_bm=$(onb pgrep -x memtouch | wc -l)
	rm -f /tmp/inject-$1.log
	_ip=
	if [ -z "$_what" ]; then
		check "$1: a namesake container on $peer: its restore --import must fail" onb podman create --name $_n "$IMAGE" true
	else
		onb sh -s "$_what" </tmp/inject.sh >/tmp/inject-$1.log 2>&1 &
		_ip=$!
	fi
	step "fault $1: crhook migrate --mode precopy $_final $_n ssh://guestb"
	t1=$(cut -d' ' -f1 /proc/uptime)
	# shellcheck disable=SC2086 # _final is flags
	crhook migrate $_n ssh://guestb --mode precopy --max-downtime 300ms $_final --ssh-config $CFG --format json \
		--connect-timeout 30s --no-progress-timeout 30s --timeout 3m >/tmp/summary-$1.json 2>/tmp/migrate-$1.err
	_rc=$?
	echo "      crhook migrate exited $_rc after $(awk -v a="$t1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }') s"
	if [ -n "$_ip" ]; then
		onb touch /tmp/inject-stop
		wait $_ip
		indent </tmp/inject-$1.log
		check "$1: the fault was injected" grep -q '^killed' /tmp/inject-$1.log
	fi
	tail -n 4 /tmp/migrate-$1.err | indent
	grep -E '"(source_state|destination_state|final_dump|phase)"' /tmp/summary-$1.json | indent
	check "$1: crhook migrate failed" test "$_rc" -ne 0
	check "$1: the summary says why" grep -q '"error": *"migration failed' /tmp/summary-$1.json
	_mid=$(sed -n 's/.*"migration_id": *"\([^"]*\)".*/\1/p' /tmp/summary-$1.json)

	step "fault $1: one copy, every page"
	_st=$(podman container inspect -f '{{.State.Status}}' $_n 2>&1)
	_bst=$(onb podman container inspect -f "'{{.State.Status}}'" $_n 2>&1)
	if [ "$1" = lazy-daemon-killed ]; then
		check "$1: summary: the destination was killed" grep -q '"destination_state": *"killed: its lazy-pages daemon failed, no page was zero-filled"' /tmp/summary-$1.json
		# The supervisor kills it the moment the daemon dies; polled for
		# podman to notice. Ended by a signal: crhook's SIGKILL (137), or,
		# when a fault on a page the dead daemon never delivered came
		# first, the workload's own crash on the zero-filled page (under
		# TCG memtouch's Go runtime dies of SIGSEGV, 139, before the kill
		# lands): the known gap of docs/migration.md, shown, not failed.
		if poll 60 sh -c "! ssh -F $CFG guestb podman container inspect -f '{{.State.Status}}' $_n 2>/dev/null | grep -qx running"; then
			_bst=$(onb podman container inspect -f "'{{.State.Status}} {{.State.ExitCode}}'" $_n 2>&1)
			case $_bst in
			"exited 137") pass "$1: the destination's copy was killed (SIGKILL): $_bst" ;;
			"exited 1"[2-5][0-9])
				pass "$1: the destination's copy is not running: $_bst, signal $((${_bst#exited } - 128))"
				echo "      KNOWN GAP: it ended on its own signal before crhook's kill: it read a page the dead daemon never delivered as zeros (docs/migration.md)"
				;;
			*) fail "$1: the destination's copy ended as \"$_bst\", not by a signal" ;;
			esac
		else
			fail "$1: the destination's copy still runs with pages it can no longer fetch"
		fi
		case $_st in
		running) fail "$1: the source runs too: two copies" ;;
		*) pass "$1: the source is $_st: its pages went with the broken stream, as reported" ;;
		esac
		check "$1: summary: the source's state is stated" grep -q '"source_state": *"stopped' /tmp/summary-$1.json
		check "$1: no memtouch of it here" sh -c '! pgrep -x memtouch'
	else
		equal "$1: the source container here" "$_st" running
		case $1 in
		round-killed) check "$1: summary: the source kept running" grep -q '"source_state": *"running (pre-copy rounds never stop it)"' /tmp/summary-$1.json ;;
		restore-fails) check "$1: summary: the source rolled back" grep -q '"source_state": *"running (rolled back)"' /tmp/summary-$1.json ;;
		*) check "$1: summary: the source runs" grep -q '"source_state": *"running' /tmp/summary-$1.json ;;
		esac
		if line=$(verify $_n); then
			case $line in
			"verify ok"*) pass "$1: every page verified here: $line" ;;
			*) fail "$1: page check here: $line" ;;
			esac
		else
			fail "$1: memtouch did not answer SIGUSR1 here"
		fi
		if [ "$1" = restore-fails ]; then
			equal "$1: the namesake on $peer is untouched" "$_bst" created
		else
			case $_bst in
			running) fail "$1: the container runs on $peer too: two copies" ;;
			*) pass "$1: no copy on $peer: $_bst" ;;
			esac
		fi
	fi
	equal "$1: memtouch processes on $peer" "$(onb pgrep -x memtouch | wc -l)" "$_bm"
	check "$1: nothing of migration $_mid left on $peer" sh -c "[ -n '$_mid' ] && ! ssh -F $CFG guestb test -e /run/crhook/migrations/$_mid"
	check "$1: no CRIU process left on $peer" sh -c "! ssh -F $CFG guestb pgrep -x criu"
	podman rm -f -t 0 $_n >/dev/null 2>&1
	onb podman rm -f -t 0 $_n >/dev/null 2>&1
}

for mode in $MODES; do
	send "$mode"
done
check "memtouch still runs on $peer (one per mode)" sh -c "[ \$(ssh -F $CFG guestb pgrep -x memtouch | wc -l) -eq $(echo $MODES | wc -w) ]"
for f in $FAULTS; do
	fault "$f"
done
summary

