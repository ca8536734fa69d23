#!/bin/bash
# t_punch: fallocate --punch-hole and --zero-range on unaligned and aligned
# ranges: the range reads as zeros, the bytes around it are intact, the
# size does not change, and punching whole pages gives memory back
# (mm_stat orig_data_size and mem_used_total fall, io_stat notify_free
# rises); a big punch is kept in the cache for a moment, then given back.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require fallocate dd cmp

size=$((4 << 20))
fz_mount -o disksize=4M
model=$FZ_TMP/model
head -c "$size" /dev/urandom >"$model"
fz_run 60 dd if="$model" of="$FZ_IMG" bs=1M conv=notrunc,fsync status=none ||
	fz_fail "filling the image failed"
fz_expect_eq "orig_data_size after filling" "$(fz_mm orig_data_size)" "$size"

# zero_model OFF LEN - the model's view of a punch or zero-range.
zero_model() {
	local off=$1 len=$2
	[ $((off + len)) -le "$size" ] || len=$((size - off))
	fz_pwrite /dev/zero "$model" "$off" "$len"
}

# check OP OFF LEN - fallocate OP on the image, zero the model, compare.
check() {
	local op=$1 off=$2 len=$3
	fallocate "$op" --offset "$off" --length "$len" "$FZ_IMG" ||
		fz_fail "fallocate $op --offset $off --length $len failed"
	zero_model "$off" "$len"
	fz_expect_eq "size after fallocate $op $off+$len" "$(fz_size "$FZ_IMG")" "$size"
	fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
	fz_expect_cmp "image after fallocate $op --offset $off --length $len" "$FZ_TMP/back" "$model"
	fz_drop_cache "$FZ_IMG"
	fz_expect_cmp "buffered read after fallocate $op $off+$len" "$FZ_IMG" "$model"
}

p=4096
# Unaligned: inside one page, across a boundary, several pages with
# partial edges.
check --punch-hole 5 10
check --punch-hole $((p - 3)) 7
check --punch-hole 5000 10000
check --punch-hole $((10 * p + 17)) $((5 * p))
check --zero-range $((30 * p + 1)) 7000
check --zero-range $((40 * p - 1)) 2
check --zero-range $((50 * p + 123)) $((3 * p))
check --punch-hole $((60 * p)) 1
check --zero-range $((61 * p)) $((p - 1))
# Clipped at the end of the disk: the tail reads as zeros, nothing grows.
check --punch-hole $((size - 100)) 1000

# Whole pages: memory must fall by exactly what was punched.
fz_show_stats
orig0=$(fz_mm orig_data_size)
used0=$(fz_mm mem_used_total)
free0=$(fz_io notify_free)
check --punch-hole $((1 << 20)) $((2 << 20))
fz_show_stats
orig1=$(fz_mm orig_data_size)
used1=$(fz_mm mem_used_total)
free1=$(fz_io notify_free)
fz_expect_eq "orig_data_size fall after punching 2 MiB" $((orig0 - orig1)) $((2 << 20))
[ "$used1" -lt "$used0" ] || fz_fail "mem_used_total did not fall after punching 2 MiB: $used0 -> $used1"
[ $((free1 - free0)) -ge 512 ] || fz_fail "notify_free rose by $((free1 - free0)), expected >= 512"

# Zero-range over whole pages gives memory back too (or keeps them as
# same-filled pages: either way no more than a slot each).
check --zero-range $((3 << 20)) $((512 << 10))
orig2=$(fz_mm orig_data_size)
used2=$(fz_mm mem_used_total)
[ "$used2" -lt "$used1" ] || fz_fail "mem_used_total did not fall after zero-range of 512 KiB: $used1 -> $used2"
[ "$orig2" -le "$orig1" ] || fz_fail "orig_data_size rose after zero-range: $orig1 -> $orig2"

# Punching everything leaves nothing stored.
check --punch-hole 0 "$size"
fz_expect_eq "orig_data_size after punching everything" "$(fz_mm orig_data_size)" 0
fz_show_stats

# And the image still takes writes after the holes.
head -c 12345 /dev/urandom >"$FZ_TMP/src"
fz_pwrite "$FZ_TMP/src" "$FZ_IMG" 4000 12345 || fz_fail "write after punching failed"
fz_pwrite "$FZ_TMP/src" "$model" 4000 12345
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "write after punching" "$FZ_TMP/back" "$model"

fz_umount

# Memory freed in a wave stays resident for reuse (the allocator's cache,
# shown on the summary's Reserve line, past its 4 MiB target) and goes
# back to the system within a few seconds: the daemon's RssShmem falls by
# nearly all 32 MiB.
reserve_kib() {
	sed -n 's/^Reserve: *\([0-9.]*\) \(bytes\|KiB\|MiB\|GiB\).*/\1 \2/p' "$FZ_CTL/summary" |
		awk '{ v = $1; if ($2 == "bytes") v /= 1024; if ($2 == "MiB") v *= 1024;
			if ($2 == "GiB") v *= 1048576; printf "%d\n", v }'
}
rss_shmem_kib() { awk '$1 == "RssShmem:" { print $2 }' "/proc/$FZ_PID/status"; }
fz_mount -o disksize=64M
fz_run 60 dd if=/dev/urandom of="$FZ_IMG" bs=1M count=32 oflag=direct conv=notrunc status=none ||
	fz_fail "filling the image failed"
rss0=$(rss_shmem_kib)
fallocate --punch-hole --offset 0 --length $((32 << 20)) "$FZ_IMG" ||
	fz_fail "punching 32 MiB failed"
kept=$(reserve_kib)
[ -n "$kept" ] || fz_fail "summary shows no Reserve line: $(grep -A2 '^Reserve' "$FZ_CTL/summary")"
[ "$kept" -gt 4096 ] || fz_fail "32 MiB punched and nothing kept past the target: $(grep '^Reserve' "$FZ_CTL/summary")"
back_to_target() { [ "$(reserve_kib)" -le 4096 ]; }
fz_wait_until 10 back_to_target ||
	fz_fail "cache still $(reserve_kib) KiB 10 s after the punch"
rss1=$(rss_shmem_kib)
[ $((rss0 - rss1)) -ge $((24 << 10)) ] ||
	fz_fail "RssShmem fell by $((rss0 - rss1)) KiB only, 32 MiB punched ($rss0 -> $rss1 KiB)"
fz_log "$kept KiB kept after the punch, given back: RssShmem $rss0 -> $rss1 KiB"
fz_umount
fz_log "ok"
