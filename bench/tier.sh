#!/bin/bash
#
# bench/tier.sh - the tier section of `make bench` (issue 13, item 8): RAM
# in front of the disk.  bench/run.sh runs it as its section 4; it runs
# alone too (`bash bench/tier.sh`, root).  On one machine, in one go:
#
#  1. Writeback of an idle corpus: the bench corpus (build/bench/corpus.bin,
#     256 MiB; run.sh passes its copy) written through a direct-I/O loop
#     device onto fusezram (lz4) with a backing file, `echo all > idle;
#     echo idle > writeback`, compaction.  mem_used_total before and after,
#     the file's allocated bytes against compr_data_size from before the
#     writeback (zram would take 4 KiB a page), every byte read back, then
#     blkdiscard of everything and the file's allocated bytes once its
#     empty segments are punched.
#  1b. Churn: the corpus written back as in 1, then a third of its pages
#     rewritten at random (tests/integration/pages.py) and written back,
#     three times; the file's allocated bytes against the dense file's,
#     after the maintainer has compacted on its own and after `echo 1 >
#     compact`; every byte read back (no target).
#  2. Spill: the corpus through mem_limit=48M (3/16 of the corpus) with a
#     backing file: no write error, mem_used_max within the limit, every
#     byte read back.
#  3. writeback_age=3: the corpus written, then left alone; seconds until
#     mem_used_total falls by 80% (polled every 0.5 s, at most 60 s).
#  4. The hog: build/hog of 1500 MiB in a 256 MiB memory cgroup (2 passes,
#     every word verified), swapping to (a) a 2 GiB swap file on the disk,
#     (b) the kernel's zswap (lz4 if the kernel's crypto has it, pool capped
#     with max_pool_percent=1) in front of that swap file, (c) fusezram,
#     disksize=2G, mem_limit=240M, lz4, with a backing file next to the
#     swap file, on a direct-I/O loop device, swapon --discard, (d) the
#     same with recomp_algorithm=zstd:1 (pages spilled ahead of the
#     writes go to the file in zstd), (e) fusezram with neither a file
#     nor a limit, for scale (no target); (c), (d) and (e) are served on
#     /dev/fuse, and (d) and (e) again on FUSE over io_uring
#     (fusezram-zstd-uring, fusezram-ram-uring; the transport is chosen
#     as bench/run.sh does, bench/uring.sh: the fuse module's
#     enable_uring set for the row under an exclusive flock on
#     /tmp/fusezram-uring.lock, and put back; a row that did not run on
#     the transport wanted says so).  Each configuration's swap is the
#     only one of ours on, at priority 32767; zswap is off but for (b).
#     For each: the wall time and the bytes written to the disk under the
#     directory (sectors written, field 7 of /sys/class/block/DEV/stat,
#     x 512, before and after), pswpout and zswap's counters from
#     /proc/vmstat; for (c) and (d) also bd_stat, mm_stat, io_stat and the
#     summary's backing-file lines at the end.  Then (b), (c) and (d)
#     against (a).
#
# Targets (reported, never asserted; each line says PASS, FAIL or SKIP):
# written back, mem_used_total falls below 20% and the file takes at most
# 1.15x the compressed bytes; under 8 MiB stays allocated after a discard
# of everything; every byte reads back; the spill writes without error
# within the limit and reads back; the hog on fusezram writes at most 0.5x
# the swap file's bytes to the disk in at most 1.3x its time; with
# writeback_age=3 mem_used_total falls by 80% within 15 s.
#
# The disk's counters are the whole disk's: anything else writing to it
# meanwhile counts too.  The section measures the disk's background write
# rate for 10 s first and prints it with the figures.
#
# Environment:
#	BENCH_QUICK=1		a 400 MiB hog in a 128 MiB cgroup, fusezram
#				mem_limit=64M (zswap's pool stays 1% of RAM,
#				its smallest setting), a 64 MiB corpus
#	BENCH_TIER_DIR=DIR	where the swap file and backing files go, in
#				a directory of the run's own (default
#				build/bench/tier; its file system must take
#				swap files)
#	BENCH_SWAP_WAIT=S	wait for others' swap to go (default 600)
#	TIER_CORPUS=FILE	the corpus (default build/bench/corpus.bin,
#				which bench/run.sh builds); without one,
#				parts 1-3 are skipped
#	TIER_RES=FILE		append the target lines there (bench/run.sh
#				collects them for its summary)
#	TIER_HOG_ROWS="..."	which of the hog's rows run (default
#				"swapfile zswap fusezram fusezram-zstd
#				fusezram-ram fusezram-zstd-uring
#				fusezram-ram-uring"; the -uring rows are
#				skipped on a kernel without FUSE over
#				io_uring);
#				the ratios need swapfile); with
#				TIER_CORPUS=/nonexistent, only the hog runs
#	FUSEZRAM, HOG		the daemon and the hog (./fusezram, build/hog)
#
# Safety: tests/integration/lib.sh's one EXIT/INT/TERM trap undoes every
# setup, in reverse order, on every exit path: the hogs' cgroup emptied
# and removed, swapoff of each swap this script turned on, losetup -d of
# its loop devices (losetup -f --show only), fusermount3 -u, zswap's
# enabled, compressor and max_pool_percent written back as they were (then
# every zswap parameter is compared with the snapshot taken at the start),
# the swap file and backing files removed, then the run's directory.  Every wait is bounded; every
# long command runs under fz_run, so a signal ends it and the trap runs at
# once.  Exit status 0 when the section ran (missed targets included), 77
# when a prerequisite is missing, 1 when it could not run or a cleanup
# step failed.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck source=bench/uring.sh
. "$ROOT/bench/uring.sh"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	HOG_MIB=400 CG_MIB=128 FZ_LIMIT_MIB=64 CORPUS_MIB=64
	T_HOG=900
else
	HOG_MIB=1500 CG_MIB=256 FZ_LIMIT_MIB=240 CORPUS_MIB=256
	T_HOG=1800
fi
CORPUS_BYTES=$((CORPUS_MIB << 20))
SPILL_LIMIT_MIB=$((CORPUS_MIB * 3 / 16))	# 48M for 256 MiB
SWAP_MIB=2048			# the swap file and fusezram's disksize
ZSWAP_POOL_PERCENT=1
TIER_DIR=${BENCH_TIER_DIR:-$ROOT/build/bench/tier}
SWAP_WAIT=${BENCH_SWAP_WAIT:-600}
CORPUS_SRC=${TIER_CORPUS:-$ROOT/build/bench/corpus.bin}
RES=${TIER_RES:-}
HOG_ROWS=" ${TIER_HOG_ROWS:-swapfile zswap fusezram fusezram-zstd fusezram-ram fusezram-zstd-uring fusezram-ram-uring} "
ZSW=/sys/module/zswap/parameters

# Targets.
T_WB_LEFT=0.20			# mem_used_total after / before writeback
T_FILE_RATIO=1.15		# file allocated / compr_data_size
T_DISCARD_LEFT=$((8 << 20))	# allocated in the file after a discard
T_BYTES_VS_FILE=0.5		# disk bytes, fusezram / swap file
T_TIME_VS_FILE=1.3		# time, fusezram / swap file
T_AGE_SECS=15			# writeback_age=3: 80% gone within
T_AGE_POLL=60			# ... polled this long
T_IO=600			# one dd, cmp, writeback

# ---------------------------------------------------------------------------
# Helpers.

# elapsed T0 - seconds since $EPOCHREALTIME was T0, one decimal.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf f "\n", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { if (b == "" || b == "-") print "-"; else printf "%.1f", b / 1048576 }'; }

# mmf FILE INDEX - field INDEX (from 0) of a stat file, read under a time
# limit (a hung daemon must not hang the script); "-" if unreadable.
mmf() {
	local -a v
	read -r -a v <<<"$(timeout 10 cat "$1" 2>/dev/null)" || :
	if [[ ${v[$2]:-} =~ ^[0-9]+$ ]]; then echo "${v[$2]}"; else echo -; fi
}

# ctl VALUE FILE - write VALUE to a control file, bounded.
# shellcheck disable=SC2016 # expanded by sh
ctl() { fz_run "$T_IO" sh -c 'printf "%s\n" "$1" >"$2"' _ "$1" "$2"; }

# settle FILE - wait (at most 10 s) until mem_used_total in FILE stays the
# same for a second: the daemon may compact in the background.
settle() {
	local prev cur n
	prev=$(mmf "$1" 2)
	for ((n = 0; n < 10; n++)); do
		sleep 1
		cur=$(mmf "$1" 2)
		[ "$cur" != "$prev" ] || break
		prev=$cur
	done
}

# alloc FILE - bytes allocated to FILE (0 if it is gone).
alloc() { stat -c '%b %B' -- "$1" 2>/dev/null | awk '{ print $1 * $2 }' || echo 0; }

# vm KEY - a /proc/vmstat counter (0 if the kernel has none).
vm() { awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' /proc/vmstat; }

disk_sectors() { awk '{ print $7 }' "$DISK_STAT"; }

# check NAME VALUE OP LIMIT, check_bool NAME 1|0|- [DETAIL] - print and
# record a target's verdict (SKIP for a value of "-").
CHECKS=()
record() {
	CHECKS+=("$1")
	printf '  %s\n' "$1"
	[ -z "$RES" ] || printf '%s\n' "$1" >>"$RES"
}
check() {
	local res
	if [ "$2" = - ] || [ -z "$2" ]; then
		res=SKIP
	elif awk -v v="$2" -v l="$4" -v o="$3" 'BEGIN {
		exit !((o == "<=" && v <= l) || (o == "<" && v < l) || (o == ">=" && v >= l)) }'; then
		res=PASS
	else
		res=FAIL
	fi
	record "$(printf '%-4s  %s: %s (target %s %s)' "$res" "$1" "$2" "$3" "$4")"
}
check_bool() {
	local res=FAIL
	[ "$2" = 1 ] && res=PASS
	[ "$2" = - ] && res=SKIP
	record "$(printf '%-4s  %s%s' "$res" "$1" "${3:+: $3}")"
}

# readback DEV FILE BYTES - DEV's first BYTES (direct I/O) equal FILE's.
# Sets RB_MSG to cmp's complaint.
readback() {
	RB_MSG=''
	# shellcheck disable=SC2016 # expanded by the inner bash
	if fz_run "$T_IO" bash -c 'set -o pipefail
		dd if="$1" bs=1M count="$(($3 >> 20))" iflag=direct status=none | cmp - "$2"' \
		_ "$1" "$2" "$3" >"$FZ_TMP/cmp.out" 2>&1; then
		return 0
	fi
	RB_MSG=$(head -c 300 "$FZ_TMP/cmp.out")
	return 1
}

# fz_backed NAME OPTIONS - mount fusezram (lz4, OPTIONS) with the backing
# file WORK/NAME (removed at cleanup), a direct-I/O loop device on it.
fz_backed() {
	BF=$WORK/$1
	fz_defer "rm -f -- '$BF'"
	fz_mount -o "comp_algorithm=lz4,backing_dev=$BF,$2"
	fz_loop "$FZ_IMG" --direct-io=on
	[ "$(losetup -n -O DIO "$FZ_LOOP" | tr -d '[:space:]')" = 1 ] ||
		fz_log "WARNING: $FZ_LOOP is not in direct-I/O mode"
}

fz_unbacked() {
	fz_loop_detach
	fz_umount
}

# write_corpus - the corpus onto FZ_LOOP; sets WR_RC, WR_ERR.
write_corpus() {
	WR_RC=0
	fz_run "$T_IO" dd if="$CORPUS" of="$FZ_LOOP" bs=1M oflag=direct status=none \
		2>"$FZ_TMP/dd.err" || WR_RC=$?
	WR_ERR=$(head -c 300 "$FZ_TMP/dd.err")
}

# ---------------------------------------------------------------------------
# zswap: the parameters as found, put back by the cleanup.

declare -A ZSW_ORIG=()
HAVE_ZSWAP=0

zswap_snapshot() {
	local p
	[ -d "$ZSW" ] && [ -w "$ZSW/enabled" ] || return 0
	for p in "$ZSW"/*; do
		ZSW_ORIG[${p##*/}]=$(cat "$p")
	done
	HAVE_ZSWAP=1
	fz_defer zswap_restore
}

# zswap_set NAME VALUE - write a parameter unless it has that value.
zswap_set() {
	[ "$(cat "$ZSW/$1")" = "$2" ] && return 0
	printf '%s' "$2" >"$ZSW/$1"
}

# zswap_restore - the three parameters we write, back as they were; then
# every parameter compared with the snapshot.  Enabled goes last: a pool
# is made only for the compressor it ends up with.
zswap_restore() {
	local p rc=0
	[ "$HAVE_ZSWAP" = 1 ] || return 0
	for p in compressor max_pool_percent enabled; do
		zswap_set "$p" "${ZSW_ORIG[$p]}" 2>/dev/null ||
			{ fz_log "CLEANUP FAILED: zswap $p could not be set back to ${ZSW_ORIG[$p]}"; rc=1; }
	done
	for p in "${!ZSW_ORIG[@]}"; do
		[ "$(cat "$ZSW/$p")" = "${ZSW_ORIG[$p]}" ] ||
			{ fz_log "CLEANUP FAILED: zswap $p is $(cat "$ZSW/$p"), was ${ZSW_ORIG[$p]}"; rc=1; }
	done
	[ "$rc" != 0 ] || fz_log "zswap restored: $(zswap_show)"
	return "$rc"
}

zswap_show() {
	local p s=''
	for p in enabled compressor max_pool_percent; do
		s+="$p=$(cat "$ZSW/$p") "
	done
	echo "${s% }"
}

# zswap_pick - the first of lz4, lzo-rle, lzo the kernel's crypto offers
# (/proc/crypto), else lz4 (the kernel then falls back, and says so).
zswap_pick() {
	local c
	for c in lz4 lzo-rle lzo; do
		if awk -v c="$c" '$1 == "name" && $3 == c { f = 1 } END { exit !f }' /proc/crypto; then
			echo "$c"
			return 0
		fi
	done
	echo lz4
}

# ---------------------------------------------------------------------------
# Parts 1-3: the corpus.

echo "== 4. tier: RAM in front of the disk ($([ "$QUICK" = 1 ] && echo "BENCH_QUICK=1, ")$(uname -r), $(nproc) CPUs, $(awk '/^MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo))"

fz_require_fuse
fz_require_loop
fz_require python3 cmp stat blkdiscard mkswap swapon swapoff fallocate findmnt
mkdir -p "$TIER_DIR"
case $TIER_DIR in
*[[:space:]\'\|]*) fz_fail "BENCH_TIER_DIR '$TIER_DIR' has whitespace, a quote or '|'" ;;
esac
# A directory of this run's own: two runs never share a file.
WORK=$(mktemp -d "$TIER_DIR/run.XXXXXX")
fz_defer "rmdir -- '$WORK'"

CORPUS=''
if [ "$(stat -c %s "$CORPUS_SRC" 2>/dev/null || echo 0)" -ge "$CORPUS_BYTES" ]; then
	CORPUS=$FZ_TMP/corpus
	head -c "$CORPUS_BYTES" "$CORPUS_SRC" >"$CORPUS"
else
	fz_log "no corpus of $CORPUS_MIB MiB at $CORPUS_SRC (bench/run.sh builds it): parts 1-3 skipped"
fi

if [ -n "$CORPUS" ]; then
	echo "-- 1. writeback of an idle corpus: $CORPUS_MIB MiB ($CORPUS_SRC) through a DIO loop device, lz4, backing file in $TIER_DIR"
	fz_backed backing-idle "disksize=1G"
	C=$FZ_CTL
	write_corpus
	[ "$WR_RC" = 0 ] || fz_log "writing the corpus failed: $WR_ERR"
	settle "$C/mm_stat"
	mm0=$(timeout 10 cat "$C/mm_stat")
	used0=$(mmf "$C/mm_stat" 2) compr0=$(mmf "$C/mm_stat" 1)
	t0=$EPOCHREALTIME
	wb_ok=1
	ctl all "$C/idle" || wb_ok=0
	ctl idle "$C/writeback" || wb_ok=0
	wb_secs=$(elapsed "$t0")
	ctl 1 "$C/compact" || :
	settle "$C/mm_stat"
	mm1=$(timeout 10 cat "$C/mm_stat")
	used1=$(mmf "$C/mm_stat" 2) compr1=$(mmf "$C/mm_stat" 1)
	bd1=$(timeout 10 cat "$C/bd_stat")
	bdpages=$(mmf "$C/bd_stat" 0)
	fa=$(alloc "$BF")
	echo "  mm_stat before writeback: $mm0"
	echo "  mm_stat after (compacted): $mm1"
	echo "  bd_stat: $bd1 (pages in the file, read, written); writeback took $wb_secs s"
	printf '  %-44s %14s %10s\n' "" bytes MiB
	printf '  %-44s %14s %10s\n' "mem_used_total before writeback" "$used0" "$(mib "$used0")"
	printf '  %-44s %14s %10s\n' "mem_used_total after" "$used1" "$(mib "$used1")"
	printf '  %-44s %14s %10s\n' "compr_data_size before writeback" "$compr0" "$(mib "$compr0")"
	printf '  %-44s %14s %10s\n' "compr_data_size after (what stays in RAM)" "$compr1" "$(mib "$compr1")"
	printf '  %-44s %14s %10s\n' "backing file allocated (stat %b x %B)" "$fa" "$(mib "$fa")"
	printf '  %-44s %14s %10s\n' "zram's backing device: 4 KiB a page" "$((${bdpages/-/0} * 4096))" "$(mib $((${bdpages/-/0} * 4096)))"
	echo "  file / compr_data_size $(div "$fa" "$compr0"); zram's 4 KiB pages / compr_data_size $(div $((${bdpages/-/0} * 4096)) "$compr0")"
	[ "$wb_ok" = 1 ] || check_bool "echo idle > writeback" 0 "the write failed"
	check "written back: mem_used_total after / before" "$(div "$used1" "$used0")" "<" "$T_WB_LEFT"
	check "written back: file allocated / compr_data_size" "$(div "$fa" "$compr0")" "<=" "$T_FILE_RATIO"
	if readback "$FZ_LOOP" "$CORPUS" "$CORPUS_BYTES"; then
		check_bool "written back: every byte reads back" 1 "bd_stat then $(timeout 10 cat "$C/bd_stat")"
	else
		check_bool "written back: every byte reads back" 0 "$RB_MSG"
	fi
	fz_run "$T_IO" blkdiscard "$FZ_LOOP" || fz_log "blkdiscard $FZ_LOOP failed"
	t0=$EPOCHREALTIME
	# shellcheck disable=SC2016 # expanded by eval, at each poll
	fz_wait_until 30 eval '[ "$(alloc "$BF")" -lt $T_DISCARD_LEFT ]' || :
	dsecs=$(elapsed "$t0")
	fa2=$(alloc "$BF")
	echo "  after blkdiscard of everything: bd_stat $(timeout 10 cat "$C/bd_stat"); file allocated $fa2 bytes ($(mib "$fa2") MiB) after $dsecs s"
	check "discarded: bytes allocated in the file" "$fa2" "<" "$T_DISCARD_LEFT"
	fz_unbacked

	echo "-- 1b. churn: the corpus written back, then a third of its pages rewritten at random and written back, three times; compaction"
	fz_backed backing-churn "disksize=1G"
	C=$FZ_CTL
	cp -- "$CORPUS" "$FZ_TMP/churn.ref"
	write_corpus
	if ! ctl all "$C/idle" || ! ctl idle "$C/writeback"; then
		fz_log "writeback of the corpus failed"
	fi
	dense=$(alloc "$BF")
	churn_ok=1
	for round in 1 2 3; do
		fz_run "$T_IO" python3 "$ROOT/tests/integration/pages.py" rewrite \
			"$FZ_LOOP" "$FZ_TMP/churn.ref" "$round" || churn_ok=0
		if ! ctl all "$C/idle" || ! ctl idle "$C/writeback"; then
			churn_ok=0
		fi
	done
	churned=$(alloc "$BF")
	# The maintainer compacts on its own once the waste is a quarter of
	# the file (every 2 s, 64 segments a pass); wait until the file stops
	# shrinking (two looks 4 s apart alike, 60 s at most).
	prev=-1 auto=$churned
	for ((i = 0; i < 15 && auto != prev; i++)); do
		prev=$auto
		sleep 4
		auto=$(alloc "$BF")
	done
	ctl 1 "$C/compact" || :
	sleep 5				# the freed segments punched: 2 periods
	compacted=$(alloc "$BF")
	# shellcheck disable=SC2016 # awk's fields
	echo "  $(timeout 10 awk '/segments under half live/ { l = $0; getline; print l " " $0 }' "$C/summary" | tr -s ' ')"
	printf '  %-52s %14s %10s %8s\n' "backing file allocated" bytes MiB "x dense"
	printf '  %-52s %14s %10s %8s\n' "after the first writeback (dense)" "$dense" "$(mib "$dense")" 1.000
	printf '  %-52s %14s %10s %8s\n' "after three rounds of random rewrites" "$churned" "$(mib "$churned")" "$(div "$churned" "$dense")"
	printf '  %-52s %14s %10s %8s\n' "then compacted by the maintainer on its own" "$auto" "$(mib "$auto")" "$(div "$auto" "$dense")"
	printf '  %-52s %14s %10s %8s\n' "then after echo 1 > compact" "$compacted" "$(mib "$compacted")" "$(div "$compacted" "$dense")"
	echo "  (no target: the issue asks that churn not grow the file without bound)"
	RB_MSG=""
	if [ "$churn_ok" = 1 ] && readback "$FZ_LOOP" "$FZ_TMP/churn.ref" "$CORPUS_BYTES"; then
		check_bool "churn and compaction: every byte reads back" 1
	else
		check_bool "churn and compaction: every byte reads back" 0 "${RB_MSG:-a rewrite or a writeback failed}"
	fi
	rm -f -- "$FZ_TMP/churn.ref"
	fz_unbacked

	echo "-- 2. spill: $CORPUS_MIB MiB through mem_limit=${SPILL_LIMIT_MIB}M with a backing file"
	fz_backed backing-spill "disksize=1G,mem_limit=${SPILL_LIMIT_MIB}M"
	t0=$EPOCHREALTIME
	write_corpus
	secs=$(elapsed "$t0")
	smax=$(mmf "$FZ_CTL/mm_stat" 4)
	echo "  dd: status $WR_RC in $secs s${WR_ERR:+: $WR_ERR}"
	echo "  mm_stat $(timeout 10 cat "$FZ_CTL/mm_stat"); bd_stat $(timeout 10 cat "$FZ_CTL/bd_stat"); io_stat $(timeout 10 cat "$FZ_CTL/io_stat")"
	check_bool "spill: no write error" "$([ "$WR_RC" = 0 ] && echo 1 || echo 0)" "${WR_ERR:-dd status $WR_RC}"
	check "spill: mem_used_max (bytes)" "$smax" "<=" $((SPILL_LIMIT_MIB << 20))
	if [ "$WR_RC" != 0 ]; then
		check_bool "spill: every byte reads back" - "the write failed"
	elif readback "$FZ_LOOP" "$CORPUS" "$CORPUS_BYTES"; then
		check_bool "spill: every byte reads back" 1
	else
		check_bool "spill: every byte reads back" 0 "$RB_MSG"
	fi
	fz_unbacked

	echo "-- 3. writeback_age=3: the corpus written, then left alone"
	fz_backed backing-age "disksize=1G,writeback_age=3"
	write_corpus
	t0=$EPOCHREALTIME
	a0=$(mmf "$FZ_CTL/mm_stat" 2)
	amax=$(mmf "$FZ_CTL/mm_stat" 4)
	asecs=-
	for ((i = 0; i <= T_AGE_POLL * 2; i++)); do
		a=$(mmf "$FZ_CTL/mm_stat" 2)
		if [ "$a" != - ] && [ "$a0" != - ] && [ "$a" -le $((a0 / 5)) ]; then
			asecs=$(elapsed "$t0")
			break
		fi
		sleep 0.5
	done
	echo "  mem_used_total $a0 when the write ended (peak $amax), $a after $(elapsed "$t0") s; bd_stat $(timeout 10 cat "$FZ_CTL/bd_stat")"
	[ "$WR_RC" = 0 ] || check_bool "writeback_age: writing the corpus" 0 "$WR_ERR"
	if [ "$asecs" = - ]; then
		# Not reached is a miss, not a figure that could not be had.
		check_bool "writeback_age=3: seconds until mem_used_total falls by 80% (target <= $T_AGE_SECS)" 0 \
			"it did not within $T_AGE_POLL s"
	else
		check "writeback_age=3: seconds until mem_used_total falls by 80%" "$asecs" "<=" "$T_AGE_SECS"
	fi
	fz_unbacked
	echo
fi

# ---------------------------------------------------------------------------
# Part 4: the hog.

echo "-- 4. the hog: $HOG_MIB MiB (2 passes, every word verified) in a $CG_MIB MiB memory cgroup"
[ -x "$HOG" ] || fz_skip "$HOG not built (make build/hog)"

# The disk under TIER_DIR, by its block device's sysfs name.
src=$(findmnt -n -o SOURCE --target "$TIER_DIR" | head -n 1)
fstype=$(findmnt -n -o FSTYPE --target "$TIER_DIR" | head -n 1)
DISK=$(basename "$(readlink -f "$src")")
DISK_STAT=/sys/class/block/$DISK/stat
[ -r "$DISK_STAT" ] || fz_skip "$TIER_DIR is on $src ($fstype), which has no $DISK_STAT: no disk to count"
echo "  disk: $TIER_DIR is on $src ($fstype); bytes written = sectors written (field 7 of $DISK_STAT) x 512"

SWAPFILE=$WORK/swapfile
fz_defer "rm -f -- '$SWAPFILE'"
rm -f -- "$SWAPFILE"
fz_run 300 fallocate -l "${SWAP_MIB}M" "$SWAPFILE" ||
	fz_run 600 dd if=/dev/zero of="$SWAPFILE" bs=1M count="$SWAP_MIB" status=none ||
	fz_fail "cannot make a ${SWAP_MIB} MiB swap file at $SWAPFILE"
chmod 600 "$SWAPFILE"
fz_run 120 mkswap "$SWAPFILE" >"$FZ_TMP/mkswap" 2>&1 || fz_fail "mkswap $SWAPFILE: $(cat "$FZ_TMP/mkswap")"
fz_run 120 sync || :

# others_swap [OURS] - the swap devices on other than OURS.
others_swap() { awk -v d="${1:-}" 'NR > 1 && $1 != d { printf "%s ", $1 }' /proc/swaps; }

# Others' swap would take part of the pages: wait for it to go.
others=$(others_swap)
[ -z "$others" ] || fz_log "waiting up to ${SWAP_WAIT}s for others' swap to go: $others"
end=$((SECONDS + SWAP_WAIT))
while [ -n "$others" ]; do
	if [ "$SECONDS" -ge "$end" ]; then
		fz_log "WARNING: someone else's swap is still on after ${SWAP_WAIT}s ($others): the figures are less reliable"
		break
	fi
	sleep 2
	others=$(others_swap)
done

zswap_snapshot
[ "$HAVE_ZSWAP" = 1 ] && fz_log "zswap as found: $(zswap_show)"

# The disk's background write rate, for scale.
b0=$(disk_sectors)
sleep 10
BG_MIBS=$(awk -v s=$(($(disk_sectors) - b0)) 'BEGIN { printf "%.2f", s * 512 / 10 / 1048576 }')
echo "  background: $BG_MIBS MiB/s written to $DISK over 10 s before the runs"

declare -A H_LOAD H_OTHERS H_SECS H_BYTES H_OWN H_PSWPOUT H_ZSWPOUT H_ZSWPWB H_VERDICT H_NOTE
ROWS=()

# wbytes PID - write_bytes of /proc/PID/io: what the process sent to
# storage ("-" without a PID).
wbytes() {
	[ -n "${1:-}" ] || { echo -; return; }
	awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"
}

# hog_run ROW SWAPDEV [PID] - the hog in a fresh cgroup, with the disk and vmstat
# counters around it.  The swap is set up by the caller.  The bytes of
# its own: PID's write_bytes (the daemon writing its backing file), else
# pswpout (pages written to swap: the swap file, when it is the only swap
# on; others' swap seen at the end is named in the row).
hog_run() {
	local row=$1 swapdev=$2 pid=${3:-} s0 p0 z0 w0 o0 t0 rc=0 st b
	ROWS+=("$row")
	fz_cgroup "$((CG_MIB << 20))"
	fz_run 120 sync || :
	s0=$(disk_sectors) p0=$(vm pswpout) z0=$(vm zswpout) w0=$(vm zswpwb)
	o0=$(wbytes "$pid")
	t0=$EPOCHREALTIME
	fz_run_hogs "$T_HOG" 1 "$HOG_MIB" "$FZ_TMP/$row" || rc=$?
	H_SECS[$row]=$(elapsed "$t0")
	H_BYTES[$row]=$((($(disk_sectors) - s0) * 512))
	H_LOAD[$row]=$(cut -d ' ' -f 1 /proc/loadavg)
	H_OTHERS[$row]=$(others_swap "$swapdev")
	H_PSWPOUT[$row]=$((($(vm pswpout) - p0) * 4096))
	if [ -n "$pid" ]; then
		H_OWN[$row]=$(($(wbytes "$pid") - o0))
	else
		H_OWN[$row]=${H_PSWPOUT[$row]}
	fi
	H_ZSWPOUT[$row]=$((($(vm zswpout) - z0) * 4096))
	H_ZSWPWB[$row]=$((($(vm zswpwb) - w0) * 4096))
	fz__undo_match cgroup "$FZ_CGROUP"
	st=$(cat "$FZ_TMP/$row.1.rc" 2>/dev/null) || st='?'
	b=$(sed -n 's/.* \([0-9][0-9]*\) bad words$/\1/p' "$FZ_TMP/$row.1" 2>/dev/null)
	if [ "$rc" = 124 ]; then
		H_VERDICT[$row]="did not finish in ${T_HOG}s"
	elif [ "$st" = 0 ] && [ "${b:-}" = 0 ]; then
		H_VERDICT[$row]="0 bad words"
	else
		H_VERDICT[$row]="status $st, ${b:-?} bad words: $(head -c 200 "$FZ_TMP/$row.1" 2>/dev/null)"
	fi
	check_bool "hog on $row: every word verified" "$([ "${H_VERDICT[$row]}" = "0 bad words" ] && echo 1 || echo 0)" "${H_VERDICT[$row]}"
	fz_log "$row: ${H_SECS[$row]} s, $(mib "${H_BYTES[$row]}") MiB written to $DISK, ${H_VERDICT[$row]}"
}

# row NAME - is NAME one of the hog's rows to run (TIER_HOG_ROWS)?
row() { [[ $HOG_ROWS == *" $1 "* ]]; }

# (a) the swap file alone.
[ "$HAVE_ZSWAP" = 0 ] || zswap_set enabled N
if row swapfile; then
	fz_swapon "$SWAPFILE" -p 32767
	hog_run swapfile "$SWAPFILE"
	fz_swapoff "$SWAPFILE"
fi

# (b) zswap in front of it.
ZSW_USED=''
if ! row zswap; then
	:
elif [ "$HAVE_ZSWAP" = 1 ]; then
	want=$(zswap_pick)
	zswap_set compressor "$want" || fz_log "zswap: compressor=$want refused"
	zswap_set max_pool_percent "$ZSWAP_POOL_PERCENT"
	zswap_set enabled Y || fz_log "zswap: enabled=Y refused"
	ZSW_USED=$(zswap_show)
	if [ "$(cat "$ZSW/enabled")" = Y ]; then
		[ "$(cat "$ZSW/compressor")" = lz4 ] ||
			H_NOTE[zswap]="the kernel's crypto offers no lz4: zswap used $(cat "$ZSW/compressor") instead"
		fz_swapon "$SWAPFILE" -p 32767
		hog_run zswap "$SWAPFILE"
		fz_swapoff "$SWAPFILE"
	else
		fz_log "zswap could not be enabled ($ZSW_USED): no zswap row"
	fi
	zswap_set enabled N
else
	fz_log "no zswap ($ZSW): no zswap row"
fi

# (c) fusezram with a backing file next to the swap file; (d) the same
# with zstd level 1 as the secondary algorithm, which pages spilled ahead
# of the writes go to the file in (fusezram(8), mem_limit); (e) fusezram
# with neither a file nor a limit: what the FUSE path costs alone.  On
# /dev/fuse, and (d) and (e) on io_uring too (-uring): the fuse module's
# enable_uring is set for the row (bench/uring.sh) where the kernel has
# it; without it, /dev/fuse rows run as they are and -uring rows not.
declare -A FZ_MM FZ_BD FZ_IO FZ_FA FZ_SUM FZ_TR
declare -A FZ_OPTS=([fusezram]='' [fusezram-zstd]=',recomp_algorithm=zstd:1')
FZ_OPTS[fusezram-zstd-uring]=${FZ_OPTS[fusezram-zstd]}
URING_TMP=$FZ_TMP
fz_defer uring_window_close
for r in fusezram fusezram-zstd fusezram-ram fusezram-zstd-uring fusezram-ram-uring; do
	row "$r" || continue
	want=0
	[[ $r == *-uring ]] && want=1
	if [ -z "$(uring_param)" ]; then
		[ "$want" = 0 ] || { fz_log "no $URING_PARAM (no FUSE over io_uring): no $r row"; continue; }
	elif ! uring_window_open "$want"; then
		fz_log "$r: $URING_ERR: no $r row"
		continue
	fi
	if [[ $r == fusezram-ram* ]]; then
		fz_mount -o "comp_algorithm=lz4,disksize=${SWAP_MIB}M"
		fz_loop "$FZ_IMG" --direct-io=on
		BF=/dev/null
	else
		fz_backed "backing-$r" "disksize=${SWAP_MIB}M,mem_limit=${FZ_LIMIT_MIB}M${FZ_OPTS[$r]:-}"
	fi
	fz_run 120 mkswap "$FZ_LOOP" >"$FZ_TMP/mkswap" 2>&1 || fz_fail "mkswap $FZ_LOOP: $(cat "$FZ_TMP/mkswap")"
	fz_swapon "$FZ_LOOP" -p 32767 --discard
	hog_run "$r" "$FZ_LOOP" "$FZ_PID"
	FZ_MM[$r]=$(timeout 10 cat "$FZ_CTL/mm_stat") FZ_BD[$r]=$(timeout 10 cat "$FZ_CTL/bd_stat")
	FZ_IO[$r]=$(timeout 10 cat "$FZ_CTL/io_stat")
	FZ_FA[$r]=$(alloc "$BF")
	FZ_SUM[$r]=$(timeout 10 awk '/^Backing file:/ { on = 1 } on && /^[A-Z]/ && !/^Backing/ { on = 0 } on' "$FZ_CTL/summary")
	FZ_TR[$r]=$(timeout 10 sed -n 's/^Transport: *//p' "$FZ_CTL/summary" || :)
	transport=/dev/fuse
	[ "$want" = 0 ] || transport=io_uring
	case $want:${FZ_TR[$r]} in
	1:io_uring,* | 0:/dev/fuse*) check_bool "hog on $r: served on $transport" 1 "${FZ_TR[$r]}" ;;
	*) check_bool "hog on $r: served on $transport" 0 "*** NOT ON $transport: ${FZ_TR[$r]:-no Transport line} ***" ;;
	esac
	fz_swapoff "$FZ_LOOP"
	fz_unbacked
	uring_window_close
done

echo "  (a) swapfile: ${SWAP_MIB} MiB swap file ($SWAPFILE), swapon -p 32767"
echo "  (b) zswap: ${ZSW_USED:-none}, in front of the same swap file${H_NOTE[zswap]:+ (${H_NOTE[zswap]})}"
echo "  (c) fusezram: disksize=${SWAP_MIB}M, mem_limit=${FZ_LIMIT_MIB}M, lz4, backing file in $TIER_DIR, DIO loop device, swapon --discard -p 32767"
echo "  (d) fusezram-zstd: the same, with recomp_algorithm=zstd:1 (pages spilled ahead go to the file in zstd)"
echo "  (e) fusezram-ram: the same device with no backing file and no mem_limit (the FUSE path alone; no target)"
echo "  (c)-(e) on /dev/fuse; fusezram-zstd-uring, fusezram-ram-uring: (d) and (e) on FUSE over io_uring"
printf '  %-19s %8s %10s %10s %12s %12s %12s  %s\n' config "time s" "disk MiB" "own MiB" "pswpout MiB" "zswpout MiB" "zswpwb MiB" hog
for r in "${ROWS[@]}"; do
	printf '  %-19s %8s %10s %10s %12s %12s %12s  %s\n' "$r" "${H_SECS[$r]}" "$(mib "${H_BYTES[$r]}")" \
		"$(mib "${H_OWN[$r]}")" "$(mib "${H_PSWPOUT[$r]}")" "$(mib "${H_ZSWPOUT[$r]}")" \
		"$(mib "${H_ZSWPWB[$r]}")" "${H_VERDICT[$r]}; load ${H_LOAD[$r]}${H_OTHERS[$r]:+; ALSO ON: ${H_OTHERS[$r]}}"
done
echo "  disk MiB: written to $DISK during the hog (all of the disk's writes: background $BG_MIBS MiB/s)"
echo "  own MiB: swap file: pswpout; fusezram: the daemon's write_bytes (/proc/PID/io), its backing file"
echo "  pswpout: pages written to any swap (for fusezram: to the loop device, not the disk)"
for r in fusezram fusezram-zstd fusezram-zstd-uring; do
	[ -n "${FZ_MM[$r]:-}" ] || continue
	echo "  $r at the end: mm_stat ${FZ_MM[$r]}; bd_stat ${FZ_BD[$r]}; io_stat ${FZ_IO[$r]}; backing file ${FZ_FA[$r]} bytes allocated"
	printf '    %s\n' "${FZ_SUM[$r]}"
done
for r in fusezram fusezram-zstd fusezram-ram fusezram-zstd-uring fusezram-ram-uring; do
	[ -z "${FZ_TR[$r]:-}" ] || echo "  $r transport: ${FZ_TR[$r]}"
done
for r in zswap fusezram fusezram-zstd fusezram-ram fusezram-zstd-uring fusezram-ram-uring; do
	[ -n "${H_SECS[$r]:-}" ] || continue
	echo "  $r / swapfile: time $(div "${H_SECS[$r]}" "${H_SECS[swapfile]}" %.2f), disk bytes $(div "${H_BYTES[$r]}" "${H_BYTES[swapfile]}" %.2f), own bytes $(div "${H_OWN[$r]}" "${H_OWN[swapfile]}" %.2f)"
done
for r in "${ROWS[@]}"; do
	[ -z "$others${H_OTHERS[$r]}" ] ||
		check_bool "hog on $r: its swap the only swap on" 0 "also on: ${others:-${H_OTHERS[$r]}}"
done
for r in fusezram fusezram-zstd fusezram-zstd-uring; do
	row "$r" || continue
	[ -n "${H_SECS[$r]:-}" ] || continue	# a -uring row not run
	check "hog: $r / swap file, disk bytes written" "$(div "${H_BYTES[$r]:-}" "${H_BYTES[swapfile]:-}")" "<=" "$T_BYTES_VS_FILE"
	check "hog: $r / swap file, time" "$(div "${H_SECS[$r]:-}" "${H_SECS[swapfile]:-}")" "<=" "$T_TIME_VS_FILE"
done
echo

if [ -z "$RES" ]; then
	echo "== tier summary"
	printf '  %s\n' "${CHECKS[@]}"
fi
