#!/bin/bash
# t_tools_rc: the administration tools and recompression (issue 14).
#
# fzramctl: a mount with -o recomp_algorithm=zstd,recompress_age=7200
# (lz4 first), holding 2 MiB of text, 256 KiB of zeros and 64 KiB of
# random bytes, shows RECOMP-ALGORITHM zstd and zeros before anything is
# recompressed; after `echo all > idle; echo type=idle > recompress`,
# RECOMP-DATA, RECOMP-PAGES, RECOMP-SAVED and INCOMPR-PAGES equal
# control/debug_stat's (in bytes, human-readable and in JSON), RC-AGE
# control/recompress_age; pages were recompressed, saved memory, and the
# random ones are incompressible; every byte reads back.  After the first
# MiB is written again, RECOMP-DATA falls (those pages are lz4's again)
# while RECOMP-PAGES stays.  The default header is unchanged; -o + and
# --output-all take the new columns; --help names them.  A mount without
# a secondary algorithm shows "-" and zeros.
#
# fusezram-swap: bad recomp_algorithm (unknown name; a level that is not
# a number; comp_algorithm itself) and recompress_age (too large; set
# without recomp_algorithm) values are refused (exit 2) by start and by
# config, each named with its line, and nothing is set up.  Good ones:
# config shows them and the options start will pass; start mounts with
# them (control/recomp_algorithm, control/recompress_age, the daemon's
# arguments); status shows recompression's columns; stop removes swap,
# loop device, mount, daemon and mount point.
#
# With a daemon that has no recomp_algorithm option (before issue 14's
# daemon side), the recompression columns must read "-", start with the
# key must be refused before anything is set up, and the rest is skipped,
# loudly (exit 77; a failure with CI=true).
#
# Safety: as t_tools_wb: the lock directory /run/fusezram goes at the end
# if the test made it; before start, the cleanup registers 'fusezram-swap
# stop', a swapoff and losetup -d of every loop device on the swap's image
# (and nothing else), and the unmount.  Everything else is under FZ_TMP.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 getopt mkswap swapon swapoff losetup dd
fz_require_fuse
fz_require_loop
export FUSEZRAM

FZRAMCTL=$FZ_ROOT/tools/fzramctl
FZSWAP=$FZ_ROOT/tools/fusezram-swap
[ -x "$FZRAMCTL" ] || fz_fail "$FZRAMCTL is missing or not executable"
[ -x "$FZSWAP" ] || fz_fail "$FZSWAP is missing or not executable"

DEFAULT_HEADER="NAME DISKSIZE DATA COMPR TOTAL ALGORITHM STREAMS ZERO-PAGES MOUNTPOINT"
RC_COLS=RECOMP-ALGORITHM,RECOMP-DATA,RECOMP-PAGES,RECOMP-SAVED,INCOMPR-PAGES,RC-AGE

help=$("$FUSEZRAM" -h 2>&1) || :
HAS_RC=0
[[ $help != *recomp_algorithm* ]] || HAS_RC=1

ctl() {
	local rc=0
	fz_run 60 "$FZRAMCTL" "$@" >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
	return "$rc"
}
norm() { awk '{ $1 = $1; print }'; }

# ---------------------------------------------------------------------------
# fusezram-swap: the settings' checks (no daemon needed).

SWMNT=$FZ_TMP/swap/mnt
SWIMG=$SWMNT/image
CONF=$FZ_TMP/swap.conf

fz_swaptool_cleanup "$FZSWAP" "$CONF" "$SWIMG" "$SWMNT"

refused() { fz_swaptool_refused "$@"; }
refused "disksize = 64M\nmountpoint = $SWMNT\nrecomp_algorithm = brotli\nrecompress_age = 70000\n" \
	"swap.conf:3: invalid recomp_algorithm 'brotli': expected lz4, lz4hc or zstd" \
	"swap.conf:4: invalid recompress_age '70000'"
refused "mountpoint = $SWMNT\nrecomp_algorithm = zstd:high\n" \
	"swap.conf:2: invalid recomp_algorithm 'zstd:high': the level after ':' must be an integer"
refused "mountpoint = $SWMNT\ncomp_algorithm = zstd\nrecomp_algorithm = zstd\n" \
	"swap.conf:3: invalid recomp_algorithm 'zstd': it is comp_algorithm itself"
refused "mountpoint = $SWMNT\nrecompress_age = 60\n" \
	"swap.conf:2: recompress_age 60 is set but recomp_algorithm is not"
refused "mountpoint = $SWMNT\nrecompress_age = -1\nrecomp_algorithm = zstd\n" \
	"swap.conf:2: invalid recompress_age '-1'"

cat >"$CONF" <<EOF
# t_tools_rc: a small swap with recompression, under the test's directory
disksize = 64M
mountpoint = $SWMNT
swap_priority = 1236
recomp_algorithm = zstd:5
recompress_age = 600
EOF
fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" || fz_fail "config exited $?"
cat "$FZ_TMP/out" >&2
grep -qx "recomp_algorithm = zstd:5" "$FZ_TMP/out" || fz_fail "config shows no recomp_algorithm"
grep -q "^recompress_age = 600[[:space:]]" "$FZ_TMP/out" || fz_fail "config shows no recompress_age"
want_opts="recomp_algorithm=zstd:5,recompress_age=600"
grep -q "^# start runs: .*,$want_opts $SWMNT\$" "$FZ_TMP/out" || fz_fail "config: start would not pass $want_opts"
# Without the key, config says there is none; an age of 0 is passed.
printf 'mountpoint = %s\n' "$SWMNT" >"$FZ_TMP/plain.conf"
fz_run 60 "$FZSWAP" --config "$FZ_TMP/plain.conf" config >"$FZ_TMP/out" || fz_fail "config (plain) exited $?"
grep -q "^#recomp_algorithm =" "$FZ_TMP/out" || fz_fail "config without recomp_algorithm: $(cat "$FZ_TMP/out")"
! grep -q "recomp_algorithm=" "$FZ_TMP/out" || fz_fail "config without the key passes it: $(cat "$FZ_TMP/out")"
printf 'mountpoint = %s\nrecomp_algorithm = lz4hc\nrecompress_age = 0\n' "$SWMNT" >"$FZ_TMP/zero.conf"
fz_run 60 "$FZSWAP" --config "$FZ_TMP/zero.conf" config >"$FZ_TMP/out" || fz_fail "config (age 0) exited $?"
grep -q ",recomp_algorithm=lz4hc,recompress_age=0 $SWMNT\$" "$FZ_TMP/out" ||
	fz_fail "config with recompress_age 0: $(cat "$FZ_TMP/out")"

# ---------------------------------------------------------------------------
# An older daemon: "-" columns, start refused.

if [ "$HAS_RC" = 0 ]; then
	fz_mount -o disksize=16M
	ctl -b -n -r -o "$RC_COLS,MOUNTPOINT" "$FZ_MNT" || fz_fail "fzramctl exited $?: $(cat "$FZ_TMP/err")"
	fz_expect_eq "recompression's columns with a daemon without it" "$(cat "$FZ_TMP/out")" "- - - - - - $FZ_MNT"
	rc=0
	fz_run 60 "$FZSWAP" --config "$CONF" start 2>"$FZ_TMP/err" || rc=$?
	cat "$FZ_TMP/err" >&2
	fz_expect_eq "start with recomp_algorithm, daemon without it: exit status" "$rc" 1
	grep -q "no recomp_algorithm option" "$FZ_TMP/err" || fz_fail "no message: $(cat "$FZ_TMP/err")"
	[ ! -e "$SWMNT" ] || fz_fail "a refused start created $SWMNT"
	fz_skip "$FUSEZRAM has no recomp_algorithm option: the checks of a real recompression were not run"
fi

# ---------------------------------------------------------------------------
# fzramctl

fz_mount -o disksize=64M,comp_algorithm=lz4,recomp_algorithm=zstd,recompress_age=7200
MNT1=$FZ_MNT
C=$FZ_CTL
seq 1 400000 >"$FZ_TMP/seq"
head -c 2M "$FZ_TMP/seq" >"$FZ_TMP/text"
head -c 64K /dev/urandom >"$FZ_TMP/random"
fz_pwrite "$FZ_TMP/text" "$FZ_IMG" 0 $((2 << 20))
fz_pwrite /dev/zero "$FZ_IMG" $((4 << 20)) $((256 << 10))
fz_pwrite "$FZ_TMP/random" "$FZ_IMG" $((8 << 20)) $((64 << 10))
fz_log "control/recomp_algorithm: $(cat "$C/recomp_algorithm")"
grep -q '^#1: .*\[zstd\]' "$C/recomp_algorithm" || fz_fail "control/recomp_algorithm: $(cat "$C/recomp_algorithm")"
fz_expect_eq "control/recompress_age" "$(cat "$C/recompress_age")" 7200

ctl -b -n -r -o "$RC_COLS,MOUNTPOINT" "$MNT1" || fz_fail "fzramctl -b exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "fzramctl -b $RC_COLS before recompression" "$(cat "$FZ_TMP/out")" "zstd 0 0 0 0 7200 $MNT1"

compr0=$(fz_mm compr_data_size)
echo all >"$C/idle"
echo type=idle >"$C/recompress" || fz_fail "echo type=idle > control/recompress"
fz_log "debug_stat after recompression: $(tr '\n' '|' <"$C/debug_stat")"

# debug_figures - set DS_DATA (pages of the secondary algorithms, in
# bytes), DS_RECOMP, DS_SAVED, DS_INCOMPR from control/debug_stat.
debug_figures() {
	local -a d
	local p=0 got=0
	while read -r -a d; do
		if [[ ${d[0]:-} =~ ^#([1-9])$ ]] && [ "${#d[@]}" -eq 3 ]; then
			p=$((p + d[2]))
		elif [ "${d[0]:-}" = recompressed ]; then
			DS_RECOMP=${d[1]} DS_SAVED=${d[3]} DS_INCOMPR=${d[7]}
			got=1
		fi
	done <"$C/debug_stat"
	[ "$got" = 1 ] || fz_fail "control/debug_stat has no 'recompressed' line: $(cat "$C/debug_stat")"
	DS_DATA=$((p * 4096))
}

# check_rc WHAT - fzramctl -b agrees with debug_stat (read before and
# after: retry until stable).
check_rc() {
	local i a b
	for i in 1 2 3 4 5 6 7 8 9 10; do
		a=$(cat "$C/debug_stat")
		ctl -b -n -r -o "$RC_COLS,MOUNTPOINT" "$MNT1" || fz_fail "fzramctl -b exited $?: $(cat "$FZ_TMP/err")"
		b=$(cat "$C/debug_stat")
		[ "$a" != "$b" ] || break
		sleep 0.5
	done
	debug_figures
	fz_log "$1: fzramctl -b: $(cat "$FZ_TMP/out")"
	fz_expect_eq "fzramctl -b $RC_COLS ($1)" "$(cat "$FZ_TMP/out")" \
		"zstd $DS_DATA $DS_RECOMP $DS_SAVED $DS_INCOMPR 7200 $MNT1"
}
check_rc "after recompression"
[ "$DS_RECOMP" -gt 0 ] || fz_fail "nothing recompressed: $(cat "$C/debug_stat")"
fz_expect_eq "RECOMP-DATA against RECOMP-PAGES (nothing rewritten yet)" "$DS_DATA" $((DS_RECOMP * 4096))
[ "$DS_SAVED" -gt 0 ] || fz_fail "recompression saved nothing: $(cat "$C/debug_stat")"
[ "$DS_INCOMPR" -ge 16 ] || fz_fail "the 16 random pages are not all incompressible: $(cat "$C/debug_stat")"
compr1=$(fz_mm compr_data_size)
[ "$compr1" -lt "$compr0" ] || fz_fail "compr_data_size $compr0 -> $compr1 after recompression"
fz_log "compr_data_size $compr0 -> $compr1, saved $DS_SAVED"
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "the text read back after recompression" <(head -c 2M "$FZ_TMP/back") "$FZ_TMP/text"
fz_expect_cmp "the random bytes read back" <(fz_range "$FZ_TMP/back" $((8 << 20)) $((64 << 10))) "$FZ_TMP/random"
RECOMP1=$DS_RECOMP DATA1=$DS_DATA

# Human-readable, the columns' selection.
ctl || fz_fail "fzramctl exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "default header with a secondary algorithm" "$(head -n 1 "$FZ_TMP/out" | norm)" "$DEFAULT_HEADER"
ctl -o +Recomp-Algorithm,RECOMP-PAGES,rc-age "$MNT1" || fz_fail "fzramctl -o + exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "-o + header" "$(head -n 1 "$FZ_TMP/out" | norm)" "$DEFAULT_HEADER RECOMP-ALGORITHM RECOMP-PAGES RC-AGE"
read -r -a f <<<"$(sed -n 2p "$FZ_TMP/out")"
fz_expect_eq "RECOMP-ALGORITHM" "${f[9]}" zstd
fz_expect_eq "RECOMP-PAGES" "${f[10]}" "$RECOMP1"
fz_expect_eq "RC-AGE" "${f[11]}" 7200
ctl -o RECOMP-DATA "$MNT1" || fz_fail "fzramctl -o RECOMP-DATA exited $?"
[[ $(sed -n 2p "$FZ_TMP/out" | norm) =~ ^[0-9.]+[KM]$ ]] ||
	fz_fail "RECOMP-DATA, human-readable: $(cat "$FZ_TMP/out")"
ctl --output-all "$MNT1" || fz_fail "fzramctl --output-all exited $?"
fz_expect_eq "--output-all columns" "$(head -n 1 "$FZ_TMP/out" | wc -w)" 27
head -n 1 "$FZ_TMP/out" | grep -q " WB-AGE RECOMP-ALGORITHM RECOMP-DATA RECOMP-PAGES RECOMP-SAVED INCOMPR-PAGES RC-AGE MOUNTPOINT$" ||
	fz_fail "--output-all header: $(head -n 1 "$FZ_TMP/out")"
ctl --help || fz_fail "fzramctl --help exited $?"
for c in ${RC_COLS//,/ }; do
	grep -q "^ *$c  " "$FZ_TMP/out" || fz_fail "--help does not list $c"
done

# The first MiB written again: lz4's again; RECOMP-PAGES counts on.
fz_pwrite "$FZ_TMP/text" "$FZ_IMG" 0 $((1 << 20))
check_rc "after rewriting the first MiB"
[ "$DS_DATA" -lt "$DATA1" ] || fz_fail "RECOMP-DATA $DATA1 -> $DS_DATA after a rewrite"
fz_expect_eq "RECOMP-PAGES after a rewrite" "$DS_RECOMP" "$RECOMP1"

# A mount without a secondary algorithm.
fz_mount -o disksize=16M
MNT2=$FZ_MNT
ctl -b -n -r -o "$RC_COLS,MOUNTPOINT" "$MNT2" || fz_fail "fzramctl (no secondary) exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "fzramctl -b without a secondary algorithm" "$(cat "$FZ_TMP/out")" "- 0 0 0 0 0 $MNT2"

# JSON, in bytes: both rows.
ctl -J -b -o "$RC_COLS,MOUNTPOINT" "$MNT1" "$MNT2" || fz_fail "fzramctl -J -b exited $?: $(cat "$FZ_TMP/err")"
fz_python 60 "$FZ_TMP/out" "$MNT1" "$DS_DATA" "$DS_RECOMP" "$DS_SAVED" "$DS_INCOMPR" "$MNT2" <<'EOF' ||
import json, sys
rows = {r["mountpoint"]: r for r in json.load(open(sys.argv[1]))["fusezram"]}
r = rows[sys.argv[2]]
want = {"recomp-algorithm": "zstd", "recomp-data": int(sys.argv[3]),
        "recomp-pages": int(sys.argv[4]), "recomp-saved": int(sys.argv[5]),
        "incompr-pages": int(sys.argv[6]), "rc-age": 7200}
for k, v in want.items():
    assert r[k] == v, (k, r[k], v)
r = rows[sys.argv[7]]
assert r["recomp-algorithm"] is None and r["recomp-pages"] == 0 and r["rc-age"] == 0, r
print("ok")
EOF
	fz_fail "fzramctl -J -b: wrong figures: $(cat "$FZ_TMP/out")"
fz_umount "$MNT2"
fz_umount "$MNT1"

# ---------------------------------------------------------------------------
# fusezram-swap start, status, stop with the keys.

fz_run 120 "$FZSWAP" --config "$CONF" start || fz_fail "fusezram-swap start exited $?"
dev=$(fz_loops_of "$SWIMG")
if [ -z "$dev" ] || [ "$(wc -l <<<"$dev")" -ne 1 ]; then
	fz_fail "expected one loop device on $SWIMG, got '$dev'"
fi
fz__register "loop|$dev|$SWIMG"
fz__register "swap|$dev"
grep -q "^${dev}[[:space:]]" /proc/swaps || fz_fail "$dev is not swap"
grep -q '^#1: .*\[zstd\]' "$SWMNT/control/recomp_algorithm" ||
	fz_fail "control/recomp_algorithm of the swap: $(cat "$SWMNT/control/recomp_algorithm")"
fz_expect_eq "control/recompress_age of the swap" "$(cat "$SWMNT/control/recompress_age")" 600
pid=$(fz__find_daemon "$SWMNT") || fz_fail "no daemon for $SWMNT"
tr '\0' '\n' <"/proc/$pid/cmdline" | grep -q -- "$want_opts" ||
	fz_fail "the daemon's arguments lack $want_opts: $(tr '\0' ' ' <"/proc/$pid/cmdline")"

# What mkswap wrote, recompressed; status shows it.
echo all >"$SWMNT/control/idle"
echo type=idle >"$SWMNT/control/recompress" || fz_fail "recompress on the swap's image"
fz_run 60 "$FZSWAP" --config "$CONF" status >"$FZ_TMP/out" || fz_fail "status exited $?"
cat "$FZ_TMP/out" >&2
grep -q "^NAME  *RECOMP-ALGORITHM  *RECOMP-DATA  *RECOMP-PAGES  *RECOMP-SAVED  *INCOMPR-PAGES  *RC-AGE$" "$FZ_TMP/out" ||
	fz_fail "status shows no recompression columns"
grep -q "^$dev  *zstd .* 600$" "$FZ_TMP/out" || fz_fail "status does not show $dev, zstd and 600"

fz_run 400 "$FZSWAP" --config "$CONF" stop || fz_fail "fusezram-swap stop exited $?"
! grep -q "^${dev}[[:space:]]" /proc/swaps || fz_fail "$dev is still swap after stop"
[ -z "$(fz_loops_of "$SWIMG")" ] || fz_fail "loop devices left on $SWIMG after stop"
! fz_is_mounted "$SWMNT" || fz_fail "$SWMNT still mounted after stop"
[ ! -e "$SWMNT" ] || fz_fail "$SWMNT left after stop"
! fz__find_daemon "$SWMNT" >/dev/null || fz_fail "the daemon of $SWMNT still runs after stop"
fz_log "ok"
