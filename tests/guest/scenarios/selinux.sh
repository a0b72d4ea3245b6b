#!/bin/sh
# crhook under SELinux enforcing (run.sh --selinux): Debian's
# selinux-policy-default, crhook's module (selinuxpolicy/), the test
# stand-in for container-selinux and the harness module
# (tests/guest/selinux/). podman --runtime crhook run, checkpoint, restore,
# export and import; the restored container keeps its label, MCS
# categories included; crhook's files carry crhook's types; no AVC
# denial names a crhook type.
. ./lib.sh

IMAGE=localhost/crhook-test/busybox

# avc_denials: every AVC denial logged since boot.
avc_denials() { dmesg | grep 'avc:  denied' || true; }
# label PID: the process's SELinux context.
label() { tr -d '\0' <"/proc/$1/attr/current"; }
ctr_pid() { podman inspect -f '{{.State.Pid}}' "$1"; }
file_type() { stat -c %C "$1" | cut -d: -f3; }

step "policy"
must "SELinux enforcing" grep -qx 1 /sys/fs/selinux/enforce
check "policy: $(cat /etc/selinux/config | sed -n 's/^SELINUXTYPE=//p') (selinux-policy-default $(dpkg-query -W -f '${Version}' selinux-policy-default))" true
for m in crhook container crhook_guest_harness; do
	must "module $m loaded" sh -c "semodule -l | grep -qw '^$m'"
done
check "crhook binary is container_runtime_exec_t" sh -c 'stat -L -c %C /usr/libexec/crhook/crhook-runtime | grep -q :container_runtime_exec_t:'
check "/etc/crhook is crhook_conf_t" sh -c '[ "$(stat -c %C /etc/crhook | cut -d: -f3)" = crhook_conf_t ]'
check "/usr/share/crhook/crhook.toml is crhook_conf_t" sh -c '[ "$(stat -c %C /usr/share/crhook/crhook.toml | cut -d: -f3)" = crhook_conf_t ]'
check "CRIU links libselinux" sh -c 'ldd /usr/local/sbin/criu | grep -q libselinux'
must "test image imported" sh -c "podman image exists $IMAGE || podman import -q --change 'CMD [\"/bin/sh\"]' --change 'ENV PATH=/bin' /var/lib/crhook-test/busybox-rootfs.tar $IMAGE"

step "run"
must "podman --runtime crhook run" podman --runtime crhook run -d --name se --network none "$IMAGE" \
	sh -c 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
pid=$(ctr_pid se)
want=$(podman inspect -f '{{.ProcessLabel}}' se)
orig=$(label "$pid")
echo "container process: $orig (podman: $want)"
case $orig in
*:container_t:s0:c*,c*) pass "container runs as container_t with MCS categories: $orig" ;;
*) fail "container label $orig is not container_t:s0:cX,cY" ;;
esac
equal "process label is podman's ProcessLabel" "$orig" "$want"
check "podman runs the container with the crhook runtime" sh -c "podman inspect -f '{{.OCIRuntime}}' se | grep -qx crhook"
id=$(podman inspect -f '{{.Id}}' se)

step "checkpoint and restore"
# --leave-running first: podman deletes the container after a plain
# checkpoint, and crhook removes its criu.conf with it.
check "podman container checkpoint --leave-running" podman container checkpoint --leave-running se
equal "/run/crhook type" "$(file_type /run/crhook)" crhook_var_run_t
conf=/run/crhook/containers/$id/criu.conf
if [ -f "$conf" ]; then
	equal "criu.conf type" "$(file_type "$conf")" crhook_var_run_t
	equal "criu.conf's directory type" "$(file_type "$(dirname "$conf")")" crhook_var_run_t
else
	fail "no $conf after checkpoint --leave-running"
fi
equal "label after checkpoint --leave-running" "$(label "$(ctr_pid se)")" "$orig"
check "podman container checkpoint" podman container checkpoint se
if run podman container restore se; then
	pass "podman container restore"
	pid=$(ctr_pid se)
	got=$(label "$pid")
	equal "restored process label (MCS included)" "$got" "$orig"
	check "restored container keeps running" poll 30 sh -c "podman logs se | tail -n 1 | grep -q tick"
else
	fail "podman container restore"
fi

step "export and import"
check "podman container checkpoint --export" podman container checkpoint --export /tmp/se.tar.gz se
check "podman rm" podman rm -f se
if run podman container restore --import /tmp/se.tar.gz; then
	pass "podman container restore --import"
	pid=$(ctr_pid se)
	got=$(label "$pid")
	equal "imported process label (MCS included)" "$got" "$orig"
else
	fail "podman container restore --import"
fi
podman rm -f se >/dev/null 2>&1

step "crhook doctor"
doctor=$(crhook doctor 2>&1)
for id in selinux.status criu.selinux selinux.crhook_module; do
	line=$(printf '%s\n' "$doctor" | grep -E "^[A-Z]+ +$id " | head -n 1)
	case $line in
	"OK "*) pass "doctor: $line" ;;
	*) fail "doctor $id: ${line:-missing}" ;;
	esac
done

step "AVC denials"
avc_denials >/tmp/avc.log
echo "all denials since boot: $(wc -l </tmp/avc.log)"
sed -n 's/.*avc:  denied  \({[^}]*}\).*scontext=[^:]*:[^:]*:\([^:]*\):.*tcontext=[^:]*:[^:]*:\([^:]*\):.* tclass=\([a-z_0-9]*\).*/\2 \3:\4 \1/p' /tmp/avc.log | sort | uniq -c | sed 's/^/    /'
crh=$(grep -E '(scontext|tcontext)=[^ ]*:crhook_' /tmp/avc.log || true)
if [ -z "$crh" ]; then pass "no AVC denial names a crhook type"; else
	fail "AVC denials naming a crhook type:"; printf '%s\n' "$crh" | indent
fi
# kernel_t is the harness's own domain (its init never transitions), not
# the runtime's: `crhook doctor` run by this script makes `criu check` put
# an inotify watch on its working directory, the 9p share (tmp_t), and
# that denial says nothing about the runtime's path.
criu_denials=$(grep -E 'comm="criu"|scontext=[^ ]*:container_runtime_t' /tmp/avc.log |
	grep -v 'tcontext=[^ ]*:container_t' | grep -v 'scontext=[^ ]*:kernel_t:' || true)
if [ -z "$criu_denials" ]; then pass "no denial of the runtime domain (podman, conmon, runc, crhook, CRIU)"; else
	fail "the runtime domain was denied:"; printf '%s\n' "$criu_denials" | head -n 20 | indent
fi
if grep -q '{ connectto }' /tmp/avc.log; then fail "the parasite's connectto was denied"; else pass "no connectto denial (CRIU's parasite socket)"; fi

summary
