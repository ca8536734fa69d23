#!/bin/bash
# t_compact_file: the backing file compacted.  64 MiB written back to the
# file, then a third of its pages rewritten at random and written back
# again, three times: most segments of the file keep a few live objects
# (the summary counts them "under half live").  `echo 1 > compact` moves
# those objects to new segments: none is left under half live, the
# summary counts the pages moved, bd_stat is unchanged, the file's
# allocated size falls back under 1.5 times what the first writeback took
# (the freed segments are punched within a few seconds; without
# compaction it stays near twice that) and every byte reads back.  The
# maintainer may compact some of it on its own meanwhile (it looks every
# 2 s): what is asserted holds either way.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 cmp stat
export LC_ALL=C

bd=$FZ_TMP/backing
fz_mount -o disksize=256M,backing_dev="$bd"
C=$FZ_CTL

# 64 MiB of text-like data (a third after compression).
python3 "$FZ_ROOT/tests/integration/pages.py" text "$FZ_TMP/data" 64 11 || fz_fail "making the data"
fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct status=none ||
	fz_fail "writing 64 MiB"

sparse() {
	sed -n 's/^ *\([0-9]*\) segments under half live, .*/\1/p' "$C/summary"
}
moved() {
	sed -n 's/.*; \([0-9]*\) pages moved by it$/\1/p' "$C/summary"
}
allocated() {
	local fd
	fd=$(find "/proc/$FZ_PID/fd" -lname "$bd" | head -n 1)
	echo $(($(stat -L -c %b "$fd") * 512))
}

echo all >"$C/idle"
echo idle >"$C/writeback" || fz_fail "echo idle > writeback"
a_init=$(allocated)
for round in 1 2 3; do
	# A third of the pages, at random, rewritten: each frees its
	# object in the file, wherever it lies.
	python3 "$FZ_ROOT/tests/integration/pages.py" rewrite "$FZ_LOOP" "$FZ_TMP/data" "$round" ||
		fz_fail "rewriting round $round"
	echo all >"$C/idle"
	echo idle >"$C/writeback" || fz_fail "echo idle > writeback, round $round"
done
read -r bd_count _ bd_writes <"$C/bd_stat"
[ "$bd_count" -eq $((64 << 8)) ] || fz_fail "bd_count $bd_count, expected $((64 << 8)) pages"
s0=$(sparse)
m0=$(moved)
a0=$(allocated)
fz_log "after the rewrites: $s0 segments under half live, $m0 pages moved by compaction so far, $a0 bytes allocated in the file"
[ "${s0:-0}" -gt 0 ] || fz_fail "no segment under half live after the rewrites (summary: $(grep -A1 'under half' "$C/summary"))"

echo 1 >"$C/compact" || fz_fail "echo 1 > compact"
s1=$(sparse)
m1=$(moved)
fz_log "after compact: $s1 segments under half live, $m1 pages moved"
[ "$s1" -eq 0 ] || fz_fail "$s1 segments under half live after compact"
[ "$m1" -gt "$m0" ] || fz_fail "compact moved no page ($m0 -> $m1)"
read -r c2 _ w2 <"$C/bd_stat"
[ "$c2 $w2" = "$bd_count $bd_writes" ] ||
	fz_fail "bd_stat changed by compaction: $bd_count $bd_writes -> $c2 $w2"
# What the segments freed held goes back to the file system within a
# few of its 2 s periods.
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 20 eval '[ "$(allocated)" -le $((a_init * 3 / 2)) ]' ||
	fz_fail "the file still takes $(allocated) bytes after compact (first writeback: $a_init, before compact: $a0)"
fz_log "the file: $a_init bytes allocated after the first writeback, $a0 before compact, $(allocated) after"

dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count=64 iflag=direct status=none ||
	fz_fail "reading back"
fz_expect_cmp "data read back after compaction" "$FZ_TMP/back" "$FZ_TMP/data"
fz_log "ok"
