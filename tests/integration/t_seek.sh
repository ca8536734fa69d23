#!/bin/bash
# t_seek: SEEK_DATA / SEEK_HOLE at page granularity.  A page is data once
# written (even with zeros) until punched; a punched page is a hole; the
# end of the disk is a hole; at or past the end both give ENXIO.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 fallocate

fz_mount -o disksize=1M
fz_python 60 "$FZ_IMG" <<'EOF' || fz_fail "SEEK_DATA/SEEK_HOLE checks failed (see above)"
import errno, os, subprocess, sys

img = sys.argv[1]
P = 4096
fd = os.open(img, os.O_RDWR)
size = os.fstat(fd).st_size
assert size == 256 * P, size
bad = 0


def seek(off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return -e.errno


def expect(what, off, whence, want):
    global bad
    got = seek(off, whence)
    name = "SEEK_DATA" if whence == os.SEEK_DATA else "SEEK_HOLE"
    show = lambda v: "ENXIO" if v == -errno.ENXIO else str(v)
    if got != want:
        print("t_seek: %s: lseek(%d, %s) = %s, expected %s"
              % (what, off, name, show(got), show(want)), file=sys.stderr)
        bad += 1


def write(page, data):
    os.pwrite(fd, data, page * P)
    os.fsync(fd)


def punch(off, length):
    subprocess.run(["fallocate", "--punch-hole", "--offset", str(off),
                    "--length", str(length), img], check=True)


ENXIO = -errno.ENXIO
D, H = os.SEEK_DATA, os.SEEK_HOLE

# Empty image: no data anywhere; the hole runs to the end.
expect("empty", 0, D, ENXIO)
expect("empty", 0, H, 0)
expect("empty", 5000, H, 5000)
expect("at the end", size, D, ENXIO)
expect("at the end", size, H, ENXIO)
expect("past the end", size + P, H, ENXIO)

# Pages 0 and 10 written.
write(0, b"a" * P)
write(10, b"b" * P)
expect("pages 0,10", 0, D, 0)
expect("pages 0,10", 5, D, 5)
expect("pages 0,10", 0, H, P)
expect("pages 0,10", 100, H, P)
expect("pages 0,10", P, D, 10 * P)
expect("pages 0,10", 5000, D, 10 * P)
expect("pages 0,10", 10 * P + 7, D, 10 * P + 7)
expect("pages 0,10", 10 * P, H, 11 * P)
expect("pages 0,10", 11 * P, D, ENXIO)
expect("pages 0,10", size - 1, D, ENXIO)
expect("pages 0,10", size - 1, H, size - 1)

# Page 10 punched: SEEK_HOLE lands on it, no data after page 0.
punch(10 * P, P)
expect("page 10 punched", 10 * P, H, 10 * P)
expect("page 10 punched", P, D, ENXIO)
expect("page 10 punched", 0, H, P)

# A partial write makes the whole page data; a partial punch keeps it.
os.pwrite(fd, b"c" * 10, 20 * P + 100)
os.fsync(fd)
expect("partial write of page 20", 11 * P, D, 20 * P)
expect("partial write of page 20", 20 * P, H, 21 * P)
punch(20 * P, 200)
expect("partial punch of page 20", 11 * P, D, 20 * P)

# Zeros written are data too (until punched).
write(30, bytes(P))
expect("page 30 written with zeros", 21 * P, D, 30 * P)
expect("page 30 written with zeros", 30 * P, H, 31 * P)

# A run of data pages 40..49; the hole after it, and data at the last
# page: the end of the disk is a hole.
os.pwrite(fd, os.urandom(10 * P), 40 * P)
os.fsync(fd)
expect("pages 40..49", 31 * P, D, 40 * P)
expect("pages 40..49", 40 * P, H, 50 * P)
expect("pages 40..49", 45 * P + 1, H, 50 * P)
punch(44 * P, P)
expect("page 44 punched", 40 * P, H, 44 * P)
expect("page 44 punched", 44 * P, D, 45 * P)
write(255, b"z" * P)
expect("last page", 50 * P, D, 255 * P)
expect("last page", 255 * P, H, size)

# Punching everything: no data left.
punch(0, size)
expect("all punched", 0, D, ENXIO)
expect("all punched", 0, H, 0)

os.close(fd)
if bad:
    sys.exit(1)
print("ok")
EOF
fz_umount
fz_log "ok"
