#!/bin/bash
# t_roundtrip: the image's attributes, zeros before any write, 32 MiB of
# random data written and read back (buffered and O_DIRECT), and the
# format of the three control files.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require dd cmp stat head

disksize=$((64 << 20))
data=$((32 << 20))
fz_mount -o disksize=64M

# Attributes: a regular file of exactly disksize bytes, 0600, ours.
fz_expect_eq "type of image" "$(stat -c %F "$FZ_IMG")" "regular file"
fz_expect_eq "size of image" "$(fz_size "$FZ_IMG")" "$disksize"
fz_expect_eq "mode of image" "$(stat -c %a "$FZ_IMG")" 600
fz_expect_eq "owner of image" "$(stat -c %u:%g "$FZ_IMG")" "$(id -u):$(id -g)"
for f in mm_stat io_stat debug_stat; do
	[ -f "$FZ_CTL/$f" ] || fz_fail "$FZ_CTL/$f missing"
done

# A fresh image reads as zeros everywhere and uses no memory.
head -c "$disksize" /dev/zero >"$FZ_TMP/zeros"
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "fresh image (O_DIRECT) vs zeros" "$FZ_TMP/back" "$FZ_TMP/zeros"
fz_expect_cmp "fresh image (buffered) vs zeros" "$FZ_IMG" "$FZ_TMP/zeros"
fz_expect_eq "orig_data_size of a fresh image" "$(fz_mm orig_data_size)" 0
blocks0=$(stat -c %b "$FZ_IMG")

# 32 MiB of random data at the start.
head -c "$data" /dev/urandom >"$FZ_TMP/rand"
fz_run 120 dd if="$FZ_TMP/rand" of="$FZ_IMG" bs=1M conv=notrunc,fsync status=none ||
	fz_fail "dd of 32 MiB into the image failed"
fz_expect_eq "size after writing" "$(fz_size "$FZ_IMG")" "$disksize"

# Read back from the daemon (O_DIRECT), then buffered after dropping the
# cache; the unwritten second half still reads as zeros.
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "written data (O_DIRECT read)" <(fz_range "$FZ_TMP/back" 0 "$data") "$FZ_TMP/rand"
fz_expect_cmp "unwritten half (O_DIRECT read)" \
	<(fz_range "$FZ_TMP/back" "$data" $((disksize - data))) <(fz_range "$FZ_TMP/zeros" 0 $((disksize - data)))
fz_drop_cache "$FZ_IMG"
fz_expect_cmp "written data (buffered read)" <(fz_range "$FZ_IMG" 0 "$data") "$FZ_TMP/rand"

# The same data written with O_DIRECT at the second half.
fz_run 120 dd if="$FZ_TMP/rand" of="$FZ_IMG" bs=1M seek=32 oflag=direct conv=notrunc status=none ||
	fz_fail "O_DIRECT dd into the second half failed"
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "second half written with O_DIRECT" <(fz_range "$FZ_TMP/back" "$data" "$data") "$FZ_TMP/rand"
fz_expect_cmp "first half after writing the second" <(fz_range "$FZ_TMP/back" 0 "$data") "$FZ_TMP/rand"

# st_blocks counts stored data.
blocks1=$(stat -c %b "$FZ_IMG")
[ "$blocks1" -gt "$blocks0" ] || fz_fail "st_blocks did not grow after writing: $blocks0 -> $blocks1"

# mm_stat: nine numbers; every page of random data is stored, and is huge
# (random pages do not compress).
fz_show_stats
read -r -a mm <"$FZ_CTL/mm_stat"
fz_expect_eq "number of mm_stat fields" "${#mm[@]}" 9
for v in "${mm[@]}"; do
	[[ $v =~ ^[0-9]+$ ]] || fz_fail "mm_stat field '$v' is not a number"
done
fz_expect_eq "mm_stat orig_data_size" "$(fz_mm orig_data_size)" "$disksize"
fz_expect_eq "mm_stat huge_pages" "$(fz_mm huge_pages)" $((disksize / 4096))
fz_expect_eq "mm_stat compr_data_size (huge pages count 4096)" "$(fz_mm compr_data_size)" "$disksize"
fz_expect_eq "mm_stat mem_limit (none)" "$(fz_mm mem_limit)" 0
fz_expect_eq "mm_stat same_pages" "$(fz_mm same_pages)" 0
used=$(fz_mm mem_used_total)
[ "$used" -ge "$disksize" ] || fz_fail "mem_used_total $used < $disksize bytes of huge pages"
[ "$(fz_mm mem_used_max)" -ge "$used" ] || fz_fail "mem_used_max < mem_used_total"
[ "$(fz_mm huge_pages_since)" -ge $((disksize / 4096)) ] || fz_fail "huge_pages_since too small"

# io_stat: four numbers, no failures.
read -r -a io <"$FZ_CTL/io_stat"
fz_expect_eq "number of io_stat fields" "${#io[@]}" 4
for v in "${io[@]}"; do
	[[ $v =~ ^[0-9]+$ ]] || fz_fail "io_stat field '$v' is not a number"
done
fz_expect_eq "io_stat failed_reads" "$(fz_io failed_reads)" 0
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0

# debug_stat as in kernel zram: "version: N", then a line of numbers.
mapfile -t dbg <"$FZ_CTL/debug_stat"
fz_log "debug_stat: ${dbg[*]}"
[[ ${dbg[0]:-} =~ ^version:\ [0-9]+$ ]] || fz_fail "debug_stat line 1 is '${dbg[0]:-}'"
[[ ${dbg[1]:-} =~ ^\ *[0-9]+(\ +[0-9]+)*$ ]] || fz_fail "debug_stat line 2 is '${dbg[1]:-}'"

# Overwriting with zeros keeps the data on the books as same-filled pages.
fz_run 60 dd if=/dev/zero of="$FZ_IMG" bs=1M count=1 conv=notrunc,fsync status=none ||
	fz_fail "dd of zeros failed"
fz_expect_eq "same_pages after 1 MiB of zeros" "$(fz_mm same_pages)" 256
fz_expect_eq "huge_pages after 1 MiB of zeros" "$(fz_mm huge_pages)" $((disksize / 4096 - 256))
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "zeros over the first MiB" <(fz_range "$FZ_TMP/back" 0 1048576) <(fz_range "$FZ_TMP/zeros" 0 1048576)
fz_expect_cmp "data after the first MiB" <(fz_range "$FZ_TMP/back" 1048576 $((data - 1048576))) \
	<(fz_range "$FZ_TMP/rand" 1048576 $((data - 1048576)))

fz_umount
fz_log "ok"
