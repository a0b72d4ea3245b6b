# Assertions and helpers for guest scenarios (POSIX sh; run.sh copies this
# next to the scenario, which sources it: . ./lib.sh).
#
# A scenario makes many assertions in one boot (a boot costs 10-20 s) and
# ends with `summary`, whose status is the scenario's: any FAIL fails it.
# Output lines start with PASS, FAIL, "+ " (a command run) or "## " (a step).

checks=0
failures=0
t0=$(cut -d' ' -f1 /proc/uptime)

elapsed() { awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1fs", b - a }'; }
step() { echo "## $* [$(elapsed)]"; }
pass() { checks=$((checks + 1)); echo "PASS  $*"; }
fail() {
	checks=$((checks + 1)); failures=$((failures + 1))
	echo "FAIL  $*"
}
# indent: quote command output under an assertion.
indent() { sed 's/^/      /'; }

# check DESC CMD...: CMD succeeds. Its output is shown on failure.
check() {
	_desc=$1; shift
	if _out=$("$@" 2>&1); then
		pass "$_desc"
	else
		fail "$_desc (exit $?: $*)"
		printf '%s\n' "$_out" | tail -n 25 | indent
	fi
}

# must DESC CMD...: like check, but the scenario cannot go on without it.
must() {
	_before=$failures
	check "$@"
	[ "$failures" = "$_before" ] || { summary; exit 1; }
}

# run CMD...: show and run a command; its status is returned.
run() { echo "+ $*"; "$@"; }

# equal DESC GOT WANT
equal() {
	if [ "$2" = "$3" ]; then pass "$1: $2"; else fail "$1: got \"$2\", want \"$3\""; fi
}

# poll SECONDS CMD...: retry CMD every 0.2 s until it succeeds or the
# deadline passes (never a fixed sleep as an assertion).
poll() {
	_end=$(awk -v u="$(cut -d' ' -f1 /proc/uptime)" -v s="$1" 'BEGIN { print u + s }')
	shift
	while ! "$@" >/dev/null 2>&1; do
		awk -v u="$(cut -d' ' -f1 /proc/uptime)" -v e="$_end" 'BEGIN { exit !(u > e) }' && return 1
		sleep 0.2
	done
}

summary() {
	echo "## $checks checks, $failures failed [$(elapsed)]"
	[ "$failures" = 0 ]
}
