#!/bin/sh
# PID 1 of crhook's test guest (installed as /sbin/crhook-guest-init by
# build-image.sh; the initrd switches to it). No systemd: it mounts what
# podman, runc and CRIU need, loads the SELinux policy when the kernel was
# booted with selinux=1, installs the crhook that run.sh shared over 9p,
# runs the scenario with its output on the second serial port, writes the
# exit code back to the share and reboots (QEMU runs with -no-reboot, so
# that ends the VM).
#
# Protocol with run.sh, all in the 9p share mounted at /mnt/host:
#   scenario.sh   the script to run (args in args, one per line)
#   install/      a `make install DESTDIR=` tree of crhook, copied to /
#   rc            written here: the scenario's exit code
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

say() { echo "guest-init: $*" >/dev/console; }
finish() {
	sync
	say "done (rc=$1)"
	busybox reboot -f
	sleep 60
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys

# Modules the link NIC, CRIU's kerndat probes and podman need (no udev
# here to load them), loaded before any policy
# (under enforcing the kernel's modprobe helper is confined, and a failed
# autoload shows only as CRIU's "Diag module missing" or "Unable to create
# a veth pair").
modprobe -a virtio_net overlay veth bridge tun nf_tables nft_ct unix_diag inet_diag tcp_diag udp_diag \
	raw_diag netlink_diag packet_diag 2>/dev/null

# SELinux first, before anything else creates files: the initial policy
# load (what systemd does early in boot). Enforcing or not comes from the
# kernel command line.
if grep -qw 'selinux=1' /proc/cmdline; then
	load_policy -i >/dev/console 2>&1 || { say "load_policy -i failed"; finish 1; }
fi

mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# Under SELinux the share gets one fixed type: 9p has no labelling of its
# own, and files created there would otherwise be refused.
ctx=""
[ -e /sys/fs/selinux/enforce ] && ctx=",context=system_u:object_r:tmp_t:s0"
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,cache=none$ctx" host /mnt/host ||
	{ say "cannot mount the 9p share"; finish 1; }
# Files created before the policy was loaded, and the fresh tmpfs mounts,
# get their types now.
[ -e /sys/fs/selinux/enforce ] && restorecon -R /dev /run /tmp /sys/fs/cgroup 2>/dev/null
# Delegate the controllers, as systemd would, so runc can use them.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
# Without auditd, AVC messages reach the kernel log through printk, whose
# rate limit would drop some: the scenarios count them.
echo 0 >/proc/sys/kernel/printk_ratelimit
ip link set lo up
hostname crhook-guest

# A second NIC when run.sh was given a link (two-guest runs): address
# from the kernel command line, crhook.ip=ADDR/PREFIX.
for arg in $(cat /proc/cmdline); do
	case $arg in
	crhook.ip=*)
		ip link set eth0 up && ip addr add "${arg#crhook.ip=}" dev eth0 ||
			say "cannot configure eth0 with ${arg#crhook.ip=}"
		;;
	esac
done

# crhook, as `make install` lays it out.
if [ -d /mnt/host/install ]; then
	cp -a /mnt/host/install/. / || { say "installing crhook from the share failed"; finish 1; }
	[ -e /sys/fs/selinux/enforce ] && restorecon -R /usr/bin/crhook /usr/libexec/crhook /usr/share/crhook /etc/crhook /etc/containers
fi

say "ready after $(cut -d' ' -f1 /proc/uptime) s; running $(head -n1 /mnt/host/name 2>/dev/null)"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
set --
[ -f /mnt/host/args ] && while IFS= read -r a; do set -- "$@" "$a"; done </mnt/host/args
cd /mnt/host && sh /mnt/host/scenario.sh "$@" >/dev/ttyS1 2>&1
rc=$?
echo "$rc" >/mnt/host/rc.tmp && mv /mnt/host/rc.tmp /mnt/host/rc
finish "$rc"
