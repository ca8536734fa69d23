#!/usr/bin/env python3
"""pages.py - data for the tests and benchmarks that write an image.

  pages.py text FILE MIB SEED
      FILE gets MIB MiB of text-like data (words, one random byte in five
      words or so): it compresses to about a third, page by page, and no
      two pages are alike.
  pages.py rewrite DEV REF ROUND
      A third of the 4 KiB pages of REF (chosen at random, seeded by
      ROUND) are written to DEV, rotated by ROUND bytes, with O_DIRECT
      (from a page-aligned buffer), and REF is updated to match: DEV then
      reads back as REF.  Each page rewritten frees its old copy wherever
      the device keeps it.

Exit status 0, or 1 with a message (a short write, a bad argument).
"""
import mmap
import os
import random
import sys

PAGE = 4096
WORDS = [b"page ", b"zram ", b"swap ", b"fuse ", b"memory ", b"the ",
         b"slot ", b"segment ", b"\n", b"compress ", b"file ", b"idle "]


def text(path, mib, seed):
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < mib << 20:
        out += rnd.choice(WORDS)
        if rnd.random() < 0.2:
            out += bytes([rnd.randrange(256)])
    with open(path, "wb") as f:
        f.write(out[:mib << 20])


def rewrite(dev, ref, rnd_round):
    rnd = random.Random(100 + rnd_round)
    pages = os.path.getsize(ref) // PAGE
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    rf = os.open(ref, os.O_RDWR)
    buf = mmap.mmap(-1, PAGE)
    try:
        for p in rnd.sample(range(pages), pages // 3):
            page = os.pread(rf, PAGE, p * PAGE)
            page = page[rnd_round:] + page[:rnd_round]
            buf.seek(0)
            buf.write(page)
            if os.pwritev(fd, [buf], p * PAGE) != PAGE:
                sys.exit("pages.py: short write at page %d" % p)
            os.pwrite(rf, page, p * PAGE)
    finally:
        os.close(fd)
        os.close(rf)


def main(argv):
    if len(argv) == 5 and argv[1] == "text":
        text(argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) == 5 and argv[1] == "rewrite":
        rewrite(argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
