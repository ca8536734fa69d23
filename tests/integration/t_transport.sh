#!/bin/bash
# t_transport: the FUSE transport, /dev/fuse or io_uring, chosen at INIT
# from the fuse module's enable_uring and -o io_uring.  The test sets the
# parameter as each case needs and puts back the value it found (run.sh's
# pass's, under run.sh's lock: the test takes no lock itself).
#
# a. enable_uring 0: control/summary says /dev/fuse, the kernel does not
#    offer io_uring; so with -o io_uring=on too.  The daemon's log has
#    exactly one "transport:" line, the same text; the parameter is still
#    N after the mount and the unmount (the daemon never changes it).
# b. enable_uring 1 and -o io_uring=off: "/dev/fuse (-o io_uring=off)".
# c. enable_uring 1, default options: io_uring, one queue of depth 8 per
#    possible CPU, served by as many threads named fz-ring-* as the line
#    counts (at least one per queue where it counts none).  Reading
#    control/mm_stat works and is counted on the rings, not in place.  A
#    direct-I/O loop device takes 64 MiB of random data (dd oflag=direct)
#    and gives it back identical; the in-place counter grew by at least
#    the 512 writes and 1024 reads that takes at the default max_write
#    and max_read (128 and 64 KiB); the store holds the 64 MiB and
#    counted no failed I/O; the kernel refused no reply.  Again with -o
#    io_uring_depth=1 (16 MiB), bare -o io_uring, and -o
#    io_uring_depth=128 (where the machine has the memory for it).  The
#    parameter is still Y.  Depth 32 mounted under a soft RLIMIT_NOFILE
#    of 64 still runs on the rings, the daemon's soft limit raised to the
#    hard one.
# d. Bad values (io_uring=maybe, io_uring=, io_uring_depth=0, 129, x, -1):
#    exit status 1 (a usage error), one line on stderr naming the value,
#    nothing mounted, no daemon left.
# e. Unmounting while the rings serve leaves no daemon: after fusermount3
#    -u (foreground and detached daemons), after SIGTERM, and after a lazy
#    unmount (fusermount3 -u -z) with a loop device still reading through
#    the rings, once the loop device is detached; each daemon is gone
#    within 10 s, the ones that are our children with exit status 0.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require_fuse
fz_require_loop
fz_require dd cmp head

PARAM=$FZ_URING_PARAM
[ -e "$PARAM" ] ||
	fz_skip "no $PARAM: this kernel has no FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING)"
param_orig=$(cat "$PARAM")
case $param_orig in
Y) fz_defer "set_param 1" ;;
N) fz_defer "set_param 0" ;;
*) fz_fail "$PARAM reads '$param_orig', expected Y or N" ;;
esac
fz_log "$PARAM was $param_orig (put back at the end)"

# set_param 0|1 - set the fuse module's enable_uring and check it took.
set_param() {
	local want=N
	[ "$1" = 0 ] || want=Y
	echo "$1" >"$PARAM" || fz_fail "cannot write $1 to $PARAM"
	fz_expect_eq "$PARAM after writing $1" "$(cat "$PARAM")" "$want"
}

# expect_param Y|N WHEN - the parameter is unchanged.
expect_param() {
	fz_expect_eq "$PARAM $2 (the daemon never changes it)" "$(cat "$PARAM")" "$1"
}

# counters - set SERVED and IN_PLACE from the Transport line of FZ_MNT;
# replies the kernel refused must be none.
counters() {
	fz_transport
	[[ $FZ_TRANSPORT_LINE =~ \ ([0-9]+)\ requests\ on\ the\ rings,\ ([0-9]+)\ image\ reads\ and\ writes\ in\ place ]] ||
		fz_fail "no counters in the Transport line: '$FZ_TRANSPORT_LINE'"
	SERVED=${BASH_REMATCH[1]} IN_PLACE=${BASH_REMATCH[2]}
	[[ $FZ_TRANSPORT_LINE =~ \ ([0-9]+)\ replies\ refused ]] ||
		fz_fail "no count of refused replies in the Transport line: '$FZ_TRANSPORT_LINE'"
	[ "${BASH_REMATCH[1]}" = 0 ] ||
		fz_fail "replies refused by the kernel, with no request interrupted: '$FZ_TRANSPORT_LINE'"
}

# log_transport_lines - the daemon's log (FZ_LOG) has exactly one
# "transport:" line; print its text after "transport: ".
log_transport_lines() {
	local n
	n=$(grep -c 'transport:' "$FZ_LOG" || :)
	[ "$n" = 1 ] || fz_fail "$FZ_LOG has $n 'transport:' lines, expected 1: $(grep 'transport:' "$FZ_LOG" || cat "$FZ_LOG")"
	sed -n 's/^.*transport: //p' "$FZ_LOG"
}

# umount_bounded MNT PID WHAT - fusermount3 -u MNT: the daemon PID must be
# gone within 10 s; then reap it (fz_umount checks its exit status).
umount_bounded() {
	local mnt=$1 pid=$2 start=$SECONDS
	timeout 30 fusermount3 -u "$mnt" || fz_fail "fusermount3 -u $mnt ($3)"
	fz_wait_until 10 eval "! fz__alive $pid" ||
		fz_fail "daemon $pid still running 10 s after fusermount3 -u $mnt ($3)"
	fz_log "daemon $pid gone $((SECONDS - start)) s after fusermount3 -u ($3)"
	fz_umount "$mnt"
}

# possible_cpus - the number of CPUs in /sys/devices/system/cpu/possible.
possible_cpus() {
	local list n=0 r
	list=$(cat /sys/devices/system/cpu/possible)
	for r in ${list//,/ }; do
		if [[ $r == *-* ]]; then
			n=$((n + ${r#*-} - ${r%-*} + 1))
		else
			n=$((n + 1))
		fi
	done
	echo "$n"
}
NCPU=$(possible_cpus)

# expect_rings DEPTH - FZ_TRANSPORT_LINE says io_uring with one queue
# per possible CPU, of depth DEPTH; the daemon FZ_PID runs as many ring
# threads (named fz-ring-*) as the line counts, or, where it counts
# none, at least one per queue.
expect_rings() {
	local task comm n=0
	[[ $FZ_TRANSPORT_LINE =~ ^Transport:\ +io_uring,\ ([0-9]+)\ queue\(s\)\ of\ depth\ ([0-9]+)([^0-9]|$) ]] ||
		fz_fail "not an io_uring Transport line: '$FZ_TRANSPORT_LINE'"
	fz_expect_eq "io_uring queues (one per possible CPU)" "${BASH_REMATCH[1]}" "$NCPU"
	fz_expect_eq "io_uring queue depth" "${BASH_REMATCH[2]}" "$1"
	for task in /proc/"$FZ_PID"/task/*; do
		comm=$(cat "$task/comm" 2>/dev/null) || continue
		if [[ $comm == fz-ring-* ]]; then n=$((n + 1)); fi
	done
	if [[ $FZ_TRANSPORT_LINE =~ \(([0-9]+)\ threads\) ]]; then
		fz_expect_eq "fz-ring-* threads of daemon $FZ_PID (as the line counts)" "$n" "${BASH_REMATCH[1]}"
	elif [ "$n" -lt "$NCPU" ]; then
		fz_fail "daemon $FZ_PID runs $n fz-ring-* threads for $NCPU queues"
	fi
	fz_log "$n ring threads: $FZ_TRANSPORT_LINE"
}

# ---------------------------------------------------------------------------
# a. The kernel does not offer io_uring.

set_param 0
fz_mount --transport fuse -o disksize=16M
fz_expect_eq "Transport line with enable_uring 0" "$FZ_TRANSPORT_LINE" \
	"Transport:      /dev/fuse (the kernel does not offer FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING, and /sys/module/fuse/parameters/enable_uring on))"
expect_param N "after the mount"
fz_pwrite /dev/urandom "$FZ_IMG" 0 $((1 << 20)) direct
fz_umount
expect_param N "after the unmount"
fz_expect_eq "the daemon's log with enable_uring 0" "$(log_transport_lines)" "${FZ_TRANSPORT_LINE#Transport:      }"

# -o io_uring=on asks for nothing the kernel does not offer.
fz_mount --transport fuse -o disksize=16M,io_uring=on
[[ $FZ_TRANSPORT_LINE == *"(the kernel does not offer FUSE over io_uring"* ]] ||
	fz_fail "-o io_uring=on with enable_uring 0: '$FZ_TRANSPORT_LINE'"
fz_umount
expect_param N "after a mount with -o io_uring=on"

# ---------------------------------------------------------------------------
# b. Offered, refused by -o io_uring=off.

set_param 1
fz_mount --transport fuse -o disksize=16M,io_uring=off
fz_expect_eq "Transport line with -o io_uring=off" "$FZ_TRANSPORT_LINE" "Transport:      /dev/fuse (-o io_uring=off)"
fz_pwrite /dev/urandom "$FZ_IMG" 0 $((1 << 20)) direct
fz_transport
fz_expect_eq "Transport line after I/O with -o io_uring=off" "$FZ_TRANSPORT_LINE" "Transport:      /dev/fuse (-o io_uring=off)"
fz_umount
fz_expect_eq "the daemon's log with -o io_uring=off" "$(log_transport_lines)" "/dev/fuse (-o io_uring=off)"
expect_param Y "after a mount with -o io_uring=off"

# ---------------------------------------------------------------------------
# c. io_uring.

fz_mount --transport uring -o disksize=128M
expect_rings 8

# A request libfuse dispatches: counted on the rings, not in place.
counters
s0=$SERVED p0=$IN_PLACE
read -r -a mm <"$FZ_CTL/mm_stat" || fz_fail "cat control/mm_stat on io_uring"
fz_expect_eq "fields of control/mm_stat" "${#mm[@]}" 9
counters
[ "$SERVED" -gt "$s0" ] || fz_fail "reading control/mm_stat served nothing on the rings: $s0 -> $SERVED"
fz_expect_eq "in-place count after reading control files only" "$IN_PLACE" "$p0"

fz_roundtrip 64
counters
fz_log "64 MiB written and read: $((SERVED - s0)) requests on the rings, $((IN_PLACE - p0)) in place"
[ $((IN_PLACE - p0)) -ge 1536 ] ||
	fz_fail "64 MiB written and read took $((IN_PLACE - p0)) image reads and writes in place; at 128 KiB writes and 64 KiB reads, expected at least 1536"
[ $((SERVED - s0)) -ge $((IN_PLACE - p0)) ] ||
	fz_fail "fewer requests on the rings ($((SERVED - s0))) than in place ($((IN_PLACE - p0)))"
fz_expect_eq "orig_data_size after 64 MiB of random data" "$(fz_mm orig_data_size)" $((64 << 20))
fz_expect_eq "failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "failed_writes" "$(fz_io failed_writes)" 0
expect_param Y "with io_uring serving"

# e. (i) fusermount3 -u while the rings serve, a daemon of ours.
umount_bounded "$FZ_MNT" "$FZ_PID" "foreground daemon, rings active"
[[ $(log_transport_lines) == "io_uring, $NCPU queue(s) of depth 8"* ]] ||
	fz_fail "the daemon's log: $(grep 'transport:' "$FZ_LOG")"
expect_param Y "after the unmount"

# Depth 1: every request waits for the one entry of its CPU.
fz_mount --transport uring -o disksize=32M,io_uring_depth=1
expect_rings 1
counters
p0=$IN_PLACE
fz_roundtrip 16
counters
[ $((IN_PLACE - p0)) -ge 384 ] || fz_fail "16 MiB with io_uring_depth=1: $((IN_PLACE - p0)) reads and writes in place"
umount_bounded "$FZ_MNT" "$FZ_PID" "depth 1"

# Bare -o io_uring is on.
fz_mount --transport uring -o disksize=16M,io_uring
fz_umount

# Two descriptors a ring worker (an io_uring, an eventfd): depth 32 under
# a soft RLIMIT_NOFILE of 64 needs more than that on any machine, so the
# daemon raises its soft limit to the hard one rather than fall back to
# /dev/fuse.
nofile=$(ulimit -Sn)
need=$((NCPU * 32 * 2 + 64))
if [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$need" ]; then
	ulimit -Sn 64
	fz_mount --transport uring -o disksize=16M,io_uring_depth=32
	ulimit -Sn "$nofile"
	expect_rings 32
	lim=$(awk '/^Max open files/ { print $4 " " $5 }' "/proc/$FZ_PID/limits")
	[ "${lim% *}" = "${lim#* }" ] ||
		fz_fail "daemon $FZ_PID's RLIMIT_NOFILE soft/hard: $lim, expected the soft one raised to the hard"
	fz_pwrite /dev/urandom "$FZ_IMG" 0 $((1 << 20)) direct
	fz_umount
else
	fz_log "depth 32 under a soft RLIMIT_NOFILE of 64 not tried: the hard limit $(ulimit -Hn) is under $need"
fi

# Depth 128: each entry holds a buffer of the largest request (128 KiB
# here) and a header page, and the ring threads some more: well under
# CPUs x 128 x 300 KiB; tried only where that is under an eighth of the
# memory available.
need_kib=$((NCPU * 128 * 300))
avail_kib=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
if [ "$need_kib" -le $((avail_kib / 8)) ]; then
	fz_mount --transport uring -o disksize=16M,io_uring_depth=128
	expect_rings 128
	fz_pwrite /dev/urandom "$FZ_IMG" 0 $((1 << 20)) direct
	fz_umount
else
	fz_log "io_uring_depth=128 not tried: it needs $need_kib KiB, MemAvailable is $avail_kib KiB"
fi

# ---------------------------------------------------------------------------
# d. Bad values.

bad=$FZ_TMP/bad
mkdir "$bad"
fz__register "fuse|$bad||-"	# should one be accepted and detach

# expect_bad OPTION VALUE MESSAGE - fusezram -o OPTION=VALUE (as a user
# runs it, without -f) exits 1 with MESSAGE alone on stderr, mounts
# nothing and leaves no daemon.
expect_bad() {
	local rc=0 pid
	timeout 30 "$FUSEZRAM" -o "$1=$2" "$bad" >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
	if fz_is_mounted "$bad"; then
		fz__undo_match fuse "$bad" || :
		fz__register "fuse|$bad||-"
		fz_fail "fusezram -o $1=$2: mounted (exit $rc), expected a refusal"
	fi
	fz_expect_eq "exit status of fusezram -o $1=$2" "$rc" 1
	fz_expect_eq "stderr of fusezram -o $1=$2" "$(cat "$FZ_TMP/err")" "$3"
	if pid=$(fz__find_daemon "$bad"); then
		fz_fail "fusezram -o $1=$2: a daemon (pid $pid) is running for $bad"
	fi
	fz_log "refused: -o $1=$2: $3"
}
expect_bad io_uring maybe "fusezram: invalid io_uring 'maybe': expected on or off"
expect_bad io_uring '' "fusezram: invalid io_uring '': expected on or off"
for v in 0 129 x -1; do
	expect_bad io_uring_depth "$v" "fusezram: invalid io_uring_depth '$v': expected an integer from 1 to 128"
done

# ---------------------------------------------------------------------------
# e. More ways to end while the rings serve.

# (ii) A detached daemon, as a user starts it.
fz_mount --detach --transport uring -o disksize=16M
fz_pwrite /dev/urandom "$FZ_IMG" 0 $((1 << 20)) direct
umount_bounded "$FZ_MNT" "$FZ_PID" "detached daemon, rings active"

# (iii) SIGTERM: the daemon unmounts and exits 0.
fz_mount --transport uring -o disksize=16M
fz_pwrite /dev/urandom "$FZ_IMG" 0 $((1 << 20)) direct
kill -TERM "$FZ_PID"
fz_wait_until 10 eval "! fz__alive $FZ_PID" || fz_fail "daemon $FZ_PID still running 10 s after SIGTERM"
fz_is_mounted "$FZ_MNT" && fz_fail "$FZ_MNT still mounted after the daemon's SIGTERM exit"
fz_umount

# (iv) A lazy unmount while a loop device reads through the rings: the
# reads go on; once the loop device is detached (the last reference to
# the file system) the daemon exits.
fz_mount --transport uring -o disksize=64M
fz_loop "$FZ_IMG" --direct-io=on
dev=$FZ_LOOP
fz_run 60 dd if=/dev/urandom of="$dev" bs=1M count=8 oflag=direct status=none || fz_fail "dd of=$dev"
counters
p0=$IN_PLACE
# shellcheck disable=SC2016 # expanded by the inner shell
timeout -k 5 60 bash -c 'while dd if="$1" of=/dev/null bs=1M count=8 iflag=direct status=none; do :; done' \
	_ "$dev" 2>"$FZ_TMP/reader.err" &
reader=$!
FZ_BG+=("$reader")
# in_place_above N - the in-place count of FZ_MNT is above N (quietly
# false while it cannot be read).
in_place_above() {
	local l
	l=$(fz__transport_line "$FZ_MNT") || return 1
	[[ $l =~ \ ([0-9]+)\ image\ reads ]] && [ "${BASH_REMATCH[1]}" -gt "$1" ]
}
fz_wait_until 10 in_place_above "$p0" || fz_fail "the reader reads nothing through the rings"
timeout 30 fusermount3 -u -z "$FZ_MNT" || fz_fail "fusermount3 -u -z $FZ_MNT"
fz_is_mounted "$FZ_MNT" && fz_fail "$FZ_MNT still mounted after fusermount3 -u -z"
sleep 1
fz__alive "$reader" || fz_fail "the reader stopped after the lazy unmount: $(cat "$FZ_TMP/reader.err")"
fz__alive "$FZ_PID" || fz_fail "the daemon exited while its loop device was still attached"
kill -TERM "$reader"
wait "$reader" 2>/dev/null || :
keep=()
for p in "${FZ_BG[@]}"; do
	[ "$p" = "$reader" ] || keep+=("$p")
done
FZ_BG=("${keep[@]}")
timeout 30 losetup -d "$dev" || fz_fail "losetup -d $dev after the lazy unmount"
start=$SECONDS
fz_wait_until 10 eval "! fz__alive $FZ_PID" ||
	fz_fail "daemon $FZ_PID still running 10 s after its loop device $dev was detached (lazily unmounted)"
fz_log "daemon $FZ_PID gone $((SECONDS - start)) s after the last reference went"
fz_umount
fz_loop_detach "$dev"
expect_param Y "at the end"
fz_log "ok"
