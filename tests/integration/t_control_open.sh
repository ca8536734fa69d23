#!/bin/bash
# t_control_open: opening control files pins no memory, and a reader gets
# a consistent text.  10,000 opens of control/summary held at once, and
# the same again each read whole, grow the daemon's RSS by less than
# 8 MiB (it used to keep a 64 KiB snapshot per open, mlocked); a reader
# that takes mm_stat in pieces gets the text of its first read even when
# the numbers change in between; such piecewise copies are bounded in
# all (a read past the bound fails with ENOMEM, and works again once
# handles are closed).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3

fz_mount -o disksize=64M

fz_python 300 "$FZ_MNT" "$FZ_PID" <<'EOF' || fz_fail "control file opens (see above)"
import errno, os, resource, sys

mnt, pid = sys.argv[1], sys.argv[2]
ctl = mnt + "/control/"
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))

def rss_kib():
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for the daemon")

def read_whole(fd):
    out = b""
    while True:
        b = os.pread(fd, 1 << 16, len(out))
        if not b:
            return out
        out += b

bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL:", what)
        bad += 1

# Warm up: the daemon's threads and buffers exist before the baseline.
for i in range(64):
    fd = os.open(ctl + "summary", os.O_RDONLY)
    read_whole(fd)
    os.close(fd)

N = 10000
for reading in (False, True):
    base = rss_kib()
    fds = [os.open(ctl + "summary", os.O_RDONLY) for _ in range(N)]
    if reading:
        for fd in fds:
            check(b"memory" in read_whole(fd), "summary read whole")
    grown = rss_kib() - base
    for fd in fds:
        os.close(fd)
    print("%d opens of summary%s: daemon RSS grew %d KiB" %
          (N, " each read whole" if reading else "", grown))
    check(grown < 8 * 1024, "RSS grew by %d KiB (limit 8192)" % grown)

# Consistent pieces: mm_stat read 5 bytes at a time around a write.
fd0 = os.open(ctl + "mm_stat", os.O_RDONLY)
before = read_whole(fd0)
os.close(fd0)
fd = os.open(ctl + "mm_stat", os.O_RDONLY)
first = os.read(fd, 5)
img = os.open(mnt + "/image", os.O_WRONLY)
os.pwrite(img, os.urandom(1 << 20), 0)
os.close(img)
rest = b""
while True:
    b = os.read(fd, 5)
    if not b:
        break
    rest += b
os.close(fd)
fd0 = os.open(ctl + "mm_stat", os.O_RDONLY)
after = read_whole(fd0)
os.close(fd0)
check(before != after, "mm_stat changed with 1 MiB written")
check(first + rest == before,
      "pieces %r are the text of the first read %r" % (first + rest, before))

# Piecewise copies are bounded: many handles each holding a summary copy.
held, refused = [], 0
for i in range(2000):
    fd = os.open(ctl + "summary", os.O_RDONLY)
    held.append(fd)
    try:
        os.read(fd, 10)
    except OSError as e:
        check(e.errno == errno.ENOMEM, "refused with %s" % e)
        refused += 1
        break
print("piecewise copies refused after %d handles" % len(held))
check(refused == 1, "2000 piecewise summary readers were all given a copy")
for fd in held:
    os.close(fd)
fd = os.open(ctl + "summary", os.O_RDONLY)
check(len(os.read(fd, 10)) == 10, "a piecewise read after the handles closed")
os.close(fd)

if bad:
    sys.exit(1)
print("ok")
EOF
fz_umount
