#!/bin/bash
#
# run.sh - run the integration tests: every tests/integration/t_*.sh, or the
# ones named on the command line (t_swap or t_swap.sh).  Prints PASS, FAIL
# or SKIP per test and transport (with the test's output when it did not
# pass, or always with V=1) and ends with "N passed, N failed, N skipped",
# counting every pass.  Exit status 1 if any test failed, or if any was
# skipped when CI=true (on CI nothing may be skipped).
#
# Each test runs bounded by FZ_TEST_TIMEOUT seconds (default 900); a test
# that overruns gets SIGTERM, which runs its cleanup trap.  After each test
# the machine is checked for what it may have left: mounts or loop devices
# under the run's temporary directory (swap on such a device keeps it
# attached), memory cgroups fusezram-test.PID whose process is gone, the
# fuse module's enable_uring changed.  A leak makes the test fail.
#
# Two transports.  The kernel hands FUSE requests to the daemon through
# /dev/fuse or, since Linux 6.14 and when the fuse module's parameter
# /sys/module/fuse/parameters/enable_uring is on, through io_uring.  The
# selected tests run in two passes: one with the parameter set to 0
# (FZ_TRANSPORT=fuse in the tests' environment), then one with it set to 1
# (FZ_TRANSPORT=uring); lib.sh's fz_mount checks that every mount uses
# that transport.  Results are labelled "[/dev/fuse]" or "[io_uring]".
# The parameter's value from before the run is put back on every exit
# path (the end, a failure, SIGINT, SIGTERM); a test that leaves it other
# than its pass set it fails.  Without the parameter (a kernel before 6.14
# or without CONFIG_FUSE_IO_URING) only the /dev/fuse pass runs and the
# io_uring pass counts as one SKIP, which fails a run with CI=true.
# FZ_TRANSPORTS="fuse" or "uring" runs that pass only (default
# "fuse uring").
#
# The whole run holds an exclusive flock(1) on /tmp/fusezram-uring.lock
# (made if missing), so that two runs, or a run and a benchmark, never
# switch the parameter under each other: anything else that switches it
# must hold the same lock (flock /tmp/fusezram-uring.lock CMD).  The run
# waits for it at most FZ_LOCK_WAIT seconds (default 3600).  Tests do not
# inherit the lock's descriptor.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${FZ_TEST_TIMEOUT:-900}
PARAM=/sys/module/fuse/parameters/enable_uring
LOCK=/tmp/fusezram-uring.lock

if [ "$#" -gt 0 ]; then
	tests=()
	for t in "$@"; do
		t=${t%.sh}
		tests+=("$here/${t##*/}.sh")
	done
else
	tests=("$here"/t_*.sh)
fi

transports=()
for tr in ${FZ_TRANSPORTS:-fuse uring}; do
	case $tr in
	fuse | uring) transports+=("$tr") ;;
	*)
		echo "run.sh: FZ_TRANSPORTS: unknown transport '$tr' (expected fuse, uring or both)" >&2
		exit 2
		;;
	esac
done
[ "${#transports[@]}" -gt 0 ] || { echo "run.sh: FZ_TRANSPORTS is empty" >&2; exit 2; }

# The lock first: nothing of the machine is looked at or changed before.
exec {lockfd}<>"$LOCK"
if ! flock -n -x "$lockfd"; then
	echo "run.sh: waiting for $LOCK (another test run or a benchmark is switching enable_uring)" >&2
	flock -w "${FZ_LOCK_WAIT:-3600}" -x "$lockfd" ||
		{ echo "run.sh: $LOCK still held after ${FZ_LOCK_WAIT:-3600}s; giving up" >&2; exit 1; }
fi

FZ_TMPBASE=$(mktemp -d "${TMPDIR:-/tmp}/fusezram-run.XXXXXX")
export FZ_TMPBASE

# The parameter: Y or N (absent: empty).
[ -d /sys/module/fuse ] || modprobe fuse 2>/dev/null || :
param_orig=''
[ ! -e "$PARAM" ] || param_orig=$(cat "$PARAM")
param_now() { cat "$PARAM" 2>/dev/null || :; }

# set_param 0|1 - write the parameter and check it took.
set_param() {
	local want=N
	[ "$1" = 0 ] || want=Y
	[ "$(param_now)" = "$want" ] && return 0
	echo "$1" >"$PARAM" 2>/dev/null || :
	[ "$(param_now)" = "$want" ]
}

# shellcheck disable=SC2317 # run by the EXIT trap
on_exit() {
	if [ -n "$param_orig" ] && [ "$(param_now)" != "$param_orig" ]; then
		local v=0
		[ "$param_orig" = N ] || v=1
		echo "$v" >"$PARAM" 2>/dev/null ||
			echo "run.sh: COULD NOT RESTORE $PARAM to $param_orig (it is $(param_now))" >&2
	fi
	rmdir "$FZ_TMPBASE" 2>/dev/null || echo "run.sh: left $FZ_TMPBASE (see above)" >&2
}
trap on_exit EXIT

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

# run_one TEST LABEL PARAMVALUE - run one test, print its verdict (LABEL,
# " [io_uring]" say, after its name).
# PARAMVALUE (Y, N or empty) is what enable_uring must still be after it.
run_one() {
	local t=$1 label=$2 want=$3 name log start secs rc before after leaked verdict
	name=$(basename "$t" .sh)
	if [ ! -f "$t" ]; then
		echo "FAIL $name$label (no such test: $t)"
		fail=$((fail + 1))
		failed+=("$name$label")
		return 0
	fi
	before=$(leftovers)
	log=$(mktemp "$FZ_TMPBASE/$name.log.XXXXXX")
	start=$SECONDS
	# In the background, so that an interrupt reaches us at once: we pass
	# it on as SIGTERM, the test cleans up, and the run stops.
	timeout -k 120 "$timeout_s" bash "$t" >"$log" 2>&1 {lockfd}>&- &
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
	if [ -n "$want" ] && [ "$(param_now)" != "$want" ]; then
		leaked+=${leaked:+$'\n'}"$PARAM is $(param_now), the pass set $want (put back)"
		set_param "$([ "$want" = Y ] && echo 1 || echo 0)" ||
			leaked+=$'\n'"and it could not be put back"
	fi
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
		failed+=("$name$label (skipped)")
	else
		verdict=FAIL
		fail=$((fail + 1))
		failed+=("$name$label")
	fi
	echo "$verdict $name$label (${secs}s)"
	if [ "$verdict" != PASS ] || [ "${V:-0}" = 1 ]; then
		sed 's/^/    /' "$log"
	fi
	rm -f "$log"
}

if [ "$(id -u)" -ne 0 ]; then
	# The tests skip by themselves; the parameter is root's to set.
	echo "run.sh: not root: enable_uring left as it is, one pass" >&2
	transports=(any)
fi

for tr in "${transports[@]}"; do
	want='' label='' val=''
	case $tr in
	fuse) label=' [/dev/fuse]' val=0 want=N ;;
	uring) label=' [io_uring]' val=1 want=Y ;;
	any) unset FZ_TRANSPORT ;;
	esac
	if [ "$tr" != any ]; then
		if [ -z "$param_orig" ]; then
			if [ "$tr" = uring ]; then
				echo "SKIP io_uring pass: no $PARAM (FUSE over io_uring needs Linux 6.14+ with CONFIG_FUSE_IO_URING)"
				skip=$((skip + 1))
				failed+=("the io_uring pass (skipped)")
				continue
			fi
			want=''		# /dev/fuse is all there is
		elif ! set_param "$val"; then
			echo "FAIL${label} pass: cannot set $PARAM to $val (it reads '$(param_now)')"
			fail=$((fail + 1))
			failed+=("the${label} pass")
			continue
		fi
		export FZ_TRANSPORT=$tr
		echo "==${label} pass: $PARAM ${want:-absent}, FZ_TRANSPORT=$tr =="
	fi
	for t in "${tests[@]}"; do
		run_one "$t" "$label" "$want"
		[ "$interrupted" = 0 ] || break
	done
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
	list=$(printf '%s, ' "${failed[@]}")
	echo "run.sh: not passed: ${list%, }" >&2
	exit 1
fi
exit 0
