#!/bin/bash
#
# run.sh - run the integration tests: every tests/integration/t_*.sh, or the
# ones named on the command line (t_swap or t_swap.sh).  Prints PASS, FAIL
# or SKIP per test (with the test's output when it did not pass, or always
# with V=1) and ends with "N passed, N failed, N skipped".  Exit status 1 if
# any test failed, or if any was skipped when CI=true (on CI nothing may be
# skipped).
#
# Each test runs bounded by FZ_TEST_TIMEOUT seconds (default 900); a test
# that overruns gets SIGTERM, which runs its cleanup trap.  After each test
# the machine is checked for what it may have left: mounts or loop devices
# under the run's temporary directory (swap on such a device keeps it
# attached), memory cgroups fusezram-test.PID whose process is gone.  A leak
# makes the test fail.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${FZ_TEST_TIMEOUT:-900}

if [ "$#" -gt 0 ]; then
	tests=()
	for t in "$@"; do
		t=${t%.sh}
		tests+=("$here/${t##*/}.sh")
	done
else
	tests=("$here"/t_*.sh)
fi

FZ_TMPBASE=$(mktemp -d "${TMPDIR:-/tmp}/fusezram-run.XXXXXX")
export FZ_TMPBASE
trap 'rmdir "$FZ_TMPBASE" 2>/dev/null || echo "run.sh: left $FZ_TMPBASE (see above)" >&2' EXIT

# Everything the run's tests could have left on the machine, one per line.
leftovers() {
	awk -v d="$FZ_TMPBASE/" 'index($2, d) == 1 { print "mount " $2 }' /proc/self/mounts
	losetup -l -n -O NAME,BACK-FILE 2>/dev/null |
		awk -v d="$FZ_TMPBASE/" 'index($2, d) == 1 { print "loop " $1 " " $2 }' || :
	# A test's cgroup is fusezram-test.<its pid>: one whose test is gone
	# was left behind (a live one may belong to a concurrent run).
	local cg
	for cg in /sys/fs/cgroup/memory/fusezram-test.* /sys/fs/cgroup/fusezram-test.*; do
		[ ! -d "$cg" ] || [ -e "/proc/${cg##*.}" ] || echo "cgroup $cg"
	done
}

pass=0 fail=0 skip=0
failed=()
tpid='' interrupted=0
trap 'interrupted=1; [ -z "$tpid" ] || kill -TERM "$tpid" 2>/dev/null || :' INT TERM
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	if [ ! -f "$t" ]; then
		echo "FAIL $name (no such test: $t)"
		fail=$((fail + 1))
		failed+=("$name")
		continue
	fi
	before=$(leftovers)
	log=$(mktemp "$FZ_TMPBASE/$name.log.XXXXXX")
	start=$SECONDS
	# In the background, so that an interrupt reaches us at once: we pass
	# it on as SIGTERM, the test cleans up, and the run stops.
	timeout -k 120 "$timeout_s" bash "$t" >"$log" 2>&1 &
	tpid=$!
	while :; do
		rc=0
		wait "$tpid" || rc=$?
		kill -0 "$tpid" 2>/dev/null || break
	done
	tpid=
	secs=$((SECONDS - start))
	after=$(leftovers)
	leaked=$(comm -13 <(sort <<<"$before") <(sort <<<"$after") | sed '/^$/d')
	if [ -n "$leaked" ]; then
		printf '%s: LEAKED:\n%s\n' "$name" "$leaked" >>"$log"
		[ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] || rc=1
	fi
	[ "$rc" -ne 124 ] || echo "$name: timed out after ${timeout_s}s" >>"$log"
	if [ "$rc" -eq 0 ]; then
		verdict=PASS
		pass=$((pass + 1))
	elif [ "$rc" -eq 77 ]; then
		verdict=SKIP
		skip=$((skip + 1))
		failed+=("$name (skipped)")
	else
		verdict=FAIL
		fail=$((fail + 1))
		failed+=("$name")
	fi
	echo "$verdict $name (${secs}s)"
	if [ "$verdict" != PASS ] || [ "${V:-0}" = 1 ]; then
		sed 's/^/    /' "$log"
	fi
	rm -f "$log"
	if [ "$interrupted" = 1 ]; then
		echo "run.sh: interrupted; the remaining tests were not run" >&2
		break
	fi
done

summary="$pass passed, $fail failed"
[ "$skip" -eq 0 ] || summary+=", $skip skipped"
echo "$summary"
[ "$interrupted" = 0 ] || exit 130
if [ "$fail" -ne 0 ] || { [ "$skip" -ne 0 ] && [ "${CI:-}" = true ]; }; then
	[ "$skip" -eq 0 ] || [ "${CI:-}" != true ] ||
		echo "run.sh: CI=true and tests were skipped: that is a failure" >&2
	echo "run.sh: not passed: ${failed[*]}" >&2
	exit 1
fi
exit 0
