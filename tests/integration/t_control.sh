#!/bin/bash
# t_control: every file of control/.  Modes (0444 / 0644 / 0200) and
# access refused as in sysfs; the formats of what reads; the settings
# that change while the disk is empty (disksize, comp_algorithm,
# algorithm_params) and refuse with EBUSY once it holds data; garbage to
# every writable file fails with EINVAL, changes nothing, leaves the data
# on the image intact and the daemon alive; mem_limit shows in mm_stat
# field 4 at once; mem_used_max resets; compact frees pages and counts
# them in pages_compacted; idle marks pages (counted in summary) and a
# read clears the mark; reset is refused with EBUSY while the image is
# open and empties it (keeping the settings) once closed.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 fallocate cmp stat
export LC_ALL=C	# strerror texts below

fz_mount -o disksize=16M,threads=3
C=$FZ_CTL

# ctl_write FILE TEXT WANT - one write(2) of TEXT (as given: no newline
# added) to control/FILE; WANT is ok, EINVAL, EBUSY, EOPNOTSUPP or EACCES.
# Prints what happened (ok or the errno name).
ctl_errname() {
	case $1 in
	*"Invalid argument"*) echo EINVAL ;;
	*"Device or resource busy"*) echo EBUSY ;;
	*"Operation not supported"*) echo EOPNOTSUPP ;;
	*"Permission denied"*) echo EACCES ;;
	*) echo "other($1)" ;;
	esac
}
ctl_try() {
	if printf '%s' "$2" 2>"$FZ_TMP/werr" >"$C/$1"; then
		echo ok
	else
		ctl_errname "$(cat "$FZ_TMP/werr")"
	fi
}
ctl_write() {
	local got
	got=$(ctl_try "$1" "$2")
	[ "$got" = "$3" ] ||
		fz_fail "write '$(printf '%q' "$2")' to control/$1: got $got, expected $3"
}

# ctl_read FILE - its content (one line files: without the newline).
ctl_read() { cat "$C/$1" || fz_fail "cannot read control/$1"; }

alive() { fz__alive "$FZ_PID" || fz_fail "the daemon (pid $FZ_PID) died"; }

# ---- modes and access -------------------------------------------------------

declare -A mode=(
	[disksize]=644 [comp_algorithm]=644 [algorithm_params]=644
	[mem_limit]=644 [mem_used_max]=644
	[compact]=200 [reset]=200 [idle]=200
	[max_comp_streams]=444 [mm_stat]=444 [io_stat]=444 [debug_stat]=444
	[summary]=444 [backing_dev]=644 [writeback]=200 [writeback_limit]=644
	[writeback_limit_enable]=644 [bd_stat]=444 [writeback_age]=644
	[recomp_algorithm]=644 [recompress]=200 [recompress_age]=644
)
for f in "${!mode[@]}"; do
	[ -f "$C/$f" ] || fz_fail "control/$f missing"
	fz_expect_eq "mode of control/$f" "$(stat -c %a "$C/$f")" "${mode[$f]}"
done
listed=$(cd "$C" && printf '%s\n' * | sort | tr '\n' ' ')
want=$(printf '%s\n' "${!mode[@]}" | sort | tr '\n' ' ')
fz_expect_eq "files in control/" "$listed" "$want"
# As kernfs: refused even to root, whatever the mode bits allow root.
for f in compact reset idle recompress; do
	if cat "$C/$f" >/dev/null 2>"$FZ_TMP/rerr"; then
		fz_fail "reading write-only control/$f succeeded"
	fi
	fz_expect_eq "reading control/$f" "$(ctl_errname "$(cat "$FZ_TMP/rerr")")" EACCES
done
for f in max_comp_streams mm_stat io_stat debug_stat summary; do
	ctl_write "$f" 1 EACCES
done

# ---- what reads ---------------------------------------------------------------

fz_expect_eq disksize "$(ctl_read disksize)" $((16 << 20))
fz_expect_eq comp_algorithm "$(ctl_read comp_algorithm)" "[lz4] lz4hc zstd"
fz_expect_eq algorithm_params "$(ctl_read algorithm_params)" "algo=lz4 level=1"
fz_expect_eq mem_limit "$(ctl_read mem_limit)" 0
fz_expect_eq max_comp_streams "$(ctl_read max_comp_streams)" 3
[[ $(ctl_read mem_used_max) =~ ^[0-9]+$ ]] || fz_fail "mem_used_max: $(ctl_read mem_used_max)"
read -r -a f <"$C/mm_stat"
fz_expect_eq "mm_stat fields" "${#f[@]}" 9
read -r -a f <"$C/io_stat"
fz_expect_eq "io_stat fields" "${#f[@]}" 4
fz_expect_eq "debug_stat line 1" "$(head -n 1 "$C/debug_stat")" "version: 1"
for w in "Data stored" "Compressed to" "Memory used" "Memory saved" "Size classes" "Reserve" "pages freed past it"; do
	grep -q "$w" "$C/summary" || fz_fail "summary lacks '$w': $(cat "$C/summary")"
done
# The default reserve (4M) is faulted in before the mount answers.
grep -qE '^Reserve: +[1-9][0-9.]* ?[KM]' "$C/summary" ||
	fz_fail "summary shows no filled reserve: $(grep '^Reserve' "$C/summary")"

# ---- settings of an empty disk ------------------------------------------------

ctl_write disksize "32M
" ok
fz_expect_eq "disksize after writing 32M" "$(ctl_read disksize)" $((32 << 20))
fz_expect_eq "size of image after writing 32M" "$(fz_size "$FZ_IMG")" $((32 << 20))
ctl_write disksize 5000 ok	# rounded up to pages, as zram
fz_expect_eq "disksize after writing 5000" "$(ctl_read disksize)" 8192
ctl_write disksize 16M ok
ctl_write comp_algorithm "lz4hc
" ok
fz_expect_eq comp_algorithm "$(ctl_read comp_algorithm)" "lz4 [lz4hc] zstd"
fz_expect_eq "algorithm_params after comp_algorithm" "$(ctl_read algorithm_params)" "algo=lz4hc level=9"
ctl_write comp_algorithm zstd ok
fz_expect_eq "algorithm_params of zstd" "$(ctl_read algorithm_params)" "algo=zstd level=3"
ctl_write algorithm_params "level=7
" ok
fz_expect_eq algorithm_params "$(ctl_read algorithm_params)" "algo=zstd level=7"
ctl_write algorithm_params "algo=zstd level=-2" ok
fz_expect_eq algorithm_params "$(ctl_read algorithm_params)" "algo=zstd level=-2"
ctl_write algorithm_params "priority=0 level=5" ok
fz_expect_eq algorithm_params "$(ctl_read algorithm_params)" "algo=zstd level=5"
grep -q "zstd at level 5" "$C/summary" || fz_fail "summary does not say zstd level 5"

# ---- data, then what a disk in use refuses ---------------------------------------

# 8 MiB that compress about 2:1 (half random, half zeros per 4 KiB page).
python3 - "$FZ_TMP/data" <<'EOF'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(2048):
        f.write(os.urandom(2048) + bytes(2048))
EOF
dd if="$FZ_TMP/data" of="$FZ_IMG" bs=1M oflag=direct conv=notrunc status=none ||
	fz_fail "writing the data"
check_data() {
	fz_range "$FZ_IMG" 0 $((8 << 20)) >"$FZ_TMP/back"
	fz_expect_cmp "data on the image ($1)" "$FZ_TMP/back" "$FZ_TMP/data"
	alive
}
check_data "as written"
fz_expect_eq "mm_stat orig_data_size" "$(fz_mm orig_data_size)" $((8 << 20))

ctl_write disksize 32M EBUSY
ctl_write comp_algorithm lz4 EBUSY
ctl_write algorithm_params level=1 EBUSY
fz_expect_eq "disksize after EBUSY" "$(ctl_read disksize)" $((16 << 20))
fz_expect_eq "comp_algorithm after EBUSY" "$(ctl_read comp_algorithm)" "lz4 lz4hc [zstd]"
fz_expect_eq "algorithm_params after EBUSY" "$(ctl_read algorithm_params)" "algo=zstd level=5"
check_data "after EBUSY"

# ---- garbage: EINVAL, nothing changed, data intact, daemon alive ------------------

snapshot() {
	local f
	for f in disksize comp_algorithm algorithm_params mem_limit max_comp_streams; do
		printf '%s=%s\n' "$f" "$(ctl_read "$f")"
	done
	fz_mm orig_data_size
}
before=$(snapshot)
garbage() {
	local f=$1 g
	shift
	for g in "$@"; do
		ctl_write "$f" "$g" EINVAL
	done
}
# (An empty printf makes no write(2) at all; a lone newline is empty text.)
nl="
"
garbage disksize garbage 0 -1 12Q 1G5 " 1G" "$nl" "1G$nl$nl"
garbage comp_algorithm garbage lz4x LZ4 "$nl" "lz4 "
garbage algorithm_params garbage level= level=abc level=99 level=-99 "algo=lz4 level=3" \
	"dict=/etc/passwd level=3" "priority=1 level=3" "algo=zstd" "level=3 bogus=1" "="
garbage mem_limit garbage -5 1X 5Z "$nl" 0x10
garbage mem_used_max garbage 5 -1 "$nl" 00x
garbage reset garbage 0 -1 1x "$nl"
garbage idle garbage -0 -3 allx 5s 65536 99999999999999999999 "$nl"
fz_expect_eq "settings after garbage" "$(snapshot)" "$before"
check_data "after garbage"

# compact takes anything, zram's way.
ctl_write compact garbage ok
check_data "after compact garbage"

# ---- mem_limit: at once, in mm_stat field 4 ---------------------------------------

ctl_write mem_limit "6M
" ok
fz_expect_eq "mm_stat mem_limit after 6M" "$(fz_mm mem_limit)" $((6 << 20))
fz_expect_eq "mem_limit after 6M" "$(ctl_read mem_limit)" $((6 << 20))
ctl_write mem_limit 5000 ok	# rounded up to pages
fz_expect_eq "mm_stat mem_limit after 5000" "$(fz_mm mem_limit)" 8192
# Below what is used: kept data stays, new memory is refused.
rc=0
dd if=/dev/urandom of="$FZ_IMG" bs=64K count=4 seek=$(((12 << 20) / 65536)) \
	oflag=direct conv=notrunc status=none 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] || fz_fail "writing 256 KiB of random data under an 8 KiB limit succeeded"
check_data "after a write refused by mem_limit"
ctl_write mem_limit 1g ok
fz_expect_eq "mm_stat mem_limit after 1g" "$(fz_mm mem_limit)" $((1 << 30))
ctl_write mem_limit 0 ok
fz_expect_eq "mm_stat mem_limit after 0" "$(fz_mm mem_limit)" 0

# ---- mem_used_max -----------------------------------------------------------------

ctl_write mem_used_max "0
" ok
used=$(fz_mm mem_used_total)
max=$(fz_mm mem_used_max)
fz_expect_eq "mem_used_max after reset (idle disk)" "$max" "$used"
fz_expect_eq "control/mem_used_max" "$(ctl_read mem_used_max)" "$max"

# ---- compact: sparse spans, then compaction frees pages --------------------------

# Pages of 1 KiB random data and zeros, then every page but one in eight
# discarded: the class's spans end up mostly empty, but fewer pages are
# wasted than automatic compaction waits for (ZS_AUTO_COMPACT_MIN_PAGES).
base=$((8 << 20))
python3 - "$FZ_TMP/sparse" <<'EOF'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(512):
        f.write(os.urandom(1024) + bytes(3072))
EOF
dd if="$FZ_TMP/sparse" of="$FZ_IMG" bs=1M seek=$((base >> 20)) oflag=direct conv=notrunc \
	status=none || fz_fail "writing the sparse pages"
for ((i = 0; i < 512; i++)); do
	[ $((i % 8)) -eq 0 ] && continue
	fallocate --punch-hole --keep-size --offset $((base + i * FZ_PAGE)) \
		--length "$FZ_PAGE" "$FZ_IMG" || fz_fail "punching page $i"
done
compacted=$(fz_mm pages_compacted)
used=$(fz_mm mem_used_total)
ctl_write compact 1 ok
compacted2=$(fz_mm pages_compacted)
used2=$(fz_mm mem_used_total)
fz_log "compact: pages_compacted $compacted -> $compacted2, mem_used_total $used -> $used2"
[ "$compacted2" -gt "$compacted" ] ||
	fz_fail "pages_compacted did not grow with compact ($compacted -> $compacted2)"
[ "$used2" -lt "$used" ] || fz_fail "mem_used_total did not fall with compact ($used -> $used2)"
python3 - "$FZ_TMP/sparse" "$FZ_TMP/sparse.want" <<'EOF'
import sys
P = 4096
data = open(sys.argv[1], "rb").read()
out = bytearray(len(data))
for i in range(0, len(data) // P, 8):
    out[i * P:(i + 1) * P] = data[i * P:(i + 1) * P]
open(sys.argv[2], "wb").write(out)
EOF
fz_range "$FZ_IMG" "$base" $((512 * FZ_PAGE)) >"$FZ_TMP/sparse.back"
fz_expect_cmp "sparse pages after compact" "$FZ_TMP/sparse.back" "$FZ_TMP/sparse.want"
check_data "after compact"

# ---- idle -------------------------------------------------------------------------

idle_pages() { awk '$1 == "idle:" { print $2 }' "$C/summary"; }
stored=$(sed -n 's/^Data stored: .* in \([0-9]*\) pages .*/\1/p' "$C/summary")
[[ $stored =~ ^[1-9][0-9]*$ ]] || fz_fail "summary: pages stored '$stored': $(cat "$C/summary")"
fz_expect_eq "idle pages before marking" "$(idle_pages)" 0
ctl_write idle "all
" ok
fz_expect_eq "idle pages after 'all' (= pages stored, $stored)" "$(idle_pages)" "$stored"
# Reading a page clears its mark.
dd if="$FZ_IMG" of=/dev/null bs=4K count=1 iflag=direct status=none || fz_fail "reading page 0"
fz_expect_eq "idle pages after reading one" "$(idle_pages)" $((stored - 1))
# Nothing was left alone for a minute, so 60 s marks nothing more.
ctl_write idle 60 ok
fz_expect_eq "idle pages after '60'" "$(idle_pages)" $((stored - 1))
ctl_write idle 65535 ok
ctl_write idle 65536 EINVAL
# 0 s, as zram takes it: every page was accessed before now.
ctl_write idle 0 ok
fz_expect_eq "idle pages after '0' (= pages stored, $stored)" "$(idle_pages)" "$stored"
check_data "after idle"

# ---- reset ------------------------------------------------------------------------

ctl_write mem_limit 64M ok
exec 3<>"$FZ_IMG"
ctl_write reset 1 EBUSY
grep -q "open 1 time" "$C/summary" || fz_fail "summary does not count the open image: $(grep Image: "$C/summary")"
check_data "after reset refused"
exec 3>&-
# The kernel reports the close asynchronously: retry for a while.
# shellcheck disable=SC2016 # expanded at each poll
fz_wait_until 10 eval '[ "$(ctl_try reset "1
")" = ok ]' || fz_fail "reset still refused 10 s after the image was closed: $(ctl_try reset 1)"
fz_expect_eq "orig_data_size after reset" "$(fz_mm orig_data_size)" 0
fz_expect_eq "mem_used_total after reset" "$(fz_mm mem_used_total)" 0
fz_expect_eq "disksize after reset" "$(ctl_read disksize)" $((16 << 20))
fz_expect_eq "comp_algorithm after reset" "$(ctl_read comp_algorithm)" "lz4 lz4hc [zstd]"
fz_expect_eq "algorithm_params after reset" "$(ctl_read algorithm_params)" "algo=zstd level=5"
fz_expect_eq "mem_limit after reset" "$(fz_mm mem_limit)" $((64 << 20))
head -c $((16 << 20)) /dev/zero >"$FZ_TMP/zeros"
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "image after reset" "$FZ_TMP/back" "$FZ_TMP/zeros"
ctl_write reset 12345 ok	# any positive number
# An empty disk takes new settings again.
ctl_write comp_algorithm lz4 ok
fz_expect_eq "comp_algorithm after reset" "$(ctl_read comp_algorithm)" "[lz4] lz4hc zstd"
# The image works on the new store.
dd if="$FZ_TMP/data" of="$FZ_IMG" bs=1M oflag=direct conv=notrunc status=none ||
	fz_fail "writing the data after reset"
check_data "after reset"

fz_show_stats
alive
fz_umount
fz_log "ok"
