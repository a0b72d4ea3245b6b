#!/bin/sh
# Two guests on a point-to-point link (run.sh --link, QEMU -netdev socket
# over 127.0.0.1): each pings the other, then guest "a" receives a payload
# from guest "b" over TCP and checks it byte for byte. The groundwork for
# cross-kernel migration between two guests.
#   link.sh a|b MY_ADDR PEER_ADDR
. ./lib.sh

role=$1 me=$2 peer=$3
PORT=7000

step "link ($role: $me -> $peer)"
must "eth0 has $me" sh -c "ip -4 addr show eth0 | grep -q 'inet $me/'"
must "peer $peer answers ping" poll 120 busybox ping -c 1 -W 1 "$peer"
rtt=$(busybox ping -c 5 -q "$peer" | tail -n 1)
pass "ping: $rtt"

# 4 MiB of a pattern both ends can make.
payload() { seq 1 600000 | head -c 4194304; }
payload >/tmp/want

step "TCP transfer"
if [ "$role" = a ]; then
	# busybox nc -l ends when its stdin does, not at the sender's EOF:
	# keep stdin open and poll for the full payload instead.
	sleep 600 | busybox nc -l -p "$PORT" >/tmp/got &
	start=$(cut -d' ' -f1 /proc/uptime)
	if poll 120 cmp -s /tmp/want /tmp/got; then
		secs=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
		pass "received 4 MiB from $peer intact (within ${secs}s of listening)"
	else
		fail "payload from $peer: got $(wc -c </tmp/got) bytes, want 4194304 intact"
	fi
	kill $(pgrep -f 'busybox nc -l') 2>/dev/null
else
	if poll 120 sh -c "busybox nc $peer $PORT </tmp/want"; then
		pass "sent 4 MiB to $peer"
	else
		fail "cannot send to $peer:$PORT"
	fi
fi

summary
