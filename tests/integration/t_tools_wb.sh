#!/bin/bash
# t_tools_wb: the administration tools and the backing file.
#
# fzramctl: a mount with a backing file, 2 MiB of text written, marked
# idle and written back, shows BACKING (the path), BD-DATA, BD-READS and
# BD-WRITES equal to bd_stat (in bytes, human-readable and in JSON, before
# and after reading everything back), BD-TOTAL equal to the file's
# allocated blocks, WB-AGE equal to control/writeback_age (or "-" with a
# daemon that has none); the default header is unchanged, -o + and
# --output-all take the new columns, an unknown one is still an error.  A
# mount without a backing file shows "-" and zeros.
#
# fusezram-swap: bad backing_dev (relative; inside the mountpoint; on
# tmpfs), backing_size (junk; set without backing_dev) and writeback_age
# (negative) values are refused (exit 2), each named with its line (and
# writeback-device, zram-generator's spelling, named as written), and
# nothing is set up.  A good file, with writeback-device = a file in a
# directory that does not exist yet: config shows the options start will
# pass; start makes the directory and mounts with the file as backing_dev
# (control/backing_dev, the daemon's arguments, backing_size as given);
# pages written back from the swap show in status; stop removes swap,
# loop device, mount, daemon and mount point, and leaves the backing file
# empty.  writeback_age is checked as passed when the daemon has it; when
# it has not, start with one is refused before anything is set up.
#
# Safety: as t_admin: the lock directory /run/fusezram goes at the end if
# the test made it; before start, the cleanup registers 'fusezram-swap
# stop', a swapoff and losetup -d of every loop device on the swap's image
# (and nothing else), and the unmount.  Everything else is under FZ_TMP.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 getopt mkswap swapon swapoff losetup dd stat
fz_require_fuse
fz_require_loop
export FUSEZRAM

FZRAMCTL=$FZ_ROOT/tools/fzramctl
FZSWAP=$FZ_ROOT/tools/fusezram-swap
[ -x "$FZRAMCTL" ] || fz_fail "$FZRAMCTL is missing or not executable"
[ -x "$FZSWAP" ] || fz_fail "$FZSWAP is missing or not executable"

DEFAULT_HEADER="NAME DISKSIZE DATA COMPR TOTAL ALGORITHM STREAMS ZERO-PAGES MOUNTPOINT"
BD_COLS=BACKING,BD-DATA,BD-TOTAL,BD-READS,BD-WRITES,WB-AGE

# The age is a newer daemon's: tested where it is there, said loudly
# where not.
HAS_AGE=0
help=$("$FUSEZRAM" -h 2>&1) || :
if [[ $help == *writeback_age* ]]; then
	HAS_AGE=1
else
	fz_log "*** $FUSEZRAM has no writeback_age: WB-AGE is checked as '-', and start refusing the key ***"
fi

ctl() {
	local rc=0
	fz_run 60 "$FZRAMCTL" "$@" >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
	return "$rc"
}
norm() { awk '{ $1 = $1; print }'; }
row_of() { awk -v m="$1" '$NF == m' "$FZ_TMP/out"; }
alloc_of() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }

# ---------------------------------------------------------------------------
# fzramctl

bd=$FZ_TMP/backing
want_age=-
if [ "$HAS_AGE" = 1 ]; then
	# A day: nothing moves by itself during the test.
	fz_mount -o disksize=64M,backing_dev="$bd",writeback_age=7200
	want_age=7200
else
	fz_mount -o disksize=64M,backing_dev="$bd"
fi
MNT1=$FZ_MNT
C=$FZ_CTL
seq 1 400000 >"$FZ_TMP/seq"
head -c 2M "$FZ_TMP/seq" >"$FZ_TMP/text"
fz_pwrite "$FZ_TMP/text" "$FZ_IMG" 0 $((2 << 20))
fz_pwrite /dev/zero "$FZ_IMG" $((4 << 20)) $((256 << 10))
echo all >"$C/idle"
echo idle >"$C/writeback" || fz_fail "echo idle > control/writeback"

# check_bd WHAT - fzramctl -b agrees with bd_stat and the file's blocks
# (read before and after: the file's reserve is refilled in the
# background; retry until stable).
check_bd() {
	local i bd1 bd2 a1 a2 c r w
	for i in 1 2 3 4 5 6 7 8 9 10; do
		bd1=$(cat "$C/bd_stat")
		a1=$(alloc_of "$bd")
		ctl -b -n -r -o "$BD_COLS,MOUNTPOINT" "$MNT1" || fz_fail "fzramctl -b exited $?: $(cat "$FZ_TMP/err")"
		bd2=$(cat "$C/bd_stat")
		a2=$(alloc_of "$bd")
		[ "$bd1" != "$bd2" ] || [ "$a1" != "$a2" ] || break
		sleep 0.5
	done
	read -r c r w <<<"$bd1"
	fz_log "$1: fzramctl -b: $(cat "$FZ_TMP/out"); bd_stat: $c $r $w; allocated: $a1"
	fz_expect_eq "fzramctl -b $BD_COLS ($1)" "$(cat "$FZ_TMP/out")" \
		"$bd $((c * 4096)) $a1 $r $w $want_age $MNT1"
	BD_COUNT=$c BD_READS=$r BD_WRITES=$w
}
check_bd "after writeback"
fz_expect_eq "bd_count after writing back 2 MiB of text" "$BD_COUNT" 512
fz_expect_eq "bd_writes after writing back 2 MiB of text" "$BD_WRITES" 512
fz_expect_eq "bd_reads before any read" "$BD_READS" 0
if [ "$HAS_AGE" = 1 ]; then
	fz_expect_eq "control/writeback_age" "$(cat "$C/writeback_age")" 7200
fi

# Everything read back (from the file: direct I/O, nothing cached).
fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "the text read back" <(head -c 2M "$FZ_TMP/back") "$FZ_TMP/text"
check_bd "after reading back"
[ "$BD_READS" -ge 512 ] || fz_fail "bd_reads $BD_READS after reading 2 MiB back"
fz_expect_eq "bd_count after reading back (pages stay in the file)" "$BD_COUNT" 512

# Human-readable, and the columns' selection.
ctl || fz_fail "fzramctl exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "default header with a backing file" "$(head -n 1 "$FZ_TMP/out" | norm)" "$DEFAULT_HEADER"
ctl -o +BACKING,bd-data,BD-Reads "$MNT1" || fz_fail "fzramctl -o + exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "-o + header" "$(head -n 1 "$FZ_TMP/out" | norm)" "$DEFAULT_HEADER BACKING BD-DATA BD-READS"
read -r -a f <<<"$(sed -n 2p "$FZ_TMP/out")"
fz_expect_eq "BACKING" "${f[9]}" "$bd"
fz_expect_eq "BD-DATA, human-readable" "${f[10]}" 2M
fz_expect_eq "BD-READS" "${f[11]}" "$BD_READS"
ctl --output-all "$MNT1" || fz_fail "fzramctl --output-all exited $?"
fz_expect_eq "--output-all columns" "$(head -n 1 "$FZ_TMP/out" | wc -w)" 27
head -n 1 "$FZ_TMP/out" | grep -q ' BACKING .* WB-AGE RECOMP-ALGORITHM .* RC-AGE MOUNTPOINT$' ||
	fz_fail "--output-all header: $(head -n 1 "$FZ_TMP/out")"
if ctl -o BACKING,BD-BOGUS "$MNT1"; then fz_fail "fzramctl -o BD-BOGUS succeeded"; fi
grep -q "unknown column: BD-BOGUS" "$FZ_TMP/err" || fz_fail "-o BD-BOGUS: $(cat "$FZ_TMP/err")"
ctl --help || fz_fail "fzramctl --help exited $?"
grep -q 'BD-WRITES' "$FZ_TMP/out" || fz_fail "--help does not list BD-WRITES"

# A mount without a backing file.
fz_mount -o disksize=16M
MNT2=$FZ_MNT
ctl -b -n -r -o "$BD_COLS,MOUNTPOINT" "$MNT2" || fz_fail "fzramctl (no backing file) exited $?: $(cat "$FZ_TMP/err")"
fz_expect_eq "fzramctl -b without a backing file" "$(cat "$FZ_TMP/out")" \
	"- 0 - 0 0 $([ "$HAS_AGE" = 1 ] && cat "$FZ_CTL/writeback_age" || echo -) $MNT2"

# JSON, in bytes: both rows.
ctl -J -b -o "$BD_COLS,MOUNTPOINT" "$MNT1" "$MNT2" || fz_fail "fzramctl -J -b exited $?: $(cat "$FZ_TMP/err")"
fz_python 60 "$FZ_TMP/out" "$MNT1" "$bd" "$BD_COUNT" "$BD_READS" "$BD_WRITES" "$want_age" "$MNT2" <<'EOF' ||
import json, sys
rows = {r["mountpoint"]: r for r in json.load(open(sys.argv[1]))["fusezram"]}
r = rows[sys.argv[2]]
age = None if sys.argv[7] == "-" else int(sys.argv[7])
want = {"backing": sys.argv[3], "bd-data": int(sys.argv[4]) * 4096,
        "bd-reads": int(sys.argv[5]), "bd-writes": int(sys.argv[6]), "wb-age": age}
for k, v in want.items():
    assert r[k] == v, (k, r[k], v)
assert isinstance(r["bd-total"], int) and r["bd-total"] > 0, r["bd-total"]
r = rows[sys.argv[8]]
assert r["backing"] is None and r["bd-total"] is None and r["bd-data"] == 0, r
print("ok")
EOF
	fz_fail "fzramctl -J -b: wrong figures: $(cat "$FZ_TMP/out")"
fz_umount "$MNT2"
fz_umount "$MNT1"

# ---------------------------------------------------------------------------
# fusezram-swap

SWMNT=$FZ_TMP/swap/mnt
SWIMG=$SWMNT/image
SWBD_DIR=$FZ_TMP/state/fusezram
SWBD=$SWBD_DIR/swap.backing
CONF=$FZ_TMP/swap.conf

fz_swaptool_cleanup "$FZSWAP" "$CONF" "$SWIMG" "$SWMNT"

FZ_SWAP_NOT_MADE=$SWBD_DIR
refused() { fz_swaptool_refused "$@"; }
refused "disksize = 64M\nmountpoint = $SWMNT\nbacking_dev = state/swap.backing\nbacking_size = lots\nwriteback_age = -60\n" \
	"swap.conf:3: invalid backing_dev 'state/swap.backing': expected an absolute path" \
	"swap.conf:4: invalid backing_size 'lots'" \
	"swap.conf:5: invalid writeback_age '-60'"
refused "mountpoint = $SWMNT\nwriteback-device = relative\n" \
	"swap.conf:2: invalid writeback-device 'relative'"
refused "mountpoint = $SWMNT\nbacking_dev = $SWMNT/backing\n" \
	"swap.conf:2: invalid backing_dev '$SWMNT/backing': it is inside the mountpoint"
refused "mountpoint = $SWMNT\nbacking_size = 1G\nwriteback_age = 60\n" \
	"swap.conf:2: backing_size '1G' is set but backing_dev is not" \
	"swap.conf:3: writeback_age 60 is set but backing_dev is not"
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	refused "mountpoint = $SWMNT\nbacking_dev = /dev/shm/fusezram-test-never-made\n" \
		"swap.conf:2: invalid backing_dev '/dev/shm/fusezram-test-never-made': /dev/shm is tmpfs"
fi

cat >"$CONF" <<EOF
# t_tools_wb: a small swap with a backing file, all under the test's directory
disksize = 64M
mountpoint = $SWMNT
swap_priority = 1235
writeback-device = $SWBD      # zram-generator's spelling
backing_size = 32M
EOF
echo "writeback_age = 600" >>"$CONF"
SWFZ=$FUSEZRAM
if [ "$HAS_AGE" = 0 ]; then
	rc=0
	fz_run 60 "$FZSWAP" --config "$CONF" start 2>"$FZ_TMP/err" || rc=$?
	cat "$FZ_TMP/err" >&2
	fz_expect_eq "start with writeback_age, daemon without it: exit status" "$rc" 1
	grep -q "no writeback_age option" "$FZ_TMP/err" || fz_fail "no message: $(cat "$FZ_TMP/err")"
	[ ! -e "$SWMNT" ] || fz_fail "a refused start created $SWMNT"
	# From here a stand-in that has the option: it records its arguments
	# and runs the real daemon without it.
	mkdir "$FZ_TMP/bin"
	SWFZ=$FZ_TMP/bin/fusezram
	cat >"$SWFZ" <<STANDIN
#!/bin/bash
shopt -s extglob
if [ "\$1" = -h ]; then
	"$FUSEZRAM" -h
	echo "    -o writeback_age=SECONDS (t_tools_wb's stand-in)"
	exit
fi
printf '%s\\n' "\$*" >>"$FZ_TMP/standin.args"
exec "$FUSEZRAM" "\${@//,writeback_age=+([0-9])/}"
STANDIN
	chmod +x "$SWFZ"
	fz_log "stand-in $SWFZ: $(cat "$SWFZ")"
fi
FUSEZRAM=$SWFZ fz_run 60 "$FZSWAP" --config "$CONF" config >"$FZ_TMP/out" || fz_fail "config exited $?"
cat "$FZ_TMP/out" >&2
grep -qx "backing_dev = $SWBD" "$FZ_TMP/out" || fz_fail "config shows no backing_dev"
want_opts="backing_dev=$SWBD,backing_size=$((32 << 20)),writeback_age=600"
grep -q "^# start runs: .*,$want_opts $SWMNT\$" "$FZ_TMP/out" || fz_fail "config: start would not pass $want_opts"

FUSEZRAM=$SWFZ fz_run 120 "$FZSWAP" --config "$CONF" start || fz_fail "fusezram-swap start exited $?"
dev=$(fz_loops_of "$SWIMG")
if [ -z "$dev" ] || [ "$(wc -l <<<"$dev")" -ne 1 ]; then
	fz_fail "expected one loop device on $SWIMG, got '$dev'"
fi
fz__register "loop|$dev|$SWIMG"
fz__register "swap|$dev"
grep -q "^${dev}[[:space:]]" /proc/swaps || fz_fail "$dev is not swap"
fz_expect_eq "control/backing_dev of the swap" "$(cat "$SWMNT/control/backing_dev")" "$SWBD"
fz_expect_eq "the backing file's mode" "$(stat -c %a "$SWBD")" 600
pid=$(fz__find_daemon "$SWMNT") || fz_fail "no daemon for $SWMNT"
if [ "$HAS_AGE" = 1 ]; then
	tr '\0' '\n' <"/proc/$pid/cmdline" | grep -q -- "$want_opts" ||
		fz_fail "the daemon's arguments lack $want_opts: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	fz_expect_eq "control/writeback_age of the swap" "$(cat "$SWMNT/control/writeback_age")" 600
else
	grep -q -- "$want_opts" "$FZ_TMP/standin.args" ||
		fz_fail "the stand-in's arguments lack $want_opts: $(cat "$FZ_TMP/standin.args")"
	tr '\0' '\n' <"/proc/$pid/cmdline" | grep -q -- "${want_opts%,writeback_age=*}" ||
		fz_fail "the daemon's arguments lack ${want_opts%,writeback_age=*}: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
fi

# What mkswap wrote, written back; status shows it.
echo all >"$SWMNT/control/idle"
echo idle >"$SWMNT/control/writeback" || fz_fail "writeback on the swap's image"
read -r c _ _ <"$SWMNT/control/bd_stat"
[ "$c" -ge 1 ] || fz_fail "nothing written back from the swap's image (bd_stat $(cat "$SWMNT/control/bd_stat"))"
FUSEZRAM=$SWFZ fz_run 60 "$FZSWAP" --config "$CONF" status >"$FZ_TMP/out" || fz_fail "status exited $?"
cat "$FZ_TMP/out" >&2
grep -q "^NAME .*BACKING .*BD-DATA" "$FZ_TMP/out" || fz_fail "status shows no backing file columns"
grep -q "^$dev  *$SWBD  *$(awk -v c="$c" 'BEGIN { printf "%dK", c * 4 }') " "$FZ_TMP/out" ||
	fz_fail "status does not show $dev, $SWBD and ${c} pages written back"

FUSEZRAM=$SWFZ fz_run 400 "$FZSWAP" --config "$CONF" stop || fz_fail "fusezram-swap stop exited $?"
! grep -q "^${dev}[[:space:]]" /proc/swaps || fz_fail "$dev is still swap after stop"
[ -z "$(fz_loops_of "$SWIMG")" ] || fz_fail "loop devices left on $SWIMG after stop"
! fz_is_mounted "$SWMNT" || fz_fail "$SWMNT still mounted after stop"
[ ! -e "$SWMNT" ] || fz_fail "$SWMNT left after stop"
! fz__find_daemon "$SWMNT" >/dev/null || fz_fail "the daemon of $SWMNT still runs after stop"
fz_expect_eq "the backing file's size after stop" "$(stat -c %s "$SWBD")" 0
fz_log "ok"
