#!/bin/bash
# t_mount: good options.  Mounted the ordinary way fusezram detaches and
# keeps serving; the default disksize is 1G; size suffixes and mem_limit
# show in the image's size and mm_stat; writes are 128 KiB and reads
# 64 KiB unless -o max_write= or max_read= say otherwise; -s
# (single-threaded) works; after fusermount3 -u the daemon exits by
# itself.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require dd cmp

# roundtrip - 1 MiB of random data at 1 MiB, read back with O_DIRECT.
roundtrip() {
	head -c 1M /dev/urandom >"$FZ_TMP/rand"
	dd if="$FZ_TMP/rand" of="$FZ_IMG" bs=64K seek=16 conv=notrunc,fsync status=none ||
		fz_fail "write to $FZ_IMG failed"
	dd if="$FZ_IMG" of="$FZ_TMP/back" bs=64K skip=16 count=16 iflag=direct status=none ||
		fz_fail "read of $FZ_IMG failed"
	fz_expect_cmp "round trip through $FZ_IMG" "$FZ_TMP/back" "$FZ_TMP/rand"
}

# Defaults, detached.
fz_mount --detach
fz_expect_eq "default disksize" "$(fz_size "$FZ_IMG")" $((1 << 30))
fz_expect_eq "default mem_limit" "$(fz_mm mem_limit)" 0
roundtrip
fz_umount

# Every option at once, detached.
fz_mount --detach -o disksize=3G,mem_limit=64M,comp_algorithm=zstd,comp_level=3,threads=2
fz_expect_eq "disksize=3G" "$(fz_size "$FZ_IMG")" $((3 << 30))
fz_expect_eq "mem_limit=64M in mm_stat" "$(fz_mm mem_limit)" $((64 << 20))
roundtrip
fz_umount

# Other suffixes; a plain number of bytes.
for s in 8K:8192 512K:524288 2M:2097152 1048576:1048576; do
	fz_mount -o "disksize=${s%%:*}"
	fz_expect_eq "disksize=${s%%:*}" "$(fz_size "$FZ_IMG")" "${s#*:}"
	fz_umount
done
fz_mount -o mem_limit=1G
fz_expect_eq "mem_limit=1G in mm_stat" "$(fz_mm mem_limit)" $((1 << 30))
fz_umount

# Request size: 128 KiB by default (a 1 MiB direct I/O comes as 8 requests
# at once), and -o max_write= still overrides it; libfuse's -d log shows
# what INIT answered.
fz_mount -d -o disksize=4M
fz_wait_until 10 grep -q 'max_write=' "$FZ_LOG" || fz_fail "no INIT reply in the -d log: $(head -c 500 "$FZ_LOG")"
fz_expect_eq "default max_write" "$(sed -n 's/^ *max_write=//p' "$FZ_LOG" | head -n 1)" 0x00020000
roundtrip
fz_umount
fz_mount -d -o disksize=4M,max_write=1048576
fz_wait_until 10 grep -q 'max_write=' "$FZ_LOG" || fz_fail "no INIT reply in the -d log: $(head -c 500 "$FZ_LOG")"
fz_expect_eq "max_write=1048576" "$(sed -n 's/^ *max_write=//p' "$FZ_LOG" | head -n 1)" 0x00100000
roundtrip
fz_umount

# Reads: 64 KiB by default, -o max_read= overrides; the kernel shows the
# mount option in /proc/mounts.
mount_max_read() {
	awk -v m="$FZ_MNT" '$2 == m { n = split($4, o, ","); for (i = 1; i <= n; i++) if (o[i] ~ /^max_read=/) print substr(o[i], 10) }' /proc/mounts
}
fz_mount -o disksize=4M
fz_expect_eq "default max_read" "$(mount_max_read)" 65536
roundtrip
fz_umount
fz_mount -o disksize=4M,max_read=131072
fz_expect_eq "max_read=131072" "$(mount_max_read)" 131072
roundtrip
fz_umount

# Single-threaded.
fz_mount -s -o disksize=4M
roundtrip
fz_umount
fz_log "ok"
