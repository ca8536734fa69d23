# shellcheck shell=bash
#
# lib.sh - the shared helper of the integration tests.  Source it first:
#
#	. "$(dirname "$0")/lib.sh"
#
# Sourcing checks for root, makes a private temporary directory and installs
# the one EXIT/INT/TERM trap of the test.  Everything a test sets up goes
# through a helper here that registers how to undo it (fz_mount, fz_loop,
# fz_mount_fs, fz_swapon, fz_cgroup, fz_defer); the trap undoes the
# registrations in reverse order on every exit path: swapoff, umount,
# losetup -d, fusermount3 -u (then the daemon is waited for, and killed if it
# lingers), cgroup rmdir, rm of the temporary directory.  Every undo step and
# every wait is bounded in time.  A cleanup step that fails makes the test
# fail, loudly, naming what was left behind.
#
# Exit status of a test: 0 pass, 1 fail, 77 skip (a prerequisite is missing;
# with CI=true a missing prerequisite is a failure instead: fz_skip exits 1).
#
# Environment: FUSEZRAM (the daemon, default <repo>/fusezram), HOG (default
# <repo>/build/hog), FZ_TMPBASE (where temporary directories go, default
# $TMPDIR or /tmp), FZ_KEEP_LOG=1 (print the daemon's log even on success),
# FZ_TRANSPORT (fuse or uring, set by run.sh for each of its passes: every
# mount fz_mount makes must then use that FUSE transport, see
# fz_check_transport; unset, nothing is checked).

set -euo pipefail

FZ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FUSEZRAM=${FUSEZRAM:-$FZ_ROOT/fusezram}
HOG=${HOG:-$FZ_ROOT/build/hog}
FZ_NAME=$(basename "$0" .sh)
# shellcheck disable=SC2034 # for the tests
FZ_PAGE=4096

# The test's own stderr, kept for messages from the trap, which may run
# while a function's output is redirected elsewhere.
exec {FZ_ERR}>&2
fz_log() { printf '%s: %s\n' "$FZ_NAME" "$*" >&"$FZ_ERR"; }

# fz_fail MSG - report a failure and exit 1 (the trap cleans up).
fz_fail() {
	printf '%s: FAIL: %s\n' "$FZ_NAME" "$*" >&"$FZ_ERR"
	exit 1
}

# fz_skip MSG - a prerequisite is missing: exit 77, or 1 when CI=true.
fz_skip() {
	if [ "${CI:-}" = true ]; then
		printf '%s: *** FAIL: prerequisite missing (CI=true, nothing may be skipped): %s ***\n' \
			"$FZ_NAME" "$*" >&"$FZ_ERR"
		exit 1
	fi
	printf '%s: *** SKIP: prerequisite missing: %s ***\n' "$FZ_NAME" "$*" >&"$FZ_ERR"
	exit 77
}

# fz_require CMD... - skip unless every command is on PATH.
fz_require() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			fz_skip "command '$c' not found (run scripts/deps.sh)"
	done
}

# ---------------------------------------------------------------------------
# Cleanup registry.  Each entry is "kind|arg|arg"; arguments never contain
# '|' (they are paths under FZ_TMP, device names and pids), except in
# "cmd|SHELL COMMAND", whose command is everything after "cmd|".  fz__undo
# runs one entry; an entry that was undone early becomes "done".

FZ_CLEANUP=()
FZ_BG=()		# pids of fz_run's timeout processes still running
FZ_CLEANUP_FAILED=0
FZ_IN_CLEANUP=0

fz__register() { FZ_CLEANUP+=("$1"); }

# fz_defer CMD - run the shell command CMD (a string) at cleanup.
fz_defer() { fz__register "cmd|$1"; }

# fz__retry SECS CMD... - run CMD until it succeeds or SECS have passed.
fz__retry() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while :; do
		"$@" && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.5
	done
}

# fz_wait_until SECS CMD... - poll CMD (quietly) every 0.1 s for SECS.
fz_wait_until() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# fz_is_mounted DIR - true if DIR is a mount point in /proc/self/mounts.
# Works for a FUSE mount whose daemon died (stat would say ENOTCONN).
fz_is_mounted() {
	awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/self/mounts
}

# fz__alive PID - the process exists and is not a zombie.
fz__alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# fz__is_our_daemon PID MNT - PID runs a command with MNT as an argument.
fz__is_our_daemon() {
	[ -r "/proc/$1/cmdline" ] &&
		tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$2"
}

# fz__find_daemon MNT - print the pid of the fusezram serving MNT, if any.
fz__find_daemon() {
	local p exe
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
		case $exe in */fusezram*) ;; *) continue ;; esac
		if fz__is_our_daemon "$p" "$1"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

fz__undo_swap() {
	local dev=$1
	grep -q "^${dev}[[:space:]]" /proc/swaps || return 0
	if ! timeout 300 swapoff "$dev"; then
		fz_log "CLEANUP FAILED: swapoff $dev (swap is still on!)"
		return 1
	fi
}

fz__undo_fs() {
	local dir=$1
	fz_is_mounted "$dir" || return 0
	if fz__retry 30 timeout 60 umount "$dir"; then
		return 0
	fi
	fz_log "CLEANUP FAILED: umount $dir; detaching it lazily"
	timeout 60 umount -l "$dir" || fz_log "CLEANUP FAILED: umount -l $dir"
	return 1
}

fz__loop_back() { losetup -n -O BACK-FILE "$1" 2>/dev/null | sed 's/[[:space:]]*$//'; }

fz__undo_loop() {
	local dev=$1 back=$2 cur
	cur=$(fz__loop_back "$dev")
	# Detached already (perhaps reused by someone else since): not ours.
	[ "$cur" = "$back" ] || return 0
	if ! fz__retry 30 timeout 30 losetup -d "$dev"; then
		fz_log "CLEANUP FAILED: losetup -d $dev ($back)"
		return 1
	fi
	# A busy device is only marked autoclear; wait for the real detach.
	if ! fz_wait_until 30 fz__loop_gone "$dev" "$back"; then
		fz_log "CLEANUP FAILED: $dev still attached to $back"
		return 1
	fi
}

fz__loop_gone() { [ "$(fz__loop_back "$1")" != "$2" ]; }

# fz__undo_loops IMG - detach every loop device on IMG.
fz__undo_loops() {
	local dev rc=0
	for dev in $(fz_loops_of "$1"); do
		fz__undo_loop "$dev" "$1" || rc=1
	done
	return "$rc"
}

fz__fusermount() { timeout 30 fusermount3 -u "$1" 2>/dev/null; }

# fz__undo_fuse MNT PID LOG - unmount, let the daemon exit, reap it.
fz__undo_fuse() {
	local mnt=$1 pid=$2 log=$3 rc=0 st=0
	[ -n "$pid" ] || pid=$(fz__find_daemon "$mnt") || pid=""
	if fz_is_mounted "$mnt" && ! fz__retry 30 fz__fusermount "$mnt"; then
		fz_log "CLEANUP FAILED: fusermount3 -u $mnt; detaching it lazily"
		timeout 30 fusermount3 -u -z "$mnt" || fz_log "CLEANUP FAILED: fusermount3 -u -z $mnt"
		rc=1
	fi
	if [ -n "$pid" ] && ! fz_wait_until 20 eval "! fz__alive $pid"; then
		if fz__is_our_daemon "$pid" "$mnt"; then
			fz_log "CLEANUP: daemon $pid still alive after unmount; killing it"
			kill -TERM "$pid" 2>/dev/null || :
			fz_wait_until 10 eval "! fz__alive $pid" || kill -KILL "$pid" 2>/dev/null || :
			rc=1
		fi
	fi
	# Reap our own child and check how it ended: a crash at unmount counts.
	if [ -n "$pid" ] && [ "$log" != - ] && ! fz__alive "$pid"; then
		wait "$pid" 2>/dev/null || st=$?
		if [ "$st" -ne 0 ] && [ "$st" -ne 127 ]; then
			fz_log "daemon for $mnt exited with status $st"
			rc=1
		fi
	fi
	if [ "$log" != - ] && [ -s "$log" ] &&
		{ [ "$rc" -ne 0 ] || [ "${FZ_KEEP_LOG:-0}" = 1 ] || [ "${FZ_STATUS:-0}" -ne 0 ]; }; then
		fz_log "daemon log ($log):"
		# A sanitizer's report from its first line; else the end.
		if grep -qE "$FZ_SAN_RE" "$log"; then
			awk -v re="$FZ_SAN_RE" '$0 ~ re { p = 1 } p && n++ < 60' "$log"
		else
			tail -n 40 "$log"
		fi | sed 's/^/    /' >&"$FZ_ERR"
	fi
	return "$rc"
}

FZ_SAN_RE='ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:'

fz__undo_cgroup() {
	local cg=$1 parent p
	[ -d "$cg" ] || return 0
	parent=$(dirname "$cg")
	# The only tasks in our cgroup are ones we started: end them, then
	# move whatever remains out, then remove the group.
	while read -r p; do
		if [ -n "$p" ]; then kill -KILL "$p" 2>/dev/null || :; fi
	done <"$cg/cgroup.procs"
	fz_wait_until 20 test ! -s "$cg/cgroup.procs" || :
	while read -r p; do
		if [ -n "$p" ]; then echo "$p" >"$parent/cgroup.procs" 2>/dev/null || :; fi
	done <"$cg/cgroup.procs"
	if ! fz__retry 20 rmdir "$cg" 2>/dev/null; then
		fz_log "CLEANUP FAILED: rmdir $cg"
		return 1
	fi
}

fz__undo_tmp() {
	local dir=$1
	[ -d "$dir" ] || return 0
	if awk -v d="$dir/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
		fz_log "CLEANUP FAILED: something is still mounted under $dir; not removing it"
		return 1
	fi
	rm -rf --one-file-system -- "$dir"
}

fz__undo() {
	local kind a b c
	case $1 in
	cmd\|*)
		# (A bare "return" in a trap returns the status from before it.)
		local rc=0
		eval "${1#cmd|}" || rc=$?
		[ "$rc" -eq 0 ] || fz_log "CLEANUP FAILED (status $rc): ${1#cmd|}"
		return "$rc"
		;;
	esac
	IFS='|' read -r kind a b c <<<"$1"
	case $kind in
	swap) fz__undo_swap "$a" ;;
	fs) fz__undo_fs "$a" ;;
	loop) fz__undo_loop "$a" "$b" ;;
	loops) fz__undo_loops "$a" ;;
	fuse) fz__undo_fuse "$a" "$b" "$c" ;;
	cgroup) fz__undo_cgroup "$a" ;;
	tmp) fz__undo_tmp "$a" ;;
	done) ;;
	*) fz_log "cleanup: unknown entry '$1'"; return 1 ;;
	esac
}

# fz__undo_match KIND ARG - undo the newest entry KIND|ARG|... now.
fz__undo_match() {
	local i rc=0
	for ((i = ${#FZ_CLEANUP[@]} - 1; i >= 0; i--)); do
		case ${FZ_CLEANUP[i]} in
		"$1|$2" | "$1|$2|"*)
			fz__undo "${FZ_CLEANUP[i]}" || rc=$?
			FZ_CLEANUP[i]="done"
			return "$rc"
			;;
		esac
	done
	fz_log "nothing registered for $1 $2"
	return 1
}

fz__cleanup() {
	local status=$1 i p
	FZ_STATUS=$status
	[ "$FZ_IN_CLEANUP" = 0 ] || return 0
	FZ_IN_CLEANUP=1
	exec 1>&"$FZ_ERR" 2>&"$FZ_ERR"
	set +eE
	trap - ERR
	trap '' INT TERM
	# Background commands of fz_run first: they may hold the mounts.
	for p in "${FZ_BG[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${FZ_BG[@]}"; do
		fz_wait_until 15 eval "! fz__alive $p" || kill -KILL "$p" 2>/dev/null
		fz_wait_until 5 eval "! fz__alive $p" && wait "$p" 2>/dev/null
	done
	local -a again=()
	for ((i = ${#FZ_CLEANUP[@]} - 1; i >= 0; i--)); do
		if ! fz__undo "${FZ_CLEANUP[i]}"; then
			FZ_CLEANUP_FAILED=1
			case ${FZ_CLEANUP[i]} in
			loop\|* | loops\|*) again+=("${FZ_CLEANUP[i]}") ;;
			esac
		fi
		FZ_CLEANUP[i]="done"
	done
	# A loop device whose I/O a daemon never answered stays attached until
	# that daemon is gone, which the fuse entries (after it) see to.
	for i in "${again[@]}"; do
		fz__undo "$i" && fz_log "CLEANUP: '$i' undone on a second try"
	done
	if [ "$FZ_CLEANUP_FAILED" != 0 ]; then
		fz_log "*** cleanup found problems, see above (a CLEANUP FAILED line means something is left on the machine) ***"
		[ "$status" -ne 0 ] || status=1
	fi
	exit "$status"
}

# Name the command that made set -e end the test (not one in a subshell).
FZ_MAINPID=$$
set -E
trap '[ "$BASHPID" != "$FZ_MAINPID" ] ||
	fz_log "FAIL: exit status $? at line $LINENO of ${BASH_SOURCE[0]##*/}: $BASH_COMMAND"' ERR
trap 'fz__cleanup $?' EXIT
trap 'fz_log "interrupted"; exit 130' INT
trap 'fz_log "terminated"; exit 143' TERM

# fz_daemon_pid [MNT] - print the pid of the one process that has MNT
# (default $FZ_MNT) as an argument: the daemon serving it, found as an
# administrator would, detached or not.  Fails the test if there is none
# or more than one.
fz_daemon_pid() {
	local mnt=${1:-$FZ_MNT} p pid=''
	for p in $(pgrep -f -- "$mnt"); do
		if fz__is_our_daemon "$p" "$mnt"; then
			[ -z "$pid" ] || fz_fail "two processes have $mnt as an argument: $pid and $p"
			pid=$p
		fi
	done
	[ -n "$pid" ] || fz_fail "no process has $mnt as an argument"
	echo "$pid"
}

# fz_run SECS CMD... - run CMD bounded by SECS in the background and wait
# for it, so that a signal to the test interrupts the wait and the trap
# runs at once (bash runs traps only between foreground commands).  Returns
# CMD's status; 124 on timeout.  CMD's stdin is /dev/null.
fz_run() {
	local secs=$1 pid p rc=0
	shift
	timeout -k 10 "$secs" "$@" </dev/null &
	pid=$!
	FZ_BG+=("$pid")
	wait "$pid" || rc=$?
	local -a keep=()
	for p in "${FZ_BG[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	FZ_BG=("${keep[@]}")
	[ "$rc" -ne 124 ] || fz_log "timed out after ${secs}s: $*"
	return "$rc"
}

# fz_run_hogs SECS N MIB PREFIX - run N hogs of MIB MiB at once inside
# $FZ_CGROUP (fz_cgroup first), each verifying every word over 2 passes
# with its own seed, bounded by SECS.  Hog i writes its output to
# PREFIX.i and its exit status to PREFIX.i.rc; the shell's own errors go
# to PREFIX.sh.err.  Returns fz_run's status (124 on timeout).
fz_run_hogs() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	fz_run "$1" bash -c '
		exec 2>"$5.sh.err"
		echo $$ >"$1/cgroup.procs" || exit 2
		pids=()
		for ((i = 1; i <= $4; i++)); do
			"$2" "$3" 2 "$(((i * 0x1111) << 48 | 0x5eed))" >"$5.$i" 2>&1 &
			pids+=($!)
		done
		for ((i = 1; i <= $4; i++)); do
			st=0
			wait "${pids[i - 1]}" || st=$?
			echo "$st" >"$5.$i.rc"
		done' _ "$FZ_CGROUP" "$HOG" "$3" "$2" "$4"
}

FZ_NPY=0

# fz_python SECS ARGS... <<'EOF' - run the python3 script on stdin with
# ARGS, bounded by SECS.  The script must print "ok" as its last line of
# output when every check passed (so a script that silently did nothing
# fails) and exit non-zero otherwise.
fz_python() {
	local secs=$1 py out rc=0
	shift
	FZ_NPY=$((FZ_NPY + 1))
	py=$FZ_TMP/script$FZ_NPY.py
	out=$FZ_TMP/script$FZ_NPY.out
	cat >"$py"
	fz_run "$secs" python3 "$py" "$@" >"$out" 2>&1 || rc=$?
	sed 's/^/    /' "$out" >&"$FZ_ERR"
	[ "$rc" -eq 0 ] || return "$rc"
	[ "$(tail -n 1 "$out")" = ok ] || {
		fz_log "the python script exited 0 without printing ok"
		return 1
	}
}

# ---------------------------------------------------------------------------
# Prerequisites and the private temporary directory.

if [ "$(id -u)" -ne 0 ]; then
	fz_skip "must run as root (FUSE mounts, loop devices, swap, cgroups)"
fi
FZ_TMP=$(mktemp -d "${FZ_TMPBASE:-${TMPDIR:-/tmp}}/fusezram-test.XXXXXX")
fz__register "tmp|$FZ_TMP"
case $FZ_TMP in
*[[:space:]\|]*) fz_fail "temporary directory '$FZ_TMP' has whitespace or '|'" ;;
esac

# fz_require_fuse - skip unless the daemon is built and FUSE is usable.
fz_require_fuse() {
	[ -x "$FUSEZRAM" ] || fz_skip "$FUSEZRAM not built (make fusezram)"
	[ -c /dev/fuse ] || fz_skip "/dev/fuse missing (modprobe fuse)"
	fz_require fusermount3 setsid timeout
}

# fz_require_loop - skip unless loop devices can be allocated.
fz_require_loop() {
	fz_require losetup
	[ -e /dev/loop-control ] || fz_skip "/dev/loop-control missing (modprobe loop)"
}

# fz_loops_of IMG - the loop devices whose backing file is IMG, one a line.
fz_loops_of() {
	local bf
	for bf in /sys/block/loop*/loop/backing_file; do
		[ -r "$bf" ] || continue
		[ "$(cat "$bf" 2>/dev/null)" = "$1" ] || continue
		bf=${bf#/sys/block/}
		echo "/dev/${bf%%/*}"
	done | sort -V
}

# fz__swaptool_teardown IMG - swapoff and detach every loop device on IMG.
fz__swaptool_teardown() {
	local dev rc=0
	for dev in $(fz_loops_of "$1"); do
		if grep -q "^${dev}[[:space:]]" /proc/swaps; then
			fz_log "CLEANUP: swapoff $dev"
			timeout -k 10 300 swapoff "$dev" || { fz_log "CLEANUP FAILED: swapoff $dev (swap is still on!)"; rc=1; continue; }
		fi
		fz_log "CLEANUP: losetup -d $dev"
		timeout -k 10 30 losetup -d "$dev" || { fz_log "CLEANUP FAILED: losetup -d $dev"; rc=1; }
	done
	return "$rc"
}

# fz_swaptool_refused [-F] TEXT MESSAGE... - with the settings TEXT
# (printf %b) in $CONF, `$FZSWAP --config $CONF start` and `config` both
# exit 2 with every MESSAGE (a grep pattern; with -F a fixed string) in
# their errors, and make neither $SWMNT nor any of the paths in
# $FZ_SWAP_NOT_MADE.
fz_swaptool_refused() {
	local grepf=-q text rc cmd m p
	if [ "$1" = -F ]; then
		grepf=-qF
		shift
	fi
	text=$1
	shift
	printf '%b' "$text" >"$CONF"
	for cmd in start config; do
		rc=0
		fz_run 60 "$FZSWAP" --config "$CONF" "$cmd" >/dev/null 2>"$FZ_TMP/err" || rc=$?
		cat "$FZ_TMP/err" >&2
		fz_expect_eq "$cmd with a bad setting: exit status" "$rc" 2
		for m in "$@"; do
			grep "$grepf" -- "$m" "$FZ_TMP/err" || fz_fail "$cmd: no message '$m' in: $(cat "$FZ_TMP/err")"
		done
	done
	for p in "$SWMNT" ${FZ_SWAP_NOT_MADE:-}; do
		[ ! -e "$p" ] || fz_fail "start with a bad setting created $p"
	done
}

# fz_swaptool_cleanup TOOL CONF IMG MNT - register the undoing of what
# `TOOL --config CONF start` may set up with its image IMG mounted at MNT,
# run in reverse: its stop, then swapoff and losetup -d of any loop
# device left on IMG, the mount, and the tool's lock directory
# /run/fusezram if the test made it (after the stop, which takes the lock).
fz_swaptool_cleanup() {
	if [ ! -e /run/fusezram ] && [ ! -L /run/fusezram ]; then
		fz_defer "rm -f -- /run/fusezram/swap.lock && { [ ! -d /run/fusezram ] || rmdir -- /run/fusezram; }"
	fi
	fz__register "fuse|$4||-"
	fz_defer "fz__swaptool_teardown '$3'"
	fz_defer "timeout -k 10 400 '$1' --config '$2' stop >&2"
}

# ---------------------------------------------------------------------------
# The FUSE transport.  The kernel sends requests through /dev/fuse or, when
# the fuse module's enable_uring is on (Linux 6.14+), through io_uring if
# the daemon takes it at INIT; control/summary's Transport line says
# which, and why not io_uring.  run.sh runs every test under both, with
# FZ_TRANSPORT=fuse and then uring.

FZ_URING_PARAM=/sys/module/fuse/parameters/enable_uring

case ${FZ_TRANSPORT:-} in
'' | fuse | uring) ;;
*) fz_fail "FZ_TRANSPORT='$FZ_TRANSPORT': expected fuse or uring" ;;
esac

# fz__transport_line MNT - print the summary's Transport line, label and
# all (nothing if it has none); fails if the summary cannot be read.
fz__transport_line() {
	local s
	s=$(timeout 10 cat -- "$1/control/summary" 2>/dev/null) || return 1
	sed -n '/^Transport:/{p;q}' <<<"$s"
}

# fz__transport_settled MNT - the line is there and is not transient
# (INIT not answered yet, or the rings still registering).
fz__transport_settled() {
	local l
	l=$(fz__transport_line "$1") || return 1
	case $l in
	'' | *'(not negotiated yet)'* | 'Transport:'*' io_uring, registering'*) return 1 ;;
	esac
}

# fz_transport [MNT] - set FZ_TRANSPORT_LINE to the Transport line of the
# summary of MNT (default FZ_MNT), label and all, once it has settled:
# waits at most 5 s for the rings to register; fails the test if the line
# is missing or does not settle.
fz_transport() {
	local mnt=${1:-$FZ_MNT}
	if ! fz_wait_until 5 fz__transport_settled "$mnt"; then
		FZ_TRANSPORT_LINE=$(fz__transport_line "$mnt") || FZ_TRANSPORT_LINE="(the summary cannot be read)"
		fz_fail "$mnt: no settled Transport line in control/summary after 5 s: '$FZ_TRANSPORT_LINE'"
	fi
	FZ_TRANSPORT_LINE=$(fz__transport_line "$mnt") ||
		fz_fail "$mnt: control/summary cannot be read"
}

# fz_expect_transport T [MNT] - the mount MNT (default FZ_MNT) serves its
# requests through the transport T: fuse (the line starts "Transport:
# /dev/fuse") or uring ("Transport:      io_uring,").  Else the test
# fails, quoting the line (which says why the daemon fell back): a
# silent fallback must not pass.
fz_expect_transport() {
	local want=$1 mnt=${2:-$FZ_MNT} prefix
	case $want in
	fuse) prefix='Transport:      /dev/fuse' ;;
	uring) prefix='Transport:      io_uring,' ;;
	*) fz_fail "fz_expect_transport: unknown transport '$want' (expected fuse or uring)" ;;
	esac
	fz_transport "$mnt"
	if [[ $FZ_TRANSPORT_LINE != "$prefix"* ]]; then
		fz_fail "$mnt: expected the $want transport ('$prefix...'), control/summary says '$FZ_TRANSPORT_LINE' ($FZ_URING_PARAM: $(cat "$FZ_URING_PARAM" 2>/dev/null || echo absent))"
	fi
	fz_log "$mnt: $FZ_TRANSPORT_LINE"
}

# fz_check_transport [MNT] - fz_expect_transport "$FZ_TRANSPORT" MNT when
# FZ_TRANSPORT is set; nothing otherwise.  For mounts made other than by
# fz_mount (mount(8), fusezram-swap).
# shellcheck disable=SC2120 # the argument is optional
fz_check_transport() {
	[ -z "${FZ_TRANSPORT:-}" ] || fz_expect_transport "$FZ_TRANSPORT" "${1:-$FZ_MNT}"
}

# ---------------------------------------------------------------------------
# Mounting fusezram.

FZ_NMOUNT=0

# fz_mount [--detach] [--env NAME=VALUE]... [--transport T] [fusezram
# args...] - mount a fresh image in a new directory under FZ_TMP.  Sets
# FZ_MNT (mount point), FZ_IMG (the image), FZ_CTL (the control
# directory), FZ_PID (the daemon), FZ_LOG (its output).  By default the
# daemon runs with -f in a session of its own (so signals to the test
# reach it only through the cleanup); with --detach it is started the
# ordinary way and must detach by itself.  Each --env puts NAME=VALUE in
# the daemon's environment only (env(1) execs it: the pid is the
# daemon's), e.g. --env LD_PRELOAD=lib.so.  Once the image is there, the
# mount must use the transport T (fz_expect_transport): fuse, uring, or
# any for no check; default $FZ_TRANSPORT, or any without it.
fz_mount() {
	local detach=0 rc=0 transport=${FZ_TRANSPORT:-any}
	local -a env=()
	while :; do
		case ${1:-} in
		--detach) detach=1 ;;
		--env) env+=("$2"); shift ;;
		--transport) transport=$2; shift ;;
		*) break ;;
		esac
		shift
	done
	[ "${#env[@]}" -eq 0 ] || env=(env "${env[@]}")
	fz_require_fuse
	FZ_NMOUNT=$((FZ_NMOUNT + 1))
	FZ_MNT=$FZ_TMP/mnt$FZ_NMOUNT
	FZ_LOG=$FZ_TMP/daemon$FZ_NMOUNT.log
	FZ_IMG=$FZ_MNT/image
	# shellcheck disable=SC2034 # for the tests
	FZ_CTL=$FZ_MNT/control
	mkdir "$FZ_MNT"
	if [ "$detach" = 1 ]; then
		fz__register "fuse|$FZ_MNT||-"
		timeout 30 "${env[@]}" "$FUSEZRAM" "$@" "$FZ_MNT" >"$FZ_LOG" 2>&1 {FZ_ERR}>&- || rc=$?
		[ "$rc" -eq 0 ] || fz_fail "'fusezram $* $FZ_MNT' exited with $rc: $(cat "$FZ_LOG")"
		fz_is_mounted "$FZ_MNT" ||
			fz_fail "fusezram returned 0 but nothing is mounted at $FZ_MNT"
		FZ_PID=$(fz__find_daemon "$FZ_MNT") ||
			fz_fail "no fusezram process serving $FZ_MNT after it detached"
		FZ_CLEANUP[${#FZ_CLEANUP[@]} - 1]="fuse|$FZ_MNT|$FZ_PID|-"
	else
		# Registered first, by its mount point (a signal may come before
		# the pid is known), then with the pid.
		fz__register "fuse|$FZ_MNT||$FZ_LOG"
		setsid "${env[@]}" "$FUSEZRAM" -f "$@" "$FZ_MNT" </dev/null >"$FZ_LOG" 2>&1 {FZ_ERR}>&- &
		FZ_PID=$!
		FZ_CLEANUP[${#FZ_CLEANUP[@]} - 1]="fuse|$FZ_MNT|$FZ_PID|$FZ_LOG"
		# shellcheck disable=SC2016 # expanded by eval, at each poll
		if ! fz_wait_until 20 eval 'fz_is_mounted "$FZ_MNT" || ! fz__alive $FZ_PID'; then
			fz_fail "fusezram $* $FZ_MNT: not mounted after 20 s"
		fi
		fz_is_mounted "$FZ_MNT" ||
			fz_fail "fusezram $* $FZ_MNT exited before mounting: $(cat "$FZ_LOG")"
	fi
	# test(1) in a child, bounded: on a mount whose daemon holds every
	# request, the shell's own stat would block it beyond its traps.
	fz_wait_until 10 timeout -k 1 5 test -f "$FZ_IMG" ||
		fz_fail "$FZ_IMG missing after mount (or its stat hangs)"
	fz_log "mounted fusezram $* at $FZ_MNT (pid $FZ_PID)"
	[ "$transport" = any ] || fz_expect_transport "$transport" "$FZ_MNT"
}

# fz_umount [MNT] - unmount now (default FZ_MNT); fails if the daemon did
# not exit cleanly.
# shellcheck disable=SC2120 # the argument is optional
fz_umount() { fz__undo_match fuse "${1:-$FZ_MNT}"; }

# fz_loop IMG [losetup options...] - attach IMG to a free loop device of
# our own (losetup -f --show); sets FZ_LOOP.  Until losetup has named the
# device, the registration covers every loop device on IMG: a signal
# between the attach and the registration leaves nothing attached.
fz_loop() {
	local img=$1
	shift
	fz_require_loop
	fz__register "loops|$img"
	FZ_LOOP=$(timeout 60 losetup -f --show "$@" "$img") || fz_fail "losetup -f --show $* $img"
	FZ_CLEANUP[${#FZ_CLEANUP[@]} - 1]="loop|$FZ_LOOP|$img"
	fz_log "attached $FZ_LOOP to $img ($*)"
}

# fz_loop_detach [DEV] - detach now (default FZ_LOOP).
# shellcheck disable=SC2120 # the argument is optional
fz_loop_detach() { fz__undo_match loop "${1:-$FZ_LOOP}"; }

# fz_mount_fs DEV DIR [mount options...] - mount a filesystem, registered.
fz_mount_fs() {
	local dev=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	timeout 60 mount "$@" "$dev" "$dir" || fz_fail "mount $* $dev $dir"
	fz__register "fs|$dir"
}

# fz_umount_fs DIR - unmount now.
fz_umount_fs() { fz__undo_match fs "$1"; }

# fz_swapon DEV [swapon options...] - enable swap on DEV, registered.
fz_swapon() {
	local dev=$1
	shift
	fz_require swapon swapoff
	fz__register "swap|$dev"
	timeout 60 swapon "$@" "$dev" || fz_fail "swapon $* $dev"
}

# fz_swapoff DEV - swapoff now.
fz_swapoff() { fz__undo_match swap "$1"; }

# fz_swap_used DEV - KiB of swap in use on DEV (0 if not a swap).
fz_swap_used() {
	awk -v d="$1" '$1 == d { u = $4 } END { print u + 0 }' /proc/swaps
}

# fz_cgroup LIMIT - create a memory cgroup with a memory limit (bytes or
# K/M/G suffix) and set FZ_CGROUP to its directory.  cgroup v1:
# /sys/fs/cgroup/memory/fusezram-test.$$ with memory.limit_in_bytes; cgroup
# v2 (only where the memory controller is already enabled for children of
# the root): /sys/fs/cgroup/fusezram-test.$$ with memory.max.  Enter it with
# 'echo $$ > "$FZ_CGROUP/cgroup.procs"' in a subshell, then exec.
fz_cgroup() {
	local limit=$1 v1=/sys/fs/cgroup/memory v2=/sys/fs/cgroup
	if [ -f "$v1/cgroup.procs" ] && [ -f "$v1/memory.limit_in_bytes" ]; then
		FZ_CGROUP=$v1/fusezram-test.$$
		fz__register "cgroup|$FZ_CGROUP"	# first: a signal may come between
		mkdir "$FZ_CGROUP" || fz_fail "mkdir $FZ_CGROUP"
		echo "$limit" >"$FZ_CGROUP/memory.limit_in_bytes" ||
			fz_fail "cannot set memory.limit_in_bytes=$limit"
		# Swap must be allowed: no memory+swap limit, normal swappiness.
		[ ! -f "$FZ_CGROUP/memory.swappiness" ] ||
			echo 60 >"$FZ_CGROUP/memory.swappiness" || :
	elif [ -f "$v2/cgroup.subtree_control" ] &&
		grep -qw memory "$v2/cgroup.subtree_control"; then
		FZ_CGROUP=$v2/fusezram-test.$$
		fz__register "cgroup|$FZ_CGROUP"	# first: a signal may come between
		mkdir "$FZ_CGROUP" || fz_fail "mkdir $FZ_CGROUP"
		echo "$limit" >"$FZ_CGROUP/memory.max" || fz_fail "cannot set memory.max=$limit"
		[ ! -f "$FZ_CGROUP/memory.swap.max" ] || echo max >"$FZ_CGROUP/memory.swap.max"
	else
		fz_skip "no memory cgroup (v1 at $v1, or v2 with memory in $v2/cgroup.subtree_control)"
	fi
	fz_log "created cgroup $FZ_CGROUP (limit $limit)"
}

# ---------------------------------------------------------------------------
# Statistics.  mm_stat: orig_data_size compr_data_size mem_used_total
# mem_limit mem_used_max same_pages pages_compacted huge_pages
# huge_pages_since.  io_stat: failed_reads failed_writes invalid_io
# notify_free.

FZ_MM_FIELDS=(orig_data_size compr_data_size mem_used_total mem_limit
	mem_used_max same_pages pages_compacted huge_pages huge_pages_since)
FZ_IO_FIELDS=(failed_reads failed_writes invalid_io notify_free)

fz__stat_field() {
	local file=$1 name=$2 i v
	shift 2
	local -a names=("$@") vals
	read -r -a vals <"$file" || fz_fail "cannot read $file"
	for i in "${!names[@]}"; do
		if [ "${names[i]}" = "$name" ]; then
			v=${vals[i]:-}
			[[ $v =~ ^[0-9]+$ ]] || fz_fail "$file field $((i + 1)) ($name) is '$v'"
			echo "$v"
			return 0
		fi
	done
	fz_fail "no field '$name' in $file"
}

# fz_mm FIELD [MNT] - one mm_stat field by name.
fz_mm() { fz__stat_field "${2:-$FZ_MNT}/control/mm_stat" "$1" "${FZ_MM_FIELDS[@]}"; }

# fz_io FIELD [MNT] - one io_stat field by name.
fz_io() { fz__stat_field "${2:-$FZ_MNT}/control/io_stat" "$1" "${FZ_IO_FIELDS[@]}"; }

# fz_show_stats [MNT] - log mm_stat and io_stat.
# shellcheck disable=SC2120 # the argument is optional
fz_show_stats() {
	fz_log "mm_stat: $(cat "${1:-$FZ_MNT}/control/mm_stat")"
	fz_log "io_stat: $(cat "${1:-$FZ_MNT}/control/io_stat")"
}

# ---------------------------------------------------------------------------
# Checks.

# fz_expect_eq WHAT GOT WANT
fz_expect_eq() {
	[ "$2" = "$3" ] || fz_fail "$1: expected '$3', got '$2'"
}

# fz_expect_cmp WHAT FILE1 FILE2 - byte-for-byte equal.
fz_expect_cmp() {
	local out
	out=$(cmp -- "$2" "$3" 2>&1) || fz_fail "$1: $out"
}

# fz_size FILE - st_size.
fz_size() { stat -c %s -- "$1"; }

# fz_drop_cache FILE - drop FILE's page cache (posix_fadvise DONTNEED), so
# the next buffered read goes to the daemon.
fz_drop_cache() {
	dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || :
}

# fz_read_direct IMG OUT - copy IMG to OUT reading with O_DIRECT, i.e.
# from the daemon, never from the page cache.
fz_read_direct() {
	dd if="$1" of="$2" bs=1M iflag=direct status=none ||
		fz_fail "dd if=$1 iflag=direct failed"
}

# fz_range FILE OFF LEN - print LEN bytes of FILE at byte offset OFF.
fz_range() {
	dd if="$1" bs=64K skip="$2" count="$3" iflag=skip_bytes,count_bytes status=none
}

# fz_roundtrip MIB [SECS] - MIB MiB of random data through a direct-I/O
# loop device on FZ_IMG (dd oflag=direct, then iflag=direct, each bounded
# by SECS, default 300), compared; the loop device is detached after.
fz_roundtrip() {
	local mib=$1 secs=${2:-300}
	fz_loop "$FZ_IMG" --direct-io=on
	head -c "$((mib << 20))" /dev/urandom >"$FZ_TMP/rand"
	fz_run "$secs" dd if="$FZ_TMP/rand" of="$FZ_LOOP" bs=1M oflag=direct status=none ||
		fz_fail "dd of=$FZ_LOOP oflag=direct failed"
	fz_run "$secs" dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count="$mib" iflag=direct status=none ||
		fz_fail "dd if=$FZ_LOOP iflag=direct failed"
	fz_expect_cmp "$mib MiB through $FZ_LOOP" "$FZ_TMP/back" "$FZ_TMP/rand"
	fz_loop_detach
	rm -f "$FZ_TMP/rand" "$FZ_TMP/back"
}

# fz_pwrite SRC DST OFF LEN [oflags] - write LEN bytes from the start of SRC
# at byte offset OFF of DST (in place, conv=notrunc).
fz_pwrite() {
	local src=$1 dst=$2 off=$3 len=$4 fl=${5:-}
	dd if="$src" of="$dst" bs=64K count="$len" seek="$off" iflag=count_bytes \
		oflag=seek_bytes${fl:+,$fl} conv=notrunc status=none
}
