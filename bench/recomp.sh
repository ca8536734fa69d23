#!/bin/bash
#
# bench/recomp.sh - the recompression section of `make bench` (issue 14,
# item 5): idle pages recompressed from lz4 to zstd.  bench/run.sh runs it
# as its section 5; it runs alone too (`bash bench/recomp.sh`, root).  On
# one machine, in one go, each on a fresh mount (disksize=1G,
# comp_algorithm=lz4, recomp_algorithm=zstd) through a direct-I/O loop
# device:
#
#  1. By hand: the bench corpus (build/bench/corpus.bin, 256 MiB; run.sh
#     passes its copy) written with recompress_age=0 (no policy); fio
#     random read of the lz4 pages; `echo all > control/idle; echo
#     type=idle > control/recompress`; mem_used_total before and after
#     (after the daemon's own compaction has settled, no compaction by
#     hand), debug_stat; every byte read back (cmp); fio random read of
#     the recompressed pages.  The fio job is the bench's other randread:
#     libaio, direct=1, iodepth=32, numjobs=2, bs=4k over the corpus,
#     BENCH_FIO_RUNTIME seconds.  Then a compaction by hand, for scale.
#  2. The hot region without the policy: recompress_age=0, the corpus
#     written, then a hot region of HOT_MIB after it; fio random read of
#     the hot region alone (the same job, offset and size of the region)
#     for T_AGE_SECS seconds right after the write.
#  3. The policy: the same with recompress_age=3, and the same fio on the
#     hot region started right after the write, while mem_used_total is
#     polled every 0.5 s (at most T_AGE_POLL s): seconds until the corpus'
#     saving of part 1 is reached on its own; the hot region's IOPS
#     against part 2's; every byte of the corpus and the region read back.
#     Parts 2 and 3 alternate RC_ROUNDS times (3; quick 1), and their
#     medians are compared: one mount's IOPS differ from the next's by
#     more than the policy's share.
#
# Targets (reported, never asserted; each line says PASS, FAIL or SKIP):
# by hand, mem_used_total after / before at most 0.88 and every byte
# identical; with recompress_age=3, part 1's saving (at least
# T_SAVE_SHARE of it: mem_used_total jitters by the allocator's spare
# pages) within 15 s, while the hot region's random read keeps at least
# 0.9x the IOPS of part 2; every byte identical.  Random-read IOPS of
# recompressed against lz4 pages are printed, with no target (zstd
# decompresses about four times slower on one core).
#
# Environment:
#	BENCH_QUICK=1		a 64 MiB corpus, 3 s fio runs in part 1,
#				an 8 MiB hot region (parts 2 and 3 keep
#				their 15 s: the target is for 15 s)
#	BENCH_FIO_RUNTIME=S	seconds of part 1's fio runs (default 6,
#				quick 3)
#	RC_ROUNDS=N		rounds of parts 2 and 3 (3; quick 1)
#	RC_CORPUS=FILE		the corpus (default build/bench/corpus.bin,
#				which bench/run.sh builds); without one the
#				section is skipped (exit 77)
#	RC_RES=FILE		append the target lines there (bench/run.sh
#				collects them for its summary)
#	FUSEZRAM		the daemon (./fusezram)
#
# Safety: tests/integration/lib.sh's one EXIT/INT/TERM trap undoes every
# setup, in reverse order, on every exit path: losetup -d of its loop
# devices (losetup -f --show only), fusermount3 -u of its mounts (the
# daemons reaped, killed if they linger), its temporary directory
# removed.  Nothing here swaps.  Every command that reads or writes
# through a mount runs under fz_run (bounded; a signal ends it and the
# trap runs at once), and every poll is bounded.  Exit status 0 when the
# section ran (missed targets included), 77 when a prerequisite is
# missing, 1 when it could not run or a cleanup step failed.
#
# TODO: the helpers div, mib, mmf, ctl, settle, check and readback repeat
# bench/tier.sh's; a bench/lib.sh shared by both would hold them once.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	CORPUS_MIB=64 HOT_MIB=8 RC_ROUNDS=${RC_ROUNDS:-1}
	FIO_RUNTIME=${BENCH_FIO_RUNTIME:-3}
else
	CORPUS_MIB=256 HOT_MIB=32 RC_ROUNDS=${RC_ROUNDS:-3}
	FIO_RUNTIME=${BENCH_FIO_RUNTIME:-6}
fi
CORPUS_BYTES=$((CORPUS_MIB << 20))
HOT_BYTES=$((HOT_MIB << 20))
CORPUS_SRC=${RC_CORPUS:-$ROOT/build/bench/corpus.bin}
RES=${RC_RES:-}
OPTS="disksize=1G,comp_algorithm=lz4,recomp_algorithm=zstd"

# Targets.
T_RC_LEFT=0.88			# mem_used_total after / before recompression
T_AGE=3				# recompress_age of part 3
T_AGE_SECS=15			# part 1's saving within, on its own
T_AGE_POLL=60			# ... polled this long
T_SAVE_SHARE=0.95		# "part 1's saving": at least this share of it
T_HOT_IOPS=0.9			# hot region IOPS, policy / no policy
T_IO=600			# one dd, cmp, recompress

# ---------------------------------------------------------------------------
# Helpers.

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

# debug_line FILE - control/debug_stat's recompression lines on one line.
debug_line() { timeout 10 grep -E '^(#|recompressed)' "$1" 2>/dev/null | paste -sd';' - || echo -; }

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

# readback DEV FILE OFFSET BYTES - BYTES of DEV from OFFSET (direct I/O,
# both multiples of 1 MiB) equal FILE's.  Sets RB_MSG to cmp's complaint.
readback() {
	RB_MSG=''
	# shellcheck disable=SC2016 # expanded by the inner bash
	if fz_run "$T_IO" bash -c 'set -o pipefail
		dd if="$1" bs=1M skip="$(($3 >> 20))" count="$(($4 >> 20))" iflag=direct status=none |
		cmp - "$2"' _ "$1" "$2" "$3" "$4" >"$FZ_TMP/cmp.out" 2>&1; then
		return 0
	fi
	RB_MSG=$(head -c 300 "$FZ_TMP/cmp.out")
	return 1
}

# fio_start DEV OFFSET SIZE SECS - start the bench's randread job
# (bench/run.sh's fio_run: libaio, direct=1, iodepth=32, numjobs=2,
# bs=4k) over SIZE bytes of DEV from OFFSET for SECS, in the background,
# bounded, its pid in FIO_PID and in lib.sh's FZ_BG (the trap ends it).
fio_start() {
	timeout -k 10 $(($4 + 90)) fio --name=randread --filename="$1" --ioengine=libaio \
		--direct=1 --iodepth=32 --numjobs=2 --bs=4k --rw=randread \
		--offset="$2" --size="$3" --time_based --runtime="$4" \
		--group_reporting --output-format=json </dev/null >"$FZ_TMP/fio.json" 2>"$FZ_TMP/fio.err" &
	FIO_PID=$!
	FZ_BG+=("$FIO_PID")
}

# fio_wait - wait for fio_start's fio: FIO_IOPS, or "-" if it failed.
fio_wait() {
	local rc=0 p
	local -a keep=()
	wait "$FIO_PID" || rc=$?
	for p in "${FZ_BG[@]}"; do
		[ "$p" = "$FIO_PID" ] || keep+=("$p")
	done
	FZ_BG=("${keep[@]}")
	FIO_IOPS=-
	if [ "$rc" != 0 ] || [ "$(jq '.jobs[0].error' "$FZ_TMP/fio.json" 2>/dev/null)" != 0 ]; then
		fz_log "fio failed (status $rc): $(head -c 300 "$FZ_TMP/fio.err")"
		return 0
	fi
	FIO_IOPS=$(jq -r '.jobs[0].read.iops | floor' "$FZ_TMP/fio.json")
}

# fio_randread DEV OFFSET SIZE SECS - fio_start and fio_wait.
fio_randread() {
	fio_start "$@"
	fio_wait
}

# rc_mount NAME AGE - mount fusezram (OPTS, recompress_age=AGE) with a
# direct-I/O loop device: FZ_MNT, FZ_CTL, FZ_LOOP.
rc_mount() {
	fz_mount -o "$OPTS,recompress_age=$2"
	fz_loop "$FZ_IMG" --direct-io=on
	[ "$(losetup -n -O DIO "$FZ_LOOP" | tr -d '[:space:]')" = 1 ] ||
		fz_log "WARNING: $FZ_LOOP is not in direct-I/O mode"
}

rc_unmount() {
	fz_loop_detach
	fz_umount
}

# write_at FILE OFFSET - FILE onto FZ_LOOP at OFFSET (a multiple of 1 MiB);
# sets WR_RC, WR_ERR.
write_at() {
	WR_RC=0
	fz_run "$T_IO" dd if="$1" of="$FZ_LOOP" bs=1M seek="$(($2 >> 20))" oflag=direct \
		conv=notrunc status=none 2>"$FZ_TMP/dd.err" || WR_RC=$?
	WR_ERR=$(head -c 300 "$FZ_TMP/dd.err")
	[ "$WR_RC" = 0 ] || fz_log "writing $1 at $2 failed: $WR_ERR"
}

# ---------------------------------------------------------------------------

echo "== 5. recompression: idle lz4 pages to zstd ($([ "$QUICK" = 1 ] && echo "BENCH_QUICK=1, ")$(uname -r), $(nproc) CPUs)"

fz_require_fuse
fz_require_loop
fz_require fio jq cmp
help=$("$FUSEZRAM" -h 2>&1) || :
[[ $help == *recomp_algorithm* ]] || fz_skip "$FUSEZRAM has no recomp_algorithm option"
[ "$(stat -c %s "$CORPUS_SRC" 2>/dev/null || echo 0)" -ge "$CORPUS_BYTES" ] ||
	fz_skip "no corpus of $CORPUS_MIB MiB at $CORPUS_SRC (bench/run.sh builds it)"
CORPUS=$FZ_TMP/corpus
head -c "$CORPUS_BYTES" "$CORPUS_SRC" >"$CORPUS"
# The hot region: the corpus' last HOT_MIB, so it compresses as the rest.
HOT=$FZ_TMP/hot
tail -c "$HOT_BYTES" "$CORPUS" >"$HOT"

echo "-- 1. by hand: $CORPUS_MIB MiB ($CORPUS_SRC), $OPTS, recompress_age=0"
rc_mount manual 0
C=$FZ_CTL
write_at "$CORPUS" 0
settle "$C/mm_stat"
mm0=$(timeout 10 cat "$C/mm_stat")
used0=$(mmf "$C/mm_stat" 2) compr0=$(mmf "$C/mm_stat" 1)
fio_randread "$FZ_LOOP" 0 "$CORPUS_BYTES" "$FIO_RUNTIME"
iops_lz4=$FIO_IOPS
t0=$EPOCHREALTIME
rc_ok=1
ctl all "$C/idle" || rc_ok=0
ctl type=idle "$C/recompress" || rc_ok=0
rc_secs=$(elapsed "$t0")
settle "$C/mm_stat"
mm1=$(timeout 10 cat "$C/mm_stat")
used1=$(mmf "$C/mm_stat" 2) compr1=$(mmf "$C/mm_stat" 1)
dbg1=$(debug_line "$C/debug_stat")
ok=1
readback "$FZ_LOOP" "$CORPUS" 0 "$CORPUS_BYTES" || ok=0
fio_randread "$FZ_LOOP" 0 "$CORPUS_BYTES" "$FIO_RUNTIME"
iops_zstd=$FIO_IOPS
ctl 1 "$C/compact" || :
settle "$C/mm_stat"
used2=$(mmf "$C/mm_stat" 2)
echo "  mm_stat before recompression: $mm0"
echo "  mm_stat after: $mm1"
echo "  debug_stat after: $dbg1; recompression took $rc_secs s"
printf '  %-48s %14s %10s\n' "" bytes MiB
printf '  %-48s %14s %10s\n' "mem_used_total, lz4" "$used0" "$(mib "$used0")"
printf '  %-48s %14s %10s\n' "mem_used_total, recompressed" "$used1" "$(mib "$used1")"
printf '  %-48s %14s %10s\n' "mem_used_total, then compacted by hand" "$used2" "$(mib "$used2")"
printf '  %-48s %14s %10s\n' "compr_data_size, lz4" "$compr0" "$(mib "$compr0")"
printf '  %-48s %14s %10s\n' "compr_data_size, recompressed" "$compr1" "$(mib "$compr1")"
echo "  randread (fio libaio direct=1 iodepth=32 numjobs=2 bs=4k, ${FIO_RUNTIME}s over the corpus): lz4 pages $iops_lz4 IOPS, recompressed pages $iops_zstd IOPS, ratio $(div "$iops_zstd" "$iops_lz4" %.2f)"
[ "$WR_RC" = 0 ] || check_bool "by hand: writing the corpus" 0 "$WR_ERR"
[ "$rc_ok" = 1 ] || check_bool "echo all > idle; echo type=idle > recompress" 0 "a write failed"
check "recompressed by hand: mem_used_total after / before" "$(div "$used1" "$used0")" "<=" "$T_RC_LEFT"
if [ "$ok" = 1 ]; then
	check_bool "recompressed by hand: every byte reads back" 1
else
	check_bool "recompressed by hand: every byte reads back" 0 "$RB_MSG"
fi
SAVED=-
[ "$used0" = - ] || [ "$used1" = - ] || SAVED=$((used0 - used1))
rc_unmount

# median V... - the middle value (the lower middle of an even count);
# "-" if any is "-".
median() {
	local v
	for v in "$@"; do [ "$v" != - ] || { echo -; return; }; done
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# hot_off - part 2 once: the corpus and the hot region written with no
# policy, fio on the hot region; its IOPS in HOT_OFF.
hot_off() {
	rc_mount hot-off 0
	write_at "$CORPUS" 0
	write_at "$HOT" "$CORPUS_BYTES"
	fio_randread "$FZ_LOOP" "$CORPUS_BYTES" "$HOT_BYTES" "$T_AGE_SECS"
	HOT_OFF=$FIO_IOPS
	echo "  round $1, no policy: hot region $HOT_OFF IOPS; mm_stat $(timeout 10 cat "$FZ_CTL/mm_stat")"
	rc_unmount
}

# hot_on - part 3 once: the same with recompress_age=$T_AGE; the seconds
# to part 1's saving in HOT_SECS ("-" if not reached), the IOPS in
# HOT_ON, every byte checked (HOT_OK 0 and HOT_RB on a mismatch).
hot_on() {
	local C a a0 a1 want i t0 ok=1
	rc_mount hot-age "$T_AGE"
	C=$FZ_CTL
	write_at "$CORPUS" 0
	write_at "$HOT" "$CORPUS_BYTES"
	t0=$EPOCHREALTIME
	a0=$(mmf "$C/mm_stat" 2)
	fio_start "$FZ_LOOP" "$CORPUS_BYTES" "$HOT_BYTES" "$T_AGE_SECS"
	want=-
	[ "$SAVED" = - ] || [ "$a0" = - ] ||
		want=$(awk -v a="$a0" -v s="$SAVED" -v f="$T_SAVE_SHARE" 'BEGIN { printf "%d", a - s * f }')
	HOT_SECS=-
	for ((i = 0; i <= T_AGE_POLL * 2; i++)); do
		a=$(mmf "$C/mm_stat" 2)
		if [ "$want" != - ] && [ "$a" != - ] && [ "$a" -le "$want" ]; then
			HOT_SECS=$(elapsed "$t0")
			break
		fi
		sleep 0.5
	done
	fio_wait
	HOT_ON=$FIO_IOPS
	settle "$C/mm_stat"
	a1=$(mmf "$C/mm_stat" 2)
	echo "  round $1, recompress_age=$T_AGE: hot region $HOT_ON IOPS; mem_used_total $a0 when the write ended, $a1 settled (wanted <= $want: $T_SAVE_SHARE of part 1's saving, $SAVED bytes) after ${HOT_SECS} s"
	echo "  debug_stat: $(debug_line "$C/debug_stat")"
	readback "$FZ_LOOP" "$CORPUS" 0 "$CORPUS_BYTES" || { ok=0; HOT_RB+=" corpus: $RB_MSG"; }
	readback "$FZ_LOOP" "$HOT" "$CORPUS_BYTES" "$HOT_BYTES" || { ok=0; HOT_RB+=" hot region: $RB_MSG"; }
	[ "$ok" = 1 ] || HOT_OK=0
	rc_unmount
}

# Parts 2 and 3 alternate, RC_ROUNDS times: the hot region's IOPS move
# by tens of percent from one mount to the next on this machine, more
# than the policy's share, so one of each is no comparison.
echo "-- 2 and 3. a hot region of $HOT_MIB MiB after the corpus, fio random read of it for ${T_AGE_SECS}s, without the policy and with recompress_age=$T_AGE (nothing else touches the corpus), alternating, $RC_ROUNDS rounds"
OFFS=() ONS=() SECS=() HOT_OK=1 HOT_RB=''
for ((r = 1; r <= RC_ROUNDS; r++)); do
	hot_off "$r"
	OFFS+=("$HOT_OFF")
	hot_on "$r"
	ONS+=("$HOT_ON")
	SECS+=("$HOT_SECS")
done
iops_off=$(median "${OFFS[@]}")
iops_on=$(median "${ONS[@]}")
asecs=$(median "${SECS[@]}")
echo "  medians: hot region $iops_on IOPS with the policy, $iops_off without; part 1's saving after $asecs s (rounds: ${SECS[*]})"
if [ "$asecs" = - ]; then
	# A round that never reached the saving is a miss, not a SKIP.
	check_bool "recompress_age=$T_AGE: seconds until part 1's saving (median; target <= $T_AGE_SECS)" 0 \
		"not reached in every round (rounds: ${SECS[*]})"
else
	check "recompress_age=$T_AGE: seconds until part 1's saving (median)" "$asecs" "<=" "$T_AGE_SECS"
fi
check "recompress_age=$T_AGE: hot region IOPS, policy / none (medians)" "$(div "$iops_on" "$iops_off")" ">=" "$T_HOT_IOPS"
check_bool "recompress_age=$T_AGE: every byte reads back" "$HOT_OK" "$HOT_RB"
echo

if [ -z "$RES" ]; then
	echo "== recompression summary"
	printf '  %s\n' "${CHECKS[@]}"
fi
