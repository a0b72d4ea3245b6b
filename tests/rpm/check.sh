#!/usr/bin/env bash
# tests/rpm/check.sh: build the RPMs in a scratch topdir (make rpm) and check
# what they hold. Run by `make rpm-check`, part of `make test`.
#
#  0. `make rpm` from an empty Go module cache (`make dist` must download
#     what it vendors), and `make dist` twice gives the same sha256;
#  1. file lists: every file with its mode, owner, group and rpm file flags
#     (c config, n noreplace, d doc, l license, g ghost) and link target, from
#     `rpm -qp --qf` (the columns of `rpm -qlvp` plus the flags), equal to
#     rpm/crhook.files and rpm/crhook-selinux.files; `rpm -qp --configfiles`
#     equal to the entries flagged c; build-id links (flag a) are skipped;
#  2. no scriptlet holds an unexpanded macro; the SELinux module is removed
#     on erase only;
#  3. dependencies: criu, (runc or crun), the conditional crhook-selinux;
#     bundled(golang(...)) provides equal the modules linked into both
#     binaries (go version -m);
#  4. `rpm --root SCRATCH -i --nodeps --noscripts` both packages, then run the
#     installed crhook: --version, `crhook --root SCRATCH config check` (every
#     default path read below SCRATCH, so the installed default files are the
#     ones checked, no chroot needed), crhook-runtime is its own binary
#     (no cobra) and passes --version through, man pages.
# Everything happens under a mktemp directory, removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
repo=$PWD
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/crhook-rpm-check.XXXXXX")
# The module caches below are read-only trees, as Go leaves them.
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok:   $*"; }

# Built from an empty Go module cache, as on a machine that never built
# crhook (or only for Linux, which never fetches cobra's Windows-only
# dependency that vendoring needs): proves `make dist` downloads what it
# vendors instead of relying on this host's cache.
echo "== make rpm (RPM_OUT=$work/out, empty GOMODCACHE)"
mkdir "$work/modcache1"
if ! GOMODCACHE=$work/modcache1 make --no-print-directory rpm RPM_OUT="$work/out" >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    echo "FAIL: make rpm from an empty GOMODCACHE (log above)" >&2
    exit 1
fi
topdir=$work/out/rpmbuild
main=$(ls "$topdir"/RPMS/*/crhook-[0-9]*.rpm)
selinux=$(ls "$topdir"/RPMS/noarch/crhook-selinux-*.rpm 2>/dev/null || true)
echo "built in $((SECONDS - start))s: ${main##*/} ${selinux##*/}"

# Reproducible: a second `make dist`, from another empty module cache, into
# another directory, gives the same bytes.
echo "== make dist again (empty GOMODCACHE): same sha256"
mkdir "$work/modcache2"
if GOMODCACHE=$work/modcache2 make --no-print-directory dist RPM_OUT="$work/out2" >"$work/dist2.log" 2>&1; then
    tarball=$(cd "$work/out" && ls crhook-*.tar.gz)
    sum1=$(sha256sum <"$work/out/$tarball")
    sum2=$(sha256sum <"$work/out2/$tarball" 2>/dev/null || true)
    [ "$sum1" = "$sum2" ] && ok "make dist is reproducible: $tarball ${sum1%% *}" ||
        fail "make dist twice gave different tarballs: ${sum1%% *} vs ${sum2%% *}"
else
    tail -20 "$work/dist2.log" >&2
    fail "second make dist from an empty GOMODCACHE (log above)"
fi

# perms owner group flags path[ -> target], flags "-" when none; rpm's
# artifacts (build-id links, flag a) depend on the binary's hash: skipped.
filelist() {
    rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}| %{FILENAMES}|%{FILELINKTOS}\n]' "$1" |
        awk -F'|' '{ split($1, a, " "); fl = (a[4] == "" ? "-" : a[4]); if (fl ~ /a/) next
                     line = a[1] " " a[2] " " a[3] " " fl $2; if ($3 != "") line = line " -> " $3; print line }' |
        sort -k5
}

expected() {
    grep -v '^#' "$1" | grep -v '^$' | sort -k5
}

checkfiles() { # rpm name
    local rpm=$1 name=$2
    filelist "$rpm" >"$work/$name.got"
    expected "$repo/rpm/$name.files" "$name" >"$work/$name.want"
    if diff -u "$work/$name.want" "$work/$name.got" >"$work/$name.diff"; then
        ok "$name: $(wc -l <"$work/$name.got") files, modes and flags as rpm/$name.files"
    else
        fail "$name: file list differs from rpm/$name.files (- expected, + built):"
        sed 1,2d "$work/$name.diff" >&2
    fi
    # --configfiles must name exactly the entries flagged c.
    rpm -qp --configfiles "$rpm" | sort >"$work/$name.conf.got"
    awk '$4 ~ /c/ { print $5 }' "$work/$name.want" | sort >"$work/$name.conf.want"
    if diff -u "$work/$name.conf.want" "$work/$name.conf.got" >/dev/null; then
        ok "$name: config files: $(tr '\n' ' ' <"$work/$name.conf.got")"
    else
        fail "$name: rpm --configfiles: $(tr '\n' ' ' <"$work/$name.conf.got")"
    fi
    # rpm -qlvp sees the same number of entries (artifacts included).
    local n_lv n_qf
    n_lv=$(rpm -qlvp "$rpm" | grep -vc '^(contains no files)$' || true)
    n_qf=$(rpm -qp --qf '[%{FILENAMES}\n]' "$rpm" | wc -l)
    [ "$n_lv" = "$n_qf" ] || fail "$name: rpm -qlvp lists $n_lv entries, --qf $n_qf"
    # Scriptlets: an unexpanded macro (%name, %{...}, %(...)) means the
    # building rpm lacked a macro and left it verbatim.
    if rpm -qp --scripts "$rpm" | grep -nE '%[{(]|%[A-Za-z_][A-Za-z_0-9]*' >"$work/$name.pct"; then
        fail "$name: unexpanded % in scriptlets:"; cat "$work/$name.pct" >&2
    else
        ok "$name: no unexpanded % in $(rpm -qp --scripts "$rpm" | grep -c 'scriptlet (using' || true) scriptlets"
    fi
}

echo "== file lists and scriptlets"
checkfiles "$main" crhook
if [ -n "$selinux" ]; then
    checkfiles "$selinux" crhook-selinux
    scripts=$(rpm -qp --scripts "$selinux")
    grep -q 'semodule -n -s ${_policytype} -X 200 -i /usr/share/selinux/packages/targeted/crhook.pp.bz2' <<<"$scripts" ||
        fail "crhook-selinux: %post does not install the module"
    # The only semodule -r sits inside `if [ $1 -eq 0 ]` of %postun.
    if awk '/^postuninstall scriptlet/ { p = 1; next } /scriptlet/ { p = 0 }
            p && /if \[ \$1 -eq 0 \]/ { g = 1 } /semodule.* -r / { if (!(p && g)) bad = 1; n++ }
            END { exit (bad || n != 1) }' <<<"$scripts"; then
        ok "crhook-selinux: module installed in %post, removed on erase only"
    else
        fail "crhook-selinux: semodule -r outside the erase-only branch of %postun"
    fi
    [ "$(rpm -qp --qf '%{ARCH}' "$selinux")" = noarch ] || fail "crhook-selinux is not noarch"
else
    echo "SKIP: crhook-selinux not built (selinuxpolicy/crhook.te missing)"
fi

echo "== dependencies"
before=$fails
reqs=$(rpm -qp --requires "$main")
for want in 'criu' '(runc or crun)' 'containers-common'; do
    grep -qxF "$want" <<<"$reqs" || fail "crhook does not require $want"
done
if [ -n "$selinux" ]; then
    vr=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$main")
    grep -qxF "(crhook-selinux = $vr if selinux-policy-targeted)" <<<"$reqs" ||
        fail "crhook lacks Requires: (crhook-selinux = $vr if selinux-policy-targeted)"
fi
# bundled(golang(M)) = V for exactly the modules linked into the two
# binaries (go version -m).
rpm -qp --provides "$main" | sed -n 's/^bundled(golang(\(.*\))) = \(.*\)$/\1 \2/p' | sort >"$work/bundled.got"
rpm2cpio "$main" | (cd "$work" && cpio -id --quiet ./usr/bin/crhook ./usr/libexec/crhook/crhook-runtime)
go version -m "$work/usr/bin/crhook" "$work/usr/libexec/crhook/crhook-runtime" |
    awk '$1 == "dep" { sub(/^v/, "", $3); print $2, $3 }' | sort -u >"$work/bundled.want"
if diff -u "$work/bundled.want" "$work/bundled.got" >"$work/bundled.diff"; then
    ok "bundled(golang(...)) provides match the linked modules: $(tr '\n' ' ' <"$work/bundled.got")"
else
    fail "bundled provides differ from go version -m (- linked, + provided):"; sed 1,2d "$work/bundled.diff" >&2
fi
[ "$fails" -eq "$before" ] && ok "crhook requires criu, (runc or crun), containers-common${selinux:+, crhook-selinux if selinux-policy-targeted}"

echo "== scratch root install"
root=$work/root
mkdir -p "$root"
# Debian's rpm warns that it is not the package manager: drop that noise only.
if ! rpm --root "$root" -i --nodeps --noscripts "$main" $selinux 2>"$work/install.err"; then
    cat "$work/install.err" >&2; echo "FAIL: rpm --root install" >&2; exit 1
fi
grep -v -e 'should not be used directly' -e 'assuming you know what you are doing' "$work/install.err" >&2 || true
crhook=$root/usr/bin/crhook
version=$(rpm -qp --qf '%{VERSION}' "$main")
out=$("$crhook" --version)
[ "$out" = "crhook version $version" ] && ok "installed crhook --version: $out" ||
    fail "crhook --version printed '$out', want 'crhook version $version'"

if out=$(env -u CRHOOK_CONFIG "$crhook" --root "$root" config check 2>&1); then
    grep -qxF "$root/usr/share/crhook/crhook.toml: ok" <<<"$out" &&
        ok "crhook --root SCRATCH config check: installed crhook.toml ok, CRIU layers absent" ||
        fail "config check did not read the installed crhook.toml: $out"
else
    fail "crhook --root SCRATCH config check failed: $out"
fi
# The same file through $CRHOOK_CONFIG, the path a user would take.
CRHOOK_CONFIG=$root/usr/share/crhook/crhook.toml "$crhook" --root "$root" config check >/dev/null ||
    fail "CRHOOK_CONFIG=installed crhook.toml: config check failed"

# The drop-in registers a runtime path the package installs: its own
# executable file (not a link to the CLI), which links no cobra.
dropin=$root/etc/containers/containers.conf.d/50-crhook.conf
rt=$root/usr/libexec/crhook/crhook-runtime
grep -q '"/usr/libexec/crhook/crhook-runtime"' "$dropin" || fail "50-crhook.conf does not name /usr/libexec/crhook/crhook-runtime"
if [ -f "$rt" ] && [ ! -L "$rt" ] && [ -x "$rt" ]; then
    ok "/usr/libexec/crhook/crhook-runtime is an executable file inside the root"
else
    fail "/usr/libexec/crhook/crhook-runtime is not an executable regular file: $(ls -l "$rt" 2>&1)"
fi
if go version -m "$rt" | awk '$1 == "dep" { print $2 }' | grep -qx 'github.com/spf13/cobra'; then
    fail "crhook-runtime links cobra (the admin CLI's module)"
else
    ok "crhook-runtime links no cobra: $(go version -m "$rt" | awk '$1 == "path" { print $2 }')"
fi
# crhook-runtime is the OCI runtime: --version passes through to the
# wrapped runtime (runc), no config read.
if command -v runc >/dev/null; then
    out=$(cd / && "$root/usr/libexec/crhook/crhook-runtime" --version 2>&1) || true
    grep -q '^runc version' <<<"$out" && ok "crhook-runtime --version passes through: ${out%%$'\n'*}" ||
        fail "crhook-runtime --version did not reach runc: $out"
else
    echo "SKIP: crhook-runtime pass-through (no runc in PATH)"
fi
for page in $(rpm -qp --qf '[%{FILENAMES}\n]' "$main" | grep '/man/'); do
    zcat "$root$page" | grep -q '^\.TH ' || fail "$page: no .TH header"
done
ok "man pages decompress and have a .TH header"

echo "== done in $((SECONDS - start))s"
if [ "$fails" -ne 0 ]; then
    echo "FAIL: $fails check(s)" >&2
    exit 1
fi
echo "PASS"
