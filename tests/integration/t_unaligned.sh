#!/bin/bash
# t_unaligned: writes and reads at odd offsets and lengths (1 byte, 4095,
# 4097, across pages, at the very end), buffered and O_DIRECT, each applied
# to the image and to a plain model file; after each write the whole image
# (read with O_DIRECT, i.e. from the daemon) must equal the model.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require dd cmp truncate

size=$((4 << 20))
fz_mount -o disksize=4M
model=$FZ_TMP/model
truncate -s "$size" "$model"
head -c 65536 /dev/urandom >"$FZ_TMP/src"

n=0
# check_write OFF LEN [oflag] - write LEN random bytes at OFF to both.
check_write() {
	local off=$1 len=$2 fl=${3:-}
	n=$((n + 1))
	# Different bytes each time: rotate the source.
	head -c 65536 /dev/urandom >"$FZ_TMP/src"
	fz_pwrite "$FZ_TMP/src" "$FZ_IMG" "$off" "$len" "$fl" ||
		fz_fail "write #$n of $len bytes at $off${fl:+ ($fl)} failed"
	fz_pwrite "$FZ_TMP/src" "$model" "$off" "$len"
	fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
	fz_expect_cmp "image after write #$n ($len bytes at $off${fl:+, $fl})" "$FZ_TMP/back" "$model"
}

# check_read OFF LEN - a buffered read of LEN bytes at OFF (cache dropped
# first) returns the model's bytes.
check_read() {
	fz_drop_cache "$FZ_IMG"
	fz_expect_cmp "read of $2 bytes at $1" <(fz_range "$FZ_IMG" "$1" "$2") <(fz_range "$model" "$1" "$2")
}

p=4096
for fl in "" direct; do
	base=0
	[ -z "$fl" ] || base=$((1 << 20))
	check_write $((base + 0)) 1 "$fl"
	check_write $((base + 1)) 1 "$fl"
	check_write $((base + p - 1)) 1 "$fl"
	check_write $((base + p - 1)) 2 "$fl"
	check_write $((base + p + 1)) 4095 "$fl"
	check_write $((base + 2 * p)) 4095 "$fl"
	check_write $((base + 3 * p - 1)) 4097 "$fl"
	check_write $((base + 5 * p + 7)) 4097 "$fl"
	check_write $((base + 7 * p + 100)) $((3 * p + 5)) "$fl"
	check_write $((base + 20 * p + 2049)) 65536 "$fl"
	check_write $((base + 20 * p + 10)) 10 "$fl"
	check_write $((base + 40 * p)) $p "$fl"
done
# The last bytes of the disk.
check_write $((size - 1)) 1
check_write $((size - p - 1)) $((p + 1))
check_write $((size - 3 * p + 5)) $((3 * p - 5)) direct

# Random offsets and lengths (reproducible: fixed seed).
RANDOM=4242
for _ in $(seq 40); do
	len=$(((RANDOM % 20000) + 1))
	off=$(((RANDOM * 32768 + RANDOM) % (size - len)))
	if [ $((RANDOM % 2)) = 0 ]; then
		check_write "$off" "$len"
	else
		check_write "$off" "$len" direct
	fi
done

# Reads at odd offsets and lengths.
for r in "0 1" "1 1" "4095 1" "4095 2" "4097 4095" "8191 4097" "12345 54321" \
	"$((size - 1)) 1" "$((size - 5000)) 5000" "$((1 << 20)) 3"; do
	# shellcheck disable=SC2086 # two words
	check_read $r
done
for _ in $(seq 20); do
	len=$(((RANDOM % 20000) + 1))
	off=$(((RANDOM * 32768 + RANDOM) % (size - len)))
	check_read "$off" "$len"
done

fz_expect_eq "size after all writes" "$(fz_size "$FZ_IMG")" "$size"
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0
fz_show_stats
fz_umount
fz_log "ok ($n writes)"
