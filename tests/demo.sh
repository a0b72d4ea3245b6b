#!/usr/bin/env bash
# The main job, end to end: a container holding an established TCP
# connection cannot be checkpointed until `crhook config set
# tcp-established`; then checkpoint and restore work and the connection
# keeps carrying data. Exits 0 only if every step did what it said.
set -euo pipefail

CRHOOK=${CRHOOK:-/usr/bin/crhook}
IMAGE=localhost/crhook-test/busybox
NAME=crhook-demo-$$
CONF=/etc/criu/default.conf
BACKUP=$(mktemp)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

had_conf=0
if [ -e "$CONF" ]; then cp -p "$CONF" "$BACKUP"; had_conf=1; fi
cleanup() {
	podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
	if [ $had_conf = 1 ]; then cp -p "$BACKUP" "$CONF"; else rm -f "$CONF"; fi
	rm -f "$BACKUP"
}
trap cleanup EXIT
rm -f "$CONF"

counts() {
	podman exec "$NAME" sh -c 'echo "sent $(wc -c </tmp/sent) bytes, received $(wc -c </tmp/recv) bytes, last line $(tail -n 1 /tmp/recv)"'
}
received_lines() { podman exec "$NAME" sh -c 'wc -l </tmp/recv'; }

if "$CRHOOK" doctor --help >/dev/null 2>&1; then
	say "crhook doctor: will checkpoint/restore work on this host?"
	"$CRHOOK" doctor || [ $? = 2 ] || fail "crhook doctor found a failing check"
fi

say "start a container under crhook with an established TCP connection inside"
podman --runtime crhook run -d --name "$NAME" --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$IMAGE" sh -c \
	'sleep 1000000 | nc -l -p 5000 >/tmp/recv & sleep 0.3; i=0; while :; do echo $i; i=$((i+1)); usleep 20000; done | tee /tmp/sent | nc 127.0.0.1 5000' >/dev/null
for _ in $(seq 100); do [ "$(received_lines 2>/dev/null || echo 0)" -gt 5 ] && break; sleep 0.1; done
counts

say "checkpoint with no CRIU option set: must fail, container keeps running"
if podman container checkpoint "$NAME"; then fail "checkpoint succeeded without tcp-established"; fi
[ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || fail "container stopped after a failed checkpoint"
echo "failed as expected; container still running"

say "crhook config set tcp-established   (writes $CONF, as CRIU's docs teach)"
"$CRHOOK" config set tcp-established
cat "$CONF"

say "checkpoint"
podman container checkpoint "$NAME"
before=$(podman inspect --format '{{.State.Status}}' "$NAME")
[ "$before" = exited ] || fail "container is $before after checkpoint, want exited"

say "restore"
podman container restore "$NAME"
n=$(received_lines)
counts
for _ in $(seq 100); do [ "$(received_lines)" -gt $((n + 25)) ] && break; sleep 0.1; done
[ "$(received_lines)" -gt $((n + 25)) ] || fail "no data flowed after restore"
counts
podman exec "$NAME" sh -c 'i=0; while read l; do [ "$l" = "$i" ] || { echo "line $i is $l"; exit 1; }; i=$((i+1)); done </tmp/recv; echo "all $i lines arrived once and in order"' ||
	fail "the stream lost or duplicated data"

say "crhook config show --origin --container $NAME"
"$CRHOOK" config show --origin --container "$NAME"

say "demo passed"
