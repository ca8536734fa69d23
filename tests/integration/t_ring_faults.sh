#!/bin/bash
# t_ring_faults: the io_uring transport when liburing's submissions fail,
# as io_uring_enter(2) fails when the kernel is short of memory for them.
# The daemon runs under build/uring_shim.so.  The test sets the fuse
# module's enable_uring to 1 for its mounts and puts back the value it
# found (run.sh's pass's, under run.sh's lock), so it runs the same in
# both passes.
#
# a. The first 3 io_uring_submit() calls fail (EAGAIN), at depth 1: one
#    thread per queue, whose first submission carries its registration.
#    The threads try again, so the mount runs on io_uring with a thread
#    per queue, and 16 MiB go through a direct-I/O loop device and back.
#    (A thread that gave up at once left its queue without an entry, and
#    the kernel held every request: the mount hung.)
# b. Every io_uring_submit() fails (ENOMEM): the threads give up, and the
#    daemon makes the kernel fall back to /dev/fuse with a registration
#    it refuses.  The Transport line, and the log's one "transport:"
#    line, say "/dev/fuse (a queue's registrations could not be
#    submitted: Cannot allocate memory)"; 16 MiB round trip.
# c. Every 40th io_uring_submit_and_wait() fails (EAGAIN), the call that
#    hands a reply back: fio writes 2 x 24 MiB at random with crc32c
#    headers through a direct-I/O loop device (iodepth 16) and verifies
#    it all; no error, no failed I/O, still on io_uring, the shim logged
#    refusals, and the daemon logged the retry exactly once.  (A thread
#    that left its loop on such an error stranded the request its entry
#    held: fio hung.)
# d. Every io_uring_submit() fails (ENOMEM) and the mount is unmounted
#    while the threads still try their first submissions again: the
#    daemon exits 0 at once, its one "transport:" line says /dev/fuse for
#    the failed submissions, and nothing was sent on the session's fd,
#    which is closed by then.  (The last thread to give up settled the
#    transport on io_uring, logged as "io_uring, N queue(s) of depth 1
#    (0 threads)", after a registration sent on the closed fd: "Bad file
#    descriptor".)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require_fuse
fz_require_loop
fz_require fio dd cmp head
shim=${FZ_URING_SHIM:-$FZ_ROOT/build/uring_shim.so}
[ -f "$shim" ] || fz_skip "$shim not built (make build/uring_shim.so)"

PARAM=$FZ_URING_PARAM
[ -e "$PARAM" ] ||
	fz_skip "no $PARAM: this kernel has no FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING)"
param_orig=$(cat "$PARAM")
case $param_orig in
Y) fz_defer "echo 1 >$PARAM" ;;
N) fz_defer "echo 0 >$PARAM" ;;
*) fz_fail "$PARAM reads '$param_orig', expected Y or N" ;;
esac
echo 1 >"$PARAM" || fz_fail "cannot write 1 to $PARAM"
fz_log "$PARAM was $param_orig (put back at the end)"

# shim_refused WHAT - refusals of WHAT (submit or wait) the shim's log
# FZ_TMP/shim.N counts so far.
shim_refused() {
	awk -v w="$1" '$1 == w { n = $2 } END { print n + 0 }' "$shimlog" 2>/dev/null || echo 0
}

# mount_shim ENV... -- OPTIONS - fz_mount under the shim with FZ_URING_SHIM_*
# settings ENV (NAME=VALUE), its log in shimlog.
mount_shim() {
	local -a env=()
	while [ "$1" != -- ]; do
		env+=(--env "$1")
		shift
	done
	shift
	shimlog=$FZ_TMP/shim.$((FZ_NMOUNT + 1))
	fz_mount --transport any --env LD_PRELOAD="$shim" \
		--env FZ_URING_SHIM_LOG="$shimlog" "${env[@]}" "$@"
	grep -q "$shim" "/proc/$FZ_PID/maps" || fz_fail "the daemon did not load $shim"
	fz_transport
	fz_log "$FZ_TRANSPORT_LINE"
}

# ---------------------------------------------------------------------------
# a. A few failed submissions at the start.

mount_shim FZ_URING_SHIM_SUBMIT=3 -- -o disksize=32M,io_uring_depth=1
[[ $FZ_TRANSPORT_LINE =~ ^Transport:\ +io_uring,\ ([0-9]+)\ queue\(s\)\ of\ depth\ 1\ \(([0-9]+)\ threads\) ]] ||
	fz_fail "3 failed submissions at the start: '$FZ_TRANSPORT_LINE', expected io_uring at depth 1"
fz_expect_eq "ring threads (one per queue)" "${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}"
fz_expect_eq "submissions the shim refused" "$(shim_refused submit)" 1	# logs the first
fz_roundtrip 16 120
fz_umount

# ---------------------------------------------------------------------------
# b. No submission goes through: the kernel is made to fall back.

mount_shim FZ_URING_SHIM_SUBMIT=1000000000 FZ_URING_SHIM_ERRNO=12 -- -o disksize=32M,io_uring_depth=2
want="Transport:      /dev/fuse (a queue's registrations could not be submitted: Cannot allocate memory)"
fz_expect_eq "Transport line with every submission failing" "$FZ_TRANSPORT_LINE" "$want"
[ "$(shim_refused submit)" -ge 1 ] || fz_fail "the shim refused no submission"
fz_roundtrip 16 120
fz_transport
fz_expect_eq "Transport line after the round trip" "$FZ_TRANSPORT_LINE" "$want"
fz_umount
n=$(grep -c 'transport:' "$FZ_LOG" || :)
fz_expect_eq "'transport:' lines in the daemon's log" "$n" 1
fz_expect_eq "the daemon's transport line" "$(sed -n 's/^.*transport: //p' "$FZ_LOG")" "${want#Transport:      }"

# ---------------------------------------------------------------------------
# c. Replies that fail to go back now and then.

mount_shim FZ_URING_SHIM_WAIT_EVERY=40 -- -o disksize=64M
[[ $FZ_TRANSPORT_LINE == "Transport:      io_uring,"* ]] ||
	fz_fail "every 40th submit_and_wait failing: '$FZ_TRANSPORT_LINE', expected io_uring"
fz_loop "$FZ_IMG" --direct-io=on
rc=0
fz_run 120 fio --name=ring-faults --filename="$FZ_LOOP" \
	--ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=16 \
	--numjobs=2 --size=24M --offset_increment=24M \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 \
	--verify_state_save=0 --group_reporting >"$FZ_TMP/fio.out" 2>&1 || rc=$?
[ "$rc" -ne 124 ] || fz_fail "fio did not finish in 120 s (a request stranded?)"
if grep -qiE 'verify: bad|bad magic|verify failed' "$FZ_TMP/fio.out"; then
	fz_fail "fio reported a verify error: $(grep -iE 'verify|bad' "$FZ_TMP/fio.out" | head -5)"
fi
[ "$rc" -eq 0 ] || fz_fail "fio exited with $rc: $(tail -n 30 "$FZ_TMP/fio.out")"
grep -qE 'err= *0' "$FZ_TMP/fio.out" || fz_fail "fio's report has no 'err= 0': $(tail -n 30 "$FZ_TMP/fio.out")"
refused=$(shim_refused wait)
fz_log "submit_and_wait calls refused (as logged): $refused"
[ "$refused" -ge 64 ] || fz_fail "the shim logged $refused refused submit_and_wait calls, expected at least 64"
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0
fz_expect_eq "mm_stat orig_data_size" "$(fz_mm orig_data_size)" $((48 << 20))
fz_transport
[[ $FZ_TRANSPORT_LINE == "Transport:      io_uring,"* ]] ||
	fz_fail "after the faults: '$FZ_TRANSPORT_LINE', expected io_uring"
fz_loop_detach
fz_umount
n=$(grep -c 'trying again (logged once)' "$FZ_LOG" || :)
fz_expect_eq "retry lines in the daemon's log" "$n" 1

# ---------------------------------------------------------------------------
# d. Unmounted while the threads still try their first submissions.
#
# Not fz_mount, whose stat of the image would wait out the tries (the
# kernel holds every request until then): the daemon is registered as
# fz_mount registers it, and unmounted as soon as INIT made the ring
# threads, within the 0.77 s they try for.

FZ_NMOUNT=$((FZ_NMOUNT + 1))
FZ_MNT=$FZ_TMP/mnt$FZ_NMOUNT
FZ_LOG=$FZ_TMP/daemon$FZ_NMOUNT.log
mkdir "$FZ_MNT"
setsid env LD_PRELOAD="$shim" FZ_URING_SHIM_SUBMIT=1000000000 FZ_URING_SHIM_ERRNO=12 \
	"$FUSEZRAM" -f -o disksize=32M,io_uring_depth=1 "$FZ_MNT" \
	</dev/null >"$FZ_LOG" 2>&1 {FZ_ERR}>&- &
FZ_PID=$!
fz__register "fuse|$FZ_MNT|$FZ_PID|$FZ_LOG"
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 20 eval 'fz_is_mounted "$FZ_MNT" || ! fz__alive $FZ_PID' ||
	fz_fail "not mounted after 20 s"
fz_is_mounted "$FZ_MNT" || fz_fail "the daemon exited before mounting: $(cat "$FZ_LOG")"
# The ring threads are made while INIT is answered.
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 5 eval 'cat /proc/$FZ_PID/task/*/comm 2>/dev/null | grep -q "^fz-ring-"' ||
	fz_fail "no ring thread 5 s after the mount: $(cat "$FZ_LOG")"
fz_umount
fz_log "daemon log: $(cat "$FZ_LOG")"
grep -q 'could not submit its registration' "$FZ_LOG" ||
	fz_fail "no thread gave up its first submission"
n=$(grep -c 'transport:' "$FZ_LOG" || :)
fz_expect_eq "'transport:' lines in the daemon's log" "$n" 1
fz_expect_eq "the daemon's transport line" "$(sed -n 's/^.*transport: //p' "$FZ_LOG")" \
	"/dev/fuse (a queue's registrations could not be submitted: Cannot allocate memory)"
! grep -q 'Bad file descriptor' "$FZ_LOG" ||
	fz_fail "a registration went to the closed session fd: $(grep 'Bad file' "$FZ_LOG")"
fz_log "ok"
