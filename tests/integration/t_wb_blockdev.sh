#!/bin/bash
# t_wb_blockdev: a block device as the backing device (zram's only kind):
# a loop device over a sparse file of the test's own.  64 MiB written,
# marked idle and written back go to the device and read back; the
# device is held exclusively (a second daemon is refused); a discard of
# everything is passed on to the device (BLKDISCARD of the free
# segments), so the loop device's file gives its blocks back.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 cmp stat blkdiscard truncate
export LC_ALL=C

truncate -s 256M "$FZ_TMP/disk"
fz_loop "$FZ_TMP/disk"
bdev=$FZ_LOOP
fz_mount -o disksize=128M,backing_dev="$bdev"
C=$FZ_CTL
[ "$(cat "$C/backing_dev")" = "$bdev" ] || fz_fail "backing_dev shows $(cat "$C/backing_dev")"
grep -q "(block device, direct I/O)" "$C/summary" ||
	fz_fail "summary: $(grep -A1 '^Backing file' "$C/summary")"

python3 "$FZ_ROOT/tests/integration/pages.py" text "$FZ_TMP/data" 64 5 || fz_fail "making the data"
fz_loop "$FZ_IMG" --direct-io=on
img_loop=$FZ_LOOP
dd if="$FZ_TMP/data" of="$img_loop" bs=1M oflag=direct status=none ||
	fz_fail "writing 64 MiB"
echo all >"$C/idle"
echo idle >"$C/writeback" || fz_fail "echo idle > writeback"
read -r bd_count bd_reads bd_writes <"$C/bd_stat"
[ "$bd_count" -eq $((64 << 8)) ] || fz_fail "bd_count $bd_count, expected $((64 << 8)) pages"
sync "$FZ_TMP/disk"
a0=$(($(stat -c %b "$FZ_TMP/disk") * 512))
fz_log "written back to $bdev: bd_stat $bd_count $bd_reads $bd_writes; its file takes $a0 bytes"
[ "$a0" -ge $((8 << 20)) ] || fz_fail "the device's file takes only $a0 bytes after writeback"

dd if="$img_loop" of="$FZ_TMP/back" bs=1M count=64 iflag=direct status=none ||
	fz_fail "reading back"
fz_expect_cmp "data read back from the block device" "$FZ_TMP/back" "$FZ_TMP/data"

mkdir "$FZ_TMP/other"
fz__register "fuse|$FZ_TMP/other||-"
if timeout 30 "$FUSEZRAM" -o backing_dev="$bdev" "$FZ_TMP/other" 2>"$FZ_TMP/err"; then
	fz_fail "a second daemon took the block device in use"
fi
grep -q "busy" "$FZ_TMP/err" || fz_fail "second daemon: $(cat "$FZ_TMP/err")"

blkdiscard "$img_loop" || fz_fail "blkdiscard"
read -r bd_count bd_reads bd_writes <"$C/bd_stat"
[ "$bd_count" -eq 0 ] || fz_fail "bd_count $bd_count after discarding everything"
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 20 eval '[ $(($(stat -c %b "$FZ_TMP/disk") * 512)) -lt $((4 << 20)) ]' ||
	fz_fail "the device's file still takes $(($(stat -c %b "$FZ_TMP/disk") * 512)) bytes after the discard (was $a0)"
fz_log "after the discard: the device's file takes $(($(stat -c %b "$FZ_TMP/disk") * 512)) bytes"
fz_log "ok"
