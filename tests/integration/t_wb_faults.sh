#!/bin/bash
# t_wb_faults: the backing file's faults (issue 13, item 6).
#
# Full: the backing file on an 8 MiB tmpfs that a filler fills up while
# mounted (so the file system, not the cap, runs out), 32 MiB of text
# written and all of it written back: the writeback succeeds for what
# fitted, the rest stays in RAM (pages in RAM + pages in the file = all
# pages), bd_stat counts what went, the summary says the file is full,
# every byte reads back, the daemon keeps serving; writing back again
# soon fails with ENOSPC and moves at most a segment's worth; once the
# filler is gone the writeback goes on.  With mem_limit=4M and the
# file's file system full, a write of 32 MiB fails (an I/O error on the
# loop device) after spilling what fitted: every byte dd reports
# written reads back, the failed request's pages hold their old content
# or their new one, memory stays under the limit, writing back soon
# fails with ENOSPC, and a discard makes room for writes again (and the
# summary says the file has room).
#
# I/O errors: the backing file on failfs (build/failfs: a FUSE file
# system of the tests' own whose file fails reads or writes on demand).
# Pages 0-2047 of 4096 written back; with reads failing, a direct read
# of page 0 fails with EIO, exactly the written segments' pages (a
# prefix of 0-2047; the open segment is still in memory) fail, counted
# one each in io_stat failed_reads, every other page reads back intact,
# new writes work, a partial write to a failing page fails and changes
# nothing; with reads working again everything reads back.  With writes
# failing, a writeback of pages 2048-3071 moves what the segment buffers
# can keep and then stops (EIO): the failed segments' pages stay in
# memory, the summary counts the failed segment writes, and every page
# reads back; with writes working again, everything can be written back.
# (The file unlinked while mounted is t_writeback's.)
#
# Bad words: every control file of the backing file (backing_dev,
# writeback, writeback_limit, writeback_limit_enable, writeback_age)
# refuses a list of bad values with EINVAL and changes nothing (every
# readable control file but summary compared before and after, the data
# read back); a good path to backing_dev while the disk holds data is
# EBUSY and touches no file.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 cmp stat blkdiscard mount umount df
fz_require_loop
export LC_ALL=C	# strerror texts below
FAILFS=${FAILFS:-$FZ_ROOT/build/failfs}
[ -x "$FAILFS" ] || fz_skip "$FAILFS not built (make build/failfs)"

# 32 MiB of text-like data, each page different; compresses to about a
# third (as t_writeback's).
python3 - "$FZ_TMP/data" <<'EOF'
import random, sys
random.seed(13)
words = [b"page ", b"zram ", b"swap ", b"fuse ", b"memory ", b"the ", b"slot ",
         b"writeback ", b"\n", b"compress ", b"file ", b"idle "]
noise = [bytes([i]) for i in range(256)]
pop = words + noise
wts = [8.0] * len(words) + [2.0 * len(words) / 256] * 256
out = bytearray()
while len(out) < 32 << 20:
    out += b"".join(random.choices(pop, wts, k=1 << 16))
open(sys.argv[1], "wb").write(out[:32 << 20])
EOF
NPAGES=$(((32 << 20) / FZ_PAGE))

# bd_stat fields: bd COUNT, READS, WRITES.
bd() {
	local -a v
	read -r -a v <"$FZ_CTL/bd_stat" || fz_fail "cannot read bd_stat"
	case $1 in
	count) echo "${v[0]}" ;;
	reads) echo "${v[1]}" ;;
	writes) echo "${v[2]}" ;;
	esac
}
alive() { fz__alive "$FZ_PID" || fz_fail "the daemon (pid $FZ_PID) died"; }

# errname TEXT - the errno name of a strerror text.
errname() {
	case $1 in
	*"Invalid argument"*) echo EINVAL ;;
	*"Device or resource busy"*) echo EBUSY ;;
	*"No space left on device"*) echo ENOSPC ;;
	*"Input/output error"*) echo EIO ;;
	*"Permission denied"*) echo EACCES ;;
	*) echo "other($1)" ;;
	esac
}
# ctl_try FILE TEXT - one write(2) of TEXT to control/FILE: ok or the errno.
ctl_try() {
	if printf '%s' "$2" 2>"$FZ_TMP/werr" >"$FZ_CTL/$1"; then
		echo ok
	else
		errname "$(cat "$FZ_TMP/werr")"
	fi
}
ctl_write() {
	local got
	got=$(ctl_try "$1" "$2")
	[ "$got" = "$3" ] || fz_fail "write '$(printf '%q' "$2")' to control/$1: got $got, expected $3"
}

# readback WHAT MIB - the first MIB MiB of the loop device equal the data.
readback() {
	fz_run 120 dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count="$2" iflag=direct status=none ||
		fz_fail "reading back ($1)"
	cmp -n $(($2 << 20)) "$FZ_TMP/back" "$FZ_TMP/data" >&"$FZ_ERR" ||
		fz_fail "the data do not read back ($1)"
}

# ---- the file system full --------------------------------------------------------

small=$FZ_TMP/small
fz_mount_fs tmpfs "$small" -t tmpfs -o size=8M,mode=0700
fz_mount -o disksize=64M,writeback_age=0,backing_dev="$small/backing"
# The cap is the 8 MiB free at mount; the filler leaves the file 3 MiB
# more than its reserve of 2 MiB, so the file system runs out first.
head -c 3M /dev/zero >"$small/filler" || fz_fail "writing the filler"
fz_log "tmpfs: $(df -k --output=used,avail "$small" | tail -n 1) KiB used, available"
fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct status=none || fz_fail "writing 32 MiB"
compr=$(fz_mm compr_data_size)
fz_log "written: compr_data_size $compr (more than the file can take)"

echo all >"$FZ_CTL/idle"
rc=ok
echo idle 2>"$FZ_TMP/err" >"$FZ_CTL/writeback" || rc=$(errname "$(cat "$FZ_TMP/err")")
fz_log "writeback with the file system filling up: $rc; bd_stat $(cat "$FZ_CTL/bd_stat"); mm_stat $(cat "$FZ_CTL/mm_stat")"
fz_expect_eq "writeback that moved some pages, then found the file system full" "$rc" ok
n_bd=$(bd count)
n_ram=$(($(fz_mm orig_data_size) / FZ_PAGE))
[ "$n_bd" -gt 0 ] || fz_fail "nothing was written back"
[ "$n_ram" -gt 0 ] || fz_fail "every page went to a file with room for 5 MiB"
fz_expect_eq "pages in RAM ($n_ram) + pages in the file ($n_bd)" $((n_ram + n_bd)) "$NPAGES"
fz_expect_eq "bd_stat writes" "$(bd writes)" "$n_bd"
[ "$(fz_mm compr_data_size)" -gt 0 ] ||
	fz_fail "the pages that did not fit are not in RAM: $(cat "$FZ_CTL/mm_stat")"
avail=$(df -k --output=avail "$small" | tail -n 1)
[ "$avail" -lt 256 ] || fz_fail "the writeback stopped with $avail KiB free on the file system"
sed -n '/^Backing file/,/^Writeback/p' "$FZ_CTL/summary" >&"$FZ_ERR"
grep -q "the file is full" "$FZ_CTL/summary" || fz_fail "the summary does not say the file is full"
readback "after the writeback stopped by a full file system" 32

# wb_full - writing back to a full file: each try moves at most what
# fits in the open segment's tail (zb_file.h), and within 5 tries the
# file takes nothing: ENOSPC.
wb_full() {
	local i before moved rc
	for i in 1 2 3 4 5; do
		before=$(bd count)
		rc=ok
		echo all >"$FZ_CTL/idle"	# reads clear the marks
		echo idle 2>"$FZ_TMP/err" >"$FZ_CTL/writeback" || rc=$(errname "$(cat "$FZ_TMP/err")")
		moved=$(($(bd count) - before))
		fz_log "writeback to the full file ($i): $rc, $moved more pages"
		[ "$moved" -lt 256 ] || fz_fail "writeback to a full file moved $moved pages"
		[ "$rc" = ok ] || break
	done
	fz_expect_eq "writeback to a full file" "$rc" ENOSPC
	alive
}
wb_full
# Still serving: a new MiB at 40 MiB, read back.
head -c 1M /dev/urandom >"$FZ_TMP/new"
dd if="$FZ_TMP/new" of="$FZ_LOOP" bs=1M seek=40 oflag=direct status=none || fz_fail "a new write"
dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M skip=40 count=1 iflag=direct status=none || fz_fail "reading it"
fz_expect_cmp "a new write with the file full" "$FZ_TMP/back" "$FZ_TMP/new"

# Room again: the writeback goes on, up to the cap (8 MiB).
rm "$small/filler"
before=$(bd count)
echo all >"$FZ_CTL/idle"
echo idle >"$FZ_CTL/writeback" || fz_fail "writeback with room again"
fz_log "with the filler gone: bd_count $before -> $(bd count); $(df -k --output=avail "$small" | tail -n 1) KiB free"
[ "$(bd count)" -gt $((before + 256)) ] || fz_fail "the writeback did not go on once there was room"
readback "after the writeback went on" 32
fz_loop_detach
fz_umount
fz_umount_fs "$small"

# mem_limit with the file's file system full: the write fails, once the
# file takes no more; nothing already written is harmed.
small=$FZ_TMP/small2
fz_mount_fs tmpfs "$small" -t tmpfs -o size=4M,mode=0700
fz_mount -o disksize=64M,mem_limit=4M,writeback_age=0,backing_dev="$small/backing"
head -c 1M /dev/zero >"$small/filler" || fz_fail "writing the filler"
fz_loop "$FZ_IMG" --direct-io=on
rc=0
fz_run 120 dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M oflag=direct 2>"$FZ_TMP/err" || rc=$?
bytes=$(sed -n 's/^\([0-9][0-9]*\) bytes.*copied.*/\1/p' "$FZ_TMP/err" | tail -n 1)
fz_log "32 MiB under mem_limit=4M, file system full: dd exited $rc after $bytes bytes ($(grep -m1 -o 'error.*' "$FZ_TMP/err" || :)); bd_stat $(cat "$FZ_CTL/bd_stat"); mm_stat $(cat "$FZ_CTL/mm_stat"); io_stat $(cat "$FZ_CTL/io_stat")"
[ "$rc" -ne 124 ] || fz_fail "dd timed out"
[ "$rc" -ne 0 ] || fz_fail "dd succeeded: 32 MiB fitted in 4 MiB of RAM and 3 MiB of file"
[ "${bytes:-0}" -ge $((1 << 20)) ] || fz_fail "dd wrote '$bytes' bytes: nothing spilled?"
# (The loop driver passes ENOSPC on, as this kernel does, or says EIO.)
grep -qE "No space left on device|Input/output error" "$FZ_TMP/err" || fz_fail "dd: $(cat "$FZ_TMP/err")"
[ "$(bd count)" -gt 0 ] || fz_fail "nothing spilled to the file"
[ "$(fz_mm mem_used_max)" -le $((4 << 20)) ] || fz_fail "mem_used_max $(fz_mm mem_used_max) over 4M"
[ "$(fz_io failed_writes)" -gt 0 ] || fz_fail "io_stat counts no failed write"
grep -q "by spilling" "$FZ_CTL/summary" || fz_fail "the summary does not count spilled pages"
grep -q "the file is full" "$FZ_CTL/summary" || fz_fail "the summary does not say the file is full"
# Every byte dd reports, and the failed MiB page by page: old or new.
fz_run 120 dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M count=$((bytes / (1 << 20) + 1)) \
	iflag=direct status=none || fz_fail "reading back after the failed write"
fz_python 60 "$FZ_TMP/back" "$FZ_TMP/data" "$bytes" <<'EOF'
import sys
back = open(sys.argv[1], "rb").read()
data = open(sys.argv[2], "rb").read()
n, P = int(sys.argv[3]), 4096
assert back[:n] == data[:n], "bytes dd reported written differ"
new = old = 0
for off in range(n, len(back), P):
    pg = back[off:off + P]
    if pg == data[off:off + P]:
        new += 1
    elif pg == bytes(P):
        old += 1
    else:
        raise SystemExit("page %d after the failed write is neither old nor new" % (off // P))
print("the %d bytes written read back; past them %d pages new, %d old (zeros)" % (n, new, old))
print("ok")
EOF
wb_full
# A discard of everything makes room in RAM and in the file: the write
# that failed goes through.
blkdiscard "$FZ_LOOP" || fz_fail "blkdiscard"
fz_expect_eq "bd_count after discarding everything" "$(bd count)" 0
grep -q "the file has room" "$FZ_CTL/summary" ||
	fz_fail "the summary still says the file is full after a discard freed its segments"
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M count=4 oflag=direct status=none ||
	fz_fail "a write after the discard made room"
readback "after the discard made room" 4
fz_loop_detach
fz_umount
fz_umount_fs "$small"

# ---- I/O errors: the file on failfs -----------------------------------------------

ffdir=$FZ_TMP/ffdir ff=$FZ_TMP/ff
mkdir "$ffdir" "$ff"
setsid "$FAILFS" "$ffdir" "$ff" -f -o max_threads=8 </dev/null >"$FZ_TMP/failfs.log" 2>&1 {FZ_ERR}>&- &
ffpid=$!
fz__register "fuse|$ff|$ffpid|$FZ_TMP/failfs.log"
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 20 eval 'fz_is_mounted "$ff" || ! fz__alive $ffpid' || :
fz_is_mounted "$ff" || fz_fail "failfs not mounted: $(cat "$FZ_TMP/failfs.log")"
fz_log "failfs mounted at $ff (pid $ffpid)"
ff_set() { echo "$2" >"$ff/$1" || fz_fail "cannot set failfs $1=$2"; }
ff_errors() { cat "$ff/errors"; }

fz_mount -o disksize=64M,writeback_age=0,backing_dev="$ff/data"
fz_log "on failfs: $(sed -n 's/^Backing file: *//p' "$FZ_CTL/summary")"
fz_loop "$FZ_IMG" --direct-io=on
# 4096 pages: the first 16 MiB of the data.
head -c 16M "$FZ_TMP/data" >"$FZ_TMP/want"
dd if="$FZ_TMP/want" of="$FZ_LOOP" bs=1M oflag=direct status=none || fz_fail "writing 16 MiB"
echo page_indexes=0-2047 >"$FZ_CTL/writeback" || fz_fail "writeback of pages 0-2047"
fz_expect_eq "bd_count after writing back pages 0-2047" "$(bd count)" 2048

# scan [SPEC...] - read every page of the loop device alone (O_DIRECT)
# and compare it with $FZ_TMP/want.  Sets EIO_PAGES (how many failed
# with EIO) and EIO_RANGES ("first-last ..." of them).  A page that reads
# but differs fails the test; so does a failing page the SPEC does not
# allow:
#	eio_within=LO-HI  the pages that may fail (default: none may)
#	eio_prefix        the failing pages are LO, LO+1, ... without a gap
#	eio_min=N         at least N pages fail
#	eio_has=P         page P fails
scan() {
	fz_python 120 "$FZ_LOOP" "$FZ_TMP/want" "$FZ_TMP/scan.out" "$@" <<'EOF'
import errno, mmap, os, sys
dev, want_path, out = sys.argv[1:4]
spec = dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[4:])
P = 4096
want = open(want_path, "rb").read()
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, P)
eio, wrong = [], []
for i in range(len(want) // P):
    try:
        n = os.preadv(fd, [buf], i * P)
    except OSError as e:
        if e.errno != errno.EIO:
            raise
        eio.append(i)
        continue
    if n != P or buf[:P] != want[i * P:(i + 1) * P]:
        wrong.append(i)
ranges = []
for i in eio:
    if ranges and ranges[-1][1] == i - 1:
        ranges[-1][1] = i
    else:
        ranges.append([i, i])
txt = " ".join("%d-%d" % (a, b) for a, b in ranges)
open(out, "w").write("%d %s\n" % (len(eio), txt))
print("pages failing with EIO: %d (%s); read but wrong: %d" % (len(eio), txt or "none", len(wrong)))
assert not wrong, "pages read back wrong: %s" % wrong[:20]
lo, hi = map(int, spec["eio_within"].split("-")) if "eio_within" in spec else (0, -1)
bad = [i for i in eio if not lo <= i <= hi]
assert not bad, "pages outside %d-%d fail: %s" % (lo, hi, bad[:20])
if "eio_prefix" in spec:
    assert eio == list(range(lo, lo + len(eio))), "the failing pages are not a run from %d" % lo
assert len(eio) >= int(spec.get("eio_min", "0")), "only %d pages fail" % len(eio)
if "eio_has" in spec:
    assert int(spec["eio_has"]) in eio, "page %s does not fail" % spec["eio_has"]
print("ok")
EOF
	read -r EIO_PAGES EIO_RANGES <"$FZ_TMP/scan.out"
}

# Reads failing: the written segments' pages fail, one failed_reads each.
ff_set fail_reads 1
fr=$(fz_io failed_reads) errs=$(ff_errors)
if dd if="$FZ_LOOP" of=/dev/null bs=4K count=1 iflag=direct 2>"$FZ_TMP/err"; then
	fz_fail "page 0, in the file, read with the file's reads failing"
fi
fz_expect_eq "reading page 0 with the file's reads failing" "$(errname "$(cat "$FZ_TMP/err")")" EIO
fz_expect_eq "io_stat failed_reads after one failed page" "$(fz_io failed_reads)" $((fr + 1))
[ "$(ff_errors)" -gt "$errs" ] || fz_fail "failfs answered no read with EIO"
fr=$(fz_io failed_reads)
# All but the open segment (still in its buffer: 256 KiB, so fewer than
# 512 of these pages) are in the file.
scan eio_within=0-2047 eio_prefix eio_min=1536 eio_has=0
fz_expect_eq "io_stat failed_reads after the scan" "$(fz_io failed_reads)" $((fr + EIO_PAGES))
# Still serving: mm_stat, a new MiB at page 3072, read back.
fz_mm mem_used_total >/dev/null
head -c 1M /dev/urandom >"$FZ_TMP/new"
dd if="$FZ_TMP/new" of="$FZ_LOOP" bs=1M seek=12 oflag=direct status=none ||
	fz_fail "a new write with the file's reads failing"
dd if="$FZ_TMP/new" of="$FZ_TMP/want" bs=1M seek=12 conv=notrunc status=none
dd if="$FZ_LOOP" of="$FZ_TMP/back" bs=1M skip=12 count=1 iflag=direct status=none ||
	fz_fail "reading the new MiB (in RAM) with the file's reads failing"
fz_expect_cmp "the new MiB" "$FZ_TMP/back" "$FZ_TMP/new"
# A partial write of a page in the file needs its old content: it fails
# and changes nothing.
fw=$(fz_io failed_writes)
if dd if=/dev/zero of="$FZ_IMG" bs=512 count=1 seek=9 oflag=direct conv=notrunc 2>"$FZ_TMP/err"; then
	fz_fail "a partial write of page 1 (in the file) with the file's reads failing succeeded"
fi
fz_expect_eq "a partial write of a page in the failing file" "$(errname "$(cat "$FZ_TMP/err")")" EIO
[ "$(fz_io failed_writes)" -gt "$fw" ] || fz_fail "io_stat counts no failed write"
alive
ff_set fail_reads 0
scan
fz_log "with reads working again: every page reads back"

# Writes failing during a writeback: nothing is lost.  The segments whose
# writes fail keep their pages in memory (zb_file.h); once they keep every
# buffer the writeback stops with EIO and the rest stay in RAM.
ff_set fail_writes 1
errs=$(ff_errors)
rc=ok
echo page_indexes=2048-3071 2>"$FZ_TMP/err" >"$FZ_CTL/writeback" ||
	rc=$(errname "$(cat "$FZ_TMP/err")")
[ "$rc" = ok ] || [ "$rc" = EIO ] ||
	fz_fail "writeback with the file's writes failing: $rc (ok or EIO expected)"
[ "$(ff_errors)" -gt "$errs" ] || fz_fail "failfs refused no write"
sed -n '/^Backing file/,/^Writeback/p' "$FZ_CTL/summary" >&"$FZ_ERR"
failed_segs=$(tr '\n' ' ' <"$FZ_CTL/summary" | sed -n 's/.* \([0-9][0-9]*\) failed *segment writes.*/\1/p')
[ "${failed_segs:-0}" -gt 0 ] || fz_fail "the summary counts no failed segment write"
fz_log "writeback with writes failing: $rc; bd_count $(bd count); $failed_segs failed segment writes"
alive
# Nothing lost, writes failing or not: every page reads back.
fr=$(fz_io failed_reads)
scan
fz_expect_eq "io_stat failed_reads after the scan" "$(fz_io failed_reads)" "$fr"
ff_set fail_writes 0
scan
# With writes working again, the held segments are written again and
# everything can go to the file.
echo page_indexes=0-4095 >"$FZ_CTL/writeback" || fz_fail "writing everything back again"
fz_expect_eq "bd_count after writing everything back" "$(bd count)" 4096
scan
fz_loop_detach
fz_umount
fz_umount "$ff"

# ---- bad words to the backing file's control files ------------------------------------

fz_mount -o disksize=64M,writeback_age=42,backing_dev="$FZ_TMP/backing"
fz_loop "$FZ_IMG" --direct-io=on
dd if="$FZ_TMP/data" of="$FZ_LOOP" bs=1M count=8 oflag=direct status=none || fz_fail "writing 8 MiB"
ctl_write writeback page_indexes=0-1023 ok
ctl_write writeback_limit 777 ok
ctl_write writeback_limit_enable 1 ok
fz_expect_eq "bd_count" "$(bd count)" 1024

# Every readable control file but summary (whose figures of the process
# move on their own).
snapshot() {
	local f
	for f in disksize comp_algorithm algorithm_params mem_limit mem_used_max \
		max_comp_streams mm_stat io_stat debug_stat backing_dev writeback_limit \
		writeback_limit_enable bd_stat writeback_age; do
		printf '%s: %s\n' "$f" "$(cat "$FZ_CTL/$f")" || fz_fail "cannot read control/$f"
	done
}
# The background work after the writeback (compaction) done first.
# shellcheck disable=SC2016 # expanded by eval, at each poll
fz_wait_until 20 eval 's1=$(snapshot) && sleep 0.5 && [ "$s1" = "$(snapshot)" ]' ||
	fz_fail "the control files do not settle"
before=$(snapshot)

# ctl_try_long FILE TEXT - TEXT (over 4096 bytes) in one write(2), which
# the daemon cuts to 4096 bytes, as sysfs: ok or the errno.
ctl_try_long() {
	python3 - "$FZ_CTL/$1" "$2" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, sys.argv[2].encode())
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}
# bad FILE WORD... - each word, alone in a write, is EINVAL.
bad() {
	local f=$1 w
	shift
	for w in "$@"; do
		ctl_write "$f" "$w" EINVAL
	done
	for w in "$(head -c 5000 /dev/zero | tr '\0' 9)" "/$(head -c 5000 /dev/zero | tr '\0' a)" \
		"$(yes idle | head -n 1000 | tr '\n' ' ')"; do
		fz_expect_eq "${#w} bytes to control/$f" "$(ctl_try_long "$f" "$w")" EINVAL
	done
}
nl="
"
npages=$((64 << 8))
# shellcheck disable=SC2088 # a literal ~, which the daemon must refuse
bad backing_dev "$nl" "$nl$nl" relative backing ./backing "~/backing" none - " /tmp/x" \
	"	/tmp/x" "$(printf '\t')"
bad writeback "$nl" "$nl$nl" junk IDLE Idle "idle huge" "idle idle" "huge_idle idle" type= \
	type=junk "type=idle huge" idle=1 =idle "type idle" page_index= page_index=-1 \
	page_index=1x page_index=0x10 page_index=++1 page_index=99999999999999999999 \
	"page_index=$npages" page_indexes=5-1 page_indexes=1- page_indexes=-5 page_indexes=1 \
	page_indexes=1-2-3 page_index=1-2 "page_indexes=0-$npages" "page_index=0 idle_huge" \
	"$(for i in $(seq 0 16); do printf 'page_index=%d ' "$i"; done)"
bad writeback_limit "$nl" "$nl$nl" junk -1 1K 1M 18446744073709551616 \
	99999999999999999999 " 5" "5 " ++5 +-5 0x10 1e3 3.5 "5 6" "5$nl$nl"
bad writeback_limit_enable "$nl" "$nl$nl" junk 2 -1 yes true on " 1" "1 " 0x1 1.0 11 \
	18446744073709551617 "1$nl$nl"
bad writeback_age "$nl" "$nl$nl" junk -1 65536 99999999999999999999 5s 1m 30M " 5" "5 " \
	+5 0x10 1e3 3.5 "5$nl$nl"
fz_expect_eq "the control files after the bad words" "$(snapshot)" "$before"
# One leading '+' is taken, as zram's kstrtoull() takes it.
wl=$(cat "$FZ_CTL/writeback_limit")
ctl_write writeback_limit +5 ok
fz_expect_eq "writeback_limit after '+5'" "$(cat "$FZ_CTL/writeback_limit")" 5
ctl_write writeback_limit "$wl" ok

# A good path while the disk holds data: EBUSY, and no file is touched.
ctl_write backing_dev "$FZ_TMP/other" EBUSY
[ ! -e "$FZ_TMP/other" ] || fz_fail "a refused backing_dev created its file"
ctl_write backing_dev "$FZ_TMP/backing" EBUSY
fz_expect_eq "the control files after EBUSY" "$(snapshot)" "$before"
readback "after the bad words" 8
alive
fz_loop_detach
fz_umount

fz_log "ok"
