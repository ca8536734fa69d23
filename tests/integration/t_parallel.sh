#!/bin/bash
# t_parallel: concurrent I/O with threads=4.  Eight writers fill disjoint
# 4 MiB regions at once; then four writers each write one quarter of every
# page of the same region at once (the store's read-modify-write of partial
# pages must not lose a neighbour's bytes); readers run alongside.  The
# image must equal the model built from the same pieces.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 dd cmp

size=$((64 << 20))
fz_mount -o disksize=64M,threads=4
head -c $((32 << 20)) /dev/urandom >"$FZ_TMP/rand"

# Eight writers on disjoint regions [0, 32M), O_DIRECT and buffered mixed,
# with readers of the whole image running alongside.
pids=()
for k in 0 1 2 3 4 5 6 7; do
	fl=direct
	[ $((k % 2)) = 0 ] || fl=dsync
	dd if="$FZ_TMP/rand" of="$FZ_IMG" bs=256K skip=$((k * 16)) seek=$((k * 16)) count=16 \
		oflag=$fl conv=notrunc status=none &
	pids+=($!)
done
for k in 0 1; do
	dd if="$FZ_IMG" of=/dev/null bs=1M iflag=direct status=none &
	pids+=($!)
done
fz_defer "kill ${pids[*]} 2>/dev/null || :"
for p in "${pids[@]}"; do
	fz_wait_until 120 eval "! fz__alive $p" || fz_fail "a dd did not finish in 120 s"
	wait "$p" || fz_fail "a concurrent dd failed"
done

# Four writers interleaved within every page of [32M, 40M): writer k writes
# bytes [1024k, 1024k+1024) of each page, with O_DIRECT, one pwrite per page.
fz_python 300 "$FZ_IMG" <<'EOF' || fz_fail "interleaved partial-page writers failed (see above)"
import os, sys

img = sys.argv[1]
P, Q = 4096, 1024
BASE, NPAGES = 32 << 20, 2048


def piece(k, page):
    return bytes([(page * 7 + k * 61 + 1) % 251]) * Q


kids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(img, os.O_WRONLY | os.O_DIRECT)
            for page in range(NPAGES):
                off = BASE + page * P + k * Q
                if os.pwrite(fd, piece(k, page), off) != Q:
                    os._exit(2)
            os._exit(0)
        except OSError as e:
            print("t_parallel: writer %d: %s" % (k, e), file=sys.stderr)
            os._exit(1)
    kids.append(pid)
bad = 0
for pid in kids:
    _, st = os.waitpid(pid, 0)
    if st:
        print("t_parallel: a writer failed (%d)" % st, file=sys.stderr)
        bad += 1
fd = os.open(img, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
for page in range(NPAGES):
    got = os.pread(fd, P, BASE + page * P)
    want = b"".join(piece(k, page) for k in range(4))
    if got != want:
        print("t_parallel: page %d lost a concurrent partial write" % page, file=sys.stderr)
        bad += 1
        if bad > 10:
            break
if bad:
    sys.exit(1)
print("ok")
EOF

fz_read_direct "$FZ_IMG" "$FZ_TMP/back"
fz_expect_cmp "regions written concurrently" <(head -c $((32 << 20)) "$FZ_TMP/back") "$FZ_TMP/rand"
fz_expect_cmp "untouched tail" <(tail -c +$(((40 << 20) + 1)) "$FZ_TMP/back") <(head -c $((size - (40 << 20))) /dev/zero)
fz_expect_eq "io_stat failed_writes" "$(fz_io failed_writes)" 0
fz_show_stats
fz_umount
fz_log "ok"
