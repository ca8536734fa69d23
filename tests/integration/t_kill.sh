#!/bin/bash
# t_kill: the daemon killed (SIGKILL) in the middle of I/O, the quick form
# of bench/stress.sh's kill target.  The daemon is started the ordinary
# way (it detaches, so it is not our child and the cleanup does not count
# its death against it); a 256M image on a direct-I/O loop device; a
# writer (dd from /dev/urandom, oflag=direct) and a reader (dd,
# iflag=direct) go over the whole device again and again.  Once both are
# under way the daemon is killed by its pid (the fusezram process whose
# arguments name our mount point, found with pgrep).  Then, each bounded:
# the I/O must fail (each loop ends with a dd that exits non-zero) within
# FZ_KILL_FAIL_SECS (10 s) of the kill, the mount point must answer
# (ENOTCONN, or ECONNABORTED for a request caught by the abort and then
# ENOTCONN; not hang), losetup -d must detach the loop device, and
# fusermount3 -u (or, failing that, umount -l) must remove the dead mount.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require dd stat pgrep
fail_secs=${FZ_KILL_FAIL_SECS:-10}
size_mib=256

fz_mount --detach -o disksize=${size_mib}M
fz_loop "$FZ_IMG" --direct-io=on

# The daemon: the one process with our mount point as an argument.
daemon=$(fz_daemon_pid "$FZ_MNT") || fz_fail "no daemon found for $FZ_MNT"
fz_expect_eq "the daemon's pid" "$daemon" "$FZ_PID"

# io_loop NAME DD-ARGS... - in the background, bounded: run dd with the
# arguments over and over until one fails; then write that dd's status to
# $FZ_TMP/NAME.rc (its stderr is in $FZ_TMP/NAME.err).  Sets IO_PID[NAME].
io_loop() {
	local name=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner shell
	timeout -k 5 120 bash -c '
		out=$1
		shift
		while :; do
			st=0
			dd "$@" status=none 2>"$out.err" || st=$?
			[ "$st" -eq 0 ] || break
		done
		echo "$st" >"$out.rc"' _ "$FZ_TMP/$name" "$@" </dev/null &
	IO_PID[$name]=$!
	fz_defer "kill -TERM $! 2>/dev/null || :; fz_wait_until 20 eval '! fz__alive $!' || kill -KILL $! 2>/dev/null || :"
}
declare -A IO_PID
io_loop writer if=/dev/urandom of="$FZ_LOOP" bs=64K count=$((size_mib * 16)) oflag=direct
io_loop reader if="$FZ_LOOP" of=/dev/null bs=64K iflag=direct

# Both under way: data has arrived and neither loop has ended.
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 20 eval '[ "$(timeout 5 cat "$FZ_CTL/mm_stat" | awk "{ print \$1 }")" -gt $((4 << 20)) ]' ||
	fz_fail "the writer did not get 4 MiB onto the image in 20 s"
for p in writer reader; do
	[ ! -e "$FZ_TMP/$p.rc" ] || fz_fail "the $p ended before the kill: status $(cat "$FZ_TMP/$p.rc"): $(cat "$FZ_TMP/$p.err")"
done
fz_show_stats

fz_log "killing the daemon, pid $daemon (SIGKILL)"
killed=$EPOCHREALTIME
kill -KILL "$daemon"
# shellcheck disable=SC2016 # expanded by eval, at each poll
if ! fz_wait_until 30 eval '! fz__alive ${IO_PID[writer]} && ! fz__alive ${IO_PID[reader]}'; then
	fz_fail "the I/O on $FZ_LOOP was still going 30 s after the daemon was killed (hung?)"
fi
secs=$(awk -v a="$killed" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
fz_log "the I/O ended $secs s after the kill"
for p in writer reader; do
	st=0
	wait "${IO_PID[$p]}" || st=$?
	[ "$st" -eq 0 ] || fz_fail "the $p loop ended with status $st (124: timed out)"
	rc=$(cat "$FZ_TMP/$p.rc" 2>/dev/null) || fz_fail "the $p left no status"
	fz_log "the $p's dd failed with status $rc: $(tr '\n' ' ' <"$FZ_TMP/$p.err")"
	[ "$rc" -ne 0 ] || fz_fail "the $p's dd did not fail"
done
awk -v s="$secs" -v m="$fail_secs" 'BEGIN { exit !(s <= m) }' ||
	fz_fail "the I/O took $secs s to fail after the kill (at most $fail_secs s)"

fz_wait_until 10 eval "! fz__alive $daemon" || fz_fail "the daemon $daemon outlived SIGKILL by 10 s"

# The dead mount answers at once, with ENOTCONN.  A request the kernel
# had already queued when it ended the connection fails ECONNABORTED
# instead (end_requests() in fs/fuse/dev.c): on io_uring the connection
# ends when the kernel tears down the dead daemon's rings, a moment
# after the process is gone, so a stat in that moment gets it.  Either
# way it answers; and once the connection is down, ENOTCONN (10 s at
# most).
if out=$(LC_ALL=C timeout 10 stat -c %s "$FZ_IMG" 2>&1); then
	fz_fail "stat $FZ_IMG succeeded after the daemon was killed: $out"
fi
case $out in
*"not connected"*) ;;
*"connection abort"*)
	fz_log "stat $FZ_IMG after the kill: ECONNABORTED (caught by the abort)"
	# shellcheck disable=SC2016 # expanded by eval, at each poll
	fz_wait_until 10 eval '! LC_ALL=C timeout 10 stat -c %s "$FZ_IMG" 2>&1 | grep -q "connection abort"' || :
	out=$(LC_ALL=C timeout 10 stat -c %s "$FZ_IMG" 2>&1) &&
		fz_fail "stat $FZ_IMG succeeded after the daemon was killed: $out"
	case $out in
	*"not connected"*) ;;
	*) fz_fail "stat $FZ_IMG after the abort: expected ENOTCONN, got: $out" ;;
	esac
	;;
*) fz_fail "stat $FZ_IMG after the kill: expected ENOTCONN, got: $out" ;;
esac

# losetup -d, bounded (the registered undo retries for 30 s and waits for
# the detach to complete).
loop=$FZ_LOOP
fz_loop_detach || fz_fail "losetup -d $loop failed after the daemon was killed"
losetup -n -O BACK-FILE "$loop" 2>/dev/null | grep -qF "$FZ_MNT" &&
	fz_fail "$loop is still attached to the image"

fz_log "losetup -d $loop: done"

# The unmount: fusermount3 -u, or else a lazy umount (both bounded).
end=$((SECONDS + 30))
how="fusermount3 -u"
until timeout 30 fusermount3 -u "$FZ_MNT" 2>"$FZ_TMP/fusermount.err"; do
	if [ "$SECONDS" -ge "$end" ]; then
		fz_log "fusermount3 -u $FZ_MNT failed for 30 s: $(cat "$FZ_TMP/fusermount.err"); trying umount -l"
		timeout 30 umount -l "$FZ_MNT" || fz_fail "umount -l $FZ_MNT failed too"
		how="umount -l"
		break
	fi
	sleep 0.5
done
fz_is_mounted "$FZ_MNT" && fz_fail "$FZ_MNT is still mounted"
fz_log "$how $FZ_MNT: done"
fz_umount
fz_log "ok"
