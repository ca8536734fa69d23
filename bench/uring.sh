# shellcheck shell=bash disable=SC2034 # URING_ERR is for the callers
#
# bench/uring.sh - choosing the FUSE transport of a mount, for bench/run.sh
# and bench/stress.sh (sourced; no side effect when sourced).
#
# The kernel offers FUSE over io_uring in INIT only while the fuse
# module's parameter enable_uring is on (Linux 6.14+); a daemon with -o
# io_uring=on (fusezram's and nullfs' default) then serves its requests on
# rings, else on /dev/fuse.  So a row of either transport is made by
# setting the parameter before the mount: uring_window_open 1 (or 0),
# mount, measure, unmount, uring_window_close.  The parameter is global,
# so the window holds an exclusive flock on URING_LOCK (the integration
# tests that set the parameter take the same lock) from before the
# parameter is set until after it is put back to the value found when the
# lock was taken.  The window stays open over the whole row: kernels
# before the fix "Once a connection has io-uring enabled on it, it can't
# be disabled" refuse the rings' commands once the parameter is off.
#
# The lock is held by a small holder process, not by a descriptor of the
# calling shell: the daemons that shell starts must not inherit the lock
# (one that outlived the script would hold it for ever).  The holder lets
# go when uring_window_close stops it, or by itself within 0.2 s of the
# calling shell's end (even after SIGKILL).  The caller registers
# uring_window_close with its own cleanup before calling
# uring_window_open; closing a window that is not open does nothing.
#
# Needs: URING_TMP, a private directory of the caller (the holder's flag
# files).  Environment: URING_LOCK_WAIT (seconds to wait for the lock,
# default 3600, as the test runner's FZ_LOCK_WAIT: a whole `make check`
# holds the lock).

URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_LOCK=/tmp/fusezram-uring.lock
URING_LOCK_WAIT=${URING_LOCK_WAIT:-3600}
URING_HOLDER=''		# the holder's pid while a window is open
URING_ORIG=''		# the parameter as found (Y or N) while it may differ
URING_ERR=''		# why uring_window_open failed

# uring_param - the parameter now: Y, N, or nothing (no such parameter:
# a kernel without FUSE over io_uring).
uring_param() { cat "$URING_PARAM" 2>/dev/null || :; }

uring__alive() {
	local st
	st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# uring__wait SECS CMD... - poll CMD every 0.1 s for SECS.
uring__wait() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

uring__set() {
	echo "$1" >"$URING_PARAM" 2>/dev/null || return 1
	case $1:$(uring_param) in 1:Y | 0:N) return 0 ;; esac
	return 1
}

# uring_window_open 0|1 - take the lock (waiting up to URING_LOCK_WAIT s)
# and set enable_uring to 0 or 1.  Returns 1, with the reason in
# URING_ERR and nothing held, when the parameter is missing or read-only,
# or the lock did not come.
uring_window_open() {
	local want=$1 flag=$URING_TMP/uring.$$.locked parent=$$
	URING_ERR=''
	[ -z "$URING_HOLDER" ] || uring_window_close
	if [ -z "$(uring_param)" ]; then
		URING_ERR="no $URING_PARAM (the kernel has no FUSE over io_uring: Linux 6.14+ with CONFIG_FUSE_IO_URING)"
		return 1
	fi
	rm -f "$flag" "$flag.stop"
	(
		trap - EXIT INT TERM
		exec 9>>"$URING_LOCK" || exit 1
		flock -x -w "$URING_LOCK_WAIT" 9 || exit 1
		: >"$flag"
		while kill -0 "$parent" 2>/dev/null && [ ! -e "$flag.stop" ]; do
			sleep 0.2 9>&-
		done
	) </dev/null >/dev/null 2>&1 &
	URING_HOLDER=$!
	if ! uring__wait 2 eval "[ -e '$flag' ] || ! uring__alive $URING_HOLDER"; then
		echo "waiting up to ${URING_LOCK_WAIT}s for $URING_LOCK ($(uring_lock_holders))" >&2
		uring__wait "$URING_LOCK_WAIT" eval "[ -e '$flag' ] || ! uring__alive $URING_HOLDER" || :
	fi
	if [ ! -e "$flag" ]; then
		uring_window_close
		URING_ERR="$URING_LOCK stayed locked for ${URING_LOCK_WAIT}s (holder: $(uring_lock_holders))"
		return 1
	fi
	URING_ORIG=$(uring_param)
	if ! uring__set "$want"; then
		URING_ERR="cannot set $URING_PARAM to $want (it reads $(uring_param))"
		uring_window_close
		return 1
	fi
}

# uring_window_close - put the parameter back, then let the lock go.
# Returns 1 (and says so on stderr) if the parameter could not be put back.
uring_window_close() {
	local rc=0 flag=$URING_TMP/uring.$$.locked
	if [ -n "$URING_ORIG" ]; then
		if [ "$(uring_param)" != "$URING_ORIG" ] &&
			! uring__set "$([ "$URING_ORIG" = Y ] && echo 1 || echo 0)"; then
			echo "CLEANUP FAILED: could not put $URING_PARAM back to $URING_ORIG (it reads $(uring_param))" >&2
			rc=1
		fi
		URING_ORIG=''
	fi
	if [ -n "$URING_HOLDER" ]; then
		: >"$flag.stop"
		uring__wait 5 eval "! uring__alive $URING_HOLDER" ||
			kill -TERM "$URING_HOLDER" 2>/dev/null || :
		wait "$URING_HOLDER" 2>/dev/null || :
		URING_HOLDER=''
		rm -f "$flag" "$flag.stop"
	fi
	return "$rc"
}

# uring_lock_holders - who holds or waits for URING_LOCK (for messages):
# /proc/locks names the process that took the lock, which may be gone
# while a child that inherited the descriptor keeps it; so every process
# with the file open is named too.
uring_lock_holders() {
	local ino p dev f out='' n=0
	ino=$(stat -c %i "$URING_LOCK" 2>/dev/null) || return 0
	while read -r _ _ _ _ p dev _; do
		[ "${dev##*:}" = "$ino" ] || continue
		out+="${out:+; }lock of pid $p"
		[ -e "/proc/$p" ] || out+=" (exited)"
	done < <(sed 's/-> //' /proc/locks | awk '$2 == "FLOCK"')
	for f in /proc/[0-9]*/fd/*; do
		[ "$(readlink "$f" 2>/dev/null)" = "$URING_LOCK" ] || continue
		p=${f#/proc/}
		p=${p%%/*}
		n=$((n + 1))
		[ "$n" -le 4 ] || continue
		out+="${out:+; }open in pid $p: $(tr '\0\n\t' '   ' <"/proc/$p/cmdline" 2>/dev/null | cut -c 1-60)"
	done
	[ "$n" -le 4 ] || out+="; open in $((n - 4)) more"
	echo "${out:-nobody}"
}
