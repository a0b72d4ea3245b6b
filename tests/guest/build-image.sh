#!/usr/bin/env bash
# Builds the QEMU guest that tests what this host's kernel cannot: a Debian
# bookworm system (kernel 6.1: soft-dirty tracking, SELinux) with podman,
# runc, conmon, the host's CRIU and SELinux's policy tools.
#
# Idempotent and cached under $CRHOOK_GUEST_CACHE (/var/cache/crhook/guest),
# in two layers, each named by a hash of everything it is built from, so a
# changed input rebuilds only what depends on it:
#   rootfs-KEY.tar   mmdebstrap of the packages below, plus the kernel
#                    package's files (~90 s; inputs: package list, mirror,
#                    kernel version, this script)
#   disk-KEY/        vmlinux, initrd.cpio and a labelled ext4 root disk.img
#                    (~30 s; inputs: the rootfs, the CRIU binary, init.sh,
#                    the guest's SELinux modules, this script)
# crhook itself is not in the disk: run.sh hands each boot the binaries
# just built, so a Go change costs no rebuild.
#
# Prints the disk directory on stdout (everything else goes to stderr).
# Needs root, mmdebstrap, qemu-utils, e2fsprogs, xz-utils, busybox-static,
# selinux-policy-dev (tests/setup-host.sh installs them).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE=${CRHOOK_GUEST_CACHE:-/var/cache/crhook/guest}
CRIU=${CRHOOK_GUEST_CRIU:-/usr/local/sbin/criu}
SUITE=bookworm
DISK_SIZE=4G

# The guest's packages. CRIU's shared libraries are added below from the
# binary itself, so a CRIU built with more libraries gets them too.
PACKAGES=(
	kmod busybox-static mawk procps iproute2 util-linux mount
	podman runc conmon containernetworking-plugins iptables
	selinux-policy-default policycoreutils selinux-utils semodule-utils
	openssh-server openssh-client
)

log() { printf 'guest-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, chroot, mkfs with xattrs)"
for tool in mmdebstrap mkfs.ext4 xz cpio sha256sum apt-get dpkg-deb; do
	command -v "$tool" >/dev/null || die "missing $tool: run tests/setup-host.sh"
done
[ -x "$CRIU" ] || die "no CRIU at $CRIU: run tests/setup-host.sh"
mkdir -p "$CACHE"
# One build at a time per cache (two make test runs, or two guests).
exec 9>"$CACHE/.build.lock"
flock 9

mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || die "no URIs: line in /etc/apt/sources.list.d/debian.sources: cannot pick a Debian mirror"

# The kernel: the version linux-image-amd64 points at in the host's apt
# lists (same bookworm mirror).
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$kpkg" ] || die "apt knows no linux-image-amd64: run apt-get update"
kver=${kpkg#linux-image-}

# CRIU's libraries -> their packages.
criu_pkgs=$(ldd "$CRIU" | awk '$3 ~ /^\//{print $3}' | while read -r lib; do
	dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"
done | cut -d: -f1 | sort -u | tr '\n' ' ')
read -r -a criu_pkgs <<<"$criu_pkgs"

hash() { sha256sum | cut -c1-16; }
self_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
# Bump when the mmdebstrap command below changes in a way the package
# list does not show (hooks, options): it names the rootfs cache.
ROOTFS_RECIPE=2

# ------------------------------------------------------------ layer 1

rootfs_key=$(printf '%s\n' "$ROOTFS_RECIPE" "$SUITE" "$mirror" "$kpkg" "${PACKAGES[@]}" "${criu_pkgs[@]}" | hash)
rootfs=$CACHE/rootfs-$rootfs_key.tar
if [ -f "$rootfs" ]; then
	log "rootfs: cached $rootfs"
else
	log "rootfs: building $rootfs (mmdebstrap $SUITE from $mirror, ~90 s)"
	start=$SECONDS
	kdeb_dir=$(mktemp -d "$CACHE/kdeb.XXXXXX")
	# apt's download sandbox user cannot write a root-owned mktemp dir.
	(cd "$kdeb_dir" && apt-get -q -o APT::Sandbox::User=root download "$kpkg" >&2)
	kdeb=$(ls "$kdeb_dir"/*.deb)
	include=$(IFS=,; echo "${PACKAGES[*]},${criu_pkgs[*]}")
	# No systemd (the init is ours), no recommends, no docs; the kernel's
	# files are unpacked without dpkg so that no initramfs is generated
	# (into a scratch directory first: the deb's /lib would replace the
	# merged-/usr symlink).
	mmdebstrap --variant=essential --format=tar --include="$include" \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--customize-hook="dpkg-deb -x '$kdeb' '$kdeb_dir/x' && mkdir -p \"\$1/usr/lib/modules\" \
			&& cp -a '$kdeb_dir/x/lib/modules/.' \"\$1/usr/lib/modules/\" && cp -a '$kdeb_dir/x/boot/.' \"\$1/boot/\" \
			&& chroot \"\$1\" /sbin/depmod '$kver'" \
		--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
		"$SUITE" "$rootfs.part" "$mirror" >"$CACHE/mmdebstrap.log" 2>&1 ||
		{ tail -n 30 "$CACHE/mmdebstrap.log" >&2; rm -rf "$kdeb_dir" "$rootfs.part"; die "mmdebstrap failed; log: $CACHE/mmdebstrap.log"; }
	rm -rf "$kdeb_dir"
	mv "$rootfs.part" "$rootfs"
	find "$CACHE" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$rootfs_key.tar" -delete
	log "rootfs: built in $((SECONDS - start)) s"
fi

# ------------------------------------------------------------ layer 2

disk_inputs=("$here/init.sh" "$here/containers.conf" "$CRIU" "$here"/selinux/*.te "$here"/selinux/*.fc "$repo"/selinuxpolicy/crhook.te "$repo"/selinuxpolicy/crhook.if "$repo"/selinuxpolicy/crhook.fc)
disk_key=$(printf '%s\n' "$rootfs_key" "$self_hash" "$(sha256sum "${disk_inputs[@]}")" | hash)
disk=$CACHE/disk-$disk_key
if [ -f "$disk/disk.img" ]; then
	log "disk: cached $disk"
	echo "$disk"
	exit 0
fi

log "disk: building $disk"
start=$SECONDS
work=$(mktemp -d "$CACHE/build.XXXXXX")
cleanup() {
	umount -l "$work/root/proc" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root" "$work/out"
tar -C "$root" -xf "$rootfs"

# vmlinux: the uncompressed kernel is an ELF with a PVH entry point, which
# qboot boots directly (the bzImage needs a BIOS path that is slower under
# TCG). Method of the kernel's scripts/extract-vmlinux: find the xz stream
# inside the bzImage and decompress it.
vmlinuz=$root/boot/vmlinuz-$kver
off=$(grep -abo -m1 $'\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
[ -n "$off" ] || die "no xz stream in $vmlinuz (kernel not xz-compressed?)"
tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$work/out/vmlinux" 2>/dev/null || true
[ "$(head -c 4 "$work/out/vmlinux")" = $'\x7fELF' ] || die "extracting vmlinux from $vmlinuz gave no ELF"

# initrd: busybox plus the modules needed to mount the root disk (Debian
# builds virtio, ext4 and 9p as modules), then switch_root to our init.
ird=$work/initrd
mkdir -p "$ird/bin" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/newroot" "$ird/lib/modules"
cp "$root/bin/busybox" "$ird/bin/busybox"
mods=$root/lib/modules/$kver
# modules.dep lists each module's dependencies; load them in order.
want="virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p"
: >"$ird/modules.order"
for m in $want; do
	line=$(grep -E "(^|/)$m\.ko:" "$mods/modules.dep") || die "module $m not in $mods/modules.dep"
	deps=${line#*:}
	for d in $(echo "$deps" | tr ' ' '\n' | tac) "${line%%:*}"; do
		grep -qx "$d" "$ird/modules.order" && continue
		echo "$d" >>"$ird/modules.order"
		install -D -m 0644 "$mods/$d" "$ird/lib/modules/$d"
	done
done
cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
while read -r m; do /bin/busybox insmod "/lib/modules/$m" 2>/dev/null; done </modules.order
for i in $(/bin/busybox seq 100); do [ -b /dev/vda ] && break; /bin/busybox sleep 0.05; done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; /bin/busybox reboot -f; }
/bin/busybox umount /proc
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /sbin/crhook-guest-init
EOF
chmod 0755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet) >"$work/out/initrd.cpio"

# The root filesystem.
install -m 0755 "$CRIU" "$root/usr/local/sbin/criu"
install -m 0755 "$here/init.sh" "$root/sbin/crhook-guest-init"
install -D -m 0644 "$here/containers.conf" "$root/etc/containers/containers.conf.d/10-crhook-guest.conf"
echo crhook-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost crhook-guest\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
mkdir -p "$root/mnt/host" "$root/var/lib/crhook-test"

# The test image, built like tests/setup-host.sh builds it on the host,
# from the guest's own busybox; imported by init.sh on first use.
img=$work/busybox
mkdir -p "$img/bin" "$img/tmp" "$img/etc" "$img/root" "$img/var/lock"
chmod 1777 "$img/tmp"
cp "$root/bin/busybox" "$img/bin/busybox"
for applet in $(chroot "$root" /bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$img/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$img/etc/passwd"
echo 'root:x:0:' >"$img/etc/group"
tar -C "$img" -cf "$root/var/lib/crhook-test/busybox-rootfs.tar" .

# SELinux: crhook's module and the test suite's container policy, installed
# into the guest's policy store here (natively; under TCG it takes minutes),
# then every file labelled from the resulting file_contexts. The guest
# only enforces when booted with selinux=1 (run.sh --selinux).
sel=$work/selinux
mkdir -p "$sel"
cp "$repo"/selinuxpolicy/crhook.te "$repo"/selinuxpolicy/crhook.if "$repo"/selinuxpolicy/crhook.fc \
	"$here"/selinux/*.te "$here"/selinux/*.fc "$sel"/
mods_pp=(container.pp crhook.pp crhook_guest_harness.pp)
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u MAKEOVERRIDES \
	make -C "$sel" -f /usr/share/selinux/devel/Makefile "${mods_pp[@]}" >"$work/selinux.log" 2>&1 ||
	{ tail -n 30 "$work/selinux.log" >&2; die "building the guest's SELinux modules failed"; }
mkdir -p "$root/var/lib/crhook-test/selinux" "$work/out/selinux"
cp "$sel"/*.pp "$root/var/lib/crhook-test/selinux/"
cp "$sel"/*.pp "$work/out/selinux/"
cat >"$root/etc/selinux/config" <<'EOF'
# Enforcing or not is decided by the kernel command line (run.sh --selinux).
SELINUX=permissive
SELINUXTYPE=default
EOF
mount -t proc proc "$root/proc"
(cd "$root/var/lib/crhook-test/selinux" && chroot "$root" semodule -X 300 -i \
	$(printf '/var/lib/crhook-test/selinux/%s ' "${mods_pp[@]}")) >"$work/semodule.log" 2>&1 ||
	{ cat "$work/semodule.log" >&2; die "semodule -i in the guest root failed"; }
chroot "$root" setfiles -F /etc/selinux/default/contexts/files/file_contexts / >"$work/setfiles.log" 2>&1 ||
	{ tail -n 20 "$work/setfiles.log" >&2; die "setfiles in the guest root failed"; }
umount "$root/proc"

# mkfs.ext4 -d copies the tree with its xattrs (the SELinux labels).
mkfs.ext4 -q -F -L crhook-guest -d "$root" "$work/out/disk.img" "$DISK_SIZE" >&2 ||
	die "mkfs.ext4 -d $root failed"
printf '%s\n' "$kver" >"$work/out/kernel-version"

rm -rf "$disk"
mv "$work/out" "$disk"
find "$CACHE" -maxdepth 1 -name 'disk-*' ! -name "disk-$disk_key" -exec rm -rf {} +
log "disk: built in $((SECONDS - start)) s"
echo "$disk"
