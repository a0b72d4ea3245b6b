#!/usr/bin/env bash
# Prove crhook's SELinux module offline: compile, link, expand, install
# into a scratch copy of the policy store, then query the result.
#
# SELinux need not be enabled. Everything is written under one mktemp
# directory, removed on exit; the repository and the system's policy
# store are only read. Exit status is non-zero if any check fails.
#
# Needs: selinux-policy-dev (headers, devel Makefile), selinux-policy-default
# (base.pp and the policy store), checkpolicy, semodule-utils, setools,
# policycoreutils, selinux-utils (matchpathcon), make, m4, bzip2.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
policy_src=$repo/selinuxpolicy

devel_mk=${SELINUX_DEVEL_MAKEFILE:-/usr/share/selinux/devel/Makefile}
base_pp=${SELINUX_BASE_PP:-/usr/share/selinux/default/base.pp.bz2}
store=${SELINUX_STORE:-/var/lib/selinux/default}
policy_etc=${SELINUX_POLICY_ETC:-/etc/selinux/default}

work=$(mktemp -d "${TMPDIR:-/tmp}/crhook-selinux.XXXXXX")
trap 'rm -rf "$work"' EXIT

checks=0
failures=0
pass() { checks=$((checks + 1)); printf 'PASS  %s\n' "$1"; }
fail() {
	checks=$((checks + 1)); failures=$((failures + 1))
	printf 'FAIL  %s\n' "$1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/      /'
	return 0
}
die() { printf 'FAIL  %s\n' "$1" >&2; exit 1; }

# ---------------------------------------------------------------- tools

preflight() {
	local tool pkg missing=()
	for pair in make:make m4:m4 bzip2:bzip2 checkmodule:checkpolicy \
		semodule_package:semodule-utils semodule_link:semodule-utils \
		semodule_expand:semodule-utils semodule:policycoreutils \
		sesearch:setools seinfo:setools matchpathcon:selinux-utils; do
		tool=${pair%%:*} pkg=${pair#*:}
		command -v "$tool" >/dev/null || missing+=("$tool (package $pkg)")
	done
	[ -f "$devel_mk" ] || missing+=("$devel_mk (package selinux-policy-dev)")
	[ -f "$base_pp" ] || missing+=("$base_pp (package selinux-policy-default)")
	[ -d "$store" ] || missing+=("policy store $store (package selinux-policy-default)")
	if [ ${#missing[@]} -gt 0 ]; then
		printf 'FAIL  missing: %s\n' "${missing[@]}" >&2
		die "install the packages above (tests/setup-host.sh) and rerun"
	fi
	bzip2 -dc "$base_pp" >"$work/base.pp" || die "cannot decompress $base_pp"
}

# ------------------------------------------------------------- pipeline

# build DIR [EXTRA_TE]: copy the sources into DIR, append EXTRA_TE (a
# negative fixture) to crhook.te, compile the three modules.
build() {
	local dir=$1 extra=${2:-}
	mkdir -p "$dir"
	cp "$policy_src"/crhook.te "$policy_src"/crhook.if "$policy_src"/crhook.fc \
		"$here"/crhook_test_container.te "$here"/crhook_ifcheck.te "$dir"/
	[ -n "$extra" ] && cat "$extra" >>"$dir/crhook.te"
	# A clean environment: the devel Makefile must not inherit the
	# caller's make variables (PREFIX, NAME, TYPE...).
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u MAKEOVERRIDES \
		make -C "$dir" -f "$devel_mk" \
		crhook_test_container.pp crhook.pp crhook_ifcheck.pp >"$dir/build.log" 2>&1
}

# link DIR: base policy + stub + crhook + interface check.
link() {
	semodule_link -o "$1/linked.pp" "$work/base.pp" "$1/crhook_test_container.pp" \
		"$1/crhook.pp" "$1/crhook_ifcheck.pp" >"$1/link.log" 2>&1
}

# expand DIR [-a]: kernel policy; checks every neverallow unless -a.
expand() {
	semodule_expand ${2:-} "$1/linked.pp" "$1/policy.bin" >"$1/expand.log" 2>&1
}

# ---------------------------------------------------------- assertions
#
# Each policy is queried three times (sesearch loads the whole policy on
# every call, about a second for Debian's full policy): the rules of
# the runtime domain, the rules of container_domain, and the types and
# booleans. The assertions below read those dumps.

# dump POLICY DIR
dump() {
	mkdir -p "$2"
	sesearch -A -T -s container_runtime_t "$1" >"$2/runtime.rules" &&
		sesearch -A --auditallow -T --type_change --type_member \
			-s container_domain "$1" >"$2/container.rules" &&
		seinfo "$1" -x -t -b >"$2/info" &&
		# Empty dumps would make every "no rule" check pass vacuously.
		grep -q . "$2/runtime.rules" && grep -q . "$2/container.rules" &&
		grep -q '^ *type crhook_var_run_t,' "$2/info"
}

# perms RULES TARGETS CLASS [BOOL]: union of the permissions that allow
# rules in RULES give on any of TARGETS (space separated) for CLASS.
# Without BOOL only unconditional rules count; with BOOL only rules in
# that boolean's true branch.
perms() {
	awk -v T="$2" -v C="$3" -v B="${4:-}" '
		BEGIN { n = split(T, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
		$1 != "allow" { next }
		{
			split($3, tc, ":"); if (!(tc[1] in want) || tc[2] != C) next
			cond = ""; if (match($0, /\[ [a-z0-9_]+ \]:True/)) cond = substr($0, RSTART + 2, RLENGTH - 9)
			if (cond != B) next
			s = $0; sub(/^[^:]*:[a-z_]+ /, "", s); sub(/;.*/, "", s); gsub(/[{}]/, "", s)
			m = split(s, p, " "); for (i = 1; i <= m; i++) print p[i]
		}' "$1" | sort -u | tr '\n' ' '
}

# rule_has DIR TARGET CLASS PERM...: container_runtime_t has each PERM.
rule_has() {
	local dir=$1 tgt=$2 cls=$3 got missing=() perm
	shift 3
	got=" $(perms "$dir/runtime.rules" "$tgt" "$cls")"
	for perm in "$@"; do
		[[ $got == *" $perm "* ]] || missing+=("$perm")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		pass "rule: container_runtime_t $tgt:$cls { $* }"
	else
		fail "rule: container_runtime_t $tgt:$cls lacks { ${missing[*]} }" "has: {$got}"
	fi
}

# rule_lacks DIR TARGET CLASS WHY PERM...: container_runtime_t has none.
rule_lacks() {
	local dir=$1 tgt=$2 cls=$3 why=$4 got extra=() perm
	shift 4
	got=" $(perms "$dir/runtime.rules" "$tgt" "$cls")"
	for perm in "$@"; do
		[[ $got == *" $perm "* ]] && extra+=("$perm")
	done
	if [ ${#extra[@]} -eq 0 ]; then
		pass "no rule: container_runtime_t $tgt:$cls { $* } ($why)"
	else
		fail "unexpected rule: container_runtime_t $tgt:$cls { ${extra[*]} } ($why)"
	fi
}

crhook_types=(crhook_var_run_t crhook_conf_t)

# isolation DIR: nothing in container_domain gets at crhook's types.
isolation() {
	local dir=$1 t attrs out bad cls rc=0
	for t in "${crhook_types[@]}"; do
		# 1. No rule of any kind names a crhook type for container_domain.
		out=$(awk -v T="$t" '{ split($3, tc, ":") } tc[1] == T || $4 == T || $4 == T ";"' "$dir/container.rules")
		if [ -z "$out" ]; then
			pass "no rule grants container_domain anything on $t"
		else
			fail "a rule grants container_domain access to $t" "$out"; rc=1
		fi
		# 2. Effective access through attributes (file_type, pidfile...):
		#    at most directory search (container-selinux's files_search_all).
		attrs=$(sed -n "s/^ *type $t, \(.*\);/\1/p" "$dir/info" | tr -d ,)
		bad=""
		for cls in file lnk_file sock_file fifo_file chr_file blk_file; do
			out=$(perms "$dir/container.rules" "$t $attrs" "$cls")
			[ -n "$out" ] && bad+="$cls: { $out} "
		done
		out=$(perms "$dir/container.rules" "$t $attrs" dir)
		out=$(printf '%s' "$out" | tr ' ' '\n' | grep -vxE 'getattr|search|open|' | tr '\n' ' ')
		[ -n "$out" ] && bad+="dir: { $out}"
		if [ -z "$bad" ]; then
			pass "container_domain has no access to $t beyond directory search"
		else
			fail "container_domain can reach $t" "$bad"; rc=1
		fi
	done
	return $rc
}

intended_rules() {
	local dir=$1 out
	rule_has "$dir" crhook_conf_t dir search read open getattr
	rule_has "$dir" crhook_conf_t file read open getattr
	rule_has "$dir" crhook_conf_t lnk_file read
	rule_lacks "$dir" crhook_conf_t file "configuration is read-only to the runtime" \
		write append create unlink setattr
	rule_has "$dir" crhook_var_run_t dir search add_name remove_name create rmdir write
	rule_has "$dir" crhook_var_run_t file create write rename unlink read open
	if grep -q '^type_transition container_runtime_t var_run_t:dir crhook_var_run_t crhook;$' "$dir/runtime.rules"; then
		pass "type_transition container_runtime_t var_run_t:dir crhook_var_run_t \"crhook\""
	else
		fail "named type transition for /run/crhook missing" "$(grep var_run_t:dir "$dir/runtime.rules")"
	fi
	if grep -qE '^ *type crhook_var_run_t,.* pidfile' "$dir/info"; then
		pass "crhook_var_run_t is a runtime file type (pidfile attribute)"
	else
		fail "crhook_var_run_t is not a runtime file type" "$(grep crhook_var_run_t "$dir/info")"
	fi
	if grep -qE '^ *type crhook_conf_t,.* configfile' "$dir/info"; then
		pass "crhook_conf_t is a configuration file type (configfile attribute)"
	else
		fail "crhook_conf_t is not a configuration file type" "$(grep crhook_conf_t "$dir/info")"
	fi
}

# tunable DIR: crhook_read_admin_home exists, is off, and is the only
# thing that lets the runtime read files in a home directory.
tunable() {
	local dir=$1 home=" admin_home_t user_home_t user_home_dir_t "
	if grep -q '^ *bool crhook_read_admin_home false;' "$dir/info"; then
		pass "tunable crhook_read_admin_home exists and defaults to false"
	else
		fail "tunable crhook_read_admin_home missing or not false"
	fi
	local guarded unguarded
	guarded=$(perms "$dir/runtime.rules" "$home" file crhook_read_admin_home)
	unguarded=$(perms "$dir/runtime.rules" "$home" file)
	if [[ " $guarded " == *" read "* && " $unguarded " != *" read "* ]]; then
		pass "home directory files are readable only under crhook_read_admin_home"
	else
		fail "crhook_read_admin_home does not guard the home read rule" \
			"guarded: {$guarded} unguarded: {$unguarded}"
	fi
}

# Every grant in crhook.te sits under a comment naming the denial it prevents.
rule_comments() {
	local bad
	bad=$(awk '
		/^[ \t]*#/ { if ($0 ~ /Prevents/) seen = 1; next }
		/^[ \t]*$/ { seen = 0; next }
		/^[ \t]*(allow|crhook_[a-z_]+\(container_runtime_t)/ && !seen { print FILENAME ":" FNR ": " $0 }
		{ seen = 0 }' "$policy_src/crhook.te")
	if [ -z "$bad" ]; then
		pass "every grant in crhook.te has a \"Prevents:\" comment"
	else
		fail "grants without a comment naming the denial they prevent" "$bad"
	fi
}

# ------------------------------------------------------------------ run

start=$(date +%s%N)
preflight
echo "policy: $base_pp ($(dpkg-query -W -f='${Package} ${Version}' selinux-policy-default 2>/dev/null || echo unknown))"
echo "devel:  $devel_mk"
echo

rule_comments

ok=$work/ok
if build "$ok"; then
	pass "compile: crhook.pp, crhook_test_container.pp (stub), crhook_ifcheck.pp (every crhook_* interface)"
else
	fail "compile" "$(tail -20 "$ok/build.log")"
	die "nothing else can be checked without a module"
fi

# Scratch policy store: the real install path (semodule, CIL, all of
# Debian's modules, file contexts), with neverallow checking forced on.
# It takes the longest, so it runs while the linked policy is queried.
root=$work/root
name=$(basename "$store")
mkdir -p "$root/var/lib/selinux" "$root/etc/selinux"
cp -a "$store" "$root/var/lib/selinux/"
cp -a "$policy_etc" "$root/etc/selinux/"
sed 's/^expand-check *= *0/expand-check=1/' /etc/selinux/semanage.conf >"$root/etc/selinux/semanage.conf"
semodule -p "$root" -s "$name" -n -X 400 -i "$ok/crhook_test_container.pp" "$ok/crhook.pp" \
	>"$work/semodule.log" 2>&1 &
semodule_pid=$!

if link "$ok"; then
	pass "link: base.pp + stub + crhook + interface check (every require satisfied)"
else
	fail "link" "$(cat "$ok/link.log")"
fi
if [ -f "$ok/linked.pp" ] && expand "$ok"; then
	pass "expand: semodule_expand checked every neverallow"
else
	fail "expand" "$(cat "$ok/expand.log" 2>/dev/null)"
fi
if [ -f "$ok/policy.bin" ] && dump "$ok/policy.bin" "$ok/q"; then
	intended_rules "$ok/q"
	isolation "$ok/q"
	tunable "$ok/q"
else
	fail "querying $ok/policy.bin"
fi

# Negative tests, while the store install runs: broken copies of the
# module must be caught, or the checks above prove nothing.
echo
neg=$work/neg-undefined
if build "$neg" "$here/negative/undefined-type.te"; then
	fail "negative: a module using an undefined type compiled"
elif grep -q 'crhook_no_such_t' "$neg/build.log"; then
	pass "negative: undefined type rejected at compile ($(grep -m1 -o "unknown type [a-z_]*" "$neg/build.log"))"
else
	fail "negative: build failed, but not on the undefined type" "$(tail -5 "$neg/build.log")"
fi

neg=$work/neg-leak
if ! { build "$neg" "$here/negative/container-reads-runtime.te" && link "$neg"; }; then
	fail "negative: the leak fixture did not even build" "$(tail -5 "$neg/build.log")"
elif expand "$neg"; then
	fail "negative: semodule_expand accepted container_t reading crhook_var_run_t"
else
	pass "negative: neverallow rejects container_t reading crhook_var_run_t ($(grep -m1 -o 'neverallow violated by .*' "$neg/expand.log" || head -1 "$neg/expand.log"))"
	# The same policy with neverallow checking off (-a) must fail the
	# sesearch assertions too: they do not depend on the neverallow.
	# A subshell, so that its expected FAILs do not count.
	if expand "$neg" -a && dump "$neg/policy.bin" "$neg/q" &&
		! (isolation "$neg/q" >"$neg/isolation.log"); then
		pass "negative: sesearch isolation assertions catch the same leak without the neverallow"
	else
		fail "negative: sesearch isolation assertions missed the leak" "$(cat "$neg/isolation.log" 2>/dev/null)"
	fi
fi

echo
if wait "$semodule_pid"; then
	pass "semodule -p SCRATCH -s $name -n -i: installs into a copy of $store (expand-check=1)"
	spol=$(ls "$root/etc/selinux/$name/policy/policy."* | head -1)
	fc=$root/etc/selinux/$name/contexts/files/file_contexts
	if dump "$spol" "$work/store-q"; then
		rule_has "$work/store-q" crhook_var_run_t file create write rename read
		rule_has "$work/store-q" crhook_conf_t file read open
		isolation "$work/store-q"
		tunable "$work/store-q"
	else
		fail "querying $spol"
	fi
	for want in "file /usr/bin/crhook bin_t" \
		"file /usr/libexec/crhook/crhook-runtime container_runtime_exec_t" \
		"dir /etc/crhook crhook_conf_t" \
		"file /etc/crhook/crhook.d/50-site.toml crhook_conf_t" \
		"file /usr/share/crhook/crhook.toml crhook_conf_t" \
		"dir /run/crhook crhook_var_run_t" \
		"file /run/crhook/containers/0123abcd/criu.conf crhook_var_run_t" \
		"file /var/run/crhook/containers/0123abcd/criu.conf crhook_var_run_t"; do
		read -r mode path type <<<"$want"
		got=$(matchpathcon -m "$mode" -f "$fc" "$path" 2>&1 | awk '{print $2}')
		if [ "${got#*:object_r:}" = "$type:s0" ]; then
			pass "file context: $path -> $type"
		else
			fail "file context: $path -> $got, want $type"
		fi
	done
else
	fail "semodule -p SCRATCH -n -i" "$(cat "$work/semodule.log")"
fi

elapsed=$((($(date +%s%N) - start) / 1000000))
echo
if [ "$failures" -ne 0 ]; then
	printf 'selinux check: %d of %d checks FAILED (%d ms)\n' "$failures" "$checks" "$elapsed"
	exit 1
fi
printf 'selinux check: all %d checks passed (%d ms)\n' "$checks" "$elapsed"
