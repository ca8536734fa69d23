#!/bin/bash
# t_admin: the administration tools, tools/fzramctl and tools/fusezram-swap.
#
# fzramctl: a mount holding 1 MiB of text and 256 KiB of zeros is listed
# with the right figures (checked against mm_stat, the image size and
# what was written), in bytes (-b), human-readable (64M, 1.3M), with the
# default header, -o / -o + / --output-all, -n, -r, and in JSON (-J, valid
# for python3 -m json.tool, same figures); NAME follows loop devices
# attached and detached; a mount point, its image or its loop device
# select the row; bad columns and non-fusezram arguments fail; with no
# fusezram mounted (in a private mount namespace) it prints the header
# alone and exits 0; a dead daemon gives a row of "-" and exit 1; a
# stopped (hung) daemon costs FZRAMCTL_TIMEOUT, not a hang.
#
# fusezram-swap: a bad settings file is refused (exit 2) naming the key
# and line, leaving nothing; start with a temporary file (256M, priority
# 1234, a mount point under the test's directory) gives a direct-I/O loop
# device that /proc/swaps lists at that priority; start again changes
# nothing; status and config work, and status says the swap is on (exit
# 4, its line printed) when fzramctl fails, and shows it from /proc/swaps
# (exit 0) when swapon --show fails (stand-ins for both); stop removes the
# swap, the loop device, the mount, the daemon and the directory; stop
# again is a no-op; a failing mkswap or swapon (stand-ins put first on
# PATH) undoes the steps before it, and so does a SIGTERM while swapon
# runs (the swap then on).
# Two keys before one '=' and a mount point over the lock directory are
# refused; a symlinked mount point is used by its real path.  Integer
# settings are decimal with an optional sign: config shows swap_priority
# -0, +5, 000100, 08 and -01 as 0, 5, 100, 8 and -1, and threads,
# comp_level, recomp_algorithm's level, recompress_age and io_uring_depth
# in other spellings as start passes them (in decimal); 0x10, 1.5 and
# "- 4" are refused naming key and value, and so is lz4:01 with lz4 at
# comp_level 1 (the same level); a start with swap_priority = -0 gives
# priority 0 in /proc/swaps.  The unit file passes systemd-analyze verify.
#
# fusezram-swap and the transport: bad io_uring (maybe), io_uring_depth
# (0, 129) and enable_uring (perhaps) values, and enable_uring = yes with
# io_uring = off, are refused (exit 2) naming key, value and line, and
# change nothing.  With the fuse module's enable_uring off, config shows
# the keys and the options start passes (io_uring=on,io_uring_depth=4);
# start with enable_uring = yes turns the switch on and says so, and the
# swap's daemon serves on io_uring at depth 4; stop leaves the switch on;
# a start with the switch already on says nothing of it; without the key,
# start leaves the switch off and the daemon serves /dev/fuse.  The
# switch is put back as the test found it.  (Without the switch in this
# kernel: start with enable_uring = yes says so and serves /dev/fuse.)
#
# Safety: the lock directory /run/fusezram is removed at the end if the
# test made it; the fuse module's enable_uring is put back as found (run
# the test through run.sh, which holds the lock of those who switch it).  Before start, the cleanup registers 'fusezram-swap stop', a
# swapoff and losetup -d of every loop device on the swap image (and
# nothing else), and the unmount; after start, the loop device and swap
# are registered with lib.sh as well.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 unshare getopt mkswap swapon swapoff losetup dd
fz_require_fuse
fz_require_loop
export FUSEZRAM

FZRAMCTL=$FZ_ROOT/tools/fzramctl
FZSWAP=$FZ_ROOT/tools/fusezram-swap
[ -x "$FZRAMCTL" ] || fz_fail "$FZRAMCTL is missing or not executable"
[ -x "$FZSWAP" ] || fz_fail "$FZSWAP is missing or not executable"

DEFAULT_HEADER="NAME DISKSIZE DATA COMPR TOTAL ALGORITHM STREAMS ZERO-PAGES MOUNTPOINT"

# ctl ARGS... - run fzramctl, bounded; output in $FZ_TMP/out, $FZ_TMP/err.
ctl() {
	local rc=0
	fz_run 60 "$FZRAMCTL" "$@" >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
	return "$rc"
}

# norm - squeeze the blanks of each line to one space, none at the ends.
norm() { awk '{ $1 = $1; print }'; }

# row_of MNT - the line of $FZ_TMP/out whose last field is MNT.
row_of() { awk -v m="$1" '$NF == m' "$FZ_TMP/out"; }


# ---------------------------------------------------------------------------
# fzramctl

fz_mount -o disksize=64M,comp_algorithm=zstd
MNT1=$FZ_MNT
seq 1 300000 >"$FZ_TMP/seq"
head -c 1M "$FZ_TMP/seq" >"$FZ_TMP/text"
fz_pwrite "$FZ_TMP/text" "$FZ_IMG" 0 $((1 << 20))
fz_pwrite /dev/zero "$FZ_IMG" $((4 << 20)) $((256 << 10))

want_alg=-
want_streams=-
opts=$(awk -v m="$FZ_MNT" '$5 == m { print $NF }' /proc/self/mountinfo)
[[ ,$opts, =~ ,comp_algorithm=([^,]+), ]] && want_alg=${BASH_REMATCH[1]}
[[ ,$opts, =~ ,threads=([0-9]+), ]] && want_streams=${BASH_REMATCH[1]}
if [ -f "$FZ_CTL/comp_algorithm" ]; then
	want_alg=zstd
	fz_log "control/comp_algorithm: $(cat "$FZ_CTL/comp_algorithm")"
fi
if [ -f "$FZ_CTL/max_comp_streams" ]; then
	want_streams=$(cat "$FZ_CTL/max_comp_streams")
fi

# check_bytes NAME - fzramctl -b agrees with mm_stat (read before and
# after: a background compaction may change TOTAL; retry until stable).
check_bytes() {
	local name=$1 i mm1 mm2 row
	local -a m
	local cols=NAME,DISKSIZE,DATA,COMPR,TOTAL,ZERO-PAGES,MEM-LIMIT,MEM-PEAK,MIGRATED,HUGE-PAGES,ALGORITHM,STREAMS,MOUNTPOINT
	for i in 1 2 3 4 5 6 7 8 9 10; do
		mm1=$(cat "$FZ_CTL/mm_stat")
		ctl -b -n -r -o "$cols" "$FZ_MNT" || fz_fail "fzramctl -b exited $?: $(cat "$FZ_TMP/err")"
		mm2=$(cat "$FZ_CTL/mm_stat")
		[ "$mm1" != "$mm2" ] || break
		sleep 0.5
	done
	read -r -a m <<<"$mm1"
	row=$(cat "$FZ_TMP/out")
	fz_log "fzramctl -b: $row"
	fz_log "mm_stat:     $mm1"
	fz_expect_eq "fzramctl -b row" "$row" \
		"$name $((64 << 20)) ${m[0]} ${m[1]} ${m[2]} ${m[5]} ${m[3]} ${m[4]} ${m[6]} ${m[7]} $want_alg $want_streams $FZ_MNT"
	fz_expect_eq "DATA (1 MiB of text, 256 KiB of zeros)" "${m[0]}" $(((1 << 20) + (256 << 10)))
	fz_expect_eq "ZERO-PAGES" "${m[5]}" 64
}
check_bytes -

# Human-readable, default columns.
ctl || fz_fail "fzramctl exited $?: $(cat "$FZ_TMP/err")"
cat "$FZ_TMP/out" >&2
fz_expect_eq "default header" "$(head -n 1 "$FZ_TMP/out" | norm)" "$DEFAULT_HEADER"
read -r -a f <<<"$(row_of "$FZ_MNT")"
[ "${#f[@]}" -eq 9 ] || fz_fail "no row (or not 9 columns) for $FZ_MNT in fzramctl output"
fz_expect_eq "NAME" "${f[0]}" -
fz_expect_eq "DISKSIZE" "${f[1]}" 64M
fz_expect_eq "DATA" "${f[2]}" 1.3M
fz_expect_eq "ALGORITHM" "${f[5]}" "$want_alg"
fz_expect_eq "ZERO-PAGES" "${f[7]}" 64
[[ ${f[3]} =~ ^[0-9.]+[BKM]$ ]] || fz_fail "COMPR '${f[3]}' is not a human size"
[[ ${f[4]} =~ ^[0-9.]+[BKM]$ ]] || fz_fail "TOTAL '${f[4]}' is not a human size"

# Loop devices: NAME follows them.
fz_loop "$FZ_IMG" --direct-io=on
loop1=$FZ_LOOP
check_bytes "$loop1"
fz_loop "$FZ_IMG"
loop2=$FZ_LOOP
want=$(printf '%s\n' "$loop1" "$loop2" | sort -V | paste -sd, -)
ctl -n -o NAME "$FZ_MNT" || fz_fail "fzramctl -o NAME exited $?"
fz_expect_eq "NAME with two loop devices" "$(tr -d ' ' <"$FZ_TMP/out")" "$want"
for sel in "$FZ_IMG" "$loop2" "$FZ_MNT/"; do
	ctl -n -o MOUNTPOINT "$sel" || fz_fail "fzramctl $sel exited $?: $(cat "$FZ_TMP/err")"
	fz_expect_eq "row selected by $sel" "$(cat "$FZ_TMP/out")" "$FZ_MNT"
done
fz_loop_detach "$loop2"
ctl -n -o NAME "$FZ_MNT" || fz_fail "fzramctl -o NAME exited $?"
fz_expect_eq "NAME after detaching $loop2" "$(tr -d ' ' <"$FZ_TMP/out")" "$loop1"

# Column selection.
ctl -o mountpoint,Name "$FZ_MNT" || fz_fail "fzramctl -o exited $?"
fz_expect_eq "-o header" "$(head -n 1 "$FZ_TMP/out" | norm)" "MOUNTPOINT NAME"
fz_expect_eq "-o row" "$(sed -n 2p "$FZ_TMP/out" | norm)" "$FZ_MNT $loop1"
ctl -o +RATIO,MEM-LIMIT "$FZ_MNT" || fz_fail "fzramctl -o + exited $?"
fz_expect_eq "-o + header" "$(head -n 1 "$FZ_TMP/out" | norm)" "$DEFAULT_HEADER RATIO MEM-LIMIT"
ctl --output-all "$FZ_MNT" || fz_fail "fzramctl --output-all exited $?"
fz_expect_eq "--output-all columns" "$(head -n 1 "$FZ_TMP/out" | wc -w)" 27
ctl -n "$FZ_MNT" || fz_fail "fzramctl -n exited $?"
fz_expect_eq "-n lines" "$(wc -l <"$FZ_TMP/out")" 1
if ctl -o NAME,BOGUS; then fz_fail "fzramctl -o BOGUS succeeded"; fi
grep -q BOGUS "$FZ_TMP/err" || fz_fail "fzramctl -o BOGUS: message does not name it: $(cat "$FZ_TMP/err")"
if ctl /; then fz_fail "fzramctl / (not fusezram) succeeded"; fi
ctl --help || fz_fail "fzramctl --help exited $?"
grep -q ZERO-PAGES "$FZ_TMP/out" || fz_fail "fzramctl --help does not list the columns"

# JSON, in bytes and human-readable.
ctl -J -b --output-all || fz_fail "fzramctl -J -b exited $?: $(cat "$FZ_TMP/err")"
python3 -m json.tool "$FZ_TMP/out" >/dev/null || fz_fail "fzramctl -J -b is not valid JSON: $(cat "$FZ_TMP/out")"
python3 - "$FZ_TMP/out" "$FZ_MNT" "$loop1" <<'EOF' || fz_fail "fzramctl -J -b: wrong figures"
import json, sys
doc = json.load(open(sys.argv[1]))
rows = [r for r in doc["fusezram"] if r["mountpoint"] == sys.argv[2]]
assert len(rows) == 1, rows
r = rows[0]
want = {"name": sys.argv[3], "disksize": 64 << 20, "data": (1 << 20) + (256 << 10),
        "zero-pages": 64, "mem-limit": 0}
for k, v in want.items():
    assert r[k] == v, (k, r[k], v)
for k in ("compr", "total", "mem-peak", "migrated", "huge-pages"):
    assert isinstance(r[k], int) and r[k] >= 0, (k, r[k])
assert r["ratio"] is None or isinstance(r["ratio"], float), r["ratio"]
EOF
ctl --json "$FZ_MNT" || fz_fail "fzramctl --json exited $?"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["fusezram"][0]; assert r["disksize"] == "64M", r' \
	"$FZ_TMP/out" || fz_fail "fzramctl --json (human): $(cat "$FZ_TMP/out")"

# Nothing mounted: in a private mount namespace, detach every fusezram
# mount (only there) and list.
# shellcheck disable=SC2016 # for the inner shell
fz_run 60 unshare -m --propagation private bash -c '
	awk '\''{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "fuse.fusezram") print $5 }'\'' /proc/self/mountinfo |
	while read -r m; do umount -l "$(printf "%b" "${m//\\/\\0}")" || exit 1; done
	exec "$1"' _ "$FZRAMCTL" >"$FZ_TMP/out" 2>"$FZ_TMP/err" ||
	fz_fail "fzramctl with nothing mounted exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "fzramctl with nothing mounted" "$(norm <"$FZ_TMP/out")" "$DEFAULT_HEADER"

# A stopped daemon: a timeout and a row of "-", not a hang.
fz_mount --detach -o disksize=16M
stopped=$FZ_MNT
pid=$FZ_PID
kill -STOP "$pid"
fz_defer "kill -CONT $pid 2>/dev/null || :"
start=$SECONDS
rc=0
FZRAMCTL_TIMEOUT=2 ctl -o DATA,MOUNTPOINT "$stopped" || rc=$?
kill -CONT "$pid"
fz_expect_eq "fzramctl exit status with a stopped daemon" "$rc" 1
[ $((SECONDS - start)) -le 20 ] || fz_fail "fzramctl took $((SECONDS - start))s with a stopped daemon (timeout 2s)"
grep -q 'no answer' "$FZ_TMP/err" || fz_fail "no timeout message: $(cat "$FZ_TMP/err")"
fz_expect_eq "row of a stopped daemon" "$(sed -n 2p "$FZ_TMP/out" | norm)" "- $stopped"
fz_wait_until 20 cat "$stopped/control/mm_stat" || fz_fail "daemon $pid does not answer after SIGCONT"
# A timeout with a leading zero is decimal (bash read 08 as octal and
# failed every row); one that cannot be is refused.
FZRAMCTL_TIMEOUT=08 ctl -o MOUNTPOINT "$stopped" || fz_fail "FZRAMCTL_TIMEOUT=08: exit $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "row with FZRAMCTL_TIMEOUT=08" "$(sed -n 2p "$FZ_TMP/out" | norm)" "$stopped"
rc=0
FZRAMCTL_TIMEOUT=99999999999 ctl -o MOUNTPOINT "$stopped" || rc=$?
fz_expect_eq "fzramctl exit status with FZRAMCTL_TIMEOUT=99999999999" "$rc" 1
grep -q "not '99999999999'" "$FZ_TMP/err" || fz_fail "FZRAMCTL_TIMEOUT=99999999999: $(cat "$FZ_TMP/err")"

# A dead daemon: a row of "-" and exit 1.
kill -KILL "$pid"
fz_wait_until 20 eval "! fz__alive $pid" || fz_fail "daemon $pid survived SIGKILL"
rc=0
ctl -o NAME,DATA,MOUNTPOINT || rc=$?
fz_expect_eq "fzramctl exit status with a dead daemon" "$rc" 1
fz_expect_eq "row of a dead daemon" "$(row_of "$stopped" | norm)" "- - $stopped"
fz_expect_eq "row of the live mount" "$(row_of "$MNT1" | norm | cut -d' ' -f1)" "$loop1"
grep -q "$stopped" "$FZ_TMP/err" || fz_fail "no message naming $stopped: $(cat "$FZ_TMP/err")"
fz_umount "$stopped"
fz_loop_detach "$loop1"
fz_umount "$MNT1"

# ---------------------------------------------------------------------------
# fusezram-swap

SWMNT=$FZ_TMP/swap/mnt
SWIMG=$SWMNT/image
CONF=$FZ_TMP/swap.conf
PRIO=1234

fz_swaptool_cleanup "$FZSWAP" "$CONF" "$SWIMG" "$SWMNT"

# A bad settings file: refused, naming key and line; nothing done.
printf 'disksize = 256M\nmountpoint = %s\nswap_size = 1G\ncomp_algorithm = lzo\n' "$SWMNT" >"$CONF"
rc=0
fz_run 60 "$FZSWAP" --config "$CONF" start 2>"$FZ_TMP/err" || rc=$?
cat "$FZ_TMP/err" >&2
fz_expect_eq "start with a bad settings file: exit status" "$rc" 2
grep -q "swap.conf:3: unknown key 'swap_size'" "$FZ_TMP/err" || fz_fail "unknown key not named with its line"
grep -q "swap.conf:4: invalid comp_algorithm 'lzo'" "$FZ_TMP/err" || fz_fail "bad value not named with its line"
[ ! -e "$SWMNT" ] || fz_fail "start with a bad settings file created $SWMNT"

# Two keys before one '=' (the value was dropped without a word), and a
# mount point that would hide the lock directory (no stop could lock).
for bad in "mem_limit swap_priority = 5G|unknown key 'mem_limit swap_priority'" \
	"mountpoint = /run|would hide the lock directory"; do
	printf '%s\n' "${bad%%|*}" >"$CONF"
	rc=0
	fz_run 60 "$FZSWAP" --config "$CONF" config >/dev/null 2>"$FZ_TMP/err" || rc=$?
	fz_expect_eq "config with '${bad%%|*}': exit status" "$rc" 2
	grep -q "swap.conf:1: .*${bad#*|}" "$FZ_TMP/err" ||
		fz_fail "config with '${bad%%|*}': $(cat "$FZ_TMP/err")"
done
# A mount point through a symlink is used by its real path, which is
# how the kernel lists the mount and the loop device's file.
ln -s "$FZ_TMP" "$FZ_TMP/link"
printf 'mountpoint = %s\n' "$FZ_TMP/link/swap/mnt" >"$CONF"
fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" || fz_fail "config with a symlinked mount point exited $?"
grep -q "^mountpoint = $(realpath "$FZ_TMP")/swap/mnt" "$FZ_TMP/out" ||
	fz_fail "config with a symlinked mount point: $(grep mountpoint "$FZ_TMP/out")"
rm "$FZ_TMP/link"

# Integer settings are read as strtol reads them, in decimal: a sign is
# taken, leading zeros are not octal, -0 is 0 (swap_priority = -0 was -1).
# config prints each as the daemon and swapon get it; what is no integer
# is refused, naming key and value.
for p in -0:0 +5:5 000100:100 08:8 -01:-1; do
	printf 'mountpoint = %s\nswap_priority = %s\n' "$SWMNT" "${p%%:*}" >"$CONF"
	fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" ||
		fz_fail "config with swap_priority = ${p%%:*} exited $?"
	fz_expect_eq "config with swap_priority = ${p%%:*}" "$(grep '^swap_priority' "$FZ_TMP/out")" "swap_priority = ${p#*:}"
done
printf '%s\n' "mountpoint = $SWMNT" "threads = 08" "comp_algorithm = zstd" "comp_level = +007" \
	"recomp_algorithm = zstd:-01" "recompress_age = 0600" "io_uring_depth = +010" >"$CONF"
fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" || fz_fail "config with integers in other spellings exited $?"
for want in "threads = 8" "comp_level = 7" "recomp_algorithm = zstd:-1" "io_uring_depth = 10"; do
	grep -qx "$want" "$FZ_TMP/out" || fz_fail "config does not show '$want': $(cat "$FZ_TMP/out")"
done
grep -q "^recompress_age = 600[[:space:]]" "$FZ_TMP/out" || fz_fail "config does not show recompress_age = 600"
grep -q "^# start runs: .*,comp_level=7,mem_limit=0,threads=8,recomp_algorithm=zstd:-1,recompress_age=600,.*io_uring_depth=10 " \
	"$FZ_TMP/out" || fz_fail "config: start would not pass the integers in decimal: $(grep '^# start runs' "$FZ_TMP/out")"
fz_swaptool_refused -F "mountpoint = $SWMNT\nswap_priority = 0x10\nthreads = 1.5\nio_uring_depth = - 4\n" \
	"swap.conf:2: invalid swap_priority '0x10': expected an integer from -1 to 32767" \
	"swap.conf:3: invalid threads '1.5': expected an integer from 1 to 1024" \
	"swap.conf:4: invalid io_uring_depth '- 4': expected an integer from 1 to 128"
# A level written otherwise is the same level (lz4:01 is comp_level 1).
fz_swaptool_refused -F "mountpoint = $SWMNT\ncomp_algorithm = lz4\ncomp_level = 1\nrecomp_algorithm = lz4:01\n" \
	"swap.conf:4: invalid recomp_algorithm 'lz4:01': it is comp_algorithm itself at the same level"

cat >"$CONF" <<EOF
# t_admin: a small swap under the test's directory
disksize = 256M       # bytes of pages, uncompressed
comp_algorithm = lz4
mem_limit = 128M
swap_priority = $PRIO
mountpoint = $SWMNT
EOF
fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" || fz_fail "fusezram-swap config exited $?"
grep -qx "disksize = $((256 << 20))[[:space:]]*#.*" "$FZ_TMP/out" || fz_fail "config: $(cat "$FZ_TMP/out")"

# Rollback: a failing mkswap, then a failing swapon.
mkdir "$FZ_TMP/fakebin"
for prog in mkswap swapon; do
	rm -f "$FZ_TMP/fakebin"/*
	printf '#!/bin/sh\necho "%s: stand-in failing on purpose" >&2\nexit 1\n' "$prog" >"$FZ_TMP/fakebin/$prog"
	chmod +x "$FZ_TMP/fakebin/$prog"
	rc=0
	PATH=$FZ_TMP/fakebin:$PATH fz_run 120 "$FZSWAP" --config "$CONF" start 2>"$FZ_TMP/err" || rc=$?
	cat "$FZ_TMP/err" >&2
	fz_expect_eq "start with a failing $prog: exit status" "$rc" 1
	grep -q "stand-in failing on purpose" "$FZ_TMP/err" || fz_fail "the $prog message was not passed on"
	[ -z "$(fz_loops_of "$SWIMG")" ] || fz_fail "failed start ($prog) left loop devices: $(fz_loops_of "$SWIMG")"
	! fz_is_mounted "$SWMNT" || fz_fail "failed start ($prog) left $SWMNT mounted"
	[ ! -e "$SWMNT" ] || fz_fail "failed start ($prog) left $SWMNT"
	! fz__find_daemon "$SWMNT" >/dev/null || fz_fail "failed start ($prog) left a daemon"
done

# A start stopped by SIGTERM (systemd's start timeout sends it) while
# swapon runs: the signal is taken once swapon returns, with the swap on
# and the loop device attached; the undo takes both away all the same.
realswapon=$(command -v swapon)
printf '#!/bin/sh\n"%s" "$@" || exit\nsleep 3\n' "$realswapon" >"$FZ_TMP/fakebin/swapon"
chmod +x "$FZ_TMP/fakebin/swapon"
# swap_on_image - a loop device on SWIMG is swap (its name in SWDEV).
swap_on_image() {
	SWDEV=$(fz_loops_of "$SWIMG")
	[ -n "$SWDEV" ] && awk -v d="$SWDEV" '$1 == d { f = 1 } END { exit !f }' /proc/swaps
}
PATH=$FZ_TMP/fakebin:$PATH "$FZSWAP" --config "$CONF" start 2>"$FZ_TMP/err" &
swpid=$!
# Should the test fail before its SIGTERM: the start ends first (its
# trap undoes what it set up), then the cleanup registered above.
fz_defer "kill -TERM $swpid 2>/dev/null; timeout 120 tail --pid=$swpid -f /dev/null || :"
fz_wait_until 60 swap_on_image || fz_fail "the swap never came on for the SIGTERM case"
kill -TERM "$swpid"
rc=0
fz_wait_until 120 eval '! kill -0 '"$swpid"' 2>/dev/null' || fz_fail "fusezram-swap start did not end 120 s after SIGTERM"
wait "$swpid" || rc=$?
cat "$FZ_TMP/err" >&2
fz_expect_eq "start ended by SIGTERM: exit status" "$rc" 1
grep -q "nothing is left set up" "$FZ_TMP/err" || fz_fail "start ended by SIGTERM: $(tail -3 "$FZ_TMP/err")"
[ -z "$(fz_loops_of "$SWIMG")" ] || fz_fail "start ended by SIGTERM left loop devices: $(fz_loops_of "$SWIMG")"
! awk -v d="$SWDEV" '$1 == d { f = 1 } END { exit !f }' /proc/swaps ||
	fz_fail "start ended by SIGTERM left swap on $SWDEV"
! fz_is_mounted "$SWMNT" || fz_fail "start ended by SIGTERM left $SWMNT mounted"
! fz__find_daemon "$SWMNT" >/dev/null || fz_fail "start ended by SIGTERM left a daemon"
rm "$FZ_TMP/fakebin/swapon"

# The real thing.
fz_run 120 "$FZSWAP" --config "$CONF" start || fz_fail "fusezram-swap start exited $?"
dev=$(fz_loops_of "$SWIMG")
if [ -z "$dev" ] || [ "$(wc -l <<<"$dev")" -ne 1 ]; then
	fz_fail "expected one loop device on $SWIMG, got '$dev'"
fi
fz__register "loop|$dev|$SWIMG"
fz__register "swap|$dev"
awk -v m="$SWMNT" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo |
	grep -qx fuse.fusezram || fz_fail "no fuse.fusezram mount at $SWMNT"
fz_check_transport "$SWMNT"
fz_expect_eq "losetup DIO of $dev" "$(losetup -n -O DIO "$dev" | tr -d '[:space:]')" 1
line=$(awk -v d="$dev" '$1 == d' /proc/swaps)
fz_log "/proc/swaps: $line"
[ -n "$line" ] || fz_fail "$dev is not in /proc/swaps"
read -r _ type size _ prio <<<"$line"
fz_expect_eq "swap type" "$type" partition
fz_expect_eq "swap priority" "$prio" "$PRIO"
fz_expect_eq "swap size (KiB, less the header page)" "$size" $(((256 << 10) - 4))
fz_expect_eq "mem_limit in mm_stat" "$(fz_mm mem_limit "$SWMNT")" $((128 << 20))
ctl -n -r -o NAME,DISKSIZE,SWAP-USED,MOUNTPOINT "$SWMNT" || fz_fail "fzramctl on the swap exited $?"
read -r n d u m <"$FZ_TMP/out"
fz_expect_eq "fzramctl NAME of the swap" "$n" "$dev"
fz_expect_eq "fzramctl DISKSIZE of the swap" "$d" 256M
fz_expect_eq "fzramctl MOUNTPOINT of the swap" "$m" "$SWMNT"
[[ $u =~ ^[0-9.]+[BKMG]$ ]] || fz_fail "fzramctl SWAP-USED of the swap is '$u'"

fz_run 60 "$FZSWAP" --config "$CONF" status >"$FZ_TMP/out" || fz_fail "fusezram-swap status exited $?"
cat "$FZ_TMP/out" >&2
grep -q "^$dev .* $PRIO\$" "$FZ_TMP/out" || fz_fail "status does not show $dev at priority $PRIO"

# A failing fzramctl (a stand-in beside a copy of the tool: status looks
# there first) does not hide that the swap is on: its line is printed, a
# message says so, and the exit status is 4, not 1.  Nor does a failing
# swapon --show (a stand-in first on PATH): the line comes from
# /proc/swaps, and the status is 0, not 3.
mkdir "$FZ_TMP/tools"
cp "$FZSWAP" "$FZ_TMP/tools/"
printf '#!/bin/sh\necho "fzramctl: stand-in failing on purpose" >&2\nexit 1\n' >"$FZ_TMP/tools/fzramctl"
printf '#!/bin/sh\necho "swapon: stand-in failing on purpose" >&2\nexit 1\n' >"$FZ_TMP/fakebin/swapon"
chmod +x "$FZ_TMP/tools/fzramctl" "$FZ_TMP/fakebin/swapon"
rc=0
fz_run 60 "$FZ_TMP/tools/fusezram-swap" --config "$CONF" status >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
cat "$FZ_TMP/out" "$FZ_TMP/err" >&2
fz_expect_eq "status with a failing fzramctl: exit status" "$rc" 4
grep -q "^$dev .* $PRIO\$" "$FZ_TMP/out" || fz_fail "status with a failing fzramctl does not show $dev at priority $PRIO"
grep -qF "fzramctl: stand-in failing on purpose" "$FZ_TMP/err" || fz_fail "status did not pass on fzramctl's message"
grep -qF "the swap on $dev is on, but the figures of $SWMNT could not be read" "$FZ_TMP/err" ||
	fz_fail "status with a failing fzramctl does not say the swap is on: $(cat "$FZ_TMP/err")"
rc=0
PATH=$FZ_TMP/fakebin:$PATH fz_run 60 "$FZSWAP" --config "$CONF" status >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
cat "$FZ_TMP/out" "$FZ_TMP/err" >&2
fz_expect_eq "status with a failing swapon --show: exit status" "$rc" 0
grep -q "^${dev}[[:space:]].*[[:space:]]$PRIO\$" "$FZ_TMP/out" ||
	fz_fail "status with a failing swapon --show does not show $dev at priority $PRIO"
rm "$FZ_TMP/fakebin/swapon"

fz_run 120 "$FZSWAP" --config "$CONF" start >"$FZ_TMP/out" || fz_fail "second start exited $?"
grep -q 'already active' "$FZ_TMP/out" || fz_fail "second start: $(cat "$FZ_TMP/out")"
fz_expect_eq "loop devices after a second start" "$(fz_loops_of "$SWIMG")" "$dev"

fz_run 400 "$FZSWAP" --config "$CONF" stop || fz_fail "fusezram-swap stop exited $?"
! grep -q "^${dev}[[:space:]]" /proc/swaps || fz_fail "$dev is still swap after stop"
[ -z "$(fz_loops_of "$SWIMG")" ] || fz_fail "loop devices left on $SWIMG after stop: $(fz_loops_of "$SWIMG")"
! fz_is_mounted "$SWMNT" || fz_fail "$SWMNT still mounted after stop"
[ ! -e "$SWMNT" ] || fz_fail "$SWMNT left after stop"
! fz__find_daemon "$SWMNT" >/dev/null || fz_fail "the daemon of $SWMNT is still running after stop"

fz_run 120 "$FZSWAP" --config "$CONF" stop >"$FZ_TMP/out" || fz_fail "second stop exited $?"
grep -q 'nothing to stop' "$FZ_TMP/out" || fz_fail "second stop: $(cat "$FZ_TMP/out")"
rc=0
fz_run 60 "$FZSWAP" --config "$CONF" status >/dev/null || rc=$?
fz_expect_eq "status when stopped: exit status" "$rc" 3

# ---------------------------------------------------------------------------
# fusezram-swap and the transport: io_uring, io_uring_depth, enable_uring.

refused() { fz_swaptool_refused -F "$@"; }

# swap_start WHAT - fusezram-swap start (its output in $FZ_TMP/start.out),
# the swap registered for the cleanup; sets dev.
swap_start() {
	fz_run 120 "$FZSWAP" --config "$CONF" start >"$FZ_TMP/start.out" 2>&1 ||
		fz_fail "fusezram-swap start ($1) exited $?: $(cat "$FZ_TMP/start.out")"
	cat "$FZ_TMP/start.out" >&2
	dev=$(fz_loops_of "$SWIMG")
	if [ -z "$dev" ] || [ "$(wc -l <<<"$dev")" -ne 1 ]; then
		fz_fail "expected one loop device on $SWIMG ($1), got '$dev'"
	fi
	fz__register "loop|$dev|$SWIMG"
	fz__register "swap|$dev"
	grep -q "^${dev}[[:space:]]" /proc/swaps || fz_fail "$dev is not swap ($1)"
}

# swap_stop WHAT - fusezram-swap stop; nothing is left.
swap_stop() {
	fz_run 400 "$FZSWAP" --config "$CONF" stop >&2 || fz_fail "fusezram-swap stop ($1) exited $?"
	[ -z "$(fz_loops_of "$SWIMG")" ] || fz_fail "loop devices left on $SWIMG after stop ($1)"
	! fz_is_mounted "$SWMNT" || fz_fail "$SWMNT still mounted after stop ($1)"
}

# swap_priority = -0 reaches the kernel as priority 0 (swapon -p 0).
cat >"$CONF" <<EOF
disksize = 64M
swap_priority = -0
mountpoint = $SWMNT
EOF
swap_start "swap_priority = -0"
fz_expect_eq "/proc/swaps priority with swap_priority = -0" "$(awk -v d="$dev" '$1 == d { print $5 }' /proc/swaps)" 0
grep -q "(priority 0)" "$FZ_TMP/start.out" || fz_fail "start with swap_priority = -0: $(cat "$FZ_TMP/start.out")"
swap_stop "swap_priority = -0"

PARAM=$FZ_URING_PARAM
if [ -e "$PARAM" ]; then
	if [ "$(cat "$PARAM")" = Y ]; then fz_defer "echo 1 >'$PARAM'"; else fz_defer "echo 0 >'$PARAM'"; fi
	echo 0 >"$PARAM"
	fz_expect_eq "$PARAM after writing 0" "$(cat "$PARAM")" N
fi

refused "mountpoint = $SWMNT\nio_uring = maybe\nio_uring_depth = 0\nenable_uring = perhaps\n" \
	"swap.conf:2: invalid io_uring 'maybe': expected on or off" \
	"swap.conf:3: invalid io_uring_depth '0': expected an integer from 1 to 128" \
	"swap.conf:4: invalid enable_uring 'perhaps': expected yes or no"
refused "mountpoint = $SWMNT\nio_uring_depth = 129\n" \
	"swap.conf:2: invalid io_uring_depth '129': expected an integer from 1 to 128"
refused "mountpoint = $SWMNT\nio_uring = off\nenable_uring = yes\n" \
	"swap.conf:3: enable_uring yes is set but io_uring is off"
[ ! -e "$PARAM" ] || fz_expect_eq "$PARAM after the refused starts" "$(cat "$PARAM")" N

cat >"$CONF" <<EOF
# t_admin: a small swap on io_uring, switched on by the tool
disksize = 64M
swap_priority = $PRIO
mountpoint = $SWMNT
io_uring = on
io_uring_depth = 4
enable_uring = yes
EOF
fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" || fz_fail "config with the io_uring keys exited $?"
cat "$FZ_TMP/out" >&2
grep -qx "io_uring = on" "$FZ_TMP/out" || fz_fail "config shows no io_uring"
grep -qx "io_uring_depth = 4" "$FZ_TMP/out" || fz_fail "config shows no io_uring_depth"
grep -q "^enable_uring = yes[[:space:]]" "$FZ_TMP/out" || fz_fail "config shows no enable_uring"
grep -q "^# start runs: .*,io_uring=on,io_uring_depth=4 $SWMNT\$" "$FZ_TMP/out" ||
	fz_fail "config: start would not pass io_uring=on,io_uring_depth=4"

if [ -e "$PARAM" ]; then
	swap_start "enable_uring = yes, the switch off"
	grep -qF "enable_uring = yes: wrote 1 to $PARAM" "$FZ_TMP/start.out" ||
		fz_fail "start did not say it turned $PARAM on"
	fz_expect_eq "$PARAM after start with enable_uring = yes" "$(cat "$PARAM")" Y
	pid=$(fz__find_daemon "$SWMNT") || fz_fail "no daemon for $SWMNT"
	tr '\0' '\n' <"/proc/$pid/cmdline" | grep -q -- ",io_uring=on,io_uring_depth=4" ||
		fz_fail "the daemon's arguments lack io_uring=on,io_uring_depth=4: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	fz_expect_transport uring "$SWMNT"
	[[ $FZ_TRANSPORT_LINE =~ \ queue\(s\)\ of\ depth\ 4([^0-9]|$) ]] ||
		fz_fail "the swap's rings are not of depth 4: $FZ_TRANSPORT_LINE"
	grep -q "^fusezram-swap: transport: io_uring, .* of depth 4" "$FZ_TMP/start.out" ||
		fz_fail "start did not show the transport"
	swap_stop "io_uring"
	fz_expect_eq "$PARAM after stop (left on)" "$(cat "$PARAM")" Y

	# Already on: nothing said of it.
	swap_start "enable_uring = yes, the switch on"
	! grep -q "wrote 1" "$FZ_TMP/start.out" || fz_fail "start wrote $PARAM though it was on"
	fz_expect_transport uring "$SWMNT"
	swap_stop "io_uring, the switch on"

	# Without the key the switch is left alone.
	echo 0 >"$PARAM"
	sed -i '/^enable_uring/d' "$CONF"
	swap_start "no enable_uring, the switch off"
	fz_expect_eq "$PARAM after start without enable_uring" "$(cat "$PARAM")" N
	fz_expect_transport fuse "$SWMNT"
	swap_stop "no enable_uring"
else
	sed -i '/^io_uring/d' "$CONF"
	swap_start "enable_uring = yes, no switch in this kernel"
	grep -qF "there is no $PARAM" "$FZ_TMP/start.out" || fz_fail "start did not say the kernel has no $PARAM"
	fz_expect_transport fuse "$SWMNT"
	swap_stop "no switch"
fi

# The unit file, with its placeholders filled in.
if command -v systemd-analyze >/dev/null; then
	sed "s|@SBINDIR@|$FZ_ROOT/tools|g; s|@BINDIR@|$(dirname "$FUSEZRAM")|g" \
		"$FZ_ROOT/tools/fusezram-swap.service" >"$FZ_TMP/fusezram-swap.service"
	fz_run 60 systemd-analyze verify --man=no "$FZ_TMP/fusezram-swap.service" >"$FZ_TMP/out" 2>&1 ||
		fz_fail "systemd-analyze verify fusezram-swap.service: $(cat "$FZ_TMP/out")"
else
	fz_log "systemd-analyze not found: the unit file is not verified"
fi
fz_log "ok"
