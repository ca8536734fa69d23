#!/bin/bash
# t_algorithms: a round trip through every compressor (and a non-default
# level of each): compressible text, random data, zero pages and pages of
# one repeated non-zero word.  The text must actually be compressed
# (compr_data_size well under orig_data_size), the filled pages counted in
# same_pages, the random pages in huge_pages.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 seq dd cmp

# The data, 24 MiB, built once:
#   [0, 16M)   text (seq), compressible, no same-filled pages
#   [16M, 20M) random: 1024 huge pages
#   [20M, 22M) zeros: 512 same-filled pages
#   [22M, 24M) one 8-byte word repeated: 512 same-filled pages
data=$FZ_TMP/data
{
	# (seq ends by SIGPIPE when head has enough)
	{ seq -f 'line %09.0f of the fusezram algorithm test' 1 1000000 || :; } | head -c $((16 << 20))
	head -c $((4 << 20)) /dev/urandom
	head -c $((2 << 20)) /dev/zero
	python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex("0123456789abcdef") * (2 << 17))'
} >"$data"
fz_expect_eq "size of the test data" "$(fz_size "$data")" $((24 << 20))

for a in lz4 lz4hc zstd lz4:8 lz4hc:12 zstd:-5 zstd:9; do
	alg=${a%%:*}
	opts="disksize=64M,comp_algorithm=$alg"
	[ "$alg" = "$a" ] || opts+=",comp_level=${a#*:}"
	fz_mount -o "$opts"
	fz_run 120 dd if="$data" of="$FZ_IMG" bs=1M conv=notrunc,fsync status=none ||
		fz_fail "$opts: writing failed"
	fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
	fz_expect_cmp "$opts: data read back" <(head -c $((24 << 20)) "$FZ_TMP/back") "$data"
	fz_expect_cmp "$opts: unwritten rest" <(tail -c +$(((24 << 20) + 1)) "$FZ_TMP/back") \
		<(head -c $((40 << 20)) /dev/zero)
	fz_drop_cache "$FZ_IMG"
	fz_expect_cmp "$opts: buffered read back" <(head -c $((24 << 20)) "$FZ_IMG") "$data"

	orig=$(fz_mm orig_data_size)
	compr=$(fz_mm compr_data_size)
	same=$(fz_mm same_pages)
	huge=$(fz_mm huge_pages)
	fz_log "$opts: mm_stat $(cat "$FZ_CTL/mm_stat")"
	fz_expect_eq "$opts: orig_data_size" "$orig" $((24 << 20))
	fz_expect_eq "$opts: same_pages" "$same" 1024
	# The random pages, and perhaps a few text pages that lz4 at its
	# fastest leaves above the huge threshold.
	{ [ "$huge" -ge 1024 ] && [ "$huge" -le 1100 ]; } ||
		fz_fail "$opts: huge_pages $huge, expected the 1024 random pages (and at most a few more)"
	# Text pages compress to well under half; random ones count 4096 each.
	[ "$compr" -lt $(((4 << 20) + (8 << 20))) ] ||
		fz_fail "$opts: compr_data_size $compr: text not compressed"
	[ "$compr" -ge $((4 << 20)) ] || fz_fail "$opts: compr_data_size $compr < the huge pages' 4 MiB"
	fz_expect_eq "$opts: failed_reads" "$(fz_io failed_reads)" 0
	fz_umount
done
fz_log "ok"
