#!/bin/bash
# t_recompress: zram's recompression, through a loop device.  Mounted with
# -o recomp_algorithm=zstd (and a backing file): 64 MiB of compressible
# data written with lz4, marked idle and recompressed (type=idle):
# compr_data_size falls, debug_stat counts the pages under zstd, the
# pages keep their idle mark, and every byte reads back.  Pages written
# again are back under lz4.  Recompressed pages written back to the file
# (writeback idle) read back identical.  Bad words to recompress,
# recomp_algorithm and recompress_age are EINVAL and change nothing;
# recomp_algorithm is EBUSY while the image holds data; bad -o values are
# refused naming the value.  With recompress_age=3, pages left alone are
# recompressed on their own within 15 s.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 cmp
export LC_ALL=C	# strerror texts below

pages=$((64 << 8))	# the corpus, in 4 KiB pages

# ctl_try FILE TEXT - one write(2) of TEXT to control/FILE: prints ok,
# EINVAL, EBUSY or other(message).
ctl_try() {
	if printf '%s' "$2" 2>"$FZ_TMP/werr" >"$FZ_CTL/$1"; then
		echo ok
		return
	fi
	case $(cat "$FZ_TMP/werr") in
	*"Invalid argument"*) echo EINVAL ;;
	*"Device or resource busy"*) echo EBUSY ;;
	*) echo "other($(cat "$FZ_TMP/werr"))" ;;
	esac
}
ctl_write() {
	local got
	got=$(ctl_try "$1" "$2")
	[ "$got" = "$3" ] ||
		fz_fail "write '$(printf '%q' "$2")' to control/$1: got $got, expected $3"
}

# rc_pages P - debug_stat's pages of the algorithm of priority P (0 if
# it has no line); rc_count WORD - a figure of its "recompressed" line.
rc_pages() {
	awk -v p="#$1" '$1 == p { n = $3 } END { print n + 0 }' "$FZ_CTL/debug_stat"
}
rc_count() {
	awk -v w="$1" '$1 == "recompressed" { for (i = 1; i < NF; i++) if ($i == w) print $(i + 1) }' \
		"$FZ_CTL/debug_stat"
}
idle_pages() { awk '$1 == "idle:" { print $2 }' "$FZ_CTL/summary"; }

# check_back WHAT - the whole corpus reads back from the daemon.
check_back() {
	dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count=64 iflag=direct status=none ||
		fz_fail "reading back ($1)"
	fz_expect_cmp "$1" "$FZ_TMP/back" "$FZ_TMP/data"
}

# 64 MiB of text-like data (as t_writeback's): lz4 about 1.5:1, zstd more.
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

# Bad -o values: refused before mounting, in one line naming the value.
mkdir "$FZ_TMP/bad"
fz__register "fuse|$FZ_TMP/bad||-"
for v in recomp_algorithm=nosuch recomp_algorithm=zstd:99 recomp_algorithm=lz4hc:2 \
	recomp_algorithm=zstd: recompress_age=65536 recompress_age=5m; do
	if timeout 30 "$FUSEZRAM" -o "$v" "$FZ_TMP/bad" 2>"$FZ_TMP/err"; then
		fz_fail "-o $v was taken"
	fi
	grep -qF "invalid ${v%%=*} '${v#*=}'" "$FZ_TMP/err" ||
		fz_fail "-o $v: $(cat "$FZ_TMP/err")"
	! fz_is_mounted "$FZ_TMP/bad" || fz_fail "-o $v: mounted"
done
help=$("$FUSEZRAM" -h 2>&1) || :
for o in "-o recomp_algorithm=ALG[:N]" "-o recompress_age=SECS"; do
	grep -qF -- "$o" <<<"$help" || fz_fail "--help lacks '$o'"
done

fz_mount -o disksize=128M,recomp_algorithm=zstd,backing_dev="$FZ_TMP/backing"
C=$FZ_CTL
fz_expect_eq recomp_algorithm "$(cat "$C/recomp_algorithm")" "#1: lz4 lz4hc [zstd]"
fz_expect_eq "recompress_age by default" "$(cat "$C/recompress_age")" 300
fz_expect_eq algorithm_params "$(cat "$C/algorithm_params")" \
	"algo=lz4 level=1
priority=1 algo=zstd level=3"
grep -q "pages unused for 300 s are recompressed" "$C/summary" ||
	fz_fail "summary does not show the policy: $(cat "$C/summary")"

fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct status=none ||
	fz_fail "writing 64 MiB"
compr=$(fz_mm compr_data_size)
used=$(fz_mm mem_used_total)
fz_log "written with lz4: compr_data_size $compr, mem_used_total $used; debug_stat: $(tr '\n' ' ' <"$C/debug_stat")"
[ "$(rc_pages 0)" -eq "$pages" ] || fz_fail "debug_stat: $(rc_pages 0) pages under lz4, expected $pages"

# Refusals change nothing: no page recompressed, no setting moved.
for w in idle type=all type=incompressible "type=idle type=huge" threshold=4096 \
	max_pages=0 priority=0 priority=2 priority=4 algo=lz4 algo=nosuch \
	"algo=zstd priority=2" foo=1 "type=idle max_pages=x"; do
	ctl_write recompress "$w" EINVAL
done
for w in zstd algo=nosuch "algo=zstd priority=4" "algo=zstd priority=0" \
	"algo=zstd foo=1" priority=1; do
	ctl_write recomp_algorithm "$w" EINVAL
done
ctl_write recomp_algorithm "algo=lz4hc priority=2" EBUSY
ctl_write algorithm_params "priority=1 level=9" EBUSY
for w in 65536 -1 x 5m " 3"; do
	ctl_write recompress_age "$w" EINVAL
done
fz_expect_eq "recomp_algorithm after refusals" "$(cat "$C/recomp_algorithm")" "#1: lz4 lz4hc [zstd]"
fz_expect_eq "recompress_age after refusals" "$(cat "$C/recompress_age")" 300
fz_expect_eq "pages recompressed after refusals" "$(rc_count recompressed)" 0
fz_expect_eq "compr_data_size after refusals" "$(fz_mm compr_data_size)" "$compr"

# Idle pages to zstd.
echo all >"$C/idle"
echo type=idle >"$C/recompress" || fz_fail "echo type=idle > recompress"
compr2=$(fz_mm compr_data_size)
fz_log "recompressed: compr_data_size $compr -> $compr2, mem_used_total $used -> $(fz_mm mem_used_total); debug_stat: $(tr '\n' ' ' <"$C/debug_stat")"
[ "$compr2" -le $((compr * 90 / 100)) ] ||
	fz_fail "compr_data_size $compr2 after recompressing, not under 0.9x of $compr"
z=$(rc_pages 1)
[ "$z" -ge $((pages * 95 / 100)) ] || fz_fail "debug_stat: $z of $pages pages under zstd"
fz_expect_eq "pages recompressed" "$(rc_count recompressed)" "$z"
fz_expect_eq "pages under lz4 + zstd" $(($(rc_pages 0) + z)) "$pages"
fz_expect_eq "idle pages after recompressing (they keep their mark)" "$(idle_pages)" "$pages"
grep -q "^ *#1 zstd .* $z pages" "$C/summary" || fz_fail "summary does not count $z pages under zstd"
check_back "data after recompression"

# A rewrite goes back to lz4: the first MiB written again.
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M count=1 oflag=direct status=none ||
	fz_fail "rewriting the first MiB"
z2=$(rc_pages 1)
[ "$z2" -le $((z - 256)) ] || fz_fail "after rewriting 256 pages, $z2 pages under zstd (was $z)"
[ "$(rc_pages 0)" -ge 256 ] || fz_fail "after rewriting 256 pages, $(rc_pages 0) under lz4"
check_back "data after the rewrite"

# Recompressed pages written back to the file and read back from it.
ctl_write writeback incompressible ok
ctl_write writeback type=incompressible ok
echo all >"$C/idle"
echo idle >"$C/writeback" || fz_fail "echo idle > writeback"
read -r bd_count _ _ <"$C/bd_stat"
fz_expect_eq "pages written back" "$bd_count" "$pages"
fz_expect_eq "pages under zstd in RAM after writeback" "$(rc_pages 1)" 0
check_back "data read back from the file"
fz_loop_detach
fz_umount

# The policy on its own: recompress_age=3, nothing touches the data, and
# within 15 s (bounded wait) compr_data_size falls as above.
fz_mount -o disksize=128M,recomp_algorithm=zstd,recompress_age=3
fz_expect_eq recompress_age "$(cat "$FZ_CTL/recompress_age")" 3
fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct status=none ||
	fz_fail "writing 64 MiB"
compr=$(fz_mm compr_data_size)
t0=$SECONDS
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 15 eval '[ "$(fz_mm compr_data_size)" -le $((compr * 90 / 100)) ] &&
	[ "$(rc_pages 1)" -ge $((pages * 95 / 100)) ]' ||
	fz_fail "recompress_age=3: after 15 s compr_data_size $(fz_mm compr_data_size) (was $compr), $(rc_pages 1) pages under zstd"
fz_log "recompress_age=3: compr_data_size $compr -> $(fz_mm compr_data_size) in about $((SECONDS - t0)) s; debug_stat: $(tr '\n' ' ' <"$FZ_CTL/debug_stat")"
[ "$(rc_count aged)" -gt 0 ] || fz_fail "debug_stat counts no page recompressed by age"
grep -q "pages unused for 3 s are recompressed" "$FZ_CTL/summary" ||
	fz_fail "summary does not show the policy"
check_back "data after the policy"
fz_log "ok"
