#!/bin/bash
# t_writeback: zram's writeback on a backing file, through a loop device.
# 64 MiB of compressible data written, marked idle and written back: RAM
# (mem_used_total) falls under a fifth, the file holds about the
# compressed bytes (at most 1.15x, plus its 2 MiB reserve), bd_stat
# counts the pages, and every byte reads back from the file.  A discard
# of everything leaves under 8 MiB allocated in the file.  The file
# unlinked while mounted changes nothing.  A second daemon cannot take
# the same file; a symlink is refused and its target untouched; bad
# words to writeback are EINVAL.  With mem_limit=48M, 256 MiB written
# spill to the file instead of failing, and read back.  With
# writeback_age=3 pages left alone go to the file on their own.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 cmp stat blkdiscard
export LC_ALL=C

bd=$FZ_TMP/backing
fz_mount -o disksize=256M,backing_dev="$bd"
C=$FZ_CTL
[ "$(cat "$C/backing_dev")" = "$bd" ] || fz_fail "backing_dev shows $(cat "$C/backing_dev")"
[ "$(stat -c %a "$bd")" = 600 ] || fz_fail "backing file mode $(stat -c %a "$bd"), not 600"

# 64 MiB of text-like data: compresses to about a third.
python3 - "$FZ_TMP/data" <<'EOF'
import random, sys
random.seed(7)
words = [b"page ", b"zram ", b"swap ", b"fuse ", b"memory ", b"the ", b"slot ",
         b"writeback ", b"\n", b"compress ", b"file ", b"idle "]
out = bytearray()
while len(out) < 64 << 20:
    out += random.choice(words)
    if random.random() < 0.2:
        out += bytes([random.randrange(256)])
open(sys.argv[1], "wb").write(out[:64 << 20])
EOF
fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct status=none ||
	fz_fail "writing 64 MiB"
used_before=$(fz_mm mem_used_total)
compr=$(fz_mm compr_data_size)
fz_log "written: mem_used_total $used_before, compr_data_size $compr"

echo all >"$C/idle"
echo idle >"$C/writeback" || fz_fail "echo idle > writeback"
read -r bd_count bd_reads bd_writes <"$C/bd_stat"
fz_log "bd_stat after writeback: $bd_count $bd_reads $bd_writes; mm_stat $(cat "$C/mm_stat")"
[ "$bd_count" -eq $((64 << 8)) ] || fz_fail "bd_count $bd_count, expected $((64 << 8)) pages"
[ "$bd_writes" -eq "$bd_count" ] || fz_fail "bd_writes $bd_writes != bd_count $bd_count"
echo 1 >"$C/compact"
used_after=$(fz_mm mem_used_total)
[ "$used_after" -lt $((used_before / 5)) ] ||
	fz_fail "mem_used_total $used_after after writeback, not under a fifth of $used_before"
alloc=$(($(stat -c %b "$bd") * $(stat -c %B "$bd")))
fz_log "backing file: $alloc bytes allocated for $compr compressed ($(awk -v a="$alloc" -v c="$compr" 'BEGIN { printf "%.3f", a / c }')x)"
[ "$alloc" -le $((compr * 115 / 100 + (2 << 20))) ] ||
	fz_fail "the file takes $alloc bytes for $compr compressed (limit 1.15x + 2 MiB)"
grep -q "pages written back" "$C/summary" || fz_fail "summary has no backing line"

# Every byte reads back, from the file.
dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count=64 iflag=direct status=none ||
	fz_fail "reading back"
fz_expect_cmp "data read back from the file" "$FZ_TMP/back" "$FZ_TMP/data"
read -r bd_count bd_reads bd_writes <"$C/bd_stat"
[ "$bd_reads" -ge $((64 << 8)) ] || fz_fail "bd_reads $bd_reads after reading everything back"

# Refusals: words, a second daemon on the same file, a symlink.
for w in foo "idle huge" page_index=99999999 page_indexes=5-1 type=; do
	if printf '%s' "$w" >"$C/writeback" 2>"$FZ_TMP/err"; then
		fz_fail "writeback took '$w'"
	fi
	grep -q "Invalid argument" "$FZ_TMP/err" || fz_fail "writeback '$w': $(cat "$FZ_TMP/err")"
done
mkdir "$FZ_TMP/other"
fz__register "fuse|$FZ_TMP/other||-"
if timeout 30 "$FUSEZRAM" -o backing_dev="$bd" "$FZ_TMP/other" 2>"$FZ_TMP/err"; then
	fz_fail "a second daemon took the backing file in use"
fi
grep -q "busy" "$FZ_TMP/err" || fz_fail "second daemon: $(cat "$FZ_TMP/err")"
echo precious >"$FZ_TMP/victim"
ln -s "$FZ_TMP/victim" "$FZ_TMP/link"
if timeout 30 "$FUSEZRAM" -o backing_dev="$FZ_TMP/link" "$FZ_TMP/other" 2>"$FZ_TMP/err"; then
	fz_fail "a symlink was taken as backing file"
fi
grep -q "symbolic links" "$FZ_TMP/err" || fz_fail "symlink: $(cat "$FZ_TMP/err")"
[ "$(cat "$FZ_TMP/victim")" = precious ] || fz_fail "the symlink's target was changed"

# The file unlinked while mounted: nothing changes.
rm "$bd"
dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count=64 iflag=direct status=none ||
	fz_fail "reading back after the unlink"
fz_expect_cmp "data after the file was unlinked" "$FZ_TMP/back" "$FZ_TMP/data"

# A discard of everything gives the file's space back.
blkdiscard "$FZ_LOOP" || fz_fail "blkdiscard"
read -r bd_count bd_reads bd_writes <"$C/bd_stat"
[ "$bd_count" -eq 0 ] || fz_fail "bd_count $bd_count after discarding everything"
# The unlinked file, through the daemon's descriptor; punched by the
# background refill within seconds.
fd=$(find "/proc/$FZ_PID/fd" -lname "$bd (deleted)" | head -n 1)
[ -n "$fd" ] || fz_fail "the daemon holds no descriptor of the unlinked file"
fz_wait_until 20 eval '[ $(($(stat -L -c %b "$fd") * 512)) -lt $((8 << 20)) ]' ||
	fz_fail "$(($(stat -L -c %b "$fd") * 512)) bytes still allocated in the file after discarding everything"
fz_log "after the discard: $(($(stat -L -c %b "$fd") * 512)) bytes allocated in the file"
fz_loop_detach
fz_umount

# A full device spills: 256 MiB through mem_limit=48M with a backing file,
# no write error, the memory under the limit, every byte back.
fz_mount -o disksize=512M,mem_limit=48M,backing_dev="$FZ_TMP/backing2"
fz_loop "$FZ_IMG" --direct-io=on
for i in 0 1 2 3; do
	dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M seek=$((i * 64)) oflag=direct \
		status=none || fz_fail "writing the data at $((i * 64)) MiB under mem_limit=48M"
done
max=$(fz_mm mem_used_max)
read -r bd_count bd_reads bd_writes <"$FZ_CTL/bd_stat"
fz_log "256 MiB through mem_limit=48M: mem_used_max $max, bd_stat $bd_count $bd_reads $bd_writes"
[ "$max" -le $((48 << 20)) ] || fz_fail "mem_used_max $max over the 48M limit"
[ "$bd_count" -gt 0 ] || fz_fail "nothing spilled to the file"
for i in 0 1 2 3; do
	dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M skip=$((i * 64)) count=64 \
		iflag=direct status=none || fz_fail "reading back at $((i * 64)) MiB"
	fz_expect_cmp "data at $((i * 64)) MiB after spilling" "$FZ_TMP/back" "$FZ_TMP/data"
done
grep -q "by spilling" "$FZ_CTL/summary" || fz_fail "summary does not count spilled pages"
fz_loop_detach
fz_umount

# The age policy on its own: with writeback_age=3, 64 MiB left alone go
# to the file and mem_used_total falls by 80% (bounded wait: 60 s).
fz_mount -o disksize=128M,writeback_age=3,backing_dev="$FZ_TMP/backing3"
[ "$(cat "$FZ_CTL/writeback_age")" = 3 ] || fz_fail "writeback_age shows $(cat "$FZ_CTL/writeback_age")"
fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct status=none ||
	fz_fail "writing 64 MiB"
used=$(fz_mm mem_used_total)
t0=$(date +%s)
fz_wait_until 60 eval '[ "$(fz_mm mem_used_total)" -le $((used / 5)) ]' ||
	fz_fail "mem_used_total $(fz_mm mem_used_total) after 60 s with writeback_age=3 (was $used)"
fz_log "writeback_age=3: mem_used_total $used -> $(fz_mm mem_used_total) in about $(($(date +%s) - t0)) s; bd_stat $(cat "$FZ_CTL/bd_stat")"
dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count=64 iflag=direct status=none ||
	fz_fail "reading back after the age policy"
fz_expect_cmp "data after the age policy" "$FZ_TMP/back" "$FZ_TMP/data"
grep -q "pages unused for 3 s go to the file" "$FZ_CTL/summary" ||
	fz_fail "summary does not show the age policy"
fz_log "ok"
