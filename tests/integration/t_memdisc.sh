#!/bin/bash
# t_memdisc: the memory discipline and the signal policy.
#  - By default the daemon is mlockall()ed (VmLck > 0 in /proc/PID/status),
#    its oom_score_adj is -900 and its workers are I/O flushers; where the
#    machine withholds a capability (CAP_IPC_LOCK for mlockall,
#    CAP_SYS_RESOURCE for the other two, as in some containers) the daemon
#    must instead say so in one warning, and the test checks that loudly.
#  - With -o nomlock: nothing locked, oom_score_adj untouched, no warning.
#  - SIGTERM while a loop device holds the image open is refused: the
#    mount stays and serves; after losetup -d, SIGTERM unmounts.
#  - Two SIGTERMs within 5 s force the unmount even with the image open.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require_loop
fz_require cmp dd

# cap_has BIT - the test (root) has capability BIT in its effective set;
# the daemon, started by it, has the same.
cap_has() {
	local eff
	eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
	(((16#$eff >> $1) & 1))
}
CAP_IPC_LOCK=14
CAP_SYS_RESOURCE=24

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
log_has() { grep -qF -- "$2" "$1"; }

# ---- the discipline, by default ------------------------------------------------

fz_mount -o disksize=64M
pid=$FZ_PID
log=$FZ_LOG
# Some I/O, so that FUSE workers run and check their I/O-flusher flag.
head -c $((4 << 20)) /dev/urandom >"$FZ_TMP/data"
dd if="$FZ_TMP/data" of="$FZ_IMG" bs=1M oflag=direct conv=notrunc status=none ||
	fz_fail "writing the image"
fz_range "$FZ_IMG" 0 $((4 << 20)) >"$FZ_TMP/back"
fz_expect_cmp "image" "$FZ_TMP/back" "$FZ_TMP/data"
lck=$(status_kib "$pid" VmLck)
fz_log "daemon $pid: VmLck $lck kB, VmRSS $(status_kib "$pid" VmRSS) kB, oom_score_adj $(cat "/proc/$pid/oom_score_adj")"
fz_log "summary: $(grep '^Memory lock:' "$FZ_CTL/summary")"

if cap_has $CAP_IPC_LOCK; then
	[ "${lck:-0}" -gt 0 ] || fz_fail "VmLck of the daemon is ${lck:-?} kB: not mlockall()ed"
	grep -q '^Memory lock:.*mlockall on' "$FZ_CTL/summary" || fz_fail "summary: mlockall not on"
	log_has "$log" "mlockall:" && fz_fail "the daemon warns about mlockall: $(cat "$log")"
else
	fz_log "*** no CAP_IPC_LOCK here: checking the daemon's warning instead of VmLck ***"
	log_has "$log" "mlockall:" || fz_fail "no CAP_IPC_LOCK, but no warning about mlockall: $(cat "$log")"
fi

if cap_has $CAP_SYS_RESOURCE; then
	fz_expect_eq "oom_score_adj of the daemon" "$(cat "/proc/$pid/oom_score_adj")" -900
	log_has "$log" "PR_SET_IO_FLUSHER" &&
		fz_fail "the daemon warns about PR_SET_IO_FLUSHER: $(cat "$log")"
	grep -q '^Memory lock:.*I/O flusher on' "$FZ_CTL/summary" || fz_fail "summary: I/O flusher not on"
else
	# This machine (a container without CAP_SYS_RESOURCE, even for root)
	# cannot lower oom_score_adj or set PR_SET_IO_FLUSHER: the daemon
	# must say so, in one warning, and carry on.
	fz_log "*** no CAP_SYS_RESOURCE here: oom_score_adj -900 and PR_SET_IO_FLUSHER cannot be set; checking the daemon's warning instead ***"
	log_has "$log" "oom_score_adj: Permission denied" ||
		fz_fail "no warning about oom_score_adj: $(cat "$log")"
	log_has "$log" "PR_SET_IO_FLUSHER: Operation not permitted" ||
		fz_fail "no warning about PR_SET_IO_FLUSHER: $(cat "$log")"
	fz_expect_eq "oom_score_adj of the daemon" "$(cat "/proc/$pid/oom_score_adj")" \
		"$(cat /proc/self/oom_score_adj)"
fi
n=$(grep -c "memory discipline incomplete" "$log" || :)
[ "$n" -le 1 ] || fz_fail "$n warnings about the memory discipline, expected at most one"
log_has "$log" "without PR_SET_IO_FLUSHER" &&
	fz_fail "a worker thread did not inherit PR_SET_IO_FLUSHER: $(cat "$log")"

# ---- SIGTERM with the image held by a loop device ---------------------------------

fz_loop "$FZ_IMG" --direct-io=on
loop=$FZ_LOOP
dd if="$FZ_TMP/data" of="$loop" bs=1M oflag=direct status=none || fz_fail "writing $loop"
kill -TERM "$pid"
fz_wait_until 10 log_has "$log" "SIGTERM: image in use by 1 opener(s); not unmounting" ||
	fz_fail "no refusal logged after SIGTERM: $(cat "$log")"
sleep 1
fz__alive "$pid" || fz_fail "the daemon died of SIGTERM with the image open"
fz_is_mounted "$FZ_MNT" || fz_fail "SIGTERM with the image open unmounted it"
# Still serving: read back through the loop device, write more.
dd if="$loop" of="$FZ_TMP/back" bs=1M count=4 iflag=direct status=none ||
	fz_fail "reading $loop after SIGTERM"
fz_expect_cmp "$loop after SIGTERM" "$FZ_TMP/back" "$FZ_TMP/data"
dd if="$FZ_TMP/data" of="$loop" bs=1M seek=8 oflag=direct status=none ||
	fz_fail "writing $loop after SIGTERM"
fz_log "served after SIGTERM: $(grep '^Image:' "$FZ_CTL/summary")"

fz_loop_detach "$loop"
# The kernel releases the image asynchronously after losetup -d.
fz_wait_until 20 grep -q "open 0 time" "$FZ_CTL/summary" ||
	fz_fail "image still open 20 s after losetup -d: $(grep '^Image:' "$FZ_CTL/summary")"
kill -TERM "$pid"
# shellcheck disable=SC2016 # expanded at each poll
fz_wait_until 20 eval '! fz_is_mounted "$FZ_MNT" && ! fz__alive "$pid"' ||
	fz_fail "SIGTERM with the image closed did not unmount and end the daemon"
log_has "$log" "SIGTERM: unmounting" || fz_fail "no 'unmounting' in the log: $(cat "$log")"
fz_umount	# reaps the daemon: its exit status must be 0

# ---- forced: a second SIGTERM within 5 s --------------------------------------------

fz_mount -o disksize=16M
pid=$FZ_PID
log=$FZ_LOG
fz_loop "$FZ_IMG" --direct-io=on
loop=$FZ_LOOP
kill -TERM "$pid"
fz_wait_until 10 log_has "$log" "not unmounting" || fz_fail "no refusal logged: $(cat "$log")"
kill -TERM "$pid"
# shellcheck disable=SC2016 # expanded at each poll
fz_wait_until 20 eval '! fz_is_mounted "$FZ_MNT" && ! fz__alive "$pid"' ||
	fz_fail "a second SIGTERM within 5 s did not force the unmount"
log_has "$log" "forcing the unmount with the image in use by 1 opener(s)" ||
	fz_fail "no 'forcing' in the log: $(cat "$log")"
if dd if="$loop" of=/dev/null bs=4K count=1 iflag=direct status=none 2>/dev/null; then
	fz_fail "$loop still reads after the forced unmount"
fi
# The loop device still holds the dead file: detach it ourselves (the
# cleanup matches devices by backing file, whose path is gone now).
timeout 30 losetup -d "$loop" || fz_fail "losetup -d $loop after the forced unmount"
fz_wait_until 30 eval "! losetup -n -O BACK-FILE $loop 2>/dev/null | grep -qF '$FZ_TMP/'" ||
	fz_fail "$loop still attached after losetup -d"
fz_umount

# ---- -o nomlock ------------------------------------------------------------------------

fz_mount -o disksize=16M,nomlock
dd if="$FZ_TMP/data" of="$FZ_IMG" bs=1M oflag=direct conv=notrunc status=none ||
	fz_fail "writing the image (nomlock)"
lck=$(status_kib "$FZ_PID" VmLck)
fz_expect_eq "VmLck with -o nomlock" "$lck" 0
fz_expect_eq "oom_score_adj with -o nomlock" "$(cat "/proc/$FZ_PID/oom_score_adj")" \
	"$(cat /proc/self/oom_score_adj)"
log_has "$FZ_LOG" "memory discipline" && fz_fail "-o nomlock, yet a warning: $(cat "$FZ_LOG")"
grep -q '^Memory lock:.*off' "$FZ_CTL/summary" || fz_fail "summary: memory lock not off"
fz_umount
fz_log "ok"
