#!/bin/sh
# Pre-copy through crhook, in a kernel with soft-dirty tracking (the host's
# has none, so `criu pre-dump` fails there).
#
# 1. runc-level rounds, the building blocks of `crhook migrate --mode
#    precopy`: crhook-runtime checkpoint --pre-dump, then --pre-dump
#    --parent-path ../previous, while memtouch keeps dirtying pages.
#    After each round crhook's stop rule (engine/migrate Policy, through
#    the converge helper) gets the bytes every round wrote and how long it
#    took; the scenario logs its decision and reason and follows it: another
#    round on "continue", the final dump on anything else. Each round must
#    write less than the first, the final dump least; restore, then
#    memtouch checks every page against its generation table.
# 2. podman's own flow through crhook: checkpoint --pre-checkpoint, then
#    --with-previous, restore, every page checked.
. ./lib.sh

IMAGE=localhost/crhook-test/busybox
RUNTIME=/usr/libexec/crhook/crhook-runtime
MIB=${PRECOPY_MIB:-64}
# The stop rule's round cap: it must stop by then.
ROUNDS=${PRECOPY_ROUNDS:-4}
# Its downtime budget. Under TCG the first round (all of memtouch's
# memory) takes over a second and a later one (what memtouch dirtied
# meanwhile, ~8 MiB) a quarter of that: 500 ms makes round 1 "continue"
# and lets a later round converge, so both verdicts are exercised.
BUDGET=${PRECOPY_BUDGET:-500ms}

step "setup"
must "crhook installed" test -x "$RUNTIME"
must "test image imported" sh -c "podman image exists $IMAGE || podman import -q --change 'CMD [\"/bin/sh\"]' --change 'ENV PATH=/bin' /var/lib/crhook-test/busybox-rootfs.tar $IMAGE"
mkdir -p /var/lib/crhook-test/bin
cp memtouch /var/lib/crhook-test/bin/memtouch

step "soft-dirty tracking"
check "criu check --feature mem_dirty_track: supported" criu check --feature mem_dirty_track
check "kernel has CONFIG_MEM_SOFT_DIRTY (clear_refs accepts 4)" sh -c 'echo 4 >/proc/self/clear_refs'

# pages_kib DIR: KiB of page data CRIU wrote into an image directory.
pages_kib() { du -ck "$1"/pages-*.img 2>/dev/null | awk 'END { print $1 + 0 }'; }

# uptime_ms: the guest's clock, milliseconds.
uptime_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# verified FILE N: the Nth "verify" line of memtouch's log says ok.
nth_verify() { grep '^verify' "$1" | sed -n "${2}p"; }
verify_count() { grep -c '^verify' "$1" 2>/dev/null || echo 0; }

# ------------------------------------------------------------------ 1

step "runc rounds through crhook-runtime"
R=/run/crhook-test-runc
B=/var/lib/crhook-test/bundle
D=/var/lib/crhook-test/precopy
mkdir -p "$B/rootfs" "$D"
tar -C "$B/rootfs" -xf /var/lib/crhook-test/busybox-rootfs.tar
cp memtouch "$B/rootfs/memtouch"
(cd "$B" && runc spec)
# Not a terminal, a writable root, and memtouch with its stdio on the
# container's own /dev/null (CRIU restores it from inside the container).
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"readonly": true/"readonly": false/' \
	-e "s|^\t\t\t\"sh\"\$|\t\t\t\"sh\", \"-c\", \"exec /memtouch -mib $MIB -dirty 32 -interval 50ms -out /tmp/mt.log </dev/null >/dev/null 2>\&1\"|" \
	"$B/config.json"
must "bundle runs memtouch" grep -q memtouch "$B/config.json"
# stdio to a file: the container keeps what it inherits open, and a
# pipe would never reach EOF.
must "crhook-runtime create" sh -c "'$RUNTIME' --root '$R' create --bundle '$B' mt </dev/null >'$B/create.log' 2>&1 || { cat '$B/create.log'; exit 1; }"
must "crhook-runtime start" "$RUNTIME" --root "$R" start mt
log=$B/rootfs/tmp/mt.log
must "memtouch filled $MIB MiB" poll 60 grep -q '^ready' "$log"
pid=$("$RUNTIME" --root "$R" state mt | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -n1)
kill -USR1 "$pid"
check "pages verified before any dump" poll 30 sh -c "nth_verify() { grep '^verify' \"\$1\" | sed -n \"\${2}p\"; }; nth_verify $log 1 | grep -q 'verify ok'"

parent=""
first_kib=""
rounds=""    # BYTES:MS per round, for the stop rule
decision=""
i=1
while [ $i -le "$ROUNDS" ]; do
	set -- --pre-dump --image-path "$D/$i" --work-path "$D/$i"
	[ -n "$parent" ] && set -- "$@" --parent-path "../$parent"
	t1=$(uptime_ms)
	if run "$RUNTIME" --root "$R" checkpoint "$@" mt; then
		ms=$(($(uptime_ms) - t1))
		kib=$(pages_kib "$D/$i")
		pass "pre-dump round $i wrote $kib KiB in $ms ms"
	else
		fail "pre-dump round $i"
		sed -n '/Error/p' "$D/$i/dump.log" 2>/dev/null | head -n 5 | indent
		break
	fi
	[ $i = 1 ] && first_kib=$kib
	if [ $i -gt 1 ] && [ -n "$first_kib" ]; then
		[ "$kib" -lt "$first_kib" ] && pass "round $i ($kib KiB) copies less than round 1 ($first_kib KiB)" ||
			fail "round $i ($kib KiB) not smaller than round 1 ($first_kib KiB)"
	fi
	check "round $i: container still running" sh -c "'$RUNTIME' --root '$R' state mt | grep -q '\"running\"'"
	parent=$i
	rounds="$rounds $((kib * 1024)):$ms"
	# shellcheck disable=SC2086 # one argument per round
	if decision=$(./converge -max-rounds "$ROUNDS" -max-downtime "$BUDGET" $rounds 2>&1); then
		echo "      stop rule after round $i: $decision"
	else
		fail "stop rule after round $i: $decision"
		break
	fi
	case $decision in
	continue*) ;;
	*) break ;;
	esac
	i=$((i + 1))
done
case $decision in
converged* | not-converging* | round-cap*) pass "pre-copy stopped after round $parent: ${decision%% *}" ;;
*) fail "pre-copy did not stop within $ROUNDS rounds (last decision: ${decision:-none})" ;;
esac
check "at least two pre-dump rounds before the stop" test "${parent:-0}" -ge 2
check "first round holds all of memtouch's memory (>= $MIB MiB)" test "${first_kib:-0}" -ge $((MIB * 1024))

if run "$RUNTIME" --root "$R" checkpoint --image-path "$D/final" --work-path "$D/final" --parent-path "../$parent" mt; then
	final_kib=$(pages_kib "$D/final")
	pass "final dump wrote $final_kib KiB after $parent pre-dump rounds"
	[ "$final_kib" -lt "$first_kib" ] && pass "final dump ($final_kib KiB) smaller than round 1 ($first_kib KiB)" ||
		fail "final dump ($final_kib KiB) not smaller than round 1 ($first_kib KiB)"
	check "final dump links to round $parent" test -L "$D/final/parent"
else
	fail "final dump"
	sed -n '/Error/p' "$D/final/dump.log" 2>/dev/null | head -n 5 | indent
fi
check "crhook wrote the container's criu.conf" test -f /run/crhook/containers/mt/criu.conf

before=$(verify_count "$log")
if run sh -c "'$RUNTIME' --root '$R' restore --detach --bundle '$B' --image-path '$D/final' --work-path '$D/final' mt </dev/null >'$B/restore.log' 2>&1 || { cat '$B/restore.log'; exit 1; }"; then
	pass "restore from the final dump and its parents"
	pid=$("$RUNTIME" --root "$R" state mt | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -n1)
	kill -USR1 "$pid"
	if poll 60 sh -c "[ \$(grep -c '^verify' $log) -gt $before ]"; then
		line=$(grep '^verify' "$log" | tail -n 1)
		case $line in
		"verify ok"*) pass "every page verified after restore: $line" ;;
		*) fail "page check after restore: $line" ;;
		esac
	else
		fail "memtouch did not answer SIGUSR1 after restore"
	fi
else
	fail "restore from the final dump"
	sed -n '/Error/p' "$D/final/restore.log" 2>/dev/null | head -n 5 | indent
fi
"$RUNTIME" --root "$R" delete --force mt >/dev/null 2>&1

# ------------------------------------------------------------------ 2

step "podman --pre-checkpoint / --with-previous through crhook"
must "podman --runtime crhook run" podman --runtime crhook run -d --name pp --network none \
	-v /var/lib/crhook-test/bin:/t:ro "$IMAGE" /t/memtouch -mib 32 -dirty 32 -interval 50ms
check "memtouch ready in the podman container" poll 60 sh -c 'podman logs pp | grep -q ^ready'
id=$(podman inspect -f '{{.Id}}' pp)
ud=$(podman inspect -f '{{.StaticDir}}' pp)
check "podman runs the container with the crhook runtime" sh -c "podman inspect -f '{{.OCIRuntime}}' pp | grep -qx crhook"
if run podman container checkpoint --pre-checkpoint pp; then
	pass "podman container checkpoint --pre-checkpoint"
	check "container keeps running after the pre-checkpoint" sh -c "podman inspect -f '{{.State.Status}}' pp | grep -qx running"
	pre_kib=$(pages_kib "$ud/pre-checkpoint")
	pass "pre-checkpoint wrote $pre_kib KiB"
	check "crhook wrote criu.conf for the pre-checkpoint" test -f "/run/crhook/containers/$id/criu.conf"
else
	fail "podman container checkpoint --pre-checkpoint"
fi
if run podman container checkpoint --with-previous --keep pp; then
	pass "podman container checkpoint --with-previous"
	fin_kib=$(pages_kib "$ud/checkpoint")
	[ -n "${pre_kib:-}" ] && [ "$fin_kib" -lt "$pre_kib" ] &&
		pass "checkpoint after the pre-checkpoint ($fin_kib KiB) smaller than it ($pre_kib KiB)" ||
		fail "checkpoint after the pre-checkpoint ($fin_kib KiB) not smaller than it (${pre_kib:-?} KiB)"
else
	fail "podman container checkpoint --with-previous"
fi
before=$(podman logs pp 2>/dev/null | grep -c '^verify')
if run podman container restore pp; then
	pass "podman container restore"
	podman kill -s USR1 pp >/dev/null
	if poll 60 sh -c "[ \$(podman logs pp | grep -c '^verify') -gt $before ]"; then
		line=$(podman logs pp | grep '^verify' | tail -n 1)
		case $line in
		"verify ok"*) pass "every page verified after podman restore: $line" ;;
		*) fail "page check after podman restore: $line" ;;
		esac
	else
		fail "memtouch did not answer SIGUSR1 after podman restore"
	fi
else
	fail "podman container restore"
fi
podman rm -f pp >/dev/null 2>&1

summary
