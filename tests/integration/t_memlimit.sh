#!/bin/bash
# t_memlimit: mem_limit=8M on a 64M image.  Writing incompressible pages
# fails with ENOSPC once the store's memory reaches the limit (never a crash
# or a hang); mem_used_total stays about the limit; the pages written
# before read back intact and the refused page keeps its old content
# (zeros); punching frees memory and writes succeed again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3 fallocate

fz_mount -o disksize=64M,mem_limit=8M
fz_expect_eq "mm_stat mem_limit" "$(fz_mm mem_limit)" $((8 << 20))

fz_python 120 "$FZ_IMG" "$FZ_CTL/mm_stat" <<'EOF' || fz_fail "mem_limit checks failed (see above)"
import errno, mmap, os, subprocess, sys

img, mm_stat = sys.argv[1], sys.argv[2]
P = 4096
LIMIT = 8 << 20
bad = 0


def fail(msg):
    global bad
    print("t_memlimit: " + msg, file=sys.stderr)
    bad += 1


def mm():
    with open(mm_stat) as f:
        return [int(v) for v in f.read().split()]


fd = os.open(img, os.O_RDWR | os.O_DIRECT)
size = os.fstat(fd).st_size
buf = mmap.mmap(-1, P)
pages = []
err = None
for i in range(size // P):
    data = os.urandom(P)
    buf[:] = data
    try:
        n = os.pwritev(fd, [buf], i * P)
    except OSError as e:
        err = e.errno
        break
    if n != P:
        fail("pwrite of page %d returned %d" % (i, n))
        break
    pages.append(data)
stat = mm()
print("t_memlimit: %d pages (%d KiB) written before %s; mm_stat %s"
      % (len(pages), len(pages) * 4, errno.errorcode.get(err, err), stat),
      file=sys.stderr)
if err != errno.ENOSPC:
    fail("writing past the limit: got %s, expected ENOSPC"
         % (errno.errorcode.get(err, err) if err else "no error at all"))
if not pages:
    fail("not one page could be written under an 8 MiB limit")
if len(pages) * P > LIMIT:
    fail("%d KiB of random pages stored under an 8 MiB limit" % (len(pages) * 4))
if stat[2] > LIMIT + 64 * P:
    fail("mem_used_total %d is well over mem_limit %d" % (stat[2], LIMIT))
if stat[0] != len(pages) * P:
    fail("orig_data_size %d, expected %d" % (stat[0], len(pages) * P))

# What was written reads back; the refused page is still zeros.
for i, data in enumerate(pages):
    n = os.preadv(fd, [buf], i * P)
    if n != P or buf[:] != data:
        fail("page %d does not read back" % i)
        break
n = os.preadv(fd, [buf], len(pages) * P)
if n != P or buf[:] != bytes(P):
    fail("the refused page %d does not read as zeros" % len(pages))

# Punching frees memory: a write fits again.
subprocess.run(["fallocate", "--punch-hole", "--offset", "0", "--length",
                str(len(pages) * P), img], check=True)
after = mm()
if after[0] != 0 or after[2] >= stat[2]:
    fail("after punching everything: orig_data_size %d, mem_used_total %d (was %d)"
         % (after[0], after[2], stat[2]))
buf[:] = os.urandom(P)
try:
    os.pwritev(fd, [buf], 100 * P)
except OSError as e:
    fail("write after punching failed: %s" % e)
os.close(fd)
if bad:
    sys.exit(1)
print("ok")
EOF
fz_show_stats
fz_umount
fz_log "ok"
