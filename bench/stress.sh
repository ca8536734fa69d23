#!/bin/bash
#
# bench/stress.sh - swap-pressure stress of fusezram.  `make stress` runs
# it; root is required.  In one run:
#
#  1. Pressure: ROUNDS rounds of the two-hog workload (two hogs of 700 MiB
#     at once in a 400 MiB memory cgroup, then one of 700 MiB in 256 MiB;
#     build/hog verifies every word twice), first on fusezram as swap (a 1G
#     lz4 image on a direct-I/O loop device, mkswap, swapon --discard
#     -p 32767) served over /dev/fuse, then the same served over FUSE over
#     io_uring, then on kernel zram0 as swap (lz4, 1G, swapon -p 32767).
#     The transport is chosen as bench/run.sh does (bench/uring.sh: the
#     fuse module's enable_uring set to 0 or 1 for the part, under an
#     exclusive flock on /tmp/fusezram-uring.lock, and put back), and
#     checked: control/summary's Transport line must name it, and on
#     io_uring the rings must have served the image's reads and writes; a
#     part that fell back fails loudly.  Each round is timed; the summary
#     gives the wall times and the ratios to zram0: /dev/fuse (target
#     <= 1.3) and io_uring (issue 15's target <= 1.2).  After each round
#     mem_used_total is polled every 0.5 s for 20 s: the time until it
#     falls below 10% of the round's peak (mem_used_max, reset before the
#     round) is reported (target: within 20 s; swapon --discard frees
#     fusezram's memory as the hogs' swap clusters are freed).
#  2. fio: random 4 KiB writes at iodepth 32 from 2, then 4 jobs (libaio,
#     direct=1), each job on its own region, every block checked with
#     crc32c (verify_fatal=1), on a fusezram loop device (not swap).
#  3. Kill: fio random reads and writes on a fusezram loop device; the
#     daemon is killed (SIGKILL, by the pid of the process serving the
#     mount point); the I/O must fail within 10 s, then losetup -d and
#     fusermount3 -u (or umount -l) must still work.
#  4. mem_limit: fusezram with mem_limit=128M as swap, one hog of 700 MiB in
#     a 256 MiB cgroup.  Swap writes are refused once the limit is reached;
#     the OOM killer may end the hog, or the kernel may go on retrying the
#     writes (it does so with kernel zram's mem_limit too), and then the
#     hog is ended after 120 s.  Nothing may hang: the hog must go at once
#     when signalled and the daemon must answer mm_stat within 10 s
#     throughout.  io_stat failed_writes must count the refused writes,
#     mem_used_total must stay within the limit, and a second, smaller hog
#     (160 MiB in a 96 MiB cgroup: all of it fits in the limit) must then
#     verify every word.
#
# Ends with a table, one row per target with PASS, FAIL or SKIP.  Timing
# targets (the ratio, the 20 s) are reported, never asserted.  Exit status
# 1 if a verification failed (a bad word, a hog that could not finish, a
# fio verify error, a hang, I/O that did not fail after the kill, memory
# over the limit, a cleanup that failed) or a part ended early; 0
# otherwise, also when only a timing target was missed.
#
# Each part runs as a separate process (this script with --part NAME),
# bounded in time, which sources tests/integration/lib.sh: everything it
# sets up is registered there and undone on every exit path, in reverse
# order (cgroup emptied and removed, swapoff, losetup -d of the loop
# devices it allocated with losetup -f --show, fusermount3 -u, the fuse
# module's enable_uring put back and the lock let go, zram0 reset if it
# set zram0 up).  The other parts (fio, kill, mem_limit) leave the
# parameter alone: their mounts take whichever transport it gives.  zram0
# is only used if nobody else has it set up (it waits STRESS_ZRAM_WAIT
# seconds for that).  A part whose hogs or
# fio outlive their time limit (or, for mem_limit's first hog, outlive
# the signal at the limit by 15 s) kills its daemon (SIGKILL, by pid),
# which fails the stuck I/O so that the cleanup can proceed, and fails.
#
# Environment:
#	ROUNDS=N		pressure rounds (default 3; 1 with STRESS_QUICK)
#	STRESS_PARTS="..."	which parts, of: pressure fio kill memlimit
#				(default all four)
#	STRESS_SKIP_URING=1	no io_uring pressure part
#	STRESS_TARGETS=FILE	append the pressure ratios' PASS/MISS lines
#				there (bench/run.sh's section 6)
#	URING_LOCK_WAIT=S	wait for /tmp/fusezram-uring.lock (default 3600)
#	STRESS_QUICK=1		smaller: hogs of 300 MiB in 200 and 128 MiB
#				cgroups, fio on 128 MiB, mem_limit=64M with
#				a 400 MiB hog in 128 MiB; one round
#	SKIP_ZRAM=1		leave /dev/zram0 alone (no ratio)
#	STRESS_ZRAM_WAIT=S	wait for a busy zram0 (default 120)
#	STRESS_DISKSIZE=SIZE	both swaps' size (default 2G; see DISKSIZE)
#	STRESS_SWAP_WAIT=S	wait for other swap devices to go, so that the
#				timings are ours alone (default 120)
#	FUSEZRAM, HOG		the daemon and the hog (./fusezram, build/hog)

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/bench/stress.sh
export FUSEZRAM=${FUSEZRAM:-$ROOT/fusezram}
export HOG=${HOG:-$ROOT/build/hog}

QUICK=${STRESS_QUICK:-0}
PARTS=${STRESS_PARTS:-pressure fio kill memlimit}
SKIP_URING=${STRESS_SKIP_URING:-0}
TARGETS_OUT=${STRESS_TARGETS:-}
T_RATIO=1.3			# fusezram on /dev/fuse / zram0
T_RATIO_URING=1.2		# fusezram on io_uring / zram0 (issue 15)
if [ "$QUICK" = 1 ]; then
	ROUNDS=${ROUNDS:-1}
	P_MIB=300 P_CG_A=200 P_CG_B=128	# pressure: hog MiB, the two cgroups
	FIO_MIB=32			# fio: MiB per job (of 4)
	ML_LIMIT=64 ML_CG=128 ML_MIB=400	# mem_limit: limit, cgroup, hog 1
	T_HOGS=300			# seconds for one phase of hogs
else
	ROUNDS=${ROUNDS:-3}
	P_MIB=700 P_CG_A=400 P_CG_B=256
	FIO_MIB=128
	ML_LIMIT=128 ML_CG=256 ML_MIB=700
	T_HOGS=900
fi
# Hog 2 must fit: while swap is less than half full, a page swapped back
# in keeps its swap slot (and the store its copy), so the store may come
# to hold every page of hog 2.  Hog pages take about 0.68 bytes of
# mem_used_total per byte (measured, lz4): 1.25 x the limit fits in 85%
# of it, and a cgroup of 0.75 x the limit still sends half the limit's
# worth out to swap.
ML_MIB2=$((ML_LIMIT * 5 / 4)) ML_CG2=$((ML_LIMIT * 3 / 4))
# Both swaps are 1G, as specified.  The pressure workload needs about
# 1000 MiB of swap at its peak (2 x 700 MiB in 400 MiB), and zram0 peaks
# there (1005 MiB measured: it frees a slot as its page is swapped in, a
# synchronous device's page bypassing the swap cache).  A page swapped in
# from the loop device keeps its slot in the swap cache, so fusezram's
# swap peaks higher (1060 to 1320 MiB measured on a 2G image): on 1G it
# fills up and the OOM killer may end a hog (2 runs in 3 here), which
# fails the run; the failure names the peak swap use.  So both swaps are
# 2G by default (the same size for both, for a fair ratio).
DISKSIZE=${STRESS_DISKSIZE:-2G}
T_FIO=600
T_DRAIN=20			# the drain target, seconds
T_SETTLE=10			# the transport settles this soon after the mount
T_ML=120			# mem_limit: hog 1 is ended after this
T_KILL=10			# the I/O must fail this soon after the kill
# A part's cleanup after its TERM, before the KILL: lib.sh's trap may
# take minutes (swapoff alone is given 300 s); a KILL in the middle
# would leave its swap on (bench/run.sh waits 900 s for the same).
T_UNDO=900
ZRAM_WAIT=${STRESS_ZRAM_WAIT:-120}
SWAP_WAIT=${STRESS_SWAP_WAIT:-120}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "stress: ROUNDS must be a positive integer" >&2; exit 2; }

# elapsed T0 - seconds since $EPOCHREALTIME was T0, one decimal.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ===========================================================================
# The parts.  Each runs in its own process with lib.sh's cleanup trap and
# reports to $STRESS_RES: "ROW|VERDICT|DETAIL" for a target, "VAL|KEY|V"
# for a figure.

# res ROW VERDICT DETAIL - report a target's verdict.
res() {
	printf '%s|%s|%s\n' "$1" "$2" "$3" >>"$STRESS_RES"
	fz_log "$1: $2 ($3)"
}

# val KEY VALUE - report a figure.
val() { printf 'VAL|%s|%s\n' "$1" "$2" >>"$STRESS_RES"; }

# part_fail ROW DETAIL - the target failed and the part cannot go on.
part_fail() {
	res "$1" FAIL "$2"
	fz_fail "$2"
}

# mmf FILE INDEX - field INDEX (from 0) of an mm_stat or io_stat, read
# under a time limit (a hung daemon must not hang the script).
mmf() {
	local -a v
	read -r -a v <<<"$(timeout 10 cat "$1" 2>/dev/null)" || :
	[[ ${v[$2]:-} =~ ^[0-9]+$ ]] || return 1
	echo "${v[$2]}"
}

# hang_kill - a wait on the daemon's I/O ran out: kill the daemon, so that
# the stuck I/O fails and the cleanup can proceed.
hang_kill() {
	[ -n "${FZ_PID:-}" ] || return 0
	fz_log "HANG: killing the daemon $FZ_PID (SIGKILL) to free the stuck I/O"
	kill -KILL "$FZ_PID" 2>/dev/null || :
}

# wait_swap_alone - wait up to SWAP_WAIT s until no swap is on (someone
# else's swap at our priority would take part of our pages and skew the
# times).  Reports the figure "warn_swap" when it is still on.
wait_swap_alone() {
	local end=$((SECONDS + SWAP_WAIT)) others
	while :; do
		others=$(awk 'NR > 1 { printf "%s ", $1 }' /proc/swaps)
		[ -n "$others" ] || return 0
		if [ "$SECONDS" -ge "$end" ]; then
			fz_log "WARNING: other swap is on ($others): some pages may go there; the times are less reliable"
			val warn_swap "$others"
			return 0
		fi
		sleep 2
	done
}

# swap_on DEV OPTIONS... - mkswap and swapon (registered).
swap_on() {
	local dev=$1
	shift
	timeout 60 mkswap "$dev" >"$FZ_TMP/mkswap" 2>&1 || fz_fail "mkswap $dev: $(cat "$FZ_TMP/mkswap")"
	fz_swapon "$dev" "$@"
	fz_log "swap: $(grep "^${dev}[[:space:]]" /proc/swaps)"
}

# fz_swap_setup [OPTIONS] - a fusezram image (DISKSIZE, lz4, OPTIONS added)
# on a direct-I/O loop device as swap, --discard, priority 32767.
fz_swap_setup() {
	fz_mount -o "disksize=$DISKSIZE,comp_algorithm=lz4${1:+,$1}"
	fz_loop "$FZ_IMG" --direct-io=on
	[ "$(losetup -n -O DIO "$FZ_LOOP" | tr -d '[:space:]')" = 1 ] ||
		fz_fail "$FZ_LOOP is not in direct-I/O mode"
	swap_on "$FZ_LOOP" --discard -p 32767
}

ZRAM=/sys/block/zram0

zram_free() {
	[ "$(cat $ZRAM/disksize)" = 0 ] && [ -z "$(ls -A $ZRAM/holders 2>/dev/null)" ] &&
		! grep -q '^/dev/zram0[[:space:]]' /proc/swaps /proc/self/mounts &&
		[ -z "$(losetup -j /dev/zram0 2>/dev/null)" ]
}

# zram_release - reset zram0 if ZRAM_OURS: set just before the write of
# its disksize (registered before it, so that no signal falls between).
ZRAM_OURS=0
zram_release() {
	local end=$((SECONDS + 30))
	[ "$ZRAM_OURS" = 1 ] || return 0
	until timeout 60 sh -c "echo 1 >$ZRAM/reset" 2>/dev/null; do
		if [ "$SECONDS" -ge "$end" ]; then
			fz_log "CLEANUP FAILED: echo 1 > $ZRAM/reset"
			return 1
		fi
		sleep 0.5
	done
}

# zram_claim - set zram0 up (lz4, DISKSIZE) if nobody else has it; skip
# the part if it stays busy for ZRAM_WAIT s.  Registers the reset.
zram_claim() {
	local end=$((SECONDS + ZRAM_WAIT))
	if [ ! -d $ZRAM ]; then
		timeout 60 modprobe zram num_devices=1 2>/dev/null || :
		fz_wait_until 10 test -d $ZRAM || fz_skip "no $ZRAM (modprobe zram)"
	fi
	grep -qw lz4 $ZRAM/comp_algorithm || fz_skip "zram0 offers no lz4: $(cat $ZRAM/comp_algorithm)"
	until zram_free; do
		[ "$SECONDS" -lt "$end" ] ||
			fz_skip "zram0 is in use by someone else (disksize $(cat $ZRAM/disksize)) for ${ZRAM_WAIT}s; leaving it alone"
		sleep 2
	done
	# Uninitialized, so the reset loses nothing of anyone's; a write that
	# fails below means someone else took it meanwhile: not ours to reset.
	fz_defer zram_release
	echo 1 >$ZRAM/reset 2>/dev/null || fz_skip "zram0 was taken meanwhile"
	echo lz4 >$ZRAM/comp_algorithm 2>/dev/null || fz_skip "zram0 was taken meanwhile"
	ZRAM_OURS=1
	echo "$DISKSIZE" >$ZRAM/disksize 2>/dev/null || { ZRAM_OURS=0; fz_skip "zram0 was taken meanwhile"; }
	fz_log "zram0: $(cat $ZRAM/comp_algorithm), disksize $(cat $ZRAM/disksize)"
}

# hogs N MIB CG_MIB TAG SECS - run N hogs of MIB MiB at once (seeds that
# differ in every page) in $FZ_CGROUP with its limit set to CG_MIB MiB,
# bounded by SECS.  Sets HOG_SECS (wall time), HOG_ST (the exit statuses),
# HOG_BAD (bad words of the hogs that finished) and HOG_MSG (what went
# wrong).  Returns 0 when every hog verified every word, 124 on a
# time-out (the hogs got SIGTERM, then SIGKILL 10 s later), 1 otherwise.
hogs() {
	local n=$1 mib=$2 cg_mib=$3 tag=$4 secs=$5 rc=0 i st b t0 out
	echo "$((cg_mib << 20))" >"$FZ_CGROUP/memory.limit_in_bytes" ||
		fz_fail "cannot set the cgroup's limit to $cg_mib MiB"
	fz_log "$tag: $n hog(s) of $mib MiB at once in a $cg_mib MiB cgroup"
	echo 0 >"$FZ_TMP/swapmax"
	t0=$EPOCHREALTIME
	fz_run_hogs "$secs" "$n" "$mib" "$FZ_TMP/$tag" || rc=$?
	HOG_SECS=$(elapsed "$t0")
	HOG_ST='' HOG_BAD=0 HOG_MSG=''
	if [ "$rc" -eq 124 ]; then
		HOG_MSG="$tag: the hogs did not finish in ${secs}s"
		return 124
	fi
	[ "$rc" -eq 0 ] || HOG_MSG="$tag: the hogs' shell exited with $rc: $(cat "$FZ_TMP/$tag.sh.err" 2>/dev/null)"
	for ((i = 1; i <= n; i++)); do
		out=$FZ_TMP/$tag.$i
		[ ! -s "$out" ] || sed 's/^/    /' "$out" >&2
		st=$(cat "$out.rc" 2>/dev/null) || st='?'
		HOG_ST+="${HOG_ST:+ }$st"
		b=$(sed -n 's/.* \([0-9][0-9]*\) bad words$/\1/p' "$out" 2>/dev/null)
		HOG_BAD=$((HOG_BAD + ${b:-0}))
		case $st in
		0) [ "${b:-}" = 0 ] || HOG_MSG+="${HOG_MSG:+; }$tag: hog $i exited 0 without '0 bad words'" ;;
		1) HOG_MSG+="${HOG_MSG:+; }$tag: hog $i: ${b:-?} BAD WORDS" ;;
		137) HOG_MSG+="${HOG_MSG:+; }$tag: hog $i was killed (SIGKILL: OOM in the cgroup?${SWAP_DEV:+ peak swap use $(($(cat "$FZ_TMP/swapmax") >> 10)) of $(($(swap_size) >> 10)) MiB})" ;;
		*) HOG_MSG+="${HOG_MSG:+; }$tag: hog $i exited with $st" ;;
		esac
	done
	fz_log "$tag: ${HOG_SECS} s, statuses $HOG_ST${SWAP_DEV:+, peak swap use $(($(cat "$FZ_TMP/swapmax") >> 10)) MiB}"
	[ -z "$HOG_MSG" ]
}

SWAP_DEV=''

# swap_size - KiB of swap on SWAP_DEV.
swap_size() { awk -v d="$SWAP_DEV" '$1 == d { print $3 }' /proc/swaps; }

# swap_sampler DEV - sample DEV's swap use (KiB, /proc/swaps) every 0.2 s in
# the background; $FZ_TMP/swapmax holds the peak since someone last wrote
# 0 there (hogs does, before each phase).  Stopped by the cleanup, or
# when this process is gone.
swap_sampler() {
	SWAP_DEV=$1
	echo 0 >"$FZ_TMP/swapmax"
	(
		while [ ! -e "$FZ_TMP/swapstop" ] && kill -0 $$ 2>/dev/null; do
			u=$(fz_swap_used "$SWAP_DEV")
			m=$(cat "$FZ_TMP/swapmax" 2>/dev/null) || m=0
			if [ "$u" -gt "${m:-0}" ]; then
				echo "$u" >"$FZ_TMP/swapmax.new" && mv "$FZ_TMP/swapmax.new" "$FZ_TMP/swapmax"
			fi
			sleep 0.2
		done
	) &
	fz_defer "touch $FZ_TMP/swapstop; fz_wait_until 10 eval '! fz__alive $!' || kill $! 2>/dev/null || :"
}

# drain MMSTAT PEAK T0 - poll mem_used_total every 0.5 s for T_DRAIN s.
# Sets DRAIN_SECS (seconds since $EPOCHREALTIME T0 when it fell below 10%
# of PEAK, or empty) and DRAIN_LAST (the last value read).
drain() {
	local mm=$1 peak=$2 t0=$3 i
	DRAIN_SECS='' DRAIN_LAST=''
	for ((i = 0; i <= T_DRAIN * 2; i++)); do
		DRAIN_LAST=$(mmf "$mm" 2) || fz_fail "cannot read $mm"
		if [ "$DRAIN_LAST" -lt $((peak / 10)) ]; then
			DRAIN_SECS=$(elapsed "$t0")
			return 0
		fi
		[ "$i" -eq $((T_DRAIN * 2)) ] || sleep 0.5
	done
}

# transport_line - fusezram's account of its transport, the "Transport:"
# line of control/summary without its label.
transport_line() { timeout 10 sed -n 's/^Transport: *//p' "$FZ_CTL/summary" 2>/dev/null || :; }

# transport_window fz|fzu - for /dev/fuse (fz) or io_uring (fzu): the
# window on the fuse module's enable_uring (bench/uring.sh), registered;
# WINDOW=1 then.  A kernel without the parameter serves /dev/fuse anyway:
# fz runs without a window there (and with STRESS_SKIP_URING=1), fzu is
# skipped.
WINDOW=0
transport_window() {
	local want=0
	[ "$1" = fzu ] && want=1
	if [ "$1" = fz ] && { [ -z "$(uring_param)" ] || [ "$SKIP_URING" = 1 ]; }; then
		return 0
	fi
	[ -n "$(uring_param)" ] || fz_skip "no $URING_PARAM: this kernel has no FUSE over io_uring"
	URING_TMP=$FZ_TMP
	fz_defer uring_window_close
	WINDOW=1
	uring_window_open "$want" || part_fail "$1.transport" "$URING_ERR"
}

# transport_expect fz|fzu - once mounted: the transport must be the one
# wanted, else the part fails, loudly.
transport_expect() {
	local line
	# shellcheck disable=SC2016 # expanded by eval, at each poll
	fz_wait_until "$T_SETTLE" eval '! transport_line | grep -qE "registering|not negotiated"' || :
	line=$(transport_line)
	case $1:$line in
	fzu:io_uring,* | fz:/dev/fuse*) fz_log "transport: $line" ;;
	fzu:*) part_fail fzu.transport "*** NOT ON io_uring (fell back): ${line:-no Transport line} ***" ;;
	*) part_fail fz.transport "*** NOT ON /dev/fuse: ${line:-no Transport line} ***" ;;
	esac
}

# part pressure fz|fzu|zram - ROUNDS rounds of the two-hog workload: fusezram
# over /dev/fuse (fz) or io_uring (fzu), or kernel zram0.
part_pressure() {
	local kind=$1 dev mm maxf r t0 exited secs peak worst=0 slow=0 want st line
	fz_require mkswap swapon swapoff
	[ -x "$HOG" ] || fz_skip "$HOG not built (make build/hog)"
	wait_swap_alone
	if [ "$kind" != zram ]; then
		transport_window "$kind"
		fz_swap_setup
		transport_expect "$kind"
		dev=$FZ_LOOP mm=$FZ_CTL/mm_stat maxf=$FZ_CTL/mem_used_max
	else
		zram_claim
		dev=/dev/zram0 mm=$ZRAM/mm_stat maxf=$ZRAM/mem_used_max
		swap_on "$dev" -p 32767
	fi
	swap_sampler "$dev"
	fz_cgroup "$((P_CG_A << 20))"
	want=$(((2 * P_MIB - P_CG_A) / 4))
	for ((r = 1; r <= ROUNDS; r++)); do
		# (zram0's mem_used_max is write-only: the peak is read from mm_stat.)
		echo 0 >"$maxf" || fz_fail "cannot reset $maxf"
		t0=$EPOCHREALTIME
		st=0
		hogs 2 "$P_MIB" "$P_CG_A" "round$r.A" "$T_HOGS" || st=$?
		[ "$st" -ne 124 ] || hang_kill
		[ "$st" -eq 0 ] || part_fail "$kind.verify" "round $r: $HOG_MSG"
		hogs 1 "$P_MIB" "$P_CG_B" "round$r.B" "$T_HOGS" || st=$?
		[ "$st" -ne 124 ] || hang_kill
		[ "$st" -eq 0 ] || part_fail "$kind.verify" "round $r: $HOG_MSG"
		exited=$EPOCHREALTIME
		secs=$(elapsed "$t0")
		peak=$(mmf "$mm" 4) || fz_fail "cannot read $mm"
		val "$kind.round.$r" "$secs"
		val "$kind.load.$r" "$(cut -d ' ' -f 1 /proc/loadavg)"
		fz_log "round $r: $secs s; peak mem_used_total $((peak >> 20)) MiB"
		# Swap was used: a quarter of what did not fit, even compressed.
		[ $((peak >> 20)) -ge "$want" ] ||
			part_fail "$kind.verify" "round $r: peak mem_used_total $((peak >> 20)) MiB < $want MiB: the swap was hardly used"
		drain "$mm" "$peak" "$exited"
		if [ -n "$DRAIN_SECS" ]; then
			fz_log "round $r: mem_used_total below 10% of its peak $DRAIN_SECS s after the hogs exited"
			worst=$(awk -v a="$worst" -v b="$DRAIN_SECS" 'BEGIN { print (b > a ? b : a) }')
		else
			fz_log "round $r: mem_used_total still $((DRAIN_LAST >> 10)) KiB ${T_DRAIN} s after the hogs exited (peak $((peak >> 10)) KiB)"
			slow=$((slow + 1))
		fi
		fz_log "round $r: mm_stat $(timeout 10 cat "$mm")"
	done
	if [ "$kind" != zram ]; then
		local fr fw
		line=$(transport_line)
		if [ "$kind" = fzu ]; then
			if ! [[ $line =~ \ ([0-9]+)\ image\ reads ]] || [ "${BASH_REMATCH[1]}" -eq 0 ]; then
				part_fail fzu.transport "*** the rings served no image I/O: ${line:-no Transport line} ***"
			fi
		fi
		res "$kind.transport" PASS "$line"
		fr=$(mmf "$FZ_CTL/io_stat" 0) || fz_fail "cannot read io_stat"
		fw=$(mmf "$FZ_CTL/io_stat" 1) || fz_fail "cannot read io_stat"
		if [ "$fr" != 0 ] || [ "$fw" != 0 ]; then
			part_fail "$kind.verify" "io_stat counts failed I/O: $fr reads, $fw writes"
		fi
	fi
	res "$kind.verify" PASS "$ROUNDS round(s), $((3 * ROUNDS)) hogs of $P_MIB MiB, 0 bad words"
	if [ "$slow" -eq 0 ]; then
		res "$kind.drain" PASS "slowest of $ROUNDS: $worst s"
	else
		res "$kind.drain" FAIL "$slow of $ROUNDS round(s) not within ${T_DRAIN} s"
	fi
	fz_swapoff "$dev"
	if [ "$kind" != zram ]; then
		fz_loop_detach
		fz_umount
		[ "$WINDOW" = 0 ] || fz__undo_match cmd uring_window_close
	fi
}

# fio_verify JOBS MIB - one fio run: JOBS jobs, each writing its own MIB MiB
# region in random order, then verifying it.  Fails the target on error.
fio_verify() {
	local jobs=$1 mib=$2 rc=0 out=$FZ_TMP/fio.$1 iops
	fz_log "fio: $jobs jobs x $mib MiB, randwrite bs=4k iodepth=32, verify=crc32c"
	fz_run "$T_FIO" fio --name="randwrite-verify-$jobs" --filename="$FZ_LOOP" \
		--ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=32 \
		--numjobs="$jobs" --size="${mib}M" --offset_increment="${mib}M" \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 \
		--verify_state_save=0 --group_reporting >"$out" 2>&1 || rc=$?
	grep -E 'err=|IOPS|verify' "$out" | sed 's/^/    /' >&2 || :
	if [ "$rc" -eq 124 ]; then
		hang_kill
		part_fail fio.verify "fio ($jobs jobs) did not finish in ${T_FIO}s"
	fi
	[ "$rc" -eq 0 ] || part_fail fio.verify "fio ($jobs jobs) exited with $rc: $(grep -iE 'verify|error|err=' "$out" | head -3 | tr '\n' ' ')"
	! grep -qiE 'verify: bad|bad magic|verify failed' "$out" ||
		part_fail fio.verify "fio ($jobs jobs): $(grep -iE 'verify' "$out" | head -3 | tr '\n' ' ')"
	grep -qE 'err= *0' "$out" || part_fail fio.verify "fio ($jobs jobs) reports no 'err= 0'"
	iops=$(awk '/write: IOPS=/ { sub(/.*IOPS=/, ""); sub(/,.*/, ""); print; exit }' "$out")
	FIO_SUMMARY+="${FIO_SUMMARY:+, }$jobs jobs: write ${iops:-?} IOPS"
}

part_fio() {
	local fr fw
	fz_require fio
	fz_mount -o "disksize=$DISKSIZE,comp_algorithm=lz4"
	fz_loop "$FZ_IMG" --direct-io=on
	FIO_SUMMARY=''
	# 2 jobs, then 4 over the same bytes: the second run overwrites.
	fio_verify 2 $((FIO_MIB * 2))
	fio_verify 4 "$FIO_MIB"
	fz_show_stats
	fr=$(fz_io failed_reads) fw=$(fz_io failed_writes)
	if [ "$fr" != 0 ] || [ "$fw" != 0 ]; then
		part_fail fio.verify "io_stat counts failed I/O: $fr reads, $fw writes"
	fi
	res fio.verify PASS "$((FIO_MIB * 4)) MiB, iodepth 32; $FIO_SUMMARY; 0 verify errors"
	fz_loop_detach
	fz_umount
}

part_kill() {
	local daemon='' rc=0 killed secs how out end
	fz_require fio pgrep
	# Detached, as in real use: not our child, found by its mount point.
	fz_mount --detach -o "disksize=$DISKSIZE,comp_algorithm=lz4"
	fz_loop "$FZ_IMG" --direct-io=on
	daemon=$(fz_daemon_pid "$FZ_MNT") || fz_fail "no daemon found for $FZ_MNT"

	out=$FZ_TMP/fio.kill
	timeout -k 5 180 fio --name=kill --filename="$FZ_LOOP" --ioengine=libaio \
		--direct=1 --rw=randrw --bs=4k --iodepth=32 --numjobs=2 \
		--time_based --runtime=120 --group_reporting </dev/null >"$out" 2>&1 &
	p=$!
	fz_defer "kill -TERM $p 2>/dev/null || :; fz_wait_until 20 eval '! fz__alive $p' || kill -KILL $p 2>/dev/null || :"
	# shellcheck disable=SC2016 # expanded by eval, at each poll
	fz_wait_until 30 eval '[ "$(mmf "$FZ_CTL/mm_stat" 0)" -gt $((16 << 20)) ]' ||
		fz_fail "fio did not get 16 MiB onto the image in 30 s: $(tail -n 5 "$out")"
	sleep 1
	fz__alive "$p" || fz_fail "fio ended before the kill: $(tail -n 5 "$out")"
	fz_show_stats
	fz_log "killing the daemon, pid $daemon (SIGKILL), under fio randrw iodepth=32 x 2 jobs"
	killed=$EPOCHREALTIME
	kill -KILL "$daemon"
	# shellcheck disable=SC2016 # expanded by eval, at each poll
	fz_wait_until 60 eval '! fz__alive $p' ||
		part_fail kill.fail "fio was still running 60 s after the daemon was killed (hung)"
	secs=$(elapsed "$killed")
	wait "$p" || rc=$?
	grep -iE 'error|err=' "$out" | head -5 | sed 's/^/    /' >&2 || :
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		part_fail kill.fail "fio did not end by itself (status $rc)"
	fi
	[ "$rc" -ne 0 ] || part_fail kill.fail "fio exited 0: the I/O did not fail"
	val kill.secs "$secs"
	if awk -v s="$secs" -v m="$T_KILL" 'BEGIN { exit !(s <= m) }'; then
		res kill.fail PASS "fio failed (status $rc) $secs s after the kill"
	else
		res kill.fail FAIL "fio took $secs s to fail after the kill (at most $T_KILL s)"
	fi
	fz_wait_until 10 eval "! fz__alive $daemon" || part_fail kill.cleanup "the daemon outlived SIGKILL by 10 s"

	fz_loop_detach || part_fail kill.cleanup "losetup -d failed after the kill"
	end=$((SECONDS + 30))
	how="fusermount3 -u"
	until timeout 30 fusermount3 -u "$FZ_MNT" 2>"$FZ_TMP/fusermount.err"; do
		if [ "$SECONDS" -ge "$end" ]; then
			fz_log "fusermount3 -u failed for 30 s: $(cat "$FZ_TMP/fusermount.err"); trying umount -l"
			timeout 30 umount -l "$FZ_MNT" || part_fail kill.cleanup "fusermount3 -u and umount -l failed"
			how="umount -l"
			break
		fi
		sleep 0.5
	done
	! fz_is_mounted "$FZ_MNT" || part_fail kill.cleanup "$FZ_MNT is still mounted"
	fz_umount
	res kill.cleanup PASS "losetup -d, then $how"
}

part_memlimit() {
	local limit=$((ML_LIMIT << 20)) st peak smax fw fw0 fw1 mm sampler t0 gap late msg hog1 bad=''
	fz_require mkswap swapon swapoff
	[ -x "$HOG" ] || fz_skip "$HOG not built (make build/hog)"
	wait_swap_alone
	fz_swap_setup "mem_limit=${ML_LIMIT}M"
	swap_sampler "$FZ_LOOP"
	mm=$FZ_CTL/mm_stat
	fz_cgroup "$((ML_CG << 20))"
	# Our own sampling of mem_used_total, besides the store's mem_used_max;
	# and the longest time the daemon took to answer (the longest gap
	# between two good reads of mm_stat, in ms): it must keep answering.
	echo 0 >"$FZ_TMP/smax"
	echo 0 >"$FZ_TMP/gapmax"
	(
		end=$((SECONDS + 2 * T_HOGS + 120))
		m=0 g=0 last=$EPOCHREALTIME
		while [ "$SECONDS" -lt "$end" ] && [ ! -e "$FZ_TMP/stop" ] && kill -0 $$ 2>/dev/null; do
			if u=$(mmf "$mm" 2); then
				now=$EPOCHREALTIME
				gap=$(awk -v a="$last" -v b="$now" 'BEGIN { printf "%d", (b - a) * 1000 }')
				last=$now
				if [ "$gap" -gt "$g" ]; then
					g=$gap
					echo "$g" >"$FZ_TMP/gapmax"
				fi
			else
				u=0
			fi
			if [ "$u" -gt "$m" ]; then
				m=$u
				echo "$m" >"$FZ_TMP/smax.new" && mv "$FZ_TMP/smax.new" "$FZ_TMP/smax"
			fi
			sleep 0.2
		done
	) &
	sampler=$!
	fz_defer "touch $FZ_TMP/stop; fz_wait_until 10 eval '! fz__alive $sampler' || kill $sampler 2>/dev/null || :"

	# Hog 1 ends by the OOM killer, or it is ended after T_ML s: the
	# kernel may go on retrying the refused swap writes for minutes
	# (kernel zram with a mem_limit does the same).  Either way the hog
	# must be gone at once when signalled, and the daemon must answer.
	st=0
	hogs 1 "$ML_MIB" "$ML_CG" hog1 "$T_ML" || st=$?
	fz_show_stats
	fw0=$(fz_io failed_writes)
	val ml.failed_writes "$fw0"
	gap=$(cat "$FZ_TMP/gapmax")
	if [ "$st" -eq 124 ]; then
		late=$(awk -v a="$HOG_SECS" -v t="$T_ML" 'BEGIN { printf "%.1f", a - t }')
		if awk -v l="$late" 'BEGIN { exit !(l > 15) }'; then
			hang_kill
			part_fail ml.bounded "hog 1 outlived SIGTERM at ${T_ML} s by $late s (hang)"
		fi
		msg="hog 1 still swapping after ${T_ML} s ($((fw0 / T_ML)) refused writes/s); SIGTERM ended it in $late s"
		hog1="hog 1 was ended (not verified)"
	else
		msg="hog 1 ended after $HOG_SECS s with status $HOG_ST"
		[ "$HOG_BAD" -eq 0 ] || bad="hog 1: $HOG_BAD bad words"
		case $HOG_ST in
		0) hog1="hog 1: 0 bad words" ;;
		137) hog1="hog 1 was OOM-killed (not verified)" ;;
		*) hog1="hog 1 exited with $HOG_ST" ;;
		esac
	fi
	[ "$gap" -le 10000 ] ||
		part_fail ml.bounded "$msg; but the daemon did not answer mm_stat for $((gap / 1000)) s"
	res ml.bounded PASS "$msg; the daemon answered mm_stat within $(awk -v g="$gap" 'BEGIN { printf "%.1f", g / 1000 }') s"

	# Hog 1's pages are freed (discarded) before hog 2 starts.
	peak=$(fz_mm mem_used_max)
	t0=$EPOCHREALTIME
	drain "$mm" "$peak" "$t0"
	fz_log "after hog 1: mem_used_total $((DRAIN_LAST >> 10)) KiB ${DRAIN_SECS:-(not yet below 10% after $T_DRAIN)} s after it ended (peak $((peak >> 10)) KiB)"

	st=0
	fw1=$(fz_io failed_writes)
	hogs 1 "$ML_MIB2" "$ML_CG2" hog2 "$T_HOGS" || st=$?
	if [ "$st" -eq 124 ]; then
		hang_kill
		part_fail ml.bounded "$HOG_MSG (hang)"
	fi
	touch "$FZ_TMP/stop"
	fz_show_stats
	fw=$(fz_io failed_writes)
	peak=$(fz_mm mem_used_max)
	fz_wait_until 10 eval "! fz__alive $sampler" || :
	smax=$(cat "$FZ_TMP/smax")

	if [ "$fw0" -gt 0 ]; then
		res ml.failed PASS "failed_writes $fw0 after hog 1 ($((fw1 - fw0)) more until hog 2, $((fw - fw1)) during it)"
	else
		res ml.failed FAIL "failed_writes 0 after hog 1 of $ML_MIB MiB with $ML_CG MiB of RAM and mem_limit=${ML_LIMIT}M"
	fi
	if [ "$peak" -le $((limit + (256 << 10))) ] && [ "$smax" -le $((limit + (256 << 10))) ]; then
		res ml.limit PASS "mem_used_max $((peak >> 10)) KiB, sampled max $((smax >> 10)) KiB, limit $((limit >> 10)) KiB"
	else
		res ml.limit FAIL "mem_used_max $((peak >> 10)) KiB, sampled max $((smax >> 10)) KiB > limit $((limit >> 10)) KiB"
	fi
	if [ "$st" -ne 0 ]; then
		bad+="${bad:+; }$HOG_MSG"
	fi
	if [ -z "$bad" ]; then
		res ml.hog2 PASS "hog 2 of $ML_MIB2 MiB in $ML_CG2 MiB: 0 bad words; $hog1"
	else
		res ml.hog2 FAIL "$bad"
	fi
	fz_swapoff "$FZ_LOOP"
	fz_loop_detach
	fz_umount
	[ -z "$bad" ]
}

if [ "${1:-}" = --part ]; then
	shift
	# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib.sh
	. "$ROOT/tests/integration/lib.sh"
	# shellcheck source=bench/uring.sh
	. "$ROOT/bench/uring.sh"
	# shellcheck disable=SC2034 # lib.sh's name for the messages
	FZ_NAME="stress[$*]"
	case $1 in
	pressure) part_pressure "$2" ;;
	fio) part_fio ;;
	kill) part_kill ;;
	memlimit) part_memlimit ;;
	*) fz_fail "unknown part '$1'" ;;
	esac
	fz_log "part done"
	exit 0
fi

# ===========================================================================
# The driver.

log() { printf 'stress: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "root required (FUSE mounts, loop devices, swap, cgroups, zram0)"; exit 1; }
for f in "$FUSEZRAM" "$HOG"; do
	[ -x "$f" ] || { log "$f not built (make fusezram build/hog)"; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fusezram-stress.XXXXXX")
export STRESS_RES=$WORK/results FZ_TMPBASE=$WORK
: >"$STRESS_RES"
PART_PID=''
INTERRUPTED=0
trap 'rm -f "$STRESS_RES"; rmdir "$WORK" 2>/dev/null || log "left $WORK (see above)"' EXIT
trap 'INTERRUPTED=1; [ -z "$PART_PID" ] || kill -TERM "$PART_PID" 2>/dev/null || :' INT TERM

# run_part SECS NAME [ARG] - run one part bounded by SECS (TERM, and KILL
# T_UNDO s later); records "PART|NAME ARG|STATUS".
run_part() {
	local secs=$1 rc t0
	shift
	[ "$INTERRUPTED" = 0 ] || return 0
	printf '\n=== %s ===\n' "$*" >&2
	t0=$EPOCHREALTIME
	timeout -k "$T_UNDO" "$secs" bash "$SELF" --part "$@" </dev/null &
	PART_PID=$!
	# A signal before PART_PID was set stopped nothing: stop the part now.
	[ "$INTERRUPTED" = 0 ] || kill -TERM "$PART_PID" 2>/dev/null || :
	while :; do
		rc=0
		wait "$PART_PID" || rc=$?
		kill -0 "$PART_PID" 2>/dev/null || break
	done
	PART_PID=''
	[ "$rc" -ne 124 ] || log "part '$*' timed out after ${secs}s"
	log "part '$*': status $rc after $(elapsed "$t0") s"
	echo "PART|$*|$rc" >>"$STRESS_RES"
}

log "fusezram $("$FUSEZRAM" -V 2>&1 | head -n 1); kernel $(uname -r); $(nproc) CPUs; $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo) RAM"
log "rounds $ROUNDS; hogs of $P_MIB MiB (2 in $P_CG_A MiB, 1 in $P_CG_B MiB); fio $((4 * FIO_MIB)) MiB; mem_limit ${ML_LIMIT}M (hog of $ML_MIB MiB in $ML_CG MiB, then $ML_MIB2 MiB in $ML_CG2 MiB)"
log "parts: $PARTS; pressure on fusezram over /dev/fuse$([ "$SKIP_URING" = 1 ] || echo " and over io_uring (enable_uring now $(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo absent))")"
T_ROUND=$((2 * T_HOGS + 3 * T_DRAIN))
# wanted PART - PART is in STRESS_PARTS.
wanted() { [[ " $PARTS " == *" $1 "* ]]; }
if wanted pressure; then
	# The parts that set the transport may wait URING_LOCK_WAIT for the lock.
	run_part $((ROUNDS * T_ROUND + SWAP_WAIT + ${URING_LOCK_WAIT:-3600} + 300)) pressure fz
	if [ "$SKIP_URING" != 1 ]; then
		run_part $((ROUNDS * T_ROUND + SWAP_WAIT + ${URING_LOCK_WAIT:-3600} + 300)) pressure fzu
	fi
	if [ "${SKIP_ZRAM:-0}" != 1 ]; then
		run_part $((ROUNDS * T_ROUND + SWAP_WAIT + ZRAM_WAIT + 300)) pressure zram
	fi
fi
! wanted fio || run_part $((2 * T_FIO + 300)) fio
! wanted kill || run_part 600 kill
! wanted memlimit || run_part $((2 * T_HOGS + SWAP_WAIT + 300)) memlimit

# ---------------------------------------------------------------------------
# The summary.

# got ROW - the verdict and detail a part reported for ROW, or a FAIL/SKIP
# made from its part's status when it reported none.
got() {
	local row=$1 part=$2 line st
	line=$(grep "^$row|" "$STRESS_RES" | tail -n 1 || :)
	if [ -n "$line" ]; then
		echo "${line#*|}"
		return 0
	fi
	st=$(awk -F'|' -v p="$part" '$1 == "PART" && $2 == p { s = $3 } END { print s }' "$STRESS_RES")
	case $st in
	'') echo "SKIP|not run${SKIP_ZRAM:+ (SKIP_ZRAM=$SKIP_ZRAM)}" ;;
	77) echo "SKIP|prerequisite missing (see the part's output)" ;;
	0) echo "FAIL|the part reported nothing" ;;
	*) echo "FAIL|not reached: the part ended with status $st (see its output)" ;;
	esac
}
value() { awk -F'|' -v k="$1" '$1 == "VAL" && $2 == k { v = $3 } END { print v }' "$STRESS_RES"; }

FAILED=0
ROWS=()
# row ROW PART KIND TEXT - add a table row; KIND asserted or reported.
# Rows of parts not run (STRESS_PARTS, STRESS_SKIP_URING) are left out.
row() {
	local g verdict detail
	case $2 in
	'') wanted pressure || return 0 ;;
	"pressure fzu") wanted pressure && [ "$SKIP_URING" != 1 ] || return 0 ;;
	*) wanted "${2%% *}" || return 0 ;;
	esac
	g=$(got "$1" "$2")
	verdict=${g%%|*} detail=${g#*|}
	if [ "$verdict" = FAIL ] && [ "$3" = asserted ]; then FAILED=1; fi
	[ "$3" = asserted ] || verdict+=" (timing)"
	ROWS+=("$(printf '  %-52s %-13s %s' "$4" "$verdict" "$detail")")
}

# The round times and the ratios.
printf '\n=== summary ===\n\nwall time per round (hogs only; 2 x %s MiB in %s MiB, then %s MiB in %s MiB):\n' \
	"$P_MIB" "$P_CG_A" "$P_MIB" "$P_CG_B"
# ratio A B - A / B to 2 places, or "-".
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
sum() { awk -v t="$1" -v x="${2:-0}" 'BEGIN { printf "%.1f\n", t + x }'; }
trow() { printf '  %-6s %10s %10s %10s %9s %9s %9s  %s\n' "$@"; }
trow round "/dev/fuse" io_uring zram0 fuse/zram uring/zram uring/fuse "load fuse, uring, zram"
fz_total=0 fzu_total=0 z_total=0 complete=1 complete_u=1
for ((r = 1; r <= ROUNDS; r++)); do
	a=$(value "fz.round.$r") u=$(value "fzu.round.$r") b=$(value "zram.round.$r")
	[ -n "$a" ] && [ -n "$b" ] || complete=0
	[ -n "$u" ] && [ -n "$b" ] || complete_u=0
	fz_total=$(sum "$fz_total" "$a") fzu_total=$(sum "$fzu_total" "$u") z_total=$(sum "$z_total" "$b")
	trow "$r" "${a:+$a s}" "${u:+$u s}" "${b:+$b s}" "$(ratio "$a" "$b")" "$(ratio "$u" "$b")" \
		"$(ratio "$u" "$a")" "$(value "fz.load.$r"), $(value "fzu.load.$r"), $(value "zram.load.$r")"
done
[ "$complete" = 1 ] || fz_total=''
[ "$complete_u" = 1 ] || fzu_total=''
[ "$complete" = 1 ] || [ "$complete_u" = 1 ] || z_total=''
trow total "${fz_total:+$fz_total s}" "${fzu_total:+$fzu_total s}" "${z_total:+$z_total s}" \
	"$(ratio "$fz_total" "$z_total")" "$(ratio "$fzu_total" "$z_total")" "$(ratio "$fzu_total" "$fz_total")"
# verdict ROW TOTAL LIMIT TEXT - the ratio TOTAL / z_total against LIMIT.
verdict() {
	local r v=FAIL t=MISS
	if [ -z "$2" ] || [ -z "$z_total" ]; then
		echo "$1|SKIP|not every round ran on both" >>"$STRESS_RES"
		[ -z "$TARGETS_OUT" ] || echo "n/a   $4: not every round ran on both" >>"$TARGETS_OUT"
		return 0
	fi
	r=$(ratio "$2" "$z_total")
	if awk -v r="$r" -v l="$3" 'BEGIN { exit !(r <= l) }'; then v=PASS t=PASS; fi
	echo "$1|$v|$2 s / $z_total s = $r" >>"$STRESS_RES"
	[ -z "$TARGETS_OUT" ] ||
		printf '%-4s  %s: %s (target <= %s); %s s against %s s, %s round(s)\n' \
			"$t" "$4" "$r" "$3" "$2" "$z_total" "$ROUNDS" >>"$TARGETS_OUT"
}
if wanted pressure; then
	verdict ratio "$fz_total" "$T_RATIO" "no regression on /dev/fuse: two-hog swap pressure, fusezram / kernel zram0 (the earlier target)"
	[ "$SKIP_URING" = 1 ] ||
		verdict ratio.uring "$fzu_total" "$T_RATIO_URING" "two-hog swap pressure, fusezram io_uring / kernel zram0"
fi
printf '  (load: the 1-minute load average at the end of the round, on %s CPUs;\n   other work on the machine shows as a higher load and makes the times noisy)\n' "$(nproc)"
w=$(value warn_swap)
[ -z "$w" ] || printf '  (other swap was on during the run: %s; the times are less reliable)\n' "$w"

row fz.transport "pressure fz" asserted "fusezram swap served over /dev/fuse"
row fz.verify "pressure fz" asserted "fusezram swap: every word of every hog verified"
row fzu.transport "pressure fzu" asserted "fusezram swap served over io_uring"
row fzu.verify "pressure fzu" asserted "fusezram io_uring: every word verified"
row zram.verify "pressure zram" asserted "zram0 swap: every word of every hog verified"
row ratio "" reported "wall time fusezram /dev/fuse / zram0 <= $T_RATIO"
row ratio.uring "pressure fzu" reported "wall time fusezram io_uring / zram0 <= $T_RATIO_URING"
row fz.drain "pressure fz" reported "fusezram: mem_used_total < 10% of peak in ${T_DRAIN} s"
row fzu.drain "pressure fzu" reported "fusezram io_uring: the same"
row zram.drain "pressure zram" reported "zram0: mem_used_total < 10% of peak in ${T_DRAIN} s"
row fio.verify fio asserted "fio randwrite iodepth 32, 2 and 4 jobs, crc32c"
row kill.fail kill asserted "kill -9 under I/O: the I/O fails within ${T_KILL} s"
row kill.cleanup kill asserted "kill -9: losetup -d and the unmount still work"
row ml.bounded memlimit asserted "mem_limit=${ML_LIMIT}M swap: nothing hangs"
row ml.failed memlimit asserted "mem_limit: io_stat failed_writes counts refusals"
row ml.limit memlimit asserted "mem_limit: mem_used_total <= mem_limit"
row ml.hog2 memlimit asserted "mem_limit: no bad word, a second hog verifies"

printf '\n  %-52s %-13s %s\n' target verdict measured
printf '%s\n' "${ROWS[@]}"
# A part that failed without a FAIL row (its cleanup, say) fails the run.
while IFS='|' read -r _ p st; do
	if [ "$st" != 0 ] && [ "$st" != 77 ]; then
		printf '  part "%s" ended with status %s\n' "$p" "$st"
		FAILED=1
	fi
done < <(grep '^PART|' "$STRESS_RES")
echo
if [ "$INTERRUPTED" = 1 ]; then
	log "interrupted"
	exit 130
fi
if [ "$FAILED" = 1 ]; then
	log "FAIL: a verification failed (see above)"
	exit 1
fi
log "all verifications passed (timing targets are reported above, not asserted)"
