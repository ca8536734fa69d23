#!/bin/bash
# t_past_end: the image has a fixed size.  A write at or past the end fails
# with EFBIG or ENOSPC and changes nothing; a write crossing the end writes
# up to the end only; reads stop at the end; truncating or extending the
# image to another size is refused and leaves the size alone.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 dd truncate fallocate

size=$((1 << 20))
fz_mount -o disksize=1M

fz_python 60 "$FZ_IMG" "$size" <<'EOF' || fz_fail "end-of-disk checks failed (see above)"
import errno, os, sys

img, size = sys.argv[1], int(sys.argv[2])
P = 4096
bad = 0


def fail(msg):
    global bad
    print("t_past_end: " + msg, file=sys.stderr)
    bad += 1


def expect_write_error(fd, off, length, how):
    try:
        n = os.pwrite(fd, b"x" * length, off)
        fail("%s: pwrite(%d bytes at %d) returned %d, expected EFBIG or ENOSPC"
             % (how, length, off, n))
    except OSError as e:
        if e.errno not in (errno.EFBIG, errno.ENOSPC):
            fail("%s: pwrite(%d bytes at %d) failed with %s, expected EFBIG or ENOSPC"
                 % (how, length, off, errno.errorcode.get(e.errno, e.errno)))
    st = os.fstat(fd).st_size
    if st != size:
        fail("%s: size %d after pwrite at %d, expected %d" % (how, st, off, size))


for how, flags in (("buffered", 0), ("O_DIRECT", os.O_DIRECT)):
    fd = os.open(img, os.O_RDWR | flags)
    expect_write_error(fd, size, P, how)
    expect_write_error(fd, size + 10 * P, P, how)
    if not flags:
        # Unaligned lengths only without O_DIRECT.
        expect_write_error(fd, size, 1, how)
        expect_write_error(fd, size + 1, 100, how)
    os.close(fd)

# A write crossing the end: only the part before the end is written.
fd = os.open(img, os.O_RDWR)
data = os.urandom(2 * P)
try:
    n = os.pwrite(fd, data, size - P)
    if n != P:
        fail("crossing write: pwrite(8192 bytes at size-4096) returned %d, expected 4096" % n)
except OSError as e:
    fail("crossing write: pwrite(8192 bytes at size-4096) failed: %s" % e)
try:
    n = os.pwrite(fd, data[:100], size - 10)
    if n != 10:
        fail("crossing write: pwrite(100 bytes at size-10) returned %d, expected 10" % n)
except OSError as e:
    fail("crossing write: pwrite(100 bytes at size-10) failed: %s" % e)
os.fsync(fd)
if os.fstat(fd).st_size != size:
    fail("size %d after crossing writes" % os.fstat(fd).st_size)
os.close(fd)

# Read back from the daemon: the last page holds the first half of data,
# except its last 10 bytes, which hold the second crossing write.
fd = os.open(img, os.O_RDONLY | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 4 * P)
n = os.preadv(fd, [buf], size - 2 * P)
if n != 2 * P:
    fail("O_DIRECT read of the last two pages returned %d, expected 8192" % n)
want = bytes(P) + data[:P - 10] + data[:10]
if buf[:2 * P] != want:
    fail("the last page does not hold what the crossing writes put there")
# Reads at and past the end return nothing.
for off in (size, size + P):
    n = os.preadv(fd, [buf], off)
    if n != 0:
        fail("O_DIRECT read at %d returned %d bytes, expected 0" % (off, n))
os.close(fd)
fd = os.open(img, os.O_RDONLY)
if len(os.pread(fd, 100, size - 10)) != 10:
    fail("buffered read crossing the end did not stop at the end")
if len(os.pread(fd, 100, size)) != 0:
    fail("buffered read at the end returned data")
os.close(fd)
if bad:
    sys.exit(1)
print("ok")
EOF

# Truncation and extension to another size are refused; the size stays.
for s in 0 $((size / 2)) $((size + 4096)) $((2 * size)); do
	if truncate -s "$s" "$FZ_IMG" 2>"$FZ_TMP/err"; then
		fz_fail "truncate -s $s succeeded (size now $(fz_size "$FZ_IMG")), expected an error"
	fi
	fz_log "truncate -s $s refused: $(cat "$FZ_TMP/err")"
	fz_expect_eq "size after truncate -s $s" "$(fz_size "$FZ_IMG")" "$size"
done
# Neither opening with O_TRUNC nor dd without conv=notrunc (ftruncate to
# its seek offset) may shrink it.
(: >"$FZ_IMG") 2>/dev/null || :
fz_expect_eq "size after an O_TRUNC open" "$(fz_size "$FZ_IMG")" "$size"
dd if=/dev/zero of="$FZ_IMG" bs=4096 count=1 seek=1 status=none 2>/dev/null || :
fz_expect_eq "size after dd without conv=notrunc" "$(fz_size "$FZ_IMG")" "$size"
# fallocate past the end must not grow it.
fallocate --offset "$size" --length 4096 "$FZ_IMG" 2>/dev/null || :
fz_expect_eq "size after fallocate past the end" "$(fz_size "$FZ_IMG")" "$size"
# dd at the end fails.
if dd if=/dev/zero of="$FZ_IMG" bs=4096 count=1 seek=$((size / 4096)) conv=notrunc status=none 2>"$FZ_TMP/err"; then
	fz_fail "dd at the end of the image succeeded"
fi
grep -qiE 'too large|no space' "$FZ_TMP/err" || fz_fail "dd at the end: unexpected error: $(cat "$FZ_TMP/err")"
fz_expect_eq "size after everything" "$(fz_size "$FZ_IMG")" "$size"

fz_umount
fz_log "ok"
