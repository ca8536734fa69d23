#!/bin/bash
# t_busy: a control write that would replace the store (reset, disksize)
# answers EBUSY at once while the image is open, even while a long
# request holds the store shared, and never makes image I/O wait behind
# it.  The long holder is a SEEK_DATA scan over 2 TiB of a 4 TiB image
# (one request that walks that much of the page table; each scan walks a
# half not walked before, whose table pages are not mapped yet); the test
# checks that it is still running when the answers come, so it cannot
# pass by timing luck.
# With the image closed, a reset waits for the scan at most briefly and
# then answers EBUSY too, and an open of the image meanwhile is served.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require python3

fz_mount -o disksize=4T,nomlock

fz_python 300 "$FZ_MNT" <<'EOF' || fz_fail "replacement while busy (see above)"
import errno, os, sys, threading, time

mnt = sys.argv[1]
img, ctl = mnt + "/image", mnt + "/control/"
bad = 0
def check(cond, what):
    global bad
    if not cond:
        print("FAIL:", what)
        bad += 1

def scan(box, start):
    fd = os.open(img, os.O_RDONLY)
    t = time.monotonic()
    try:
        box["pos"] = os.lseek(fd, start, os.SEEK_DATA)
    except OSError as e:
        box["pos"] = e
    box["secs"] = time.monotonic() - t
    os.close(fd)

def ctl_write(name, text):
    fd = os.open(ctl + name, os.O_WRONLY)
    try:
        os.write(fd, text)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)

def start_scan(start):
    box = {}
    th = threading.Thread(target=scan, args=(box, start))
    th.start()
    time.sleep(0.3)
    return th, box

# 1. The image open (as by a loop device): EBUSY while the scan runs,
#    and a read of the image is served while the scan runs.
keep = os.open(img, os.O_RDWR)
half = os.fstat(keep).st_size // 2
last = half - 4096		# the first half's last page
os.pwrite(keep, b"x" * 4096, last)
th, box = start_scan(0)
for name, text in (("reset", b"1"), ("disksize", b"1G")):
    err = ctl_write(name, text)
    check(err == errno.EBUSY, "%s with the image open: %s, wanted EBUSY"
          % (name, errno.errorcode.get(err, err)))
    check(th.is_alive(), "%s answered only after the scan ended" % name)
r = {}
def reader():
    r["data"] = os.pread(keep, 4096, last)
rt = threading.Thread(target=reader)
rt.start()
rt.join(timeout=30)
check(r.get("data") == b"x" * 4096, "read during the scan")
check(th.is_alive(), "the read was served only after the scan ended")
th.join()
print("scan 1: %.2f s" % box["secs"])
check(box["pos"] == last, "the scan found %s, wanted %d" % (box["pos"], last))
os.close(keep)

# 2. The image closed: reset waits for the scan at most briefly, then
#    EBUSY; an open of the image meanwhile is served at once.
th, box = start_scan(half)	# the second half: no data
o = {}
def opener():
    fd = os.open(img, os.O_RDONLY)
    o["ok"] = th.is_alive()
    os.close(fd)
ot = threading.Thread(target=opener)
t = time.monotonic()
ot.start()
err = ctl_write("reset", b"1")
ot.join(timeout=30)
check(err == errno.EBUSY, "reset during the scan: %s, wanted EBUSY"
      % errno.errorcode.get(err, err))
check(th.is_alive(), "reset answered only after the scan ended")
check(o.get("ok"), "an open of the image waited for the scan to end")
th.join()
print("scan 2: %.2f s" % box["secs"])
check(isinstance(box["pos"], OSError) and box["pos"].errno == errno.ENXIO,
      "scan 2 found %s, wanted ENXIO" % box["pos"])

# 3. Nothing open, nothing running: reset and disksize work.
check(ctl_write("reset", b"1") == 0, "reset when idle")
check(ctl_write("disksize", b"1G") == 0, "disksize when idle and empty")
with open(ctl + "disksize") as f:
    check(f.read().strip() == str(1 << 30), "disksize is 1G")
if bad:
    sys.exit(1)
print("ok")
EOF
fz_umount
