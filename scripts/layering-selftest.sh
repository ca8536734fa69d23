#!/bin/bash
# layering-selftest.sh - prove that scripts/layering-check.sh catches what
# it is meant to: on a copy of the sources it must pass, then fail on each
# planted violation (an allocator, private, compressor or FUSE include
# where none may be, one reached through a public header, a binary that
# needs libfuse).  Run by make check-unit.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
check=$here/scripts/layering-check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0

# fresh - a clean copy of the sources the check reads, in $tmp/src.
fresh() {
	rm -rf "$tmp/src"
	mkdir -p "$tmp/src"
	cp -r "$here/fusezram.c" "$here/fz_ring.h" "$here/store" "$here/compressors" "$tmp/src/"
}

# expect WANT WHAT - run the check on the copy; WANT is pass or fail.
expect() {
	local rc=0
	bash "$check" "$tmp/src" ${3:+"$3"} 2>"$tmp/err" || rc=$?
	n=$((n + 1))
	if [ "$1" = pass ] && [ "$rc" -ne 0 ]; then
		echo "layering-selftest: $2: the check failed: $(cat "$tmp/err")" >&2
		exit 1
	fi
	if [ "$1" = fail ] && [ "$rc" -eq 0 ]; then
		echo "layering-selftest: $2: the check passed; it should have failed" >&2
		exit 1
	fi
}

# plant FILE LINE - add LINE after the first #include of FILE in the copy.
plant() {
	sed -i "0,/^#include/s@^#include.*@&\n$2@" "$tmp/src/$1"
}

fresh; expect pass "the sources as they are"
fresh; plant fusezram.c '#include "store/zs_pool.h"'
expect fail "fusezram.c includes the allocator"
fresh; plant fusezram.c '#  include <store/zr_store_i.h>'
expect fail "fusezram.c includes a private header"
fresh; plant fusezram.c '#include "compressors/zcomp.h"'
expect fail "fusezram.c includes a compressor header"
fresh; plant store/zr_dev.h '#include "store/zs_arena_i.h"'
expect fail "the device's header leaks the allocator to fusezram.c"
fresh; plant store/zr_dev.c '#include <fuse_lowlevel.h>'
expect fail "the core includes a FUSE header"
fresh; plant compressors/zcomp.c '#include "linux/fuse.h"'
expect fail "a compressor includes a FUSE header"
fresh
printf 'void fuse_session_exit(void *);\nvoid f(void *p) { fuse_session_exit(p); }\n' >"$tmp/f.c"
cc -c -o "$tmp/f.o" "$tmp/f.c"
expect fail "a unit binary that needs libfuse" "$tmp/f.o"
printf 'void g(void);\nvoid g(void) { }\n' >"$tmp/g.c"
cc -c -o "$tmp/g.o" "$tmp/g.c"
expect pass "a unit binary without libfuse" "$tmp/g.o"
echo "layering-selftest: $n cases, the check caught every planted violation"
