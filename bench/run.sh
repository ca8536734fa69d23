#!/bin/bash
#
# bench/run.sh - the fusezram benchmark: memory and throughput against kernel
# zram, nbdkit's zstd memory allocator behind nbdfuse, and nullfs (a FUSE
# file system that stores nothing: the ceiling of the FUSE + loop path),
# fusezram and nullfs each under both FUSE transports, /dev/fuse and FUSE
# over io_uring.  `make bench` runs it after building ./fusezram.  Root is
# required.
#
# All of it runs in one go on the same data, a corpus of /usr files
# (bench/run.sh builds it once into build/bench/corpus.bin and reuses it):
#
#  1. compspeed: single-core lz4 and zstd speed and ratio on the corpus in
#     4 KiB pages, through the project's compressors/ (the per-thread limit).
#  2. Memory: the corpus written through a direct-I/O loop device onto
#     fusezram (lz4) and onto /dev/zram0 (lz4); mem_used_total,
#     compr_data_size and the daemon's RSS growth side by side; then 2 of
#     every 3 pages discarded, compaction, everything discarded; then a
#     mem_limit=48M mount (12M in quick mode) that must refuse the corpus
#     with ENOSPC, keep what it took intact and accept writes again after
#     a discard.  Each target prints PASS or FAIL.
#  3. Throughput, each configuration through a direct-I/O loop device:
#     sequential 1 MiB write and read (dd), read-back compared with the
#     corpus, 4 KiB random read and write (fio), compression ratio, and for
#     the FUSE daemons their CPU time (utime + stime of the whole process,
#     /proc/PID/stat) per 100K of fio's 4 KiB reads and writes.  fusezram
#     lz4 and nullfs run twice, on /dev/fuse (rows fusezram-lz4, nullfs)
#     and on FUSE over io_uring (fusezram-lz4-uring, nullfs-uring): the
#     fuse module's enable_uring is set to 0 or 1 for the row (see Safety)
#     and the daemon keeps its default -o io_uring=on, so a /dev/fuse row
#     is what a kernel without the feature gets.  Every such row is checked
#     afterwards: fusezram's control/summary "Transport:" line, nullfs'
#     exit line must name the transport wanted, and an io_uring row must
#     have served image reads and writes on the rings; a row that fell
#     back is flagged (*** ... ***) and counted as a failure.  A table,
#     fusezram's figures divided by each baseline's, then the transports
#     side by side with issue 15's targets (ratios to /dev/zram0 and to
#     the same transport's null ceiling, io_uring / /dev/fuse, each target
#     PASS or MISS: reported, never asserted).
#  4. Tiers (bench/tier.sh, in its own process with its own cleanup trap,
#     tests/integration/lib.sh's): the corpus written back to a backing
#     file (RAM freed, the file's size against compr_data_size, a discard
#     of everything), the corpus through mem_limit with a backing file,
#     writeback_age=3; then a 1500 MiB hog in a 256 MiB memory cgroup
#     swapping to a swap file on the disk, to zswap in front of it, and to
#     fusezram with mem_limit=240M and a backing file on the same disk: the
#     time and the bytes written to the disk.  It swaps on and sets zswap's
#     parameters, and puts everything back (see its header).
#  5. Recompression (bench/recomp.sh, in its own process with its own
#     cleanup trap, as section 4): the corpus on fusezram with lz4 and
#     recomp_algorithm=zstd, mem_used_total before and after `echo all >
#     idle; echo type=idle > recompress`, every byte read back, random-read
#     IOPS of the recompressed pages against the lz4 pages; then
#     recompress_age=3 reaching that saving on its own while fio reads a
#     hot region, its IOPS against the same without the policy.
#  6. Swap under pressure (bench/stress.sh STRESS_PARTS=pressure, in its
#     own process with its own cleanup trap, as section 4): the two-hog
#     workload on fusezram over /dev/fuse, over io_uring, and on kernel
#     zram0, each time against zram0's (issue 15: io_uring <= 1.2x).
#
# The benchmark reports; it exits 0 even when a target is missed (the
# summary says so), and non-zero only when it could not run.
#
# Environment:
#	BENCH_QUICK=1		64 MiB corpus, 3 s fio runs: a smoke run
#	BENCH_TRANSPORT_ONLY=1	only what issue 15 measures: section 3's
#				fusezram-lz4, zram-lz4 and nullfs rows under
#				both transports, and section 6 (no memory
#				section, zstd, nbdkit, tiers, recompression)
#	BENCH_BASE=PATH		also a row fusezram-lz4-base on /dev/fuse with
#				this build (an older fusezram): the "no
#				regression under /dev/fuse" target
#	BENCH_SKIP_URING=1	no io_uring rows (and no window on the
#				parameter: /dev/fuse rows run as they are)
#	BENCH_SKIP_STRESS=1	no section 6
#	BENCH_STRESS_ROUNDS=N	its rounds (default 3, quick 1)
#	URING_LOCK_WAIT=S	wait for /tmp/fusezram-uring.lock (default 3600)
#	BENCH_SKIP_ZRAM=1	leave /dev/zram0 alone
#	BENCH_ZRAM_WAIT=S	wait for a zram0 someone else uses (default 120)
#	BENCH_SKIP_NBD=1	no nbdkit + nbdfuse row
#	BENCH_SKIP_TIER=1	no section 4 (it swaps and sets zswap)
#	BENCH_SKIP_RECOMP=1	no section 5
#	BENCH_TIER_DIR, BENCH_SWAP_WAIT	see bench/tier.sh
#	BENCH_PNG=PATH		also draw the table as a PNG (gnuplot)
#	BENCH_FIO_RUNTIME=S	seconds per fio run (default 6, quick 3)
#	BENCH_REPEAT=N		runs of each throughput figure, the median kept
#				(default 3, quick 1); sequential writes after
#				the first go to a device emptied by blkdiscard
#	FUSEZRAM=PATH		the daemon (default ./fusezram)
#
# Safety: one EXIT/INT/TERM trap undoes everything this script set up, in
# reverse order, on every path: losetup -d of the loop devices it allocated
# (only those), fusermount3 -u of its mounts (then the daemons are reaped,
# killed if they linger), nbdkit killed, /sys/module/fuse/parameters/
# enable_uring put back to what it was, /sys/block/zram0/reset if it used
# zram0 (it never touches a zram0 that is already set up), its temporary
# directory removed.  The parameter is only changed inside a window
# around one row (bench/uring.sh: mount, measure, unmount), which holds an
# exclusive flock on /tmp/fusezram-uring.lock (the tests that set the
# parameter take it too; the wait for it is bounded by URING_LOCK_WAIT)
# and puts the value back before letting the lock go.  The lock is held
# by a helper process, never by a descriptor the daemons could inherit.  Nothing here is ever swapped on: section 4 is
# bench/tier.sh, whose own trap undoes its swap and zswap settings; it runs
# in the background here, and an interrupt sends it SIGTERM and waits for
# its cleanup (at most 15 minutes: swapoff may have to read pages back).
# Sections 5 and 6, bench/recomp.sh and bench/stress.sh, run the same
# way (recomp.sh never swaps; stress.sh's parts swap on, and undo it, as
# tier.sh does, and open their own windows on the parameter).  A zram0 that someone
# else has set up (disksize, swap, mount, loop) is never touched.  Every command that goes
# through a FUSE mount runs under a time limit; one that outlives it (a hung
# daemon leaves it in uninterruptible sleep) makes the script abort the
# FUSE connection, which fails the stuck I/O, and report the hang.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/uring.sh
. "$ROOT/bench/uring.sh"

FUSEZRAM=${FUSEZRAM:-$ROOT/fusezram}
OUT=$ROOT/build/bench
QUICK=${BENCH_QUICK:-0}
SKIP_ZRAM=${BENCH_SKIP_ZRAM:-0}
SKIP_NBD=${BENCH_SKIP_NBD:-0}
SKIP_TIER=${BENCH_SKIP_TIER:-0}
SKIP_RECOMP=${BENCH_SKIP_RECOMP:-0}
SKIP_URING=${BENCH_SKIP_URING:-0}
SKIP_STRESS=${BENCH_SKIP_STRESS:-0}
TRANSPORT_ONLY=${BENCH_TRANSPORT_ONLY:-0}
BASE=${BENCH_BASE:-}
if [ "$TRANSPORT_ONLY" = 1 ]; then
	SKIP_NBD=1 SKIP_TIER=1 SKIP_RECOMP=1
fi
ZRAM_WAIT=${BENCH_ZRAM_WAIT:-120}
ZRAM_BUSY=0
PNG=${BENCH_PNG:-}

CORPUS_FULL_MIB=256
if [ "$QUICK" = 1 ]; then
	CORPUS_MIB=64
	FIO_RUNTIME=${BENCH_FIO_RUNTIME:-3}
	REPEAT=${BENCH_REPEAT:-1}
	STRESS_ROUNDS=${BENCH_STRESS_ROUNDS:-1}
else
	CORPUS_MIB=$CORPUS_FULL_MIB
	FIO_RUNTIME=${BENCH_FIO_RUNTIME:-6}
	REPEAT=${BENCH_REPEAT:-3}
	STRESS_ROUNDS=${BENCH_STRESS_ROUNDS:-3}
fi
CORPUS_BYTES=$((CORPUS_MIB << 20))
DISKSIZE=1G			# every device: fusezram, zram0, nbdkit, nullfs
# 48 MiB for the 256 MiB corpus, well under what it compresses to;
# scaled down with the corpus.
MEM_LIMIT_MIB=$((CORPUS_MIB * 3 / 16))

# Targets of the memory issue.
T_MEM_VS_ZRAM=1.02		# fusezram mem_used_total / zram mem_used_total
T_RSS_VS_ZRAM=1.08		# daemon RSS growth / zram mem_used_total
T_FRAG=1.10			# mem_used_total / compr_data_size, 1/3 kept
T_EMPTY_BYTES=$((2 << 20))	# mem_used_total after discarding everything

# Targets of the transport issue (15): fusezram lz4 on io_uring.
T_URING_RR=0.40			# 4 KiB randread / /dev/zram0's
T_URING_RW=0.42			# 4 KiB randwrite / /dev/zram0's
T_URING_CPU=0.7			# daemon CPU per 100K reads / /dev/fuse's
T_URING_SEQW=1.3		# 1 MiB sequential write / /dev/zram0's
# (The two-hog swap time's, <= 1.2x kernel zram's, is bench/stress.sh's.)
T_NOREGRESS=0.90		# /dev/fuse against BENCH_BASE, each figure

# Time limits, in seconds.
T_DD=600
T_CMP=600
T_FIO=$((FIO_RUNTIME + 90))
T_SMALL=60

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# ---------------------------------------------------------------------------
# Cleanup registry: a stack of "kind|arg|..." entries, undone in reverse.
# undo_to N undoes entries down to index N (a configuration's teardown);
# the EXIT trap undoes all.  An undone entry becomes "done".

CLEANUP=()
TMP=""			# mount points, logs (on disk: d_path is sane there)
SHM=""			# the corpus copy (tmpfs: never re-read from disk)
ZRAM_OURS=0
HUNG=()			# what hung, for the summary
BOUNDED_PID=""		# the command bounded() is running

register() { CLEANUP+=("$1"); }

# hold_signals ... release_signals - around a setup and its registration
# (losetup -f --show, a daemon started in the background): an INT or TERM
# in between is only noted, and acted on once the undo is registered (bash
# runs a trap between two commands: it would leave the loop device or the
# mount unregistered).  What runs in between is bounded.
SIG_HELD=''
hold_signals() {
	trap 'SIG_HELD=${SIG_HELD:-130}' INT
	trap 'SIG_HELD=${SIG_HELD:-143}' TERM
}
release_signals() {
	trap 'exit 130' INT
	trap 'exit 143' TERM
	[ -z "$SIG_HELD" ] || exit "$SIG_HELD"
}

# retry SECS CMD... - run CMD until it succeeds or SECS have passed.
retry() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.5
	done
}

# wait_until SECS CMD... - poll CMD quietly every 0.1 s for SECS.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# is_mounted DIR - DIR is a mount point (from /proc, never stat: a hung
# daemon would hang stat).
is_mounted() {
	awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/self/mounts
}

alive() {
	local st
	st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}
dead() { ! alive "$1"; }

# loop_id DEV - what DEV is attached to: backing device, inode and name as
# losetup shows them (the name alone can be mangled in sysfs), or nothing.
loop_id() { losetup -n -O BACK-MAJ:MIN,BACK-INO,BACK-FILE "$1" 2>/dev/null | tr -s ' \t' ' ' | sed 's/^ //; s/ $//'; }
loop_gone() { [ "$(loop_id "$1")" != "$2" ]; }

# fuse_conn MNT - the /sys/fs/fuse/connections/ id of MNT (its st_dev
# minor).  Read from /proc/self/mountinfo, so it works on a hung mount.
fuse_conn() {
	awk -v d="$1" '$5 == d { split($3, a, ":"); print a[2] }' /proc/self/mountinfo | tail -n 1
}

abort_conn() {
	local c=/sys/fs/fuse/connections/$1/abort
	[ -n "$1" ] && [ -w "$c" ] && echo 1 >"$c" 2>/dev/null
}

# abort_fuse - abort every FUSE connection this script still holds: the
# requests in flight fail with ENOTCONN/EIO, so stuck I/O returns.
abort_fuse() {
	local e kind mnt pid conn
	for e in "${CLEANUP[@]}"; do
		IFS='|' read -r kind mnt pid conn <<<"$e"
		[ "$kind" = fuse ] || continue
		log "aborting FUSE connection $conn ($mnt)"
		abort_conn "$conn" || :
	done
}

# undo_loop DEV ID - detach DEV if it is still attached as it was (ID from
# loop_id right after we attached it): a device detached and reused by
# someone else since is left alone.
undo_loop() {
	local dev=$1 id=$2
	loop_gone "$dev" "$id" && return 0
	if ! retry 30 timeout 30 losetup -d "$dev"; then
		log "CLEANUP FAILED: losetup -d $dev ($id)"
		return 1
	fi
	wait_until 30 loop_gone "$dev" "$id" ||
		log "CLEANUP FAILED: $dev still attached ($id)"
}

undo_fuse() {
	local mnt=$1 pid=$2 conn=$3
	if is_mounted "$mnt" && ! retry 20 timeout 30 fusermount3 -u "$mnt" 2>/dev/null; then
		log "CLEANUP: fusermount3 -u $mnt failed; aborting the connection"
		abort_conn "$conn" || :
		retry 10 timeout 30 fusermount3 -u "$mnt" 2>/dev/null ||
			timeout 30 fusermount3 -u -z "$mnt" ||
			log "CLEANUP FAILED: fusermount3 -u -z $mnt"
	fi
	if [ -n "$pid" ] && ! wait_until 20 dead "$pid"; then
		log "CLEANUP: pid $pid still alive after unmounting $mnt; killing it"
		# fusezram wants a second signal within 5 s while its image is open.
		kill -TERM "$pid" 2>/dev/null || :
		sleep 1
		kill -TERM "$pid" 2>/dev/null || :
		wait_until 10 dead "$pid" || kill -KILL "$pid" 2>/dev/null || :
	fi
	[ -z "$pid" ] || wait "$pid" 2>/dev/null || :
}

undo_pid() {
	local pid=$1
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || :
	wait_until 10 dead "$pid" || kill -KILL "$pid" 2>/dev/null || :
	wait "$pid" 2>/dev/null || :
}

zram_reset() { timeout 60 sh -c 'echo 1 > /sys/block/zram0/reset' 2>/dev/null; }

# undo_zram - reset zram0 if we set it up.  On failure ZRAM_OURS stays 1,
# so the EXIT trap tries again.
undo_zram() {
	[ "$ZRAM_OURS" = 1 ] || return 0
	if ! zram_reset; then
		log "CLEANUP: zram0 busy; retrying reset"
		if ! retry 30 zram_reset; then
			log "CLEANUP FAILED: echo 1 > /sys/block/zram0/reset"
			return 1
		fi
	fi
	ZRAM_OURS=0
}

# undo_tier PID - bench/tier.sh (or bench/recomp.sh) still running:
# SIGTERM makes its trap undo what it set up (the hogs, swap, zswap,
# mounts); wait for that.  Never SIGKILL: that would leave its swap on.
undo_tier() {
	local pid=$1
	alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
	log "stopping bench/tier.sh (pid $pid); waiting for its cleanup"
	kill -TERM "$pid" 2>/dev/null || :
	if ! wait_until 900 dead "$pid"; then
		log "CLEANUP FAILED: bench/tier.sh (pid $pid) still running after 900 s; check /proc/swaps and /sys/module/zswap/parameters"
		return 1
	fi
	wait "$pid" 2>/dev/null || :
}

undo_entry() {
	local i=$1 kind a b c
	IFS='|' read -r kind a b c <<<"${CLEANUP[$i]}"
	CLEANUP[i]="done"
	case $kind in
	loop) undo_loop "$a" "$b" ;;
	fuse) undo_fuse "$a" "$b" "$c" ;;
	pid) undo_pid "$a" ;;
	tier) undo_tier "$a" ;;
	uring) uring_window_close ;;
	zram) undo_zram ;;
	done) ;;
	esac
}

undo_to() {
	local i
	for ((i = ${#CLEANUP[@]} - 1; i >= $1; i--)); do
		undo_entry "$i" || :
	done
	CLEANUP=("${CLEANUP[@]:0:$1}")
}

cleanup() {
	local rc=$?
	trap '' INT TERM
	set +e
	# A command interrupted under bounded(): stop it (timeout passes the
	# signal on) before its devices go away.
	if [ -n "$BOUNDED_PID" ] && kill -TERM "$BOUNDED_PID" 2>/dev/null; then
		wait_until 15 dead "$BOUNDED_PID" || abort_fuse
		wait "$BOUNDED_PID" 2>/dev/null
	fi
	undo_to 0
	undo_zram
	uring_window_close
	[ -z "$TMP" ] || rm -rf "$TMP"
	[ -z "$SHM" ] || rm -rf "$SHM"
	exit "$rc"
}
trap cleanup EXIT
release_signals

# bounded SECS CMD... - run CMD under a time limit.  If it outlives the
# limit by 15 s (I/O stuck on a hung FUSE daemon is not killable), abort
# our FUSE connections and wait 30 s more.  Returns CMD's status, 124 on
# a time-out.
bounded() {
	local secs=$1 pid rc=0 end aborted=0
	shift
	timeout -k 5 "$secs" "$@" &
	pid=$!
	BOUNDED_PID=$pid
	end=$((SECONDS + secs + 15))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$end" ]; then
			if [ "$aborted" = 1 ]; then
				log "'$*' is still stuck; giving up on it"
				HUNG+=("$* (stuck even after abort)")
				return 124
			fi
			log "'$*' stuck for $((secs + 15)) s: a FUSE daemon hangs"
			HUNG+=("$*")
			abort_fuse
			aborted=1
			end=$((SECONDS + 30))
		fi
		sleep 0.1
	done
	wait "$pid" || rc=$?
	BOUNDED_PID=""
	return "$rc"
}

# ---------------------------------------------------------------------------
# Setup helpers.  Each registers its undo.

# loop_attach FILE - set LOOP to a new direct-I/O loop device on FILE.
# (Not in a command substitution: the registration must reach this shell.)
loop_attach() {
	local dio
	hold_signals
	if ! LOOP=$(timeout "$T_SMALL" losetup -f --show --direct-io=on "$1"); then
		release_signals
		return 1
	fi
	register "loop|$LOOP|$(loop_id "$LOOP")"
	release_signals
	dio=$(losetup -n -O DIO "$LOOP" | tr -d ' ')
	[ "$dio" = 1 ] || log "WARNING: $LOOP on $1 is not in direct-I/O mode"
}

# find_pid MNT EXE - the pid of the process named EXE with argument MNT.
find_pid() {
	local p exe
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
		[ "${exe##*/}" = "$2" ] || continue
		if tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qxF -- "$1"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# mount_fuse NAME EXE [ARGS...] - start EXE ARGS... (a foreground FUSE
# daemon) in its own session, in the background here, with the mount point
# in place of an argument "@MNT@" or else last; wait for the mount.  Sets
# MNT and MNT_PID.  The daemon's output goes to $TMP/NAME.log.
mount_fuse() {
	local name=$1 exe=$2 pid a args=() placed=0
	shift 2
	MNT=$TMP/$name
	mkdir -p "$MNT"
	for a in "$@"; do
		if [ "$a" = @MNT@ ]; then
			args+=("$MNT")
			placed=1
		else
			args+=("$a")
		fi
	done
	[ "$placed" = 1 ] || args+=("$MNT")
	hold_signals
	setsid "$exe" "${args[@]}" </dev/null >"$TMP/$name.log" 2>&1 &
	pid=$!
	register "fuse|$MNT|$pid|"
	release_signals
	# shellcheck disable=SC2016 # expanded by eval, at each poll
	if ! wait_until 20 eval 'is_mounted "$MNT" || dead $pid'; then
		log "$exe $* $MNT: not mounted after 20 s"
		return 1
	fi
	if ! is_mounted "$MNT"; then
		log "$exe $* $MNT exited before mounting: $(cat "$TMP/$name.log")"
		return 1
	fi
	MNT_PID=$(find_pid "$MNT" "${exe##*/}") || MNT_PID=$pid
	CLEANUP[${#CLEANUP[@]} - 1]="fuse|$MNT|$MNT_PID|$(fuse_conn "$MNT")"
}

# (Every look through a fresh mount is test(1) in a child, bounded: a
# daemon that answers nothing would block the shell's own stat, and its
# traps with it.)
mount_fusezram() {
	mount_fuse "$1" "$FUSEZRAM" -f -o "$2" || return 1
	wait_until 10 timeout -k 1 5 test -f "$MNT/image" || {
		log "$MNT/image missing"
		return 1
	}
}

# zram_free - nobody has zram0 set up, swapped on, mounted or under a loop.
zram_free() {
	[ "$(cat /sys/block/zram0/disksize)" = 0 ] &&
		! grep -q '^/dev/zram0[[:space:]]' /proc/swaps /proc/self/mounts &&
		[ -z "$(losetup -j /dev/zram0 2>/dev/null)" ]
}

# zram_setup ALG - reset zram0 and give it ALG and DISKSIZE.  A zram0 that
# someone else has set up is waited for (BENCH_ZRAM_WAIT seconds), then
# left alone.
zram_setup() {
	local z=/sys/block/zram0
	if [ "$ZRAM_OURS" != 1 ]; then
		[ "$ZRAM_BUSY" = 0 ] || return 1
		if ! zram_free; then
			log "zram0 is in use by someone else (disksize $(cat $z/disksize)); waiting up to ${ZRAM_WAIT}s"
			if ! wait_until "$ZRAM_WAIT" zram_free; then
				log "zram0 still in use; leaving it alone"
				ZRAM_BUSY=1
				return 1
			fi
		fi
		ZRAM_OURS=1
	fi
	register zram
	zram_reset || return 1
	echo "$1" >$z/comp_algorithm || return 1
	echo "$DISKSIZE" >$z/disksize || return 1
}

# ---------------------------------------------------------------------------
# Measuring helpers.

# mm FILE FIELD - one field of an mm_stat file.
mm() {
	local i
	case $2 in
	orig) i=1 ;; compr) i=2 ;; mem_used) i=3 ;; limit) i=4 ;; used_max) i=5 ;;
	same) i=6 ;; compacted) i=7 ;; huge) i=8 ;;
	*) return 1 ;;
	esac
	timeout "$T_SMALL" cat "$1" | awk -v i="$i" '{ print $i }'
}

rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf f "\n", a / b }'; }

# settle FILE - wait (at most 10 s) until mem_used_total of FILE stops
# changing for a second: fusezram may compact in the background.
settle() {
	local prev cur n=0
	prev=$(mm "$1" mem_used)
	while [ "$n" -lt 10 ]; do
		sleep 1
		cur=$(mm "$1" mem_used)
		[ "$cur" != "$prev" ] || break
		prev=$cur
		n=$((n + 1))
	done
}

# check NAME VALUE OP LIMIT - record and print PASS/FAIL for a target.
CHECKS=()
check() {
	local name=$1 val=$2 op=$3 lim=$4 res
	if [ "$val" = - ] || [ -z "$val" ]; then
		res=SKIP
	elif awk -v v="$val" -v l="$lim" -v o="$op" 'BEGIN {
		exit !((o == "<=" && v <= l) || (o == "<" && v < l) || (o == ">=" && v >= l)) }'; then
		res=PASS
	else
		res=FAIL
	fi
	CHECKS+=("$res  $name: $val (target $op $lim)")
	printf '  %-4s  %s: %s (target %s %s)\n' "$res" "$name" "$val" "$op" "$lim"
}
check_bool() {
	local res=FAIL
	[ "$2" = 1 ] && res=PASS
	[ "$2" = - ] && res=SKIP
	CHECKS+=("$res  $1${3:+: $3}")
	printf '  %-4s  %s%s\n' "$res" "$1" "${3:+: $3}"
}

# dd_timed ARGS... - run dd bounded; sets DD_RC, DD_BYTES, DD_SECS,
# DD_MBPS (from dd's own byte count and time) and DD_ERR (its error line).
dd_timed() {
	local f=$TMP/dd.err
	DD_RC=0
	bounded "$T_DD" dd "$@" 2>"$f" || DD_RC=$?
	DD_BYTES=$(awk '/bytes.*copied/ { print $1 }' "$f" | tail -n 1)
	DD_SECS=$(awk '/bytes.*copied/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^s,?$/) print $i }' "$f" | tail -n 1)
	DD_ERR=$(grep -v -e 'records in' -e 'records out' -e 'bytes.*copied' "$f" | head -n 1 || :)
	DD_BYTES=${DD_BYTES:-0}
	DD_MBPS=$(div "$DD_BYTES" "$(awk -v s="${DD_SECS:-0}" 'BEGIN { print s * 1e6 }')" %.0f)
}

# median V... - the median of numbers ("-" if any is "-"); the lower
# middle one of an even count.
median() {
	local v
	for v in "$@"; do [ "$v" != - ] || { echo -; return; }; done
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# dd_runs ROW WHAT DISCARD ARGS... - dd ARGS, REPEAT times; DD_RUNS gets
# each run's MB/s, "-" for a failed one (which ends the runs and goes into
# FAILS as WHAT).  DISCARD, unless "-", is a device to blkdiscard before
# every run but the first.
dd_runs() {
	local row=$1 what=$2 disc=$3 k
	shift 3
	DD_RUNS=()
	for ((k = 0; k < REPEAT; k++)); do
		if [ "$k" != 0 ] && [ "$disc" != - ]; then
			bounded "$T_SMALL" blkdiscard "$disc" >/dev/null 2>&1 || :
		fi
		dd_timed "$@"
		if [ "$DD_RC" != 0 ]; then
			DD_RUNS+=(-)
			FAILS+=("$row: $what failed: ${DD_ERR:-status $DD_RC}")
			break
		fi
		DD_RUNS+=("$DD_MBPS")
	done
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# fio_run DEV RW [EXTRA...] - set FIO_IOPS to the IOPS of a 4 KiB random
# RW run over the corpus-sized start of DEV, or "-", and FIO_IOS to the
# number of I/Os it completed.
fio_run() {
	local dev=$1 rw=$2 f=$TMP/fio.json dir rc=0
	shift 2
	FIO_IOPS=- FIO_IOS=-
	[ "$HAVE_FIO" = 1 ] || return 0
	bounded "$T_FIO" fio --name="$rw" --filename="$dev" --ioengine=libaio \
		--direct=1 --iodepth=32 --numjobs=2 --bs=4k --rw="$rw" \
		--size="$CORPUS_BYTES" --time_based --runtime="$FIO_RUNTIME" \
		--group_reporting --output-format=json "$@" >"$f" 2>"$TMP/fio.err" || rc=$?
	dir="read"
	[ "$rw" = randwrite ] && dir="write"
	if [ "$rc" -ne 0 ] || [ "$(jq '.jobs[0].error' "$f" 2>/dev/null)" != 0 ]; then
		log "fio $rw on $dev failed (status $rc): $(head -c 300 "$TMP/fio.err")"
		return 0
	fi
	FIO_IOPS=$(jq -r ".jobs[0].$dir.iops | floor" "$f")
	FIO_IOS=$(jq -r ".jobs[0].$dir.total_ios" "$f")
}

CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID - utime + stime of process PID (all its threads, live and
# exited), in clock ticks; "-" if it is gone.
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo -
}

# fio_cpu PID DEV RW [EXTRA...] - fio_run, and set FIO_CPU to PID's CPU
# seconds per 100K of the run's I/Os ("-" without a PID, "-" for PID).
fio_cpu() {
	local pid=$1 c0 c1
	shift
	FIO_CPU=-
	c0=-
	[ "$pid" = - ] || c0=$(cpu_ticks "$pid")
	fio_run "$@"
	[ "$c0" != - ] && [ "$FIO_IOPS" != - ] || return 0
	c1=$(cpu_ticks "$pid")
	[ "$c1" != - ] || return 0
	FIO_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$FIO_IOS" \
		'BEGIN { if (n > 0) printf "%.3f\n", t / hz / n * 1e5; else print "-" }')
}

# ---------------------------------------------------------------------------
# Prerequisites.

[ "$(id -u)" = 0 ] || die "root required (loop devices, zram0, drop_caches)"

# need CMD PACKAGE - make sure CMD exists, installing PACKAGE if not.
APT_UPDATED=0
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	command -v apt-get >/dev/null 2>&1 || return 1
	log "installing $2 (for $1)"
	if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
		--no-install-recommends "$2" >"$OUT/apt.log" 2>&1; then
		if [ "$APT_UPDATED" = 0 ]; then
			APT_UPDATED=1
			timeout 600 apt-get update -q >>"$OUT/apt.log" 2>&1 || :
			DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
				--no-install-recommends "$2" >>"$OUT/apt.log" 2>&1 || :
		fi
	fi
	command -v "$1" >/dev/null 2>&1 || {
		log "could not install $2 (see $OUT/apt.log)"
		return 1
	}
}

mkdir -p "$OUT"
for c in "losetup util-linux" "fallocate util-linux" "blkdiscard util-linux" "fusermount3 fuse3" \
	"python3 python3" "cc gcc" "pkg-config pkg-config" "jq jq"; do
	# shellcheck disable=SC2086 # two words
	need $c || die "missing ${c% *}"
done
HAVE_FIO=1
need fio fio || {
	HAVE_FIO=0
	log "no fio: the random I/O columns stay empty"
}
if [ "$SKIP_NBD" != 1 ]; then
	{ need nbdkit nbdkit && need nbdfuse libnbd-bin; } || {
		SKIP_NBD=1
		log "no nbdkit/nbdfuse: no nbdkit row"
	}
fi
if [ -n "$PNG" ]; then
	need gnuplot gnuplot-nox || {
		log "no gnuplot: no chart"
		PNG=""
	}
fi
HAVE_ZRAM=0
if [ "$SKIP_ZRAM" != 1 ]; then
	[ -d /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null || :
	if [ -d /sys/block/zram0 ] && grep -qw lz4 /sys/block/zram0/comp_algorithm; then
		HAVE_ZRAM=1
	else
		log "no /sys/block/zram0 with lz4: no kernel zram figures"
	fi
fi
HAVE_FZ=1
if [ ! -x "$FUSEZRAM" ]; then
	HAVE_FZ=0
	log "*** $FUSEZRAM not built: no fusezram figures (make fusezram) ***"
fi

TMP=$(mktemp -d /tmp/fzbench.XXXXXX)
URING_TMP=$TMP
SHM=$(mktemp -d /dev/shm/fzbench.XXXXXX 2>/dev/null) || SHM=$TMP

# The helpers in Python: corpus building and discards.
cat >"$TMP/helper.py" <<'EOF'
import ctypes, fcntl, os, struct, sys

PAGE = 4096
CHUNK = 1 << 20           # round-robin unit between sources
FILE_CAP = 2 << 20        # at most this much of one file


def source_files(top):
    out = []
    for root, dirs, names in os.walk(top):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            if not os.path.islink(p) and os.path.isfile(p):
                out.append(p)
    return sorted(out)


def source_chunks(top):
    """The files of top, sorted, each up to FILE_CAP, cut into CHUNKs."""
    buf = b""
    for p in source_files(top):
        try:
            with open(p, "rb") as f:
                buf += f.read(FILE_CAP)
        except OSError:
            continue
        while len(buf) >= CHUNK:
            yield buf[:CHUNK]
            buf = buf[CHUNK:]
    if buf:
        yield buf


def corpus(out, size, *tops):
    gens = [source_chunks(t) for t in tops]
    got = [0] * len(tops)
    total = 0
    with open(out + ".tmp", "wb") as f:
        while total < size and gens:
            for i, g in enumerate(list(gens)):
                if g is None:
                    continue
                try:
                    c = next(g)
                except StopIteration:
                    gens[i] = None
                    continue
                c = c[:size - total]
                f.write(c)
                got[i] += len(c)
                total += len(c)
                if total >= size:
                    break
            if all(g is None for g in gens):
                break
    if total < size:
        os.unlink(out + ".tmp")
        sys.exit("corpus: only %d bytes under %s" % (total, " ".join(tops)))
    os.rename(out + ".tmp", out)
    print(", ".join("%s %d MiB" % (t, g >> 20) for t, g in zip(tops, got)))


libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong,
                           ctypes.c_longlong]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
BLKDISCARD = 0x1277


def discard(path, which, size):
    """Discard pages of path's first size bytes: "2of3" (index % 3 != 0,
    one call per run of two pages) or "all".  A block device gets
    BLKDISCARD, a file fallocate(PUNCH_HOLE)."""
    size = int(size)
    fd = os.open(path, os.O_RDWR)
    blk = os.path.exists(path) and os.stat(path).st_mode & 0o170000 == 0o060000
    if which == "all":
        ranges = [(0, size)]
    else:
        ranges = [(i * PAGE, min(2 * PAGE, size - i * PAGE))
                  for i in range(1, size // PAGE, 3)]
    for off, ln in ranges:
        if blk:
            fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", off, ln))
        elif libc.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
                            off, ln) != 0:
            e = ctypes.get_errno()
            sys.exit("fallocate %s %d+%d: %s" % (path, off, ln, os.strerror(e)))
    os.close(fd)
    print(len(ranges))


if __name__ == "__main__":
    {"corpus": lambda a: corpus(a[0], int(a[1]), *a[2:]),
     "discard": lambda a: discard(*a)}[sys.argv[1]](sys.argv[2:])
EOF
py() { python3 "$TMP/helper.py" "$@"; }

# ---------------------------------------------------------------------------
# Corpus.

CORPUS_CACHE=$OUT/corpus.bin
if [ "$(stat -c %s "$CORPUS_CACHE" 2>/dev/null || echo 0)" != $((CORPUS_FULL_MIB << 20)) ]; then
	log "building $CORPUS_CACHE ($CORPUS_FULL_MIB MiB of /usr/bin, /usr/lib, /usr/share/doc)"
	timeout 900 python3 "$TMP/helper.py" corpus "$CORPUS_CACHE" $((CORPUS_FULL_MIB << 20)) \
		/usr/bin /usr/lib /usr/share/doc >"$OUT/corpus.txt" ||
		die "could not build the corpus"
fi
CORPUS=$SHM/corpus
head -c "$CORPUS_BYTES" "$CORPUS_CACHE" >"$CORPUS"
ZERO_PAGES=$(python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
z = bytes(4096)
print(sum(d[i:i + 4096] == z for i in range(0, len(d), 4096)))' "$CORPUS")

echo "== fusezram benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -r), $(nproc) CPUs"
echo "corpus: $CORPUS_MIB MiB from $CORPUS_CACHE ($(cat "$OUT/corpus.txt" 2>/dev/null || echo cached), round-robin by MiB, files in sorted order), $ZERO_PAGES zero pages"
[ "$QUICK" = 1 ] && echo "BENCH_QUICK=1: $CORPUS_MIB MiB corpus, ${FIO_RUNTIME} s fio runs"
echo

# ---------------------------------------------------------------------------
# 1. Single-core compressor speed.

echo "== 1. single-core compression (bench/compspeed, compressors/ in 4 KiB pages, default levels)"
LZ4_RATIO=""
W="-Wall -Wextra -Wshadow -Wvla -Wundef -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wwrite-strings"
# shellcheck disable=SC2046,SC2086 # word splitting wanted
if cc -std=gnu11 -O2 $W -D_GNU_SOURCE -I. compressors/zcomp*.c bench/compspeed.c \
	$(pkg-config --cflags --libs liblz4 libzstd) -o "$OUT/compspeed" 2>"$TMP/cc.log" &&
	timeout 600 "$OUT/compspeed" "$CORPUS" lz4 zstd >"$TMP/compspeed.txt"; then
	sed 's/^/  /' "$TMP/compspeed.txt"
	LZ4_RATIO=$(awk '$1 == "lz4" { print $5 }' "$TMP/compspeed.txt")
else
	log "compspeed failed: $(head -c 2000 "$TMP/cc.log")"
	echo "  (compspeed did not build or run)"
fi
echo "  MB = 10^6 bytes of uncompressed data; ratio = corpus / sum of page sizes (no same-page detection)"
echo

# fio's random write content: per 4 KiB buffer, a random part then zeros,
# so that lz4 compresses it about as much as the corpus.
if [ -n "$LZ4_RATIO" ]; then
	FIO_COMPRESS=$(awk -v r="$LZ4_RATIO" 'BEGIN { p = int(100 - 100 / r + 0.5); if (p < 0) p = 0; if (p > 95) p = 95; print p }')
else
	FIO_COMPRESS=50
fi
FIO_WRITE_OPTS=(--buffer_compress_percentage="$FIO_COMPRESS" --buffer_compress_chunk=4096 --refill_buffers)

# ---------------------------------------------------------------------------
# 2. Memory.

if [ "$TRANSPORT_ONLY" = 1 ]; then
	echo "== 2. memory: skipped (BENCH_TRANSPORT_ONLY=1)"
else
	echo "== 2. memory: $CORPUS_MIB MiB corpus, lz4, dd bs=1M oflag=direct"
	mark_mem=${#CLEANUP[@]}
	FZ_MEM="-"
	FZ_COMPR="-"
	FZ_RSS_GROWTH="-"
	Z_MEM="-"
	Z_COMPR="-"
	if [ "$HAVE_FZ" = 1 ]; then
		if mount_fusezram mem "disksize=$DISKSIZE,comp_algorithm=lz4"; then
			fz=$MNT
			pid=$MNT_PID
			loop=""
			loop_attach "$fz/image" && loop=$LOOP
			rss0=$(rss "$pid")
			if [ -n "$loop" ]; then
				dd_timed if="$CORPUS" of="$loop" bs=1M oflag=direct
				[ "$DD_RC" = 0 ] || log "fusezram: dd to $loop failed: $DD_ERR"
			fi
			settle "$fz/control/mm_stat"
			rss1=$(rss "$pid")
			FZ_MEM=$(mm "$fz/control/mm_stat" mem_used)
			FZ_COMPR=$(mm "$fz/control/mm_stat" compr)
			FZ_ORIG=$(mm "$fz/control/mm_stat" orig)
			FZ_SAME=$(mm "$fz/control/mm_stat" same)
			FZ_HUGE=$(mm "$fz/control/mm_stat" huge)
			FZ_RSS_GROWTH=$((rss1 - rss0))
		fi
	else
		echo "  fusezram: not built, skipped"
	fi
	if [ "$HAVE_ZRAM" = 1 ]; then
		if zram_setup lz4; then
			dd_timed if="$CORPUS" of=/dev/zram0 bs=1M oflag=direct
			[ "$DD_RC" = 0 ] || log "zram: dd failed: $DD_ERR"
			Z_MEM=$(mm /sys/block/zram0/mm_stat mem_used)
			Z_COMPR=$(mm /sys/block/zram0/mm_stat compr)
			Z_ORIG=$(mm /sys/block/zram0/mm_stat orig)
			Z_SAME=$(mm /sys/block/zram0/mm_stat same)
			Z_HUGE=$(mm /sys/block/zram0/mm_stat huge)
		fi
	fi

	printf '  %-26s %16s %16s\n' "" fusezram "zram0 (kernel)"
	printf '  %-26s %16s %16s\n' orig_data_size "${FZ_ORIG:--}" "${Z_ORIG:--}"
	printf '  %-26s %16s %16s\n' compr_data_size "$FZ_COMPR" "$Z_COMPR"
	printf '  %-26s %16s %16s\n' mem_used_total "$FZ_MEM" "$Z_MEM"
	printf '  %-26s %16s %16s\n' "same_pages / huge_pages" "${FZ_SAME:--} / ${FZ_HUGE:--}" "${Z_SAME:--} / ${Z_HUGE:--}"
	printf '  %-26s %16s %16s\n' "daemon RSS growth" "$FZ_RSS_GROWTH" "-"
	printf '  %-26s %16s %16s\n' "mem_used_total (MiB)" "$(div "$FZ_MEM" 1048576 %.2f)" "$(div "$Z_MEM" 1048576 %.2f)"
	printf '  %-26s %16s %16s\n' "ratio orig/mem_used_total" "$(div "${FZ_ORIG:--}" "$FZ_MEM")" "$(div "${Z_ORIG:--}" "$Z_MEM")"
	check "fusezram mem_used_total / zram mem_used_total" "$(div "$FZ_MEM" "$Z_MEM")" "<=" "$T_MEM_VS_ZRAM"
	check "daemon RSS growth / zram mem_used_total" "$(div "$FZ_RSS_GROWTH" "$Z_MEM")" "<=" "$T_RSS_VS_ZRAM"

	# Discard 2 of every 3 pages, compact, look at fragmentation.
	if [ "$HAVE_FZ" = 1 ] && [ "$FZ_MEM" != - ]; then
		bounded "$T_DD" python3 "$TMP/helper.py" discard "$fz/image" 2of3 "$CORPUS_BYTES" >"$TMP/holes" ||
			log "fusezram: discarding 2 of 3 pages failed"
		n=$(cat "$TMP/holes")
		# shellcheck disable=SC2016 # expanded by sh
		bounded "$T_SMALL" sh -c '[ ! -w "$1" ] || echo 1 >"$1"' _ "$fz/control/compact" ||
			log "fusezram: writing control/compact failed"
		settle "$fz/control/mm_stat"
		F2_MEM=$(mm "$fz/control/mm_stat" mem_used)
		F2_COMPR=$(mm "$fz/control/mm_stat" compr)
		F2_ORIG=$(mm "$fz/control/mm_stat" orig)
		F2_COMPACTED=$(mm "$fz/control/mm_stat" compacted)
		F2_RSS=$(( $(rss "$pid") - rss0 ))
	fi
	if [ "$ZRAM_OURS" = 1 ] && [ "$Z_MEM" != - ]; then
		bounded "$T_DD" python3 "$TMP/helper.py" discard /dev/zram0 2of3 "$CORPUS_BYTES" >/dev/null ||
			log "zram: discarding 2 of 3 pages failed"
		echo 1 >/sys/block/zram0/compact || :
		Z2_MEM=$(mm /sys/block/zram0/mm_stat mem_used)
		Z2_COMPR=$(mm /sys/block/zram0/mm_stat compr)
		Z2_ORIG=$(mm /sys/block/zram0/mm_stat orig)
		Z2_COMPACTED=$(mm /sys/block/zram0/mm_stat compacted)
	fi
	echo "  -- after discarding pages with index % 3 != 0 (${n:-?} holes) and compaction"
	printf '  %-26s %16s %16s\n' orig_data_size "${F2_ORIG:--}" "${Z2_ORIG:--}"
	printf '  %-26s %16s %16s\n' compr_data_size "${F2_COMPR:--}" "${Z2_COMPR:--}"
	printf '  %-26s %16s %16s\n' mem_used_total "${F2_MEM:--}" "${Z2_MEM:--}"
	printf '  %-26s %16s %16s\n' pages_compacted "${F2_COMPACTED:--}" "${Z2_COMPACTED:--}"
	printf '  %-26s %16s %16s\n' "daemon RSS growth" "${F2_RSS:--}" "-"
	printf '  %-26s %16s %16s\n' "mem_used / compr_data" "$(div "${F2_MEM:--}" "${F2_COMPR:--}")" "$(div "${Z2_MEM:--}" "${Z2_COMPR:--}")"
	check "fusezram mem_used_total / compr_data_size, 1/3 kept" "$(div "${F2_MEM:--}" "${F2_COMPR:--}")" "<=" "$T_FRAG"

	if [ "$HAVE_FZ" = 1 ] && [ "$FZ_MEM" != - ]; then
		bounded "$T_DD" python3 "$TMP/helper.py" discard "$fz/image" all "$CORPUS_BYTES" >/dev/null ||
			log "fusezram: discarding everything failed"
		settle "$fz/control/mm_stat"
		F3_MEM=$(mm "$fz/control/mm_stat" mem_used)
		F3_ORIG=$(mm "$fz/control/mm_stat" orig)
		F3_RSS=$(rss "$pid")
	fi
	if [ "$ZRAM_OURS" = 1 ] && [ "$Z_MEM" != - ]; then
		bounded "$T_DD" python3 "$TMP/helper.py" discard /dev/zram0 all "$CORPUS_BYTES" >/dev/null || :
		Z3_MEM=$(mm /sys/block/zram0/mm_stat mem_used)
	fi
	echo "  -- after discarding everything"
	printf '  %-26s %16s %16s\n' orig_data_size "${F3_ORIG:--}" "-"
	printf '  %-26s %16s %16s\n' mem_used_total "${F3_MEM:--}" "${Z3_MEM:--}"
	printf '  %-26s %16s %16s\n' "daemon RSS" "${F3_RSS:--}" "-"
	printf '  %-26s %16s %16s\n' "daemon RSS before writing" "${rss0:--}" "-"
	check "fusezram mem_used_total, all discarded (bytes)" "${F3_MEM:--}" "<" "$T_EMPTY_BYTES"
	undo_to "$mark_mem"

	# mem_limit: write the corpus straight to the image, expect ENOSPC.
	echo "  -- mem_limit=${MEM_LIMIT_MIB}M: dd the corpus to image (bs=1M oflag=direct conv=notrunc)"
	if [ "$HAVE_FZ" = 1 ]; then
		mark=${#CLEANUP[@]}
		if mount_fusezram memlimit "disksize=$DISKSIZE,comp_algorithm=lz4,mem_limit=${MEM_LIMIT_MIB}M"; then
			img=$MNT/image
			dd_timed if="$CORPUS" of="$img" bs=1M oflag=direct conv=notrunc,nocreat
			L_MEM=$(mm "$MNT/control/mm_stat" mem_used)
			echo "  dd status $DD_RC after $DD_BYTES bytes: ${DD_ERR:-no error}"
			echo "  mm_stat: $(timeout "$T_SMALL" cat "$MNT/control/mm_stat")"
			enospc=0
			case $DD_ERR in *"No space left"* | *"Input/output error"*) enospc=1 ;; esac
			[ "$DD_RC" != 0 ] || enospc=0
			check_bool "dd fails with ENOSPC/EIO under mem_limit" "$enospc" "${DD_ERR:-dd succeeded}"
			# The limit is never passed; reaching it exactly is allowed (as
			# in zram), and the allocator now counts whole pages.
			check "mem_used_total within mem_limit (bytes)" "$L_MEM" "<=" $((MEM_LIMIT_MIB << 20))
			if [ "$DD_BYTES" -gt 0 ] && bounded "$T_CMP" cmp -n "$DD_BYTES" "$CORPUS" "$img" >"$TMP/cmp.txt" 2>&1; then
				check_bool "the $DD_BYTES bytes written before the error read back identical" 1
			else
				check_bool "the $DD_BYTES bytes written before the error read back identical" 0 "$(head -c 300 "$TMP/cmp.txt" 2>/dev/null)"
			fi
			bounded "$T_DD" python3 "$TMP/helper.py" discard "$img" all $((1 << 30)) >/dev/null ||
				log "mem_limit: discarding everything failed"
			settle "$MNT/control/mm_stat"
			echo "  after discard: mem_used_total $(mm "$MNT/control/mm_stat" mem_used)"
			ok=0
			n=$((MEM_LIMIT_MIB / 4))
			dd_timed if="$CORPUS" of="$img" bs=1M count="$n" oflag=direct conv=notrunc,nocreat
			if [ "$DD_RC" = 0 ] && bounded "$T_CMP" cmp -n $((n << 20)) "$CORPUS" "$img" >/dev/null 2>&1; then
				ok=1
			fi
			check_bool "after the discard, a $n MiB write works and reads back" "$ok" "${DD_ERR:-}"
		else
			check_bool "mem_limit mount" 0 "fusezram did not mount"
		fi
		undo_to "$mark"
	fi
fi
echo

# ---------------------------------------------------------------------------
# 3. Throughput.

echo "== 3. throughput: $CORPUS_MIB MiB corpus through a direct-I/O loop device"
echo "  seq: dd bs=1M oflag=direct / iflag=direct; random: fio libaio direct=1 iodepth=32 numjobs=2 bs=4k ${FIO_RUNTIME}s"
echo "  each figure the median of $REPEAT run(s) (BENCH_REPEAT); every write goes to an empty device (blkdiscard between runs)"
echo "  random write content: fio buffer_compress_percentage=$FIO_COMPRESS (from the corpus' lz4 ratio ${LZ4_RATIO:-unknown}), buffer_compress_chunk=4096, refill_buffers"

ROWS=()
declare -A R_W R_R R_RR R_RW R_RATIO R_RSSRATIO R_NOTE R_RUNS R_CPUR R_CPUW
declare -A R_TRANSPORT R_FELL
FAILS=()

# measure ROW DEV MMSTAT PID CMP [CPUPID] - the whole set of runs on DEV.
# MMSTAT: an mm_stat file or "-"; PID: a process whose RSS growth counts
# as the store's memory, or "-"; CMP: 1 to compare the read-back with the
# corpus; CPUPID: the FUSE daemon whose CPU time per 100K random reads
# and writes is measured (default PID).
measure() {
	local row=$1 dev=$2 mms=$3 pid=$4 docmp=$5 cpupid=${6:-$4} r0=0 r1 orig memu k
	local -a w=() r=() rr=() rw=() cr=() cw=()
	ROWS+=("$row")
	[ "$pid" = - ] || r0=$(rss "$pid")
	# Each write after the first goes to an emptied device, as the
	# first did (where discard is not supported, it overwrites).
	dd_runs "$row" "sequential write" "$dev" if="$CORPUS" of="$dev" bs=1M oflag=direct
	w=("${DD_RUNS[@]}")
	R_W[$row]=$(median "${w[@]}")
	R_RUNS[$row]="write ${w[*]}"
	if [ "$mms" != - ]; then
		orig=$(mm "$mms" orig)
		memu=$(mm "$mms" mem_used)
		R_RATIO[$row]=$(div "$orig" "$memu" %.2f)
	else
		R_RATIO[$row]=-
	fi
	if [ "$pid" != - ]; then
		r1=$(rss "$pid")
		R_RSSRATIO[$row]=$(div "$CORPUS_BYTES" $((r1 - r0)) %.2f)
	else
		R_RSSRATIO[$row]=-
	fi
	drop_caches
	dd_runs "$row" "sequential read" - if="$dev" of=/dev/null bs=1M count="$CORPUS_MIB" iflag=direct
	r=("${DD_RUNS[@]}")
	R_R[$row]=$(median "${r[@]}")
	R_RUNS[$row]+="; read ${r[*]}"
	if [ "$docmp" = 1 ]; then
		if bounded "$T_CMP" cmp -n "$CORPUS_BYTES" "$CORPUS" "$dev" >"$TMP/cmp.txt" 2>&1; then
			R_NOTE[$row]="read-back identical"
		else
			R_NOTE[$row]="READ-BACK DIFFERS: $(head -c 200 "$TMP/cmp.txt")"
			FAILS+=("$row: data read back differs from the corpus: $(head -c 200 "$TMP/cmp.txt")")
		fi
	else
		R_NOTE[$row]="reads zeros (not compared)"
	fi
	for ((k = 0; k < REPEAT; k++)); do
		fio_cpu "$cpupid" "$dev" randread
		rr+=("$FIO_IOPS")
		cr+=("$FIO_CPU")
		[ "$FIO_IOPS" != - ] || { FAILS+=("$row: fio randread failed"); break; }
	done
	for ((k = 0; k < REPEAT; k++)); do
		fio_cpu "$cpupid" "$dev" randwrite "${FIO_WRITE_OPTS[@]}"
		rw+=("$FIO_IOPS")
		cw+=("$FIO_CPU")
		[ "$FIO_IOPS" != - ] || { FAILS+=("$row: fio randwrite failed"); break; }
	done
	R_RR[$row]=$(median "${rr[@]}")
	R_RW[$row]=$(median "${rw[@]}")
	R_CPUR[$row]=$(median "${cr[@]}")
	R_CPUW[$row]=$(median "${cw[@]}")
	R_RUNS[$row]+="; randread ${rr[*]}; randwrite ${rw[*]}"
	[ "$cpupid" = - ] || R_RUNS[$row]+="; CPU s/100K reads ${cr[*]}, writes ${cw[*]}"
	printf '  %-18s write %6s MB/s  read %6s MB/s  randread %7s  randwrite %7s IOPS  ratio %5s  rss-ratio %5s  %s\n' \
		"$row" "${R_W[$row]}" "${R_R[$row]}" "${R_RR[$row]}" "${R_RW[$row]}" \
		"${R_RATIO[$row]}" "${R_RSSRATIO[$row]}" "${R_NOTE[$row]}"
	[ "$cpupid" = - ] ||
		printf '  %-18s daemon CPU per 100K 4 KiB I/Os: %s s reading, %s s writing\n' "" "${R_CPUR[$row]}" "${R_CPUW[$row]}"
	[ "$REPEAT" = 1 ] || printf '  %-18s runs: %s\n' "" "${R_RUNS[$row]}"
}

# The transport of a row.  transport_open ROW fuse|uring - the window on
# enable_uring for the row (bench/uring.sh), registered; with
# BENCH_SKIP_URING=1, or on a kernel without the parameter, a /dev/fuse
# row runs without one.  transport_check ROW fuse|uring LINE - LINE is the
# daemon's own account of its transport ("io_uring, 2 queue(s) of depth
# 8; N requests on the rings, M image reads and writes in place" or
# "/dev/fuse (why)"): record it, and flag the row loudly, in FAILS too,
# if it is not the one wanted (an io_uring row must have served image
# reads and writes on the rings).
transport_open() {
	local want=0
	[ "$2" = uring ] && want=1
	if [ "$2" = fuse ] && { [ "$SKIP_URING" = 1 ] || [ -z "$(uring_param)" ]; }; then
		return 0
	fi
	register uring
	uring_window_open "$want" && return 0
	log "$1: $URING_ERR"
	FAILS+=("$1: not run: $URING_ERR")
	return 1
}

transport_check() {
	local row=$1 want=$2 line=$3 ok=0
	R_TRANSPORT[$row]=${line:-?}
	case $want in
	uring)
		if [[ $line =~ ^io_uring,.*\ ([0-9]+)\ requests\ on\ the\ rings,\ ([0-9]+)\ image ]] &&
			[ "${BASH_REMATCH[2]}" -gt 0 ]; then
			ok=1
		fi ;;
	fuse) [[ $line != /dev/fuse* ]] || ok=1 ;;
	*) ok=1 ;;
	esac
	if [ "$ok" = 1 ]; then
		printf '  %-18s transport: %s\n' "$row" "${line:-?}"
		return 0
	fi
	R_FELL[$row]=1
	if [ "$want" = uring ]; then
		printf '  *** %s DID NOT RUN ON io_uring: transport "%s" ***\n' "$row" "${line:-no transport line}"
		FAILS+=("$row: did not run on io_uring (fell back?): ${line:-no transport line}")
	else
		printf '  *** %s DID NOT RUN ON /dev/fuse: transport "%s" ***\n' "$row" "${line:-no transport line}"
		FAILS+=("$row: did not run on /dev/fuse: ${line:-no transport line}")
	fi
}

# fz_row ROW ALG fuse|uring|- [EXE] - fusezram (EXE, default FUSEZRAM)
# with ALG, measured on the transport given ("-": whatever the module
# parameter says, unchecked: an older build without a Transport line).
fz_row() {
	local row=$1 alg=$2 tr=$3 exe=${4:-$FUSEZRAM} mark line
	mark=${#CLEANUP[@]}
	if { [ "$tr" = - ] || transport_open "$row" "$tr"; } &&
		mount_fuse "$row" "$exe" -f -o "disksize=$DISKSIZE,comp_algorithm=$alg" &&
		wait_until 10 timeout -k 1 5 test -f "$MNT/image" && loop_attach "$MNT/image"; then
		measure "$row" "$LOOP" "$MNT/control/mm_stat" "$MNT_PID" 1
		line=$(timeout "$T_SMALL" sed -n 's/^Transport: *//p' "$MNT/control/summary" 2>/dev/null) || :
		[ "$tr" != - ] || line=${line:-/dev/fuse (an older build: no Transport line)}
		transport_check "$row" "$tr" "$line"
		# What the transport logged besides its settled line (errors).
		grep -i 'io_uring' "$TMP/$row.log" 2>/dev/null | grep -v 'transport: ' |
			head -n 5 | sed "s/^/  $row log: /" || :
	elif [ -z "${URING_ERR:-}" ]; then
		FAILS+=("$row: could not mount or attach a loop device: $(head -c 300 "$TMP/$row.log" 2>/dev/null)")
	fi
	undo_to "$mark"
	URING_ERR=''
}

DMESG0=$(dmesg 2>/dev/null | wc -l) || DMESG0=0
if [ "$HAVE_FZ" = 1 ]; then
	fz_row fusezram-lz4 lz4 fuse
	[ "$SKIP_URING" = 1 ] || fz_row fusezram-lz4-uring lz4 uring
	[ -z "$BASE" ] || fz_row fusezram-lz4-base lz4 - "$BASE"
	[ "$TRANSPORT_ONLY" = 1 ] || fz_row fusezram-zstd zstd fuse
fi

if [ "$HAVE_ZRAM" = 1 ]; then
	for alg in lz4 zstd; do
		[ "$alg" = lz4 ] || [ "$TRANSPORT_ONLY" != 1 ] || continue
		grep -qw "$alg" /sys/block/zram0/comp_algorithm || {
			echo "  zram-$alg: zram0 offers no $alg ($(cat /sys/block/zram0/comp_algorithm)); skipped"
			continue
		}
		mark=${#CLEANUP[@]}
		if zram_setup "$alg" && loop_attach /dev/zram0; then
			measure "zram-$alg" "$LOOP" /sys/block/zram0/mm_stat - 1
		else
			echo "  zram-$alg: could not set zram0 up (in use by someone else?); skipped"
		fi
		undo_to "$mark"
		# The same without the loop device: zram as it is used.
		mark=${#CLEANUP[@]}
		if zram_setup "$alg"; then
			measure "zram-$alg-raw" /dev/zram0 /sys/block/zram0/mm_stat - 1
		else
			echo "  zram-$alg-raw: could not set zram0 up; skipped"
		fi
		undo_to "$mark"
	done
fi

if [ "$SKIP_NBD" != 1 ]; then
	mark=${#CLEANUP[@]}
	sock=$TMP/nbd.sock
	nbdkit -f --exit-with-parent -U "$sock" memory "$DISKSIZE" allocator=zstd \
		</dev/null >"$TMP/nbdkit.log" 2>&1 &
	nbdpid=$!
	register "pid|$nbdpid"
	if wait_until 20 test -S "$sock" && mount_fuse nbd nbdfuse @MNT@ --unix "$sock" &&
		wait_until 20 timeout -k 1 5 test -f "$MNT/nbd" && loop_attach "$MNT/nbd"; then
		measure "nbdkit-zstd" "$LOOP" - "$nbdpid" 1 -
	else
		FAILS+=("nbdkit-zstd: could not start nbdkit + nbdfuse: $(cat "$TMP/nbdkit.log" "$TMP/nbd.log" 2>/dev/null | head -c 300)")
	fi
	undo_to "$mark"
fi

# nullfs, with fusezram's transport (fz_ring.c); its exit line names the
# transport it ran on, checked once it has exited.
NULLFS=$OUT/nullfs
# shellcheck disable=SC2046,SC2086 # word splitting wanted
if cc -std=gnu11 -O2 $W -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE -pthread -I. \
	bench/nullfs.c fz_ring.c $(pkg-config --cflags --libs fuse3 liburing) \
	-o "$NULLFS" 2>"$TMP/cc.log"; then
	for tr in fuse uring; do
		[ "$tr" = fuse ] || [ "$SKIP_URING" != 1 ] || continue
		row=nullfs
		[ "$tr" = fuse ] || row=nullfs-uring
		mark=${#CLEANUP[@]}
		if transport_open "$row" "$tr" &&
			mount_fuse "$row" "$NULLFS" -f -o "size=$DISKSIZE" &&
			loop_attach "$MNT/image"; then
			measure "$row" "$LOOP" - - 0 "$MNT_PID"
			undo_to "$mark"
			transport_check "$row" "$tr" "$(sed -n 's/^nullfs: at exit, transport: //p' "$TMP/$row.log" | tail -n 1)"
		elif [ -z "${URING_ERR:-}" ]; then
			FAILS+=("$row: did not mount: $(head -c 300 "$TMP/$row.log" 2>/dev/null)")
		fi
		undo_to "$mark"
		URING_ERR=''
	done
else
	FAILS+=("nullfs: did not build: $(head -c 300 "$TMP/cc.log")")
fi
# What the kernel said meanwhile about FUSE and io_uring (other work on
# the machine may add its own lines).
dmesg 2>/dev/null | tail -n +$((DMESG0 + 1)) | grep -iE 'fuse|uring' | head -n 20 |
	sed 's/^/  dmesg: /' || :
echo

# ---------------------------------------------------------------------------
# Report.

RESULTS=$OUT/results.tsv
{
	printf 'config\tseq_write_MBps\tseq_read_MBps\trandread_IOPS\trandwrite_IOPS\tratio\tratio_rss\tcpu_s_per_100k_reads\tcpu_s_per_100k_writes\ttransport\n'
	for r in "${ROWS[@]}"; do
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "${R_W[$r]}" "${R_R[$r]}" \
			"${R_RR[$r]}" "${R_RW[$r]}" "${R_RATIO[$r]}" "${R_RSSRATIO[$r]}" \
			"${R_CPUR[$r]:--}" "${R_CPUW[$r]:--}" "${R_TRANSPORT[$r]:--}"
	done
} >"$RESULTS"

echo "== results ($CORPUS_MIB MiB corpus; MB = 10^6 bytes)"
row() { printf '  %-18s %12s %12s %12s %12s %7s %9s\n' "$@"; }
row config "seq write" "seq read" randread randwrite ratio ratio_rss
row "" "MB/s" "MB/s" IOPS IOPS "" ""
for r in "${ROWS[@]}"; do
	row "$r" "${R_W[$r]}" "${R_R[$r]}" "${R_RR[$r]}" "${R_RW[$r]}" \
		"${R_RATIO[$r]}" "${R_RSSRATIO[$r]}"
done
echo "  ratio = orig_data_size / mem_used_total from mm_stat right after the sequential write"
echo "          (fusezram's control/mm_stat, zram0's sysfs mm_stat: the same definition for both)"
echo "  ratio_rss = corpus bytes / RSS growth of the serving process over the write"
echo "          (fusezram daemon, nbdkit; kernel zram has no process)"
echo "  zram-*: a loop device on /dev/zram0 (the same path as the others); zram-*-raw: /dev/zram0 itself"
echo

is_uring() { [ "${1%-uring}" != "$1" ]; }
same_transport() {
	local a=0 b=0
	is_uring "$1" || a=1
	is_uring "$2" || b=1
	[ "$a" = "$b" ]
}

echo "== fusezram / baseline (above 1: fusezram is faster, or compresses better)"
row2() { printf '  %-34s %10s %10s %10s %10s %7s\n' "$@"; }
row2 "" "seq write" "seq read" randread randwrite ratio
for f in "${ROWS[@]}"; do
	case $f in fusezram-*) ;; *) continue ;; esac
	for b in "${ROWS[@]}"; do
		case $b in fusezram-*) continue ;; esac
		# Each against the null ceiling of its own transport.
		case $b in nullfs*) same_transport "$f" "$b" || continue ;; esac
		row2 "$f / $b" "$(div "${R_W[$f]}" "${R_W[$b]}" %.2f)" \
			"$(div "${R_R[$f]}" "${R_R[$b]}" %.2f)" \
			"$(div "${R_RR[$f]}" "${R_RR[$b]}" %.2f)" \
			"$(div "${R_RW[$f]}" "${R_RW[$b]}" %.2f)" \
			"$(div "${R_RATIO[$f]}" "${R_RATIO[$b]}" %.2f)"
	done
done
echo "  (ratio column: against nbdkit, which has no mm_stat, ratio_rss is used)"
for f in "${ROWS[@]}"; do
	case $f in fusezram-*) ;; *) continue ;; esac
	for b in "${ROWS[@]}"; do
		case $b in nbdkit-*) ;; *) continue ;; esac
		printf '  %-34s ratio_rss %s\n' "$f / $b" "$(div "${R_RSSRATIO[$f]}" "${R_RSSRATIO[$b]}" %.2f)"
	done
done
echo

# ---------------------------------------------------------------------------
# The transports side by side, and issue 15's targets (reported, never
# asserted: TARGETS, PASS or MISS).

TARGETS=()
# target NAME VALUE OP LIMIT [NOTE] - a PASS/MISS line; "-" is n/a.
target() {
	local name=$1 val=$2 op=$3 lim=$4 note=${5:-} res
	note=${note#; }
	if [ "$val" = - ] || [ -z "$val" ]; then
		res=n/a
	elif awk -v v="$val" -v l="$lim" -v o="$op" 'BEGIN {
		exit !((o == "<=" && v <= l) || (o == ">=" && v >= l)) }'; then
		res=PASS
	else
		res=MISS
	fi
	TARGETS+=("$(printf '%-4s  %s: %s (target %s %s)%s' "$res" "$name" "$val" "$op" "$lim" "${note:+; $note}")")
	printf '  %s\n' "${TARGETS[-1]}"
}
have() { [ -n "${R_W[$1]:-}" ]; }
# short_transport ROW - "io_uring", "/dev/fuse", "kernel" (zram), "?".
short_transport() {
	local t=${R_TRANSPORT[$1]:-kernel}
	t=${t%%[ ,]*}
	echo "$t${R_FELL[$1]:+ *** NOT THE TRANSPORT WANTED ***}"
}
# ceiling FIELD - the io_uring null ceiling's FIELD against /dev/zram0's.
ceiling() {
	local c
	c=$(div "$(fig nullfs-uring "$1")" "$(fig zram-lz4-raw "$1")" %.2f)
	[ "$c" = - ] || echo "null ceiling on io_uring ${c}x"
}
# fell ROW - a note if ROW did not run on the transport it stands for.
fell() { [ -z "${R_FELL[$1]:-}" ] || echo "; *** $1 DID NOT RUN ON ITS TRANSPORT: not counted ***"; }
# fig ROW FIELD - a figure of ROW, "-" if ROW fell back or is missing.
fig() {
	local -n a=$2
	if have "$1" && [ -z "${R_FELL[$1]:-}" ]; then echo "${a[$1]:--}"; else echo -; fi
}

FZ=fusezram-lz4 FZU=fusezram-lz4-uring NF=nullfs NFU=nullfs-uring ZR=zram-lz4-raw
echo "== transports: /dev/fuse against FUSE over io_uring ($(nproc) CPUs: $(nproc) queues; same run)"
row3() { printf '  %-20s %9s %9s %9s %9s %11s %11s  %s\n' "$@"; }
row3 config "seq write" "seq read" randread randwrite "CPU s/100K" "CPU s/100K" transport
row3 "" MB/s MB/s IOPS IOPS reads writes ""
for r in $FZ $FZU fusezram-lz4-base $NF $NFU $ZR; do
	have "$r" || continue
	row3 "$r" "${R_W[$r]}" "${R_R[$r]}" "${R_RR[$r]}" "${R_RW[$r]}" \
		"${R_CPUR[$r]:--}" "${R_CPUW[$r]:--}" "$(short_transport "$r")"
done
echo "  CPU s/100K: the daemon's utime + stime over each fio run (/proc/PID/stat, all threads),"
echo "  per 100K of the run's 4 KiB I/Os; the median of the runs"
echo
row4() { printf '  %-36s %9s %9s %9s %9s %11s\n' "$@"; }
ratios() {
	row4 "$1 / $2" "$(div "$(fig "$1" R_W)" "$(fig "$2" R_W)" %.2f)" \
		"$(div "$(fig "$1" R_R)" "$(fig "$2" R_R)" %.2f)" \
		"$(div "$(fig "$1" R_RR)" "$(fig "$2" R_RR)" %.2f)" \
		"$(div "$(fig "$1" R_RW)" "$(fig "$2" R_RW)" %.2f)" \
		"$(div "$(fig "$1" R_CPUR)" "$(fig "$2" R_CPUR)" %.2f)"
}
row4 "" "seq write" "seq read" randread randwrite "CPU/reads"
echo "  against /dev/zram0 (kernel zram, no loop device):"
for r in $FZ $FZU $NF $NFU; do have "$r" && have $ZR && ratios "$r" $ZR; done
echo "  against the null ceiling of the same transport:"
have $FZ && have $NF && ratios $FZ $NF
have $FZU && have $NFU && ratios $FZU $NFU
echo "  io_uring against /dev/fuse:"
have $FZU && have $FZ && ratios $FZU $FZ
have $NFU && have $NF && ratios $NFU $NF
if have fusezram-lz4-base; then
	echo "  /dev/fuse against the base build (BENCH_BASE=$BASE):"
	ratios $FZ fusezram-lz4-base
fi
echo

echo "== issue 15 targets: fusezram lz4 on io_uring (reported, never asserted)"
target "4 KiB random read, io_uring / /dev/zram0" "$(div "$(fig $FZU R_RR)" "$(fig $ZR R_RR)" %.2f)" ">=" "$T_URING_RR" \
	"$(ceiling R_RR)$(fell $FZU)"
target "4 KiB random write, io_uring / /dev/zram0" "$(div "$(fig $FZU R_RW)" "$(fig $ZR R_RW)" %.2f)" ">=" "$T_URING_RW" \
	"$(ceiling R_RW)$(fell $FZU)"
target "daemon CPU per 100K 4 KiB reads, io_uring / /dev/fuse" "$(div "$(fig $FZU R_CPUR)" "$(fig $FZ R_CPUR)" %.2f)" "<=" "$T_URING_CPU" \
	"$(fig $FZU R_CPUR) against $(fig $FZ R_CPUR) s$(fell $FZU)"
target "1 MiB sequential write, io_uring / /dev/zram0" "$(div "$(fig $FZU R_W)" "$(fig $ZR R_W)" %.2f)" ">=" "$T_URING_SEQW" "$(fell $FZU)"
if have fusezram-lz4-base; then
	for f in R_W R_R R_RR R_RW; do
		case $f in R_W) n="1 MiB seq write" ;; R_R) n="1 MiB seq read" ;; R_RR) n="4 KiB randread" ;; R_RW) n="4 KiB randwrite" ;; esac
		target "no regression on /dev/fuse: $n / the base build's" \
			"$(div "$(fig $FZ $f)" "$(fig fusezram-lz4-base $f)" %.2f)" ">=" "$T_NOREGRESS" "$(fell $FZ)"
	done
	target "no regression on /dev/fuse: CPU per 100K reads / the base build's" \
		"$(div "$(fig $FZ R_CPUR)" "$(fig fusezram-lz4-base R_CPUR)" %.2f)" "<=" \
		"$(awk -v t="$T_NOREGRESS" 'BEGIN { printf "%.2f", 2 - t }')" "$(fell $FZ)"
else
	target "no regression on /dev/fuse" - ">=" "$T_NOREGRESS" "no base build to compare with (BENCH_BASE=PATH)"
fi
echo "  (the two-hog swap target comes with section 6)"
echo

if [ -n "$PNG" ]; then
	if gnuplot -e "infile='$RESULTS'; outfile='$PNG'; subtitle='$CORPUS_MIB MiB corpus, $(uname -r)'" \
		bench/chart.gp 2>"$TMP/gnuplot.log"; then
		echo "chart: $PNG"
	else
		log "gnuplot failed: $(head -c 500 "$TMP/gnuplot.log")"
	fi
fi

# ---------------------------------------------------------------------------
# 4. Tiers: bench/tier.sh, in the background so that a signal reaches our
# trap at once (the trap then stops it and waits for its cleanup).  Its
# target lines come back through TIER_RES.

TIER_NOTE=""
if [ "$SKIP_TIER" = 1 ]; then
	TIER_NOTE="BENCH_SKIP_TIER=1: no tier section"
elif [ "$HAVE_FZ" != 1 ]; then
	TIER_NOTE="fusezram not built: no tier section"
else
	: >"$TMP/tier.res"
	hold_signals
	TIER_RES=$TMP/tier.res TIER_CORPUS=$CORPUS BENCH_QUICK=$QUICK FUSEZRAM=$FUSEZRAM \
		bash "$ROOT/bench/tier.sh" </dev/null &
	tier_pid=$!
	register "tier|$tier_pid"
	release_signals
	rc=0
	wait "$tier_pid" || rc=$?
	CLEANUP[${#CLEANUP[@]} - 1]="done"
	while IFS= read -r l; do
		CHECKS+=("$l")
	done <"$TMP/tier.res"
	case $rc in
	0) ;;
	77) TIER_NOTE="bench/tier.sh skipped its hog or all of it (a prerequisite is missing; see above)" ;;
	*) FAILS+=("bench/tier.sh exited with status $rc (it could not run, or a cleanup failed)") ;;
	esac
fi
echo

# ---------------------------------------------------------------------------
# 5. Recompression: bench/recomp.sh, run as section 4 is.

RECOMP_NOTE=""
if [ "$SKIP_RECOMP" = 1 ]; then
	RECOMP_NOTE="BENCH_SKIP_RECOMP=1: no recompression section"
elif [ "$HAVE_FZ" != 1 ]; then
	RECOMP_NOTE="fusezram not built: no recompression section"
else
	: >"$TMP/recomp.res"
	hold_signals
	RC_RES=$TMP/recomp.res RC_CORPUS=$CORPUS BENCH_QUICK=$QUICK FUSEZRAM=$FUSEZRAM \
		BENCH_FIO_RUNTIME=$FIO_RUNTIME bash "$ROOT/bench/recomp.sh" </dev/null &
	recomp_pid=$!
	register "tier|$recomp_pid"
	release_signals
	rc=0
	wait "$recomp_pid" || rc=$?
	CLEANUP[${#CLEANUP[@]} - 1]="done"
	while IFS= read -r l; do
		CHECKS+=("$l")
	done <"$TMP/recomp.res"
	case $rc in
	0) ;;
	77) RECOMP_NOTE="bench/recomp.sh skipped (a prerequisite is missing; see above)" ;;
	*) FAILS+=("bench/recomp.sh exited with status $rc (it could not run, or a cleanup failed)") ;;
	esac
fi
echo

# ---------------------------------------------------------------------------
# 6. Swap under pressure: bench/stress.sh's pressure parts (the two-hog
# workload on fusezram over /dev/fuse and over io_uring, and on zram0),
# run as section 4 is.  Its target lines come back through STRESS_TARGETS.

STRESS_NOTE=""
if [ "$SKIP_STRESS" = 1 ]; then
	STRESS_NOTE="BENCH_SKIP_STRESS=1: no swap pressure section"
elif [ "$HAVE_FZ" != 1 ]; then
	STRESS_NOTE="fusezram not built: no swap pressure section"
elif [ ! -x "$ROOT/build/hog" ]; then
	STRESS_NOTE="build/hog not built (make build/hog): no swap pressure section"
else
	echo "== 6. swap under pressure: bench/stress.sh, two-hog workload, $STRESS_ROUNDS round(s) on each"
	: >"$TMP/stress.res"
	hold_signals
	STRESS_TARGETS=$TMP/stress.res STRESS_PARTS=pressure STRESS_QUICK=$QUICK \
		ROUNDS=$STRESS_ROUNDS FUSEZRAM=$FUSEZRAM SKIP_ZRAM=$SKIP_ZRAM \
		STRESS_SKIP_URING=$SKIP_URING bash "$ROOT/bench/stress.sh" </dev/null &
	stress_pid=$!
	register "tier|$stress_pid"
	release_signals
	rc=0
	wait "$stress_pid" || rc=$?
	CLEANUP[${#CLEANUP[@]} - 1]="done"
	while IFS= read -r l; do
		TARGETS+=("$l")
		printf '  %s\n' "$l"
	done <"$TMP/stress.res"
	case $rc in
	0) ;;
	*) FAILS+=("bench/stress.sh exited with status $rc (a hog's verification failed, a part could not run, or a cleanup failed; see above)") ;;
	esac
fi
echo

echo "== summary"
for c in "${CHECKS[@]}"; do
	echo "  $c"
done
for f in "${FAILS[@]}"; do
	echo "  FAIL  $f"
done
for h in "${HUNG[@]}"; do
	echo "  HANG  $h"
done
[ "$ZRAM_BUSY" = 0 ] ||
	echo "  NOTE  zram0 was in use by someone else: kernel zram figures are missing"
[ -z "$TIER_NOTE" ] || echo "  NOTE  $TIER_NOTE"
[ -z "$RECOMP_NOTE" ] || echo "  NOTE  $RECOMP_NOTE"
[ -z "$STRESS_NOTE" ] || echo "  NOTE  $STRESS_NOTE"
echo "  -- issue 15 (FUSE over io_uring), reported, not counted below:"
tpass=0
tmiss=0
for t in "${TARGETS[@]}"; do
	echo "  $t"
	case $t in PASS*) tpass=$((tpass + 1)) ;; MISS*) tmiss=$((tmiss + 1)) ;; esac
done
echo "  -- issue 15: $tpass PASS, $tmiss MISS"
npass=0
nfail=0
for c in "${CHECKS[@]}"; do
	case $c in PASS*) npass=$((npass + 1)) ;; FAIL*) nfail=$((nfail + 1)) ;; esac
done
nfail=$((nfail + ${#FAILS[@]} + ${#HUNG[@]}))
echo "bench: $npass targets passed, $nfail failed (results in $RESULTS)"
